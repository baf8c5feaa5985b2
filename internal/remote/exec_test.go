package remote_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

func TestNonZeroExitIsACommandErrorWithStderrTail(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	out, err := c.Run(context.Background(), "echo partial; head -c 10000 /dev/zero | tr '\\0' x >&2; echo ' disk full' >&2; exit 3", nil)
	var ce *remote.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Run: %v, want *CommandError", err)
	}
	if ce.ExitCode != 3 || ce.Host != "lab" || !strings.HasPrefix(ce.Command, "echo partial") {
		t.Errorf("CommandError = %+v", ce)
	}
	if len(ce.Stderr) != 4096 || !strings.HasSuffix(ce.Stderr, "x disk full\n") {
		t.Errorf("Stderr has %d bytes ending %q, want the last 4096 ending with the message", len(ce.Stderr), ce.Stderr[max(0, len(ce.Stderr)-20):])
	}
	if !strings.HasPrefix(err.Error(), `run "echo partial; head`) || !strings.Contains(err.Error(), " on lab: exit status 3: ") {
		t.Errorf("message %q should name the command, the host and the status", err)
	}
	if string(out) != "partial\n" {
		t.Errorf("stdout = %q, want what was printed before the failure", out)
	}
}

func TestExecStreamsStdinAndStdout(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var out, errOut bytes.Buffer
	err := c.Exec(context.Background(), "cat; echo done >&2", remote.Streams{Stdin: bytes.NewReader(in), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Errorf("stdout: %d bytes, want the %d bytes of stdin back", out.Len(), len(in))
	}
	if errOut.String() != "done\n" {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestCommandsShareOneConnection(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.Run(context.Background(), "sleep 0.05; echo "+strconv.Itoa(i), nil)
			if err == nil && string(out) != strconv.Itoa(i)+"\n" {
				err = fmt.Errorf("command %d printed %q", i, out)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := l.srv.Handshakes(); n != 1 {
		t.Errorf("%d connections, want 1 for all the commands", n)
	}
}

// waitGone waits for a process to disappear.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("process %d still running", pid)
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

func TestCancelledContextSignalsAndStopsALongCommand(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	pidFile := filepath.Join(l.dir, "pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Run(ctx, "sleep 30 & echo $! > pid; wait", nil)
		done <- err
	}()
	pid := readPid(t, pidFile)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
	if !slices.Equal(l.srv.Signals(), []string{"TERM"}) {
		t.Errorf("signals received %q, want TERM", l.srv.Signals())
	}
	waitGone(t, pid)

	// The connection is still usable.
	if _, err := c.Run(context.Background(), "true", nil); err != nil {
		t.Errorf("Run after a cancelled one: %v", err)
	}
}

// failingReader returns some data, then an error.
type failingReader struct{ sent bool }

func (r *failingReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, "partial"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestStdinReadErrorAbortsTheCommandInsteadOfEndingItsInput(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	// A command that would happily commit a truncated input.
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), "cat > received && mv received committed", &failingReader{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "read standard input: disk on fire") {
			t.Fatalf("Run: %v, want the stdin error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run hung after its stdin failed")
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(l.dir, "committed")); err == nil {
		t.Error("the command saw end of input and committed a truncated stream")
	}
}

func TestStdoutWriteErrorAbortsTheCommand(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	done := make(chan error, 1)
	go func() {
		done <- c.Exec(context.Background(), "yes", remote.Streams{Stdout: &failingWriter{after: 1 << 20}})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "write standard output: local disk full") {
			t.Errorf("Exec: %v, want the writer's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec hung after its writer failed")
	}
}

type failingWriter struct{ after, n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n > w.after {
		return 0, errors.New("local disk full")
	}
	return len(p), nil
}

func TestKeepAliveDetectsADeadConnection(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepAlive time.Duration
		wantLost  bool
	}{
		{"keepalive on", 100 * time.Millisecond, true},
		// The control: without keepalives the same dead path goes unnoticed.
		{"keepalive off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, remotetest.ServerOptions{})
			p := newProxy(t, l.srv.Addr())
			cfg := l.config()
			cfg.Port = p.port()
			cfg.KnownHostsFile = writeKnownHosts(t, strings.Replace(l.srv.KnownHostsLine(), strconv.Itoa(l.srv.Port()), strconv.Itoa(p.port()), 1))
			cfg.KeepAlive, cfg.KeepAliveMax = tc.keepAlive, 3
			c := dial(t, cfg)
			done := make(chan error, 1)
			go func() {
				_, err := c.Run(context.Background(), "sleep 20", nil)
				done <- err
			}()
			time.Sleep(300 * time.Millisecond)
			if tc.wantLost && l.srv.Keepalives() == 0 {
				t.Error("no keepalive reached the server")
			}
			p.freeze()
			select {
			case err := <-done:
				if !tc.wantLost {
					t.Fatalf("Run returned %v although nothing could notice the dead path", err)
				}
				if !errors.Is(err, remote.ErrConnectionLost) || !strings.Contains(err.Error(), "no keepalive reply") {
					t.Errorf("Run: %v, want ErrConnectionLost from the keepalive", err)
				}
				if _, err := c.Run(context.Background(), "true", nil); !errors.Is(err, remote.ErrConnectionLost) {
					t.Errorf("next Run: %v, want ErrConnectionLost", err)
				}
			case <-time.After(2 * time.Second):
				if tc.wantLost {
					t.Fatal("dead connection not detected within 2s")
				}
				c.Close()
				<-done
			}
		})
	}
}

func TestCancellationReturnsEvenOnADeadConnection(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	p := newProxy(t, l.srv.Addr())
	cfg := l.config()
	cfg.Port = p.port()
	cfg.KnownHostsFile = writeKnownHosts(t, strings.Replace(l.srv.KnownHostsLine(), strconv.Itoa(l.srv.Port()), strconv.Itoa(p.port()), 1))
	cfg.KeepAlive = -1 // nothing else would notice
	c := dial(t, cfg)
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Exec(ctx, "while :; do echo tick; sleep 0.01; done", remote.Streams{Stdout: &out}) }()
	time.Sleep(200 * time.Millisecond)
	p.freeze()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "did not confirm") {
			t.Errorf("Exec: %v, want context.Canceled and the unconfirmed end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Exec did not return after cancel on a dead connection")
	}
	// out is the caller's again: reading it must not race with late
	// output (go test -race checks).
	_ = out.String()
	c.Close()
}

func TestStdinIsNeverLogged(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	var logBuf bytes.Buffer
	cfg := l.config()
	cfg.Log = slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := dial(t, cfg)
	const secret = "cf-token-5up3r-s3cr3t"
	ctx := context.Background()
	if _, err := c.Run(ctx, "cat > token", strings.NewReader(secret)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFile(ctx, filepath.Join(l.dir, "acme.ini"), []byte("dns_cloudflare_api_token = "+secret+"\n"), 0o600, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, "cat token >&2; exit 1", nil); err == nil {
		t.Fatal("want failure")
	}
	logs := logBuf.String()
	if strings.Contains(logs, "5up3r") {
		t.Errorf("secret in the log:\n%s", logs)
	}
	// The log does record the commands, with duration and exit code.
	for _, want := range []string{`"msg":"ssh command","host":"lab","cmd":"cat > token"`, `"exit":0`, `"stdin_bytes":21`, `"op":"write ` + l.dir + `/acme.ini"`, `"exit":1`, `"duration":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestSudoWrapsEveryOperationForANonRootUser(t *testing.T) {
	// A stand-in sudo that logs its arguments and runs the command.
	bin := t.TempDir()
	sudoLog := filepath.Join(t.TempDir(), "sudo.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + sudoLog + "\n[ \"$1\" = -n ] && [ \"$2\" = -- ] || exit 99\nshift 2\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	key := newKey(t, t.TempDir(), "id", "")
	srv := remotetest.NewServer(t, remotetest.ServerOptions{
		Users: map[string][]ssh.PublicKey{"deploy": {key.pub()}},
		Env:   []string{"PATH=" + bin + ":" + os.Getenv("PATH")},
	})
	l := lab{srv: srv, key: key, known: writeKnownHosts(t, srv.KnownHostsLine())}
	cfg := l.config()
	cfg.User = "deploy"
	cfg.Sudo = true
	c := dial(t, cfg)
	ctx := context.Background()
	dir := t.TempDir()
	owner, group := currentOwner(t)
	if _, err := c.Run(ctx, "id -u", nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "f")
	if err := c.WriteFile(ctx, p, []byte("via sudo"), 0o640, owner, group); err != nil {
		t.Fatal(err)
	}
	if b, err := c.ReadFile(ctx, p); err != nil || string(b) != "via sudo" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if _, err := c.ReadFile(ctx, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile of a missing file through sudo: %v, want fs.ErrNotExist", err)
	}
	for _, e := range srv.Execs() {
		if !strings.HasPrefix(e, "sudo -n -- /bin/sh -c ") {
			t.Errorf("command not run through sudo: %q", e)
		}
	}
	if n := len(srv.Execs()); n != 4 {
		t.Errorf("%d commands, want 4 (run, write, 2 reads: no SFTP through sudo)", n)
	}
	b, _ := os.ReadFile(sudoLog)
	if strings.Count(string(b), "-n -- /bin/sh -c") != 4 {
		t.Errorf("sudo ran %q, want 4 commands", b)
	}

	// root needs no sudo even when asked for.
	root := newLab(t, remotetest.ServerOptions{})
	rcfg := root.config()
	rcfg.Sudo = true
	if _, err := dial(t, rcfg).Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
	if e := root.srv.Execs(); len(e) != 1 || strings.Contains(e[0], "sudo") {
		t.Errorf("root ran %q, want no sudo", e)
	}
}
