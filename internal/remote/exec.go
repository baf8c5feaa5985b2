package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// stderrTail is how much of a command's standard error a *CommandError
// keeps.
const stderrTail = 4 << 10

// Streams are the standard streams of a command run with Exec. A nil
// Stdin is empty input; nil Stdout or Stderr discard (the end of standard
// error is kept for the *CommandError regardless).
//
// Stdin must reach EOF: the command sees end of input only then. An error
// reading it aborts the command (it never sees a truncated input as
// complete). An error writing Stdout or Stderr aborts it too.
type Streams struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// CommandError is a command that ran and exited non-zero (or was killed
// by a signal).
type CommandError struct {
	// Host is the client's Name.
	Host string
	// Command is the command as given to Run or Exec (without the sudo and
	// shell wrapping).
	Command string
	// ExitCode is the exit status, or -1 when a signal killed the command.
	ExitCode int
	// Signal names the signal that killed the command (TERM, KILL...).
	Signal string
	// Stderr is the end of the command's standard error (at most 4 KiB).
	Stderr string

	op string // what failed, for ReadFile, WriteFile and Stat
}

func (e *CommandError) Error() string {
	op := e.op
	if op == "" {
		op = "run " + quoteForMessage(e.Command)
	}
	status := fmt.Sprintf("exit status %d", e.ExitCode)
	if e.Signal != "" {
		status = "killed by signal " + e.Signal
	}
	msg := fmt.Sprintf("%s on %s: %s", op, e.Host, status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// quoteForMessage shortens a command (scripts can be long) to its first
// line, at most 120 characters.
func quoteForMessage(cmd string) string {
	short := cmd
	if i := strings.IndexByte(short, '\n'); i >= 0 {
		short = short[:i] + " …"
	}
	if len(short) > 120 {
		short = short[:120] + "…"
	}
	return fmt.Sprintf("%q", short)
}

// Run runs cmd with /bin/sh on the host (through `sudo -n` when
// Config.Sudo applies), with stdin as its standard input (nil: empty), and
// returns its standard output.
//
// A non-zero exit returns the output so far and a *CommandError carrying
// the exit code and the end of standard error. When ctx is done the
// command is sent SIGTERM and its session closed, and the error wraps
// ctx.Err(). A dead connection gives an error wrapping ErrConnectionLost.
//
// cmd is logged at debug level with its duration and exit code; stdin
// never is, so secrets belong there, never in cmd. Quote arguments with
// Quote or ShellJoin.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := c.Exec(ctx, cmd, Streams{Stdin: stdin, Stdout: &out})
	return out.Bytes(), err
}

// Exec is Run with streaming: standard output and error are copied to
// s.Stdout and s.Stderr as they arrive (for instance mongodump --archive
// into a local file), standard input read from s.Stdin as the command
// consumes it. Errors are Run's.
//
// On cancellation the command's process group gets SIGTERM (through sudo
// too). A process that left the group (setsid, a daemon) is not signalled;
// nor is anything when the connection dies without a cancellation: as
// with ssh(1), the command then ends when it next writes to its closed
// output or reads its closed input.
func (c *Client) Exec(ctx context.Context, cmd string, s Streams) error {
	return c.exec(ctx, cmd, s, "")
}

// sudoRelay runs its first argument with /bin/sh and passes a TERM, HUP
// or INT on to the whole process group. sshd signals the session's process
// group as the login user, which reaches sudo but nothing it runs as root;
// sudo relays the signal to its child only, so without this the children
// of a cancelled command (a pipeline's, a background job's) would live on.
// The command runs as a background job so that the trap fires at once; its
// standard input is passed through fd 3 (a background job's would be
// /dev/null).
const sudoRelay = `trap 'trap - TERM HUP INT; kill -TERM 0' TERM HUP INT; exec 3<&0; /bin/sh -c "$1" 0<&3 3<&- & wait $!`

// wrap makes cmd run with /bin/sh whatever the login shell, through sudo
// when needed.
func (c *Client) wrap(cmd string) string {
	if c.sudo {
		return "sudo -n -- /bin/sh -c " + Quote(sudoRelay) + " lghsctl " + Quote(cmd)
	}
	return "/bin/sh -c " + Quote(cmd)
}

// exec runs cmd; op, when set, replaces "run CMD" in logs and errors (for
// the internal scripts of ReadFile, WriteFile, Stat).
func (c *Client) exec(ctx context.Context, cmd string, s Streams, op string) error {
	start := time.Now()
	label := op
	if label == "" {
		label = "run " + quoteForMessage(cmd)
	}
	var stdinN, stdoutN atomic.Int64
	exit := 0
	err := c.session(ctx, cmd, s, label, &stdinN, &stdoutN)
	var ce *CommandError
	if errors.As(err, &ce) {
		ce.op = op
		exit = ce.ExitCode
	} else if err != nil {
		exit = -1
	}
	attrs := []any{"duration", time.Since(start).Round(time.Millisecond), "exit", exit, "stdin_bytes", stdinN.Load(), "stdout_bytes", stdoutN.Load()}
	if op == "" {
		attrs = append([]any{"cmd", cmd}, attrs...)
	} else {
		attrs = append([]any{"op", op}, attrs...)
	}
	if err != nil && ce == nil {
		attrs = append(attrs, "err", err.Error())
	}
	c.log.Debug("ssh command", attrs...)
	return err
}

func (c *Client) session(ctx context.Context, cmd string, s Streams, label string, stdinN, stdoutN *atomic.Int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s on %s: %w", label, c.name, err)
	}
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return fmt.Errorf("%s on %s: %w", label, c.name, ctx.Err())
	case <-c.done:
		return fmt.Errorf("%s on %s: client closed", label, c.name)
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return c.connErr(label, "open session", err)
	}
	defer sess.Close()
	stdinW, err := sess.StdinPipe()
	if err != nil {
		return c.connErr(label, "stdin", err)
	}
	stdoutR, err := sess.StdoutPipe()
	if err != nil {
		return c.connErr(label, "stdout", err)
	}
	stderrR, err := sess.StderrPipe()
	if err != nil {
		return c.connErr(label, "stderr", err)
	}
	if err := sess.Start(c.wrap(cmd)); err != nil {
		return c.connErr(label, "start", err)
	}

	var abortMu sync.Mutex
	var aborted error
	abortCh := make(chan struct{})
	abort := func(why error) {
		abortMu.Lock()
		if aborted != nil {
			abortMu.Unlock()
			return
		}
		aborted = why
		close(abortCh)
		abortMu.Unlock()
		// The signal goes first on the wire, then the close.
		sess.Signal(ssh.SIGTERM)
		sess.Close()
	}
	stop := context.AfterFunc(ctx, func() { abort(ctx.Err()) })
	defer stop()

	tail := &tailBuffer{max: stderrTail}
	var errOut io.Writer = tail
	if s.Stderr != nil {
		errOut = io.MultiWriter(tail, s.Stderr)
	}
	var out io.Writer = io.Discard
	if s.Stdout != nil {
		out = s.Stdout
	}
	// After an abandoned wait (below), late output must not reach the
	// caller's writers: they are the caller's again once Exec returns.
	gate := &gate{}
	out = gate.wrap(out)
	errOut = gate.wrap(errOut)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		n, err := io.Copy(&writeErrTagger{w: out}, stdoutR)
		stdoutN.Store(n)
		if we, ok := err.(writeErr); ok {
			abort(fmt.Errorf("write standard output: %w", we.err))
		}
	}()
	go func() {
		defer wg.Done()
		if _, err := io.Copy(&writeErrTagger{w: errOut}, stderrR); err != nil {
			if we, ok := err.(writeErr); ok {
				abort(fmt.Errorf("write standard error: %w", we.err))
			}
		}
	}()
	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		if s.Stdin != nil {
			r := &readErrTagger{r: s.Stdin}
			n, err := io.Copy(stdinW, r)
			stdinN.Store(n)
			if r.err != nil {
				abort(fmt.Errorf("read standard input: %w", r.err))
				return
			}
			// Other errors: the command closed its input or exited
			// without reading it all; its exit status tells.
			_ = err
		}
		stdinW.Close()
	}()

	waitCh := make(chan error, 1)
	go func() {
		err := sess.Wait()
		wg.Wait()
		waitCh <- err
	}()
	var werr error
	select {
	case werr = <-waitCh:
	case <-abortCh:
		// The session was closed on our side; the server confirms the
		// close unless the connection is dead, which only the keepalive
		// would tell, maybe much later.
		select {
		case werr = <-waitCh:
		case <-time.After(abortGrace):
			gate.close()
			abortMu.Lock()
			why := aborted
			abortMu.Unlock()
			return fmt.Errorf("%s on %s: %w (the server did not confirm the end of the command within %s)", label, c.name, why, abortGrace)
		}
	}
	stop()
	// The stdin goroutine ends when the caller's Stdin next returns (its
	// writes fail once the session is gone); a reader that blocks forever
	// is not waited for.
	select {
	case <-stdinDone:
	case <-time.After(100 * time.Millisecond):
	}
	abortMu.Lock()
	why := aborted
	abortMu.Unlock()
	if why != nil {
		return fmt.Errorf("%s on %s: %w", label, c.name, why)
	}
	var ee *ssh.ExitError
	switch {
	case werr == nil:
		return nil
	case errors.As(werr, &ee):
		code := ee.ExitStatus()
		if ee.Signal() != "" {
			code = -1
		}
		return &CommandError{Host: c.name, Command: cmd, ExitCode: code, Signal: ee.Signal(), Stderr: tail.String()}
	}
	var missing *ssh.ExitMissingError
	if errors.As(werr, &missing) && c.lostErr() == nil {
		return fmt.Errorf("%s on %s: the command ended without an exit status", label, c.name)
	}
	return c.connErr(label, "wait", werr)
}

// connErr explains a transport failure, with the keepalive's finding when
// there is one.
func (c *Client) connErr(label, step string, err error) error {
	if lost := c.lostErr(); lost != nil {
		return fmt.Errorf("%s on %s: %w", label, c.name, lost)
	}
	select {
	case <-c.done:
		return fmt.Errorf("%s on %s: client closed", label, c.name)
	default:
	}
	return fmt.Errorf("%s on %s: %s: %w: %w", label, c.name, step, ErrConnectionLost, err)
}

// abortGrace is how long an aborted command's session may take to close.
const abortGrace = 3 * time.Second

// gate lets writes through until closed, then drops them.
type gate struct {
	mu     sync.Mutex
	closed bool
}

func (g *gate) wrap(w io.Writer) io.Writer { return &gatedWriter{g: g, w: w} }

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

type gatedWriter struct {
	g *gate
	w io.Writer
}

func (gw *gatedWriter) Write(p []byte) (int, error) {
	gw.g.mu.Lock()
	defer gw.g.mu.Unlock()
	if gw.g.closed {
		return len(p), nil
	}
	return gw.w.Write(p)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// writeErr marks an error of the caller's writer, as opposed to the
// channel's.
type writeErr struct{ err error }

func (e writeErr) Error() string { return e.err.Error() }

type writeErrTagger struct{ w io.Writer }

func (t *writeErrTagger) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		return n, writeErr{err}
	}
	return n, nil
}

// readErrTagger records an error of the caller's reader (not EOF).
type readErrTagger struct {
	r   io.Reader
	err error
}

func (t *readErrTagger) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
