package migrate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/internal/lab/labapp"
	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
)

// procApp runs the lab's Rocket.Chat stand-in in-process as the "app
// container": SetAppImage runs the image's version, restarting it after
// a failure like compose's restart policy; everything is recorded in
// events, interleaved with the backups.
type procApp struct {
	mongoURL, addr string
	events         *[]string

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	lines  []logLine
}

type logLine struct {
	t    time.Time
	text string
}

func (p *procApp) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		p.lines = append(p.lines, logLine{time.Now(), l})
	}
	return len(b), nil
}

func (p *procApp) StopApp(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel = nil
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (p *procApp) SetAppImage(ctx context.Context, image string) error {
	p.StopApp(ctx)
	*p.events = append(*p.events, "app "+image)
	version := image[strings.LastIndex(image, ":")+1:]
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.mu.Lock()
	p.cancel, p.done = cancel, done
	p.mu.Unlock()
	go func() {
		defer close(done)
		for rctx.Err() == nil {
			err := labapp.Run(rctx, labapp.Config{Version: version, MongoURL: p.mongoURL, Addr: p.addr, StepDelay: time.Millisecond}, p)
			if err != nil && rctx.Err() == nil {
				fmt.Fprintf(p, "labapp exited: %v\n", err)
			}
			select {
			case <-rctx.Done():
			case <-time.After(300 * time.Millisecond): // restart: unless-stopped
			}
		}
	}()
	return nil
}

func (p *procApp) SetDatabaseImage(ctx context.Context, image string) error {
	*p.events = append(*p.events, "database "+image)
	return nil
}

func (p *procApp) AppLogs(ctx context.Context, since time.Time, tail int) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		if !l.t.Before(since) {
			out = append(out, l.text)
		}
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return strings.Join(out, "\n") + "\n", nil
}

type fakeSnapshots struct {
	events *[]string
	n      int
}

func (f *fakeSnapshots) CreateSnapshot(ctx context.Context, host, name string) (string, error) {
	f.n++
	id := fmt.Sprintf("snap-%d", f.n)
	*f.events = append(*f.events, "backup "+host+" "+name+" -> "+id)
	return id, nil
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ladderFor(t *testing.T, srv *labdb.Server, rungs []Rung, events *[]string) (*Ladder, *procApp) {
	app := &procApp{mongoURL: srv.URI + rcDB + "?replicaSet=rs0", addr: freeAddr(t), events: events}
	t.Cleanup(func() { app.StopApp(context.Background()) })
	return &Ladder{
		Rungs: rungs, Host: Local("new"), DatabaseURI: srv.URI, DB: rcDB, App: app, AppAddr: app.addr,
		Backup: &fakeSnapshots{events: events}, StateDir: t.TempDir(), Poll: 100 * time.Millisecond,
	}, app
}

func control(t *testing.T, c *mongo.Client) (int32, bool) {
	t.Helper()
	raw, err := c.Database(rcDB).Collection("migrations").FindOne(context.Background(), bson.D{{Key: "_id", Value: "control"}}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	return raw.Lookup("version").Int32(), raw.Lookup("locked").Boolean()
}

var oauthOff = Step{SetSetting: &Setting{ID: "Accounts_OAuth_Custom-Authlghsbe", Value: false}}
var oauthOn = Step{SetSetting: &Setting{ID: "Accounts_OAuth_Custom-Authlghsbe", Value: true}}

// TestThreeRungLadderWithABackupBeforeEachRung is the ladder's acceptance
// item on loopback: three rungs on the stand-in app (3.0.12, then 3.18.2
// with the runbook's migration-231 workaround, then 4.8.6 with a database
// image change), a backup before each rung, every rung waiting for the
// app to report its version (or a log line); the database ends at the
// last version's migration, unlocked, with the OAuth login back on; and
// running the ladder again changes nothing.
func TestThreeRungLadderWithABackupBeforeEachRung(t *testing.T) {
	ctx := testCtx(t)
	srv := seeded(t, labdb.Shape{Users: 5, Rooms: 2, Messages: 20, Seed: 1})
	var events []string
	rungs := []Rung{
		{AppImage: "rocketchat/rocket.chat:3.0.12", Backup: true, Timeout: 20 * time.Second},
		{AppImage: "rocketchat/rocket.chat:3.18.2", Backup: true, Timeout: 20 * time.Second,
			Before: []Step{oauthOff, {DropIndexes: []string{"users", "rocketchat_room", "rocketchat_message", "rocketchat_nps_vote"}}, {UnlockMigrations: true}},
			After:  []Step{{WaitLog: "Migrations: Finished migrating."}, {WaitVersion: "3.18.2"}, oauthOn}},
		{AppImage: "rocketchat/rocket.chat:4.8.6", DatabaseImage: "mongo:4.4", Backup: true, Timeout: 20 * time.Second},
	}
	l, _ := ladderFor(t, srv, rungs, &events)
	rep := &recordingReporter{}
	runner := &task.Runner{Reporter: rep}
	if err := runner.Run(ctx, []task.Target{{Name: "new", Steps: l.Steps()}}); err != nil {
		t.Fatalf("ladder: %v\n%v", err, rep.results)
	}
	want := []string{
		"backup new new-before-3-0-12-", "app rocketchat/rocket.chat:3.0.12",
		"backup new new-before-3-18-2-", "app rocketchat/rocket.chat:3.18.2",
		"backup new new-before-4-8-6-", "database mongo:4.4", "app rocketchat/rocket.chat:4.8.6",
	}
	if len(events) != len(want) {
		t.Fatalf("events %q", events)
	}
	for i := range want {
		if !strings.HasPrefix(events[i], want[i]) {
			t.Fatalf("event %d = %q, want %q...\nall: %q", i, events[i], want[i], events)
		}
	}
	c := client(t, srv.URI)
	if v, locked := control(t, c); v != 268 || locked {
		t.Errorf("control = %d locked=%v, want 268 unlocked", v, locked)
	}
	s, _ := c.Database(rcDB).Collection("rocketchat_settings").FindOne(ctx, bson.D{{Key: "_id", Value: "Accounts_OAuth_Custom-Authlghsbe"}}).Raw()
	if !s.Lookup("value").Boolean() {
		t.Error("the OAuth login was not turned back on")
	}
	if got := rep.statuses(); !slices.Equal(got, []report.Status{report.Changed, report.Changed, report.Changed}) {
		t.Errorf("statuses %v", got)
	}

	// Again: every rung is done, nothing happens.
	events = events[:0]
	rep2 := &recordingReporter{}
	if err := (&task.Runner{Reporter: rep2}).Run(ctx, []task.Target{{Name: "new", Steps: l.Steps()}}); err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 || !slices.Equal(rep2.statuses(), []report.Status{report.OK, report.OK, report.OK}) {
		t.Errorf("second run: events %q statuses %v", events, rep2.statuses())
	}
}

// TestRungWhoseAppNeverReportsItsVersionStopsTheLadder: without the
// workaround, migration 231 fails (a custom OAuth login is on), the app
// keeps restarting and never reports 3.18.2; the rung fails after its
// timeout with the app's last log lines and the restore hint for the
// backup taken before it, the next rung never runs, and re-running with
// the workaround retries that rung and goes on.
func TestRungWhoseAppNeverReportsItsVersionStopsTheLadder(t *testing.T) {
	ctx := testCtx(t)
	srv := seeded(t, labdb.Shape{Users: 5, Rooms: 2, Messages: 20, Seed: 1})
	var events []string
	rungs := []Rung{
		{AppImage: "rocketchat/rocket.chat:3.18.2", Backup: true, Timeout: 3 * time.Second},
		{AppImage: "rocketchat/rocket.chat:4.8.6", Backup: true, Timeout: 20 * time.Second},
	}
	l, _ := ladderFor(t, srv, rungs, &events)
	err := l.Run(ctx)
	var re *RungError
	if !errors.As(err, &re) {
		t.Fatalf("ladder: %v, want a RungError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"rung 1 (rocketchat/rocket.chat:3.18.2) failed: wait until the app reports version 3.18.2: the app did not report version 3.18.2 within 3s",
		"the app's last log lines:\n    ",
		"Your database migration failed: Start date cannot be later than expire date (setting Accounts_OAuth_Custom-Authlghsbe is on)",
		"Not migrating, control is locked.",
		"to go back to the state before this rung, restore its backup: lghsctl snapshot restore new snap-1",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure does not say %q:\n%s", want, msg)
		}
	}
	if slices.ContainsFunc(events, func(e string) bool { return strings.Contains(e, "4.8.6") }) {
		t.Errorf("the next rung ran: %q", events)
	}
	st, _ := l.load(ctx)
	if len(st.Rungs) != 1 || st.Rungs[0].Status != "failed" || st.Rungs[0].Snapshot != "snap-1" {
		t.Errorf("state %+v", st.Rungs)
	}
	if _, locked := control(t, client(t, srv.URI)); !locked {
		t.Error("the failed migration should have left control locked")
	}

	// The operator adds the runbook's workaround and runs the ladder again.
	l.Rungs[0].Before = []Step{oauthOff, {UnlockMigrations: true}}
	l.Rungs[0].After = []Step{oauthOn}
	l.Rungs[0].Timeout = 20 * time.Second
	if err := l.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if v, locked := control(t, client(t, srv.URI)); v != 268 || locked {
		t.Errorf("control %d locked=%v", v, locked)
	}
}

// TestDatabaseWorkaroundsSendTheseCommands checks the commands FerretDB
// cannot run at the level of what is sent (replSetGetConfig, and the
// replSetReconfig built from its answer; setFeatureCompatibilityVersion
// with confirm from 7.0), and runs the others for real.
func TestDatabaseWorkaroundsSendTheseCommands(t *testing.T) {
	ctx := testCtx(t)
	srv := seeded(t, labdb.Shape{Users: 5, Rooms: 2, Messages: 20, Seed: 1})
	var mu sync.Mutex
	var sent []string
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		mu.Lock()
		defer mu.Unlock()
		switch e.CommandName {
		case "replSetGetConfig", "replSetReconfig", "setFeatureCompatibilityVersion", "dropIndexes", "update":
			var d bson.D
			bson.Unmarshal(e.Command, &d)
			var keep bson.D
			for _, x := range d {
				if !strings.HasPrefix(x.Key, "$") && x.Key != "lsid" && x.Key != "txnNumber" && x.Key != "maxTimeMS" {
					keep = append(keep, x)
				}
			}
			b, _ := bson.MarshalExtJSON(keep, false, false)
			sent = append(sent, string(b))
		}
	}}
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI).SetDirect(true).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	ops := &DBOps{Client: c, DB: rcDB}
	err = ops.SetReplicaSetHost(ctx, "mongo:27017")
	if err == nil || !strings.Contains(err.Error(), "replSetGetConfig") {
		t.Errorf("FerretDB has no replica sets; got %v", err)
	}
	if err := ops.SetFeatureCompatibility(ctx, "7.0"); err == nil {
		t.Errorf("FerretDB has no setFeatureCompatibilityVersion; got nil")
	}
	if err := ops.DropIndexes(ctx, []string{"users", "no_such_collection"}); err != nil {
		t.Error(err)
	}
	if err := ops.UnlockMigrations(ctx); err != nil {
		t.Error(err)
	}
	if err := ops.SetSetting(ctx, "No_Such_Setting", true); err == nil || err.Error() != "setting No_Such_Setting not found in rocketchat.rocketchat_settings" {
		t.Errorf("unknown setting: %v", err)
	}
	want := []string{
		`{"replSetGetConfig":1}`,
		`{"setFeatureCompatibilityVersion":"7.0","confirm":true}`,
		`{"dropIndexes":"users","index":"*"}`,
		`{"dropIndexes":"no_such_collection","index":"*"}`,
		`{"update":"migrations","ordered":true,"updates":[{"q":{"_id":"control"},"u":{"$set":{"locked":false}}}]}`,
		`{"update":"rocketchat_settings","ordered":true,"updates":[{"q":{"_id":"No_Such_Setting"},"u":{"$set":{"value":true}}}]}`,
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sent, want) {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(sent, "\n"), strings.Join(want, "\n"))
	}

	// The reconfig built from a 4.2 replSetGetConfig answer.
	cfg, _ := bson.Marshal(bson.D{{Key: "_id", Value: "rs0"}, {Key: "version", Value: int32(1)}, {Key: "protocolVersion", Value: int64(1)},
		{Key: "members", Value: bson.A{bson.D{{Key: "_id", Value: int32(0)}, {Key: "host", Value: "localhost:27017"}, {Key: "priority", Value: 1.0}}}}})
	cmd, changed, err := reconfigCommand(cfg, "mongo:27017")
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	got, _ := bson.MarshalExtJSON(cmd, false, false)
	if string(got) != `{"replSetReconfig":{"_id":"rs0","version":2,"protocolVersion":1,"members":[{"_id":0,"host":"mongo:27017","priority":1.0}]}}` {
		t.Errorf("reconfig %s", got)
	}
	again, _ := bson.Marshal(cmd[0].Value)
	if _, changed, _ := reconfigCommand(again, "mongo:27017"); changed {
		t.Error("a member already at that host is reconfigured again")
	}
}

// recordingReporter keeps task results.
type recordingReporter struct {
	report.Reporter
	mu      sync.Mutex
	results []report.TaskResult
}

func (r *recordingReporter) Task(tr report.TaskResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, tr)
}
func (r *recordingReporter) Play(string)                  {}
func (r *recordingReporter) Progress(string, string)      {}
func (r *recordingReporter) Message(report.Level, string) {}
func (r *recordingReporter) Summary(report.Summary)       {}
func (r *recordingReporter) Plan(string, []report.Change) {}

func (r *recordingReporter) statuses() []report.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []report.Status
	for _, x := range r.results {
		out = append(out, x.Status)
	}
	return out
}
