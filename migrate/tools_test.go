package migrate

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/lghs/lghsctl/internal/lab/labdb"
)

var (
	toolsOnce sync.Once
	toolsDir  string
	toolsErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// standInTools builds the lab's mongodump/mongorestore stand-ins once.
func standInTools(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the lab's database tools; skipped under -short")
	}
	toolsOnce.Do(func() {
		buildDir, toolsErr = os.MkdirTemp("", "lghsctl-tools-")
		if toolsErr == nil {
			toolsDir, toolsErr = labdb.BuildTools(context.Background(), buildDir)
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsDir
}

// recordingShell keeps every command sent.
type recordingShell struct {
	Shell
	mu   sync.Mutex
	cmds []string
}

func (r *recordingShell) Stream(ctx context.Context, cmd string, in io.Reader, out io.Writer) error {
	r.mu.Lock()
	r.cmds = append(r.cmds, cmd)
	r.mu.Unlock()
	return r.Shell.Stream(ctx, cmd, in, out)
}

func (r *recordingShell) sent(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.cmds {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func hostWithTools(t *testing.T, name string) (Host, *recordingShell) {
	dir := standInTools(t)
	rs := &recordingShell{Shell: LocalShell{Name: name, Env: []string{"PATH=" + dir + ":" + os.Getenv("PATH")}}}
	h := Local(name)
	h.Shell = rs
	return h, rs
}

// TestMongodumpSourceIntoMongorestoreTargetSendsTheseCommandsAndVerifies
// runs the exec-pipe path end to end with the lab's stand-in tools: the
// old host's mongodump over a shell session, the stream parsed on the
// way, and mongorestore fed on the new host; it checks the exact command
// lines (which the real tools accept: --host/--port for 3.x mongodump,
// --nsInclude/--nsExclude for 4.2 mongorestore), a resume after a
// re-run (excluded collections on both sides), and that the result
// verifies.
func TestMongodumpSourceIntoMongorestoreTargetSendsTheseCommandsAndVerifies(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	dst := startDB(t)
	oldHost, oldSh := hostWithTools(t, "old")
	newHost, newSh := hostWithTools(t, "new")
	_, port, _ := strings.Cut(dst.Addr, ":")
	mv := &Move{
		Source:    &MongodumpSource{Host: oldHost, URI: src.URI},
		Target:    &Target{Host: newHost, URI: dst.URI, Mode: RestoreMongorestore, RestoreArgs: []string{"--port", port}},
		Databases: []string{rcDB},
		StateDir:  t.TempDir(),
	}
	if _, err := mv.Run(ctx); err != nil {
		t.Fatal(err)
	}
	_, srcPort, _ := strings.Cut(src.Addr, ":")
	wantDump := "'mongodump' --host '127.0.0.1' --port '" + srcPort + "' --db 'rocketchat' --archive"
	if got := oldSh.sent("'mongodump'"); len(got) != 1 || got[0] != wantDump {
		t.Errorf("dump commands %q, want [%q]", got, wantDump)
	}
	wantRestore := "'mongorestore' --archive --drop --stopOnError --bypassDocumentValidation --numInsertionWorkersPerCollection=2 --nsInclude 'rocketchat.*' '--port' '" + port + "' --nsExclude 'rocketchat.system.*'"
	if got := newSh.sent("'mongorestore'"); len(got) != 1 || got[0] != wantRestore {
		t.Errorf("restore commands %q, want [%q]", got, wantRestore)
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatal(err)
	}

	// A collection found different is copied again, excluded elsewhere.
	st := newStateStore(newHost, mv.StateDir)
	s, _ := st.loadData(ctx)
	st.update(ctx, s, func(s *DataState) { s.coll(rcDB, "users").Status = StatusMismatch })
	res, err := mv.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copied) != 1 || res.Copied[0] != "rocketchat.users" {
		t.Fatalf("re-run copied %v", res.Copied)
	}
	dumps := oldSh.sent("'mongodump'")
	if last := dumps[len(dumps)-1]; !strings.Contains(last, "--excludeCollection 'migrations' --excludeCollection 'rocketchat_livechat_visitor'") || strings.Contains(last, "'users'") {
		t.Errorf("resumed dump %q does not exclude exactly the finished collections", last)
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMongodumpSourceGzipStreamIsDetected: with Gzip the dump is
// compressed on the old host and still parsed and restored.
func TestMongodumpSourceGzipStreamIsDetected(t *testing.T) {
	ctx := testCtx(t)
	shape := labdb.SmallShape
	shape.Files = 0 // random chunks would not compress
	src := seeded(t, shape)
	dst := startDB(t)
	oldHost, oldSh := hostWithTools(t, "old")
	mv := &Move{
		Source:    &MongodumpSource{Host: oldHost, URI: src.URI, Gzip: true},
		Target:    &Target{Host: Local("new"), URI: dst.URI},
		Databases: []string{rcDB},
		StateDir:  t.TempDir(),
	}
	res, err := mv.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := oldSh.sent("'mongodump'"); len(got) != 1 || !strings.HasSuffix(got[0], " --archive --gzip") {
		t.Errorf("dump command %q", got)
	}
	full, _ := (&MongodumpSource{Host: oldHost, URI: src.URI}).Dump(ctx, rcDB, nil)
	plain, _ := io.Copy(io.Discard, full)
	full.Close()
	if res.StreamBytes <= 0 || res.StreamBytes >= plain/2 {
		t.Errorf("stream %d bytes for a %d-byte archive: not compressed?", res.StreamBytes, plain)
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatal(err)
	}
}
