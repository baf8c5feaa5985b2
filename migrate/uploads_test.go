package migrate

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/internal/lab/labdb"
)

// TestUploadsCopyWithManifestResumesAndVerifies: files kept on disk are
// copied as a tar stream with their SHA-256 checked on the way; verify
// passes; a file changed on the target fails verify naming it; a re-run
// sends only that file; files named with spaces, quotes and newlines
// survive.
func TestUploadsCopyWithManifestResumesAndVerifies(t *testing.T) {
	ctx := testCtx(t)
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "data", "uploads")
	if err := labdb.GenerateUploads(from, 12, 200<<10, 7); err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(from, "odd dir", "it's a\nnew line.txt")
	os.MkdirAll(filepath.Dir(odd), 0o755)
	os.WriteFile(odd, []byte("hello"), 0o644)
	u := &Uploads{From: Local("old"), FromDir: from, To: Local("new"), ToDir: to, StateDir: t.TempDir()}
	res, err := u.Copy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 13 || res.Sent != 13 {
		t.Fatalf("copy: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(to, "odd dir", "it's a\nnew line.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("odd file: %q %v", b, err)
	}
	st, _ := newStateStore(u.To, u.StateDir).loadData(ctx)
	if ms, _, err := u.Verify(ctx, st); err != nil || len(ms) != 0 {
		t.Fatalf("verify: %v %v", ms, err)
	}
	if st.Uploads == nil || st.Uploads.Files != 13 || st.Uploads.Bytes != res.Bytes {
		t.Errorf("state: %+v", st.Uploads)
	}

	var victim string
	filepath.Walk(to, func(p string, info os.FileInfo, err error) error {
		if victim == "" && info.Mode().IsRegular() && info.Size() > 0 {
			victim = p
		}
		return nil
	})
	os.WriteFile(victim, []byte("tampered"), 0o644)
	ms, _, err := u.Verify(ctx, st)
	rel, _ := filepath.Rel(to, victim)
	if err != nil || len(ms) != 1 || ms[0].Collection != "uploads/"+rel || ms[0].What != "content differs" {
		t.Fatalf("verify after tampering: %v %v", ms, err)
	}
	res, err = u.Copy(ctx)
	if err != nil || res.Sent != 1 {
		t.Fatalf("re-run: %+v %v", res, err)
	}
	if ms, _, _ := u.Verify(ctx, st); len(ms) != 0 {
		t.Fatalf("verify after re-run: %v", ms)
	}
	// The source was only read.
	if b, _ := os.ReadFile(odd); string(b) != "hello" {
		t.Error("source changed")
	}
}

// TestUploadsStreamCheckedAgainstTheListing: a file that changes between
// the listing and the transfer (or is altered on the way) stops the copy.
func TestUploadsStreamCheckedAgainstTheListing(t *testing.T) {
	ctx := testCtx(t)
	from, to := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(from, "a.bin"), []byte("original"), 0o644)
	sh := &mutatingShell{Shell: LocalShell{Name: "old"}, file: filepath.Join(from, "a.bin")}
	old := Local("old")
	old.Shell = sh
	u := &Uploads{From: old, FromDir: from, To: Local("new"), ToDir: to, StateDir: t.TempDir()}
	_, err := u.Copy(ctx)
	if err == nil || !strings.Contains(err.Error(), "upload a.bin changed on the way or on old") {
		t.Fatalf("err = %v", err)
	}
}

// mutatingShell rewrites a file right before tar reads it.
type mutatingShell struct {
	Shell
	file string
}

func (m *mutatingShell) Stream(ctx context.Context, cmd string, in io.Reader, out io.Writer) error {
	if strings.Contains(cmd, "tar --null") {
		os.WriteFile(m.file, []byte("modified"), 0o644)
	}
	return m.Shell.Stream(ctx, cmd, in, out)
}

// TestAppCheckCatchesFreshInstallSiteURLAndLostFiles covers the settings
// that make the app come up wrong after a move.
func TestAppCheckCatchesFreshInstallSiteURLAndLostFiles(t *testing.T) {
	ctx := testCtx(t)
	srv := startDB(t)
	c := client(t, srv.URI)
	set := func(id string, v any) {
		_, err := c.Database(rcDB).Collection("rocketchat_settings").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: v}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			t.Fatal(err)
		}
	}
	set("Show_Setup_Wizard", "completed")
	set("Site_Url", "https://chat.lghs.be")
	set("FileUpload_Storage_Type", "GridFS")
	a := &AppCheck{DB: rcDB, SiteURL: "https://chat.lghs.be/", UploadsPath: "/app/uploads"}
	check := func(uploads bool) []string {
		ms, _, err := a.Check(ctx, c, uploads)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.String())
		}
		return out
	}
	if got := check(false); len(got) != 0 {
		t.Fatalf("a good workspace: %v", got)
	}
	set("Show_Setup_Wizard", "pending")
	set("Site_Url", "http://localhost:3000")
	set("FileUpload_Storage_Type", "FileSystem")
	set("FileUpload_FileSystemPath", "/var/snap/rocketchat-server/common/uploads")
	want := []string{
		`rocketchat.rocketchat_settings: Show_Setup_Wizard is "pending", not "completed": the app would show its setup wizard`,
		`rocketchat.rocketchat_settings: Site_Url is "http://localhost:3000" but the site is "https://chat.lghs.be/": links, OAuth callbacks and uploads would point at the old address`,
		`rocketchat.rocketchat_settings: FileUpload_Storage_Type is FileSystem (files on disk at "/var/snap/rocketchat-server/common/uploads") but no uploads directory was copied: set migrate.from.uploads_dir, or attachments would be lost`,
	}
	if got := check(false); !slices.Equal(got, want) {
		t.Fatalf("got:\n%s", strings.Join(got, "\n"))
	}
	if got := check(true); len(got) != 3 || !strings.Contains(got[2], `FileUpload_FileSystemPath is "/var/snap/rocketchat-server/common/uploads" but the app's container mounts the uploads at "/app/uploads"`) {
		t.Fatalf("with uploads: %v", got)
	}
}
