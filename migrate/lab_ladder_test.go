package migrate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lghs/lghsctl/appstack"
	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/inventory"
)

// appImage is the stand-in app's image for a tag, reporting version.
func appImage(t *testing.T, bin []byte) []byte {
	t.Helper()
	img, err := labdb.RootFS(map[string][]byte{"/labapp": bin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestLabLadderOnTheComposeStack runs the upgrade ladder for real on a lab
// host: Docker Compose (Debian's docker.io and docker-compose), the
// compose project rendered by appstack with the lab database image as
// "mongo" and the stand-in app image as "rocketchat", and lghsctl driving
// it through ComposeApp over SSH: three rungs (3.0.12; 3.18.2 with the
// runbook's migration-231 workaround; 4.8.6 with a database image switch),
// a backup before each, each waiting for the app's /api/info; then a
// fourth rung whose image never reports its tag's version stops the
// ladder with the app's last log lines (from docker compose logs) and the
// restore hint.
func TestLabLadderOnTheComposeStack(t *testing.T) {
	labtest.Require(t)
	l := labtest.Lab(t, labhost.Config{})
	ctx := testCtx(t)
	work := t.TempDir()
	p := &labPair{t: t, keyFile: filepath.Join(work, "id_ed25519"), known: filepath.Join(work, "known_hosts")}
	authKey := writeKey(t, p.keyFile)

	dbImage, err := labdb.Image(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	appBin := filepath.Join(work, "labapp")
	if err := labdb.BuildStatic(ctx, "github.com/lghs/lghsctl/internal/lab/labapp/cmd/labapp", appBin); err != nil {
		t.Fatal(err)
	}
	bin, _ := os.ReadFile(appBin)
	app := appImage(t, bin)
	h, err := l.Start(ctx, labhost.Spec{Name: "lghs-chat", AuthorizedKeys: []string{authKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Remove(context.Background()) })
	if err := labdb.InstallDocker(ctx, h, "docker-compose"); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{labdb.ImageRef, "lghs-lab/ferretdb:1.24.2-next"} {
		if err := labdb.ImportImage(ctx, h, dbImage, ref); err != nil {
			t.Fatal(err)
		}
	}
	for tag, reports := range map[string]string{"3.0.12": "3.0.12", "3.18.2": "3.18.2", "4.8.6": "4.8.6", "5.4.1": "5.4.0"} {
		if err := h.ImportImage(ctx, bytes.NewReader(app), "lghs-lab/rocketchat:"+tag, `ENTRYPOINT ["/labapp"]`, "ENV LABAPP_VERSION="+reports); err != nil {
			t.Fatal(err)
		}
	}

	host := p.host(h)
	stack := &appstack.Stack{Inventory: "lab", Site: "chat.lghs.be", Project: "chatlghsbe", Dir: "/srv/chat.lghs.be", Services: []inventory.Service{
		{Name: "mongo", Image: labdb.ImageRef, Role: "database", State: "running", Volumes: []string{"data/db:/data/db"}, Ports: []string{"127.0.0.1:27017:27017"}},
		{Name: "rocketchat", Image: "lghs-lab/rocketchat:3.0.12", Role: "app", State: "stopped", Ports: []string{"127.0.0.1:3000:3000"},
			Environment: map[string]string{"MONGO_URL": "mongodb://mongo:27017/rocketchat?replicaSet=rs0", "PORT": "3000"}},
	}}
	ca, err := NewComposeApp(host, stack)
	if err != nil {
		t.Fatal(err)
	}
	content, err := stack.Compose()
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Ops.Install(ctx, content); err != nil {
		t.Fatal(err)
	}
	if err := ca.Ops.Up(ctx, "mongo"); err != nil {
		t.Fatal(err)
	}
	c := waitDB(t, host)
	if err := labdb.Generate(ctx, c.client, rcDB, labdb.Shape{Users: 20, Rooms: 4, Messages: 200, Seed: 5}); err != nil {
		t.Fatal(err)
	}

	var events []string
	snaps := &fakeSnapshots{events: &events}
	rec := &recordingApp{AppStack: ca, events: &events}
	rungs := []Rung{
		{AppImage: "lghs-lab/rocketchat:3.0.12", Backup: true, Timeout: time.Minute},
		{AppImage: "lghs-lab/rocketchat:3.18.2", Backup: true, Timeout: time.Minute,
			Before: []Step{oauthOff, {DropIndexes: []string{"users", "rocketchat_room", "rocketchat_message"}}, {UnlockMigrations: true}},
			After:  []Step{{WaitVersion: "3.18.2"}, {WaitLog: "SERVER RUNNING"}, oauthOn}},
		{AppImage: "lghs-lab/rocketchat:4.8.6", DatabaseImage: "lghs-lab/ferretdb:1.24.2-next", Backup: true, Timeout: time.Minute},
	}
	l2 := &Ladder{Rungs: rungs, Host: host, DatabaseURI: labURI, DB: rcDB, App: rec, AppAddr: "127.0.0.1:3000",
		Backup: snaps, StateDir: "/var/lib/lghsctl/migrate", Poll: 500 * time.Millisecond}
	if err := l2.Run(ctx); err != nil {
		t.Fatalf("ladder: %v", err)
	}
	want := []string{"backup", "app lghs-lab/rocketchat:3.0.12", "backup", "app lghs-lab/rocketchat:3.18.2", "backup", "database lghs-lab/ferretdb:1.24.2-next", "app lghs-lab/rocketchat:4.8.6"}
	if len(events) != len(want) {
		t.Fatalf("events %q", events)
	}
	for i := range want {
		if !strings.HasPrefix(events[i], want[i]) {
			t.Fatalf("event %d = %q, want %q (all: %q)", i, events[i], want[i], events)
		}
	}
	c = waitDB(t, host)
	raw, err := c.client.Database(rcDB).Collection("migrations").FindOne(ctx, bson.D{{Key: "_id", Value: "control"}}).Raw()
	if err != nil || raw.Lookup("version").Int32() != 268 || raw.Lookup("locked").Boolean() {
		t.Fatalf("control after the ladder: %v %v", raw, err)
	}
	if v, err := AppVersion(ctx, host.Dial, "127.0.0.1:3000"); err != nil || v != "4.8.6" {
		t.Fatalf("the app reports %q, %v", v, err)
	}
	if out, _ := h.Output(ctx, "docker", "compose", "-p", "chatlghsbe", "-f", "/srv/chat.lghs.be/compose.yaml", "ps", "--format", "{{.Service}} {{.Image}}"); !strings.Contains(string(out), "mongo lghs-lab/ferretdb:1.24.2-next") {
		t.Errorf("compose ps after the ladder:\n%s", out)
	}

	// A fourth rung whose image reports 5.4.0 under the tag 5.4.1.
	l2.Rungs = append(l2.Rungs, Rung{AppImage: "lghs-lab/rocketchat:5.4.1", Backup: true, Timeout: 15 * time.Second})
	err = l2.Run(ctx)
	var re *RungError
	if !errors.As(err, &re) || re.Rung != 3 {
		t.Fatalf("the mislabelled rung: %v", err)
	}
	for _, s := range []string{
		"rung 4 (lghs-lab/rocketchat:5.4.1) failed: wait until the app reports version 5.4.1: the app did not report version 5.4.1 within 15s (last: it reports 5.4.0)",
		"Rocket.Chat Version: 5.4.0",
		"restore its backup: lghsctl snapshot restore lghs-chat snap-4",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the failure does not say %q:\n%s", s, err)
		}
	}
}

// recordingApp records the ladder's image changes next to the backups.
type recordingApp struct {
	AppStack
	events *[]string
}

func (r *recordingApp) SetAppImage(ctx context.Context, image string) error {
	*r.events = append(*r.events, "app "+image)
	return r.AppStack.SetAppImage(ctx, image)
}

func (r *recordingApp) SetDatabaseImage(ctx context.Context, image string) error {
	*r.events = append(*r.events, "database "+image)
	return r.AppStack.SetDatabaseImage(ctx, image)
}
