package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/lghs/lghsctl/internal/task"
)

// Rung is one step of the upgrade ladder: one app version (and possibly
// one database version), with its workarounds before and after.
type Rung struct {
	// AppImage is the app's image for this rung, e.g.
	// rocketchat/rocket.chat:3.18.2.
	AppImage string
	// DatabaseImage, when set, replaces the database's image first (e.g.
	// mongo:4.4), and FeatureCompatibility then sets the feature
	// compatibility version (e.g. "4.4").
	DatabaseImage        string
	FeatureCompatibility string
	// Backup takes a snapshot of the target before the rung.
	Backup bool
	// Before runs with the app stopped; After once the app runs the new
	// version. After without a wait step starts with WaitVersion(the
	// image's tag).
	Before, After []Step
	// Timeout bounds each wait (default 15 minutes).
	Timeout time.Duration
}

// Name is the rung's app version (its image tag).
func (r Rung) Name() string {
	if i := strings.LastIndex(r.AppImage, ":"); i >= 0 && !strings.Contains(r.AppImage[i:], "/") {
		return r.AppImage[i+1:]
	}
	return r.AppImage
}

// Step is one workaround of a rung, from a small fixed set; exactly one
// field is set.
type Step struct {
	// SetSetting sets rocketchat_settings' value for an _id.
	SetSetting *Setting `json:"set_setting,omitempty"`
	// DropIndexes drops every index but _id_ of these collections (the app
	// rebuilds them).
	DropIndexes []string `json:"drop_indexes,omitempty"`
	// UnlockMigrations sets the migrations control document's locked to
	// false (after a failed migration).
	UnlockMigrations bool `json:"unlock_migrations,omitempty"`
	// ReplicaSetHost reconfigures the replica set's first member to this
	// host:port (the app must resolve it, e.g. mongo:27017).
	ReplicaSetHost string `json:"replica_set_host,omitempty"`
	// WaitLog waits for a line of the app's log containing this text (or
	// matching it, written /regexp/).
	WaitLog string `json:"wait_log,omitempty"`
	// WaitVersion waits until the app's /api/info reports this version.
	WaitVersion string `json:"wait_version,omitempty"`
}

// Setting is a Rocket.Chat setting value.
type Setting struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

func (s Step) String() string {
	switch {
	case s.SetSetting != nil:
		return fmt.Sprintf("set setting %s to %v", s.SetSetting.ID, s.SetSetting.Value)
	case len(s.DropIndexes) > 0:
		return "drop indexes of " + strings.Join(s.DropIndexes, ", ")
	case s.UnlockMigrations:
		return "unlock migrations"
	case s.ReplicaSetHost != "":
		return "set the replica set member host to " + s.ReplicaSetHost
	case s.WaitLog != "":
		return fmt.Sprintf("wait for %q in the app's log", s.WaitLog)
	case s.WaitVersion != "":
		return "wait until the app reports version " + s.WaitVersion
	}
	return "nothing"
}

func (s Step) isWait() bool { return s.WaitLog != "" || s.WaitVersion != "" }

// AppStack is what the ladder needs of the target's compose stack.
// ComposeApp implements it with appstack.
//
// Contract: StopApp leaves the database running. SetAppImage and
// SetDatabaseImage change the service's image in the stack's file and
// (re)create that service only, running; SetDatabaseImage returns once
// the database is healthy. AppLogs returns the app's log since t (all when
// zero), at most tail lines (0: all).
type AppStack interface {
	StopApp(ctx context.Context) error
	SetAppImage(ctx context.Context, image string) error
	SetDatabaseImage(ctx context.Context, image string) error
	AppLogs(ctx context.Context, since time.Time, tail int) (string, error)
}

// Snapshotter takes a backup of a host before a risky step. provision's
// Scaleway code implements it (snapshot create).
//
// Contract: CreateSnapshot returns once the backup is usable to restore
// the host, with an identifier the restore command accepts.
type Snapshotter interface {
	CreateSnapshot(ctx context.Context, host, name string) (id string, err error)
}

// Ladder walks the rungs on the target, stopping at the first failure.
type Ladder struct {
	Rungs []Rung
	// Host is the target (its Shell keeps the ladder's state, its Dial
	// reaches the app's HTTP port and the database).
	Host Host
	// DatabaseURI as the target sees it; DB is the app's database.
	DatabaseURI string
	DB          string
	App         AppStack
	// AppAddr is where the app answers HTTP on the target (the site's
	// upstream, e.g. 127.0.0.1:3000).
	AppAddr string
	// Backup takes the snapshots; nil or SkipBackup skips them (with a
	// warning in the report).
	Backup     Snapshotter
	SkipBackup bool
	// RestoreHint says how to restore a snapshot (default: lghsctl
	// snapshot restore <host> <id>).
	RestoreHint func(host, snapshot string) string
	StateDir    string
	Log         *slog.Logger
	// Poll is the wait steps' polling interval (default 2s).
	Poll time.Duration
	// now is the clock.
	now func() time.Time
}

// LadderState is the ladder's progress, kept on the target (ladder.json).
type LadderState struct {
	Rungs []RungState `json:"rungs"`
}

// RungState is one rung's outcome.
type RungState struct {
	AppImage string    `json:"app_image"`
	Status   string    `json:"status"` // running, done, failed
	Snapshot string    `json:"snapshot,omitempty"`
	Error    string    `json:"error,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitempty"`
}

// RungError is a failed rung: what failed, the app's last log lines, and
// how to go back.
type RungError struct {
	Rung     int
	Name     string
	Err      error
	Logs     string
	Snapshot string
	Hint     string
}

func (e *RungError) Error() string {
	s := fmt.Sprintf("rung %d (%s) failed: %v", e.Rung+1, e.Name, e.Err)
	if e.Logs != "" {
		s += "\nthe app's last log lines:\n" + indent(e.Logs)
	}
	s += "\nthe ladder stopped; re-running it retries this rung"
	if e.Hint != "" {
		s += "\n" + e.Hint
	}
	return s
}

func (e *RungError) Unwrap() error { return e.Err }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func (l *Ladder) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

func (l *Ladder) statePath() string { return newStateStore(l.Host, l.StateDir).path("ladder.json") }

func (l *Ladder) load(ctx context.Context) (*LadderState, error) {
	st := &LadderState{}
	_, err := l.Host.readJSON(ctx, l.statePath(), st)
	return st, err
}

func (l *Ladder) save(ctx context.Context, st *LadderState) error {
	return l.Host.writeJSON(ctx, l.statePath(), st)
}

// done reports whether rung i was completed by an earlier run.
func (st *LadderState) done(i int, r Rung) bool {
	return i < len(st.Rungs) && st.Rungs[i].AppImage == r.AppImage && st.Rungs[i].Status == "done"
}

// Steps are the ladder as task steps, one per rung, for the runner: a
// rung done earlier is ok, a rung run now changed, a failed rung stops
// the target's later steps. In check mode a rung says what it would do.
func (l *Ladder) Steps() []task.Step {
	var steps []task.Step
	for i, r := range l.Rungs {
		steps = append(steps, task.Step{
			Name: fmt.Sprintf("rung %d: %s", i+1, r.AppImage),
			Run: func(ctx context.Context, env task.Env) (task.Result, error) {
				st, err := l.load(ctx)
				if err != nil {
					return task.Result{}, err
				}
				if st.done(i, r) {
					return task.Unchanged(), nil
				}
				if env.Check {
					return task.Changedf("would %s", strings.Join(l.plan(r), ", then ")), nil
				}
				snap, err := l.runRung(ctx, st, i)
				if err != nil {
					return task.Result{}, err
				}
				msg := "now at " + r.Name()
				if snap != "" {
					msg += " (backup " + snap + " taken before)"
				}
				return task.Changedf("%s", msg), nil
			},
		})
	}
	return steps
}

// plan lists what a rung does, in order.
func (l *Ladder) plan(r Rung) []string {
	p := []string{"stop the app"}
	if r.Backup && !l.SkipBackup && l.Backup != nil {
		p = append(p, "back up "+l.Host.Name)
	}
	if r.DatabaseImage != "" {
		p = append(p, "switch the database to "+r.DatabaseImage)
	}
	if r.FeatureCompatibility != "" {
		p = append(p, "set featureCompatibilityVersion "+r.FeatureCompatibility)
	}
	for _, s := range r.Before {
		p = append(p, s.String())
	}
	p = append(p, "start "+r.AppImage)
	for _, s := range l.after(r) {
		p = append(p, s.String())
	}
	return p
}

func (l *Ladder) after(r Rung) []Step {
	for _, s := range r.After {
		if s.isWait() {
			return r.After
		}
	}
	return append([]Step{{WaitVersion: r.Name()}}, r.After...)
}

// Run walks every rung not done yet.
func (l *Ladder) Run(ctx context.Context) error {
	for i := range l.Rungs {
		st, err := l.load(ctx)
		if err != nil {
			return err
		}
		if st.done(i, l.Rungs[i]) {
			continue
		}
		if _, err := l.runRung(ctx, st, i); err != nil {
			return err
		}
	}
	return nil
}

func (l *Ladder) runRung(ctx context.Context, st *LadderState, i int) (string, error) {
	r := l.Rungs[i]
	log := logOrDiscard(l.Log)
	for len(st.Rungs) <= i {
		st.Rungs = append(st.Rungs, RungState{})
	}
	start := l.clock()
	st.Rungs[i] = RungState{AppImage: r.AppImage, Status: "running", Started: start.UTC()}
	st.Rungs = st.Rungs[:i+1] // later rungs start again after this one
	if err := l.save(ctx, st); err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		re := &RungError{Rung: i, Name: r.AppImage, Err: err, Snapshot: st.Rungs[i].Snapshot}
		if logs, lerr := l.App.AppLogs(context.WithoutCancel(ctx), time.Time{}, 30); lerr == nil {
			re.Logs = logs
		}
		if re.Snapshot != "" {
			hint := l.RestoreHint
			if hint == nil {
				hint = func(host, snap string) string {
					return fmt.Sprintf("to go back to the state before this rung, restore its backup: lghsctl snapshot restore %s %s", host, snap)
				}
			}
			re.Hint = hint(l.Host.Name, re.Snapshot)
		} else {
			re.Hint = "no backup was taken before this rung"
		}
		st.Rungs[i].Status = "failed"
		st.Rungs[i].Error = err.Error()
		st.Rungs[i].Finished = l.clock().UTC()
		if serr := l.save(context.WithoutCancel(ctx), st); serr != nil {
			log.Warn("save ladder state", slog.Any("err", serr))
		}
		return "", re
	}

	if err := l.App.StopApp(ctx); err != nil {
		return fail(fmt.Errorf("stop the app: %w", err))
	}
	if r.Backup && !l.SkipBackup && l.Backup != nil {
		name := fmt.Sprintf("%s-before-%s-%s", l.Host.Name, sanitize(r.Name()), start.UTC().Format("20060102-150405"))
		id, err := l.Backup.CreateSnapshot(ctx, l.Host.Name, name)
		if err != nil {
			return fail(fmt.Errorf("back up %s: %w", l.Host.Name, err))
		}
		st.Rungs[i].Snapshot = id
		if err := l.save(ctx, st); err != nil {
			return "", err
		}
	}
	if r.DatabaseImage != "" {
		if err := l.App.SetDatabaseImage(ctx, r.DatabaseImage); err != nil {
			return fail(fmt.Errorf("switch the database to %s: %w", r.DatabaseImage, err))
		}
	}
	var ops *DBOps
	needDB := r.FeatureCompatibility != ""
	for _, s := range append(append([]Step(nil), r.Before...), r.After...) {
		needDB = needDB || (!s.isWait())
	}
	if needDB {
		c, err := connect(ctx, l.Host, l.DatabaseURI, log, connectOptions{})
		if err != nil {
			return fail(err)
		}
		defer c.Close(ctx)
		ops = &DBOps{Client: c.client, DB: l.DB}
	}
	if r.FeatureCompatibility != "" {
		if err := ops.SetFeatureCompatibility(ctx, r.FeatureCompatibility); err != nil {
			return fail(err)
		}
	}
	for _, s := range r.Before {
		if err := l.step(ctx, ops, s, start, r.timeout()); err != nil {
			return fail(fmt.Errorf("%s: %w", s, err))
		}
	}
	if err := l.App.SetAppImage(ctx, r.AppImage); err != nil {
		return fail(fmt.Errorf("start %s: %w", r.AppImage, err))
	}
	for _, s := range l.after(r) {
		if err := l.step(ctx, ops, s, start, r.timeout()); err != nil {
			return fail(fmt.Errorf("%s: %w", s, err))
		}
	}
	st.Rungs[i].Status = "done"
	st.Rungs[i].Finished = l.clock().UTC()
	return st.Rungs[i].Snapshot, l.save(ctx, st)
}

func (r Rung) timeout() time.Duration {
	if r.Timeout <= 0 {
		return 15 * time.Minute
	}
	return r.Timeout
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
}

func (l *Ladder) step(ctx context.Context, ops *DBOps, s Step, since time.Time, timeout time.Duration) error {
	switch {
	case s.SetSetting != nil:
		return ops.SetSetting(ctx, s.SetSetting.ID, s.SetSetting.Value)
	case len(s.DropIndexes) > 0:
		return ops.DropIndexes(ctx, s.DropIndexes)
	case s.UnlockMigrations:
		return ops.UnlockMigrations(ctx)
	case s.ReplicaSetHost != "":
		return ops.SetReplicaSetHost(ctx, s.ReplicaSetHost)
	case s.WaitLog != "":
		return l.waitLog(ctx, s.WaitLog, since, timeout)
	case s.WaitVersion != "":
		return l.waitVersion(ctx, s.WaitVersion, timeout)
	}
	return errors.New("empty step")
}

func (l *Ladder) poll() time.Duration {
	if l.Poll > 0 {
		return l.Poll
	}
	return 2 * time.Second
}

func (l *Ladder) waitLog(ctx context.Context, want string, since time.Time, timeout time.Duration) error {
	match := func(s string) bool { return strings.Contains(s, want) }
	if len(want) > 2 && strings.HasPrefix(want, "/") && strings.HasSuffix(want, "/") {
		re, err := regexp.Compile(want[1 : len(want)-1])
		if err != nil {
			return err
		}
		match = re.MatchString
	}
	deadline := l.clock().Add(timeout)
	for {
		logs, err := l.App.AppLogs(ctx, since, 0)
		if err == nil && match(logs) {
			return nil
		}
		if l.clock().After(deadline) {
			return fmt.Errorf("no such line in the app's log after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.poll()):
		}
	}
}

// AppVersion asks the app's /api/info for its version, through the
// target (the app is only published on its loopback).
func AppVersion(ctx context.Context, d Dialer, addr string) (string, error) {
	hc := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}, DisableKeepAlives: true},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/info", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/api/info: %s", resp.Status)
	}
	var info struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return "", fmt.Errorf("/api/info: %w", err)
	}
	return info.Version, nil
}

func (l *Ladder) waitVersion(ctx context.Context, want string, timeout time.Duration) error {
	deadline := l.clock().Add(timeout)
	last := "no answer"
	for {
		v, err := AppVersion(ctx, l.Host.Dial, l.AppAddr)
		switch {
		case err == nil && v == want:
			return nil
		case err == nil:
			last = "it reports " + v
		default:
			last = err.Error()
		}
		if l.clock().After(deadline) {
			return fmt.Errorf("the app did not report version %s within %s (last: %s)", want, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.poll()):
		}
	}
}

// DBOps are the ladder's database workarounds, through the driver. FerretDB
// (the lab's database) lacks replSetGetConfig, replSetReconfig and
// setFeatureCompatibilityVersion: those are tested at the level of the
// commands sent.
type DBOps struct {
	Client *mongo.Client
	DB     string
}

// SetSetting sets a setting's value; an unknown setting is an error.
func (o *DBOps) SetSetting(ctx context.Context, id string, value any) error {
	res, err := o.Client.Database(o.DB).Collection("rocketchat_settings").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: value}}}})
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("setting %s not found in %s.rocketchat_settings", id, o.DB)
	}
	return nil
}

// DropIndexes drops every index but _id_ of each collection; a missing
// collection is fine.
func (o *DBOps) DropIndexes(ctx context.Context, colls []string) error {
	for _, c := range colls {
		err := o.Client.Database(o.DB).RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: c}, {Key: "index", Value: "*"}}).Err()
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.Code == 26 { // NamespaceNotFound
			continue
		}
		if err != nil {
			return fmt.Errorf("drop indexes of %s: %w", c, err)
		}
	}
	return nil
}

// UnlockMigrations sets migrations.control.locked to false.
func (o *DBOps) UnlockMigrations(ctx context.Context) error {
	_, err := o.Client.Database(o.DB).Collection("migrations").UpdateOne(ctx, bson.D{{Key: "_id", Value: "control"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "locked", Value: false}}}})
	return err
}

// SetFeatureCompatibility runs setFeatureCompatibilityVersion (with the
// confirm field 7.0 and later require).
func (o *DBOps) SetFeatureCompatibility(ctx context.Context, v string) error {
	cmd := bson.D{{Key: "setFeatureCompatibilityVersion", Value: v}}
	var major int
	fmt.Sscanf(v, "%d", &major)
	if major >= 7 {
		cmd = append(cmd, bson.E{Key: "confirm", Value: true})
	}
	if err := o.Client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		return fmt.Errorf("setFeatureCompatibilityVersion %s: %w", v, err)
	}
	return nil
}

// SetReplicaSetHost points the replica set's first member at host (the
// runbook's rs.reconfig fix), unless it already is.
func (o *DBOps) SetReplicaSetHost(ctx context.Context, host string) error {
	raw, err := o.Client.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Raw()
	if err != nil {
		return fmt.Errorf("replSetGetConfig: %w", err)
	}
	cfg, ok := raw.Lookup("config").DocumentOK()
	if !ok {
		return errors.New("replSetGetConfig: no config in the answer")
	}
	cmd, changed, err := reconfigCommand(cfg, host)
	if err != nil || !changed {
		return err
	}
	if err := o.Client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		return fmt.Errorf("replSetReconfig: %w", err)
	}
	return nil
}

// reconfigCommand is the replSetReconfig that sets members[0].host and
// bumps the config version, or changed=false when it is already so.
func reconfigCommand(cfg bson.Raw, host string) (bson.D, bool, error) {
	var doc bson.D
	if err := bson.Unmarshal(cfg, &doc); err != nil {
		return nil, false, err
	}
	changed := false
	for i, e := range doc {
		switch e.Key {
		case "members":
			members, ok := e.Value.(bson.A)
			if !ok || len(members) == 0 {
				return nil, false, errors.New("replica set config without members")
			}
			m0, ok := members[0].(bson.D)
			if !ok {
				return nil, false, errors.New("replica set member is not a document")
			}
			for j, f := range m0 {
				if f.Key == "host" && f.Value != host {
					m0[j].Value = host
					changed = true
				}
			}
		case "version":
			switch v := e.Value.(type) {
			case int32:
				doc[i].Value = v + 1
			case int64:
				doc[i].Value = v + 1
			case float64:
				doc[i].Value = v + 1
			}
		}
	}
	return bson.D{{Key: "replSetReconfig", Value: doc}}, changed, nil
}
