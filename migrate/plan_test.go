package migrate

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lghs/lghsctl/internal/lab/labdb"
)

// TestPreflightNamesEveryBlockingCheckAndChangesNothing: a running app, a
// missing tool and a non-empty target are all reported at once; nothing
// is written on either side; with the app stopped, --drop and the tool
// present, every check passes.
func TestPreflightNamesEveryBlockingCheckAndChangesNothing(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	dst := startDB(t)
	if _, err := client(t, dst.URI).Database(rcDB).Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "admin"}}); err != nil {
		t.Fatal(err)
	}
	running := true
	stateDir := t.TempDir()
	p := &Preflight{
		Source: &DriverSource{Host: Local("old"), URI: src.URI}, SourceHost: Local("old"), SourceTool: "no-such-mongodump",
		Target: &Target{Host: Local("new"), URI: dst.URI}, Databases: []string{rcDB}, StateDir: stateDir,
		DataDir: t.TempDir(), UploadsDir: t.TempDir(),
		AppRunning: func(context.Context) (bool, error) { return running, nil },
	}
	rep, err := p.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failed := rep.Failed()
	want := []string{
		"source tool: no-such-mongodump not found on old: install the database tools there, or use source: driver (MongoDB 4.2+)",
		"app stopped: the app runs on new: stop it first (state: stopped in the inventory, then lghsctl up); during a restore it re-indexes and runs out of memory",
		"target rocketchat: not empty (users): give --drop to replace it",
	}
	if !slices.Equal(failed, want) {
		t.Fatalf("failed checks:\n%s", strings.Join(failed, "\n"))
	}
	if len(rep.Collections[rcDB]) != 9 || rep.TotalBytes == 0 || rep.FreeBytes == 0 {
		t.Errorf("report %+v", rep)
	}
	if n, _ := client(t, dst.URI).Database(rcDB).Collection("users").CountDocuments(ctx, bson.D{}); n != 1 {
		t.Error("the pre-flight changed the target")
	}
	running, p.Drop, p.SourceTool = false, true, "sh"
	rep, err = p.Run(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("all set: %v %v", rep.Failed(), err)
	}
}
