package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CommandError is a command that exited non-zero (or could not run).
type CommandError struct {
	Host     string
	Cmd      string
	ExitCode int
	// Stderr is the tail of the command's standard error.
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	s := fmt.Sprintf("on %s: %s: exit status %d", e.Host, firstLine(e.Cmd, 120), e.ExitCode)
	if e.ExitCode < 0 && e.Err != nil {
		s = fmt.Sprintf("on %s: %s: %v", e.Host, firstLine(e.Cmd, 120), e.Err)
	}
	if e.Stderr != "" {
		s += ": " + strings.TrimSpace(e.Stderr)
	}
	return s
}

func (e *CommandError) Unwrap() error { return e.Err }

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// LocalShell runs commands on the machine lghsctl runs on (for a run on
// the target itself, and for tests), each in its own process group so
// that cancelling stops the whole pipeline.
type LocalShell struct {
	Name string
	// Env is added to the commands' environment (e.g. PATH for stand-in
	// tools in tests).
	Env []string
}

func (l LocalShell) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) error {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(c.Environ(), l.Env...)
	c.Stdin = stdin
	if stdout == nil {
		stdout = io.Discard
	}
	c.Stdout = stdout
	errTail := &tail{max: 4096}
	c.Stderr = errTail
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 5 * time.Second
	err := c.Run()
	if err == nil {
		return nil
	}
	ce := &CommandError{Host: l.Name, Cmd: cmd, ExitCode: -1, Stderr: errTail.String(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = ctx.Err()
		ce.ExitCode = -1
	}
	return ce
}

// Local is the machine lghsctl runs on, as a Host.
func Local(name string) Host {
	return Host{Name: name, Shell: LocalShell{Name: name}, Dial: &net.Dialer{}}
}
