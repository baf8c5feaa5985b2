package labhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"syscall"
)

// CommandError is a command that ran and failed, on the box or in a host. It
// keeps the exit code and the end of stderr so callers can branch on them
// and error messages say what the command said.
type CommandError struct {
	// Args is the command line as run.
	Args []string
	// ExitCode is the process exit code, -1 when it was killed by a signal
	// or could not start.
	ExitCode int
	// Stderr is the end of the command's standard error (at most 4 KiB).
	Stderr string
	// Err is the underlying error from os/exec.
	Err error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: exit %d", strings.Join(e.Args, " "), e.ExitCode)
	if e.ExitCode < 0 && e.Err != nil {
		msg = fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }

// runner runs commands on the box, logging each at debug level.
type runner struct {
	log *slog.Logger
}

// run runs args[0] with args[1:], with stdin (may be nil), and returns its
// standard output. A failure is a *CommandError.
func (r runner) run(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	err := r.stream(ctx, stdin, &stdout, nil, args...)
	return stdout.Bytes(), err
}

// stream is run with caller-supplied stdout and stderr writers (either may
// be nil); stderr's tail is kept for the error either way.
func (r runner) stream(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	if len(args) == 0 {
		return errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = boxEnv()
	// Its own process group, killed whole on cancel: nsenter's child in a
	// host, or anything a command forks, must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	tail := &tailBuffer{max: 4096}
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, stderr)
	} else {
		cmd.Stderr = tail
	}
	err := cmd.Run()
	if r.log != nil {
		r.log.Debug("run", slog.String("cmd", strings.Join(args, " ")), slog.Any("err", err))
	}
	if err == nil {
		return nil
	}
	ce := &CommandError{Args: args, ExitCode: -1, Stderr: tail.String(), Err: err}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	if ctx.Err() != nil {
		ce.Err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		ce.ExitCode = -1
	}
	return ce
}

// boxEnv is the environment of every command the lab runs: fixed, so the
// caller's environment (proxies, locale, GOFLAGS...) never leaks into hosts.
func boxEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		"HOME=/root",
	}
}
