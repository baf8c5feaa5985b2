package migrate

import (
	"path/filepath"
	"testing"
)

// TestEngineRestoresRealMongodumpArchivesMatchingTheManifest: the real
// mongodump archives of shared/fixtures/mongo (plain and gzip) are
// restored by the engine's archive reader and driver target into an
// empty lab database, and the database then reproduces the manifest
// exactly: collections (the empty one included), counts, bytes, id types,
// content hashes as the manifest defines them, index names, keys and
// uniqueness, totals, GridFS totals and the spot checks.
func TestEngineRestoresRealMongodumpArchivesMatchingTheManifest(t *testing.T) {
	want := loadManifest(t)
	for _, file := range []string{"rocketchat.archive", "rocketchat.archive.gz"} {
		t.Run(file, func(t *testing.T) {
			ctx := testCtx(t)
			srv := startDB(t)
			mv := &Move{
				Source:    &ArchiveSource{Path: filepath.Join(fixtures, file)},
				Target:    &Target{Host: Local("new"), URI: srv.URI},
				Databases: []string{want.Database},
				StateDir:  t.TempDir(),
			}
			res, err := mv.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Copied) != len(want.Collections) {
				t.Errorf("copied %d collections, want %d: %v", len(res.Copied), len(want.Collections), res.Copied)
			}
			got := manifestOf(t, client(t, srv.URI), want.Database, want)
			sameJSON(t, "collections", got.Collections, want.Collections)
			sameJSON(t, "totals", got.Totals, want.Totals)
			sameJSON(t, "gridfs", got.GridFS, want.GridFS)
			sameJSON(t, "spot checks", got.SpotChecks, want.SpotChecks)
		})
	}
}
