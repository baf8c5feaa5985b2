package remotetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/lghs/lghsctl/internal/remote"
)

// File is a file of a fake Host.
type File struct {
	Data         []byte
	Mode         fs.FileMode
	Owner, Group string
}

// Call is one operation a fake Host received.
type Call struct {
	// Op is "run" (Run and Exec), "read", "write", "stat" or "dial".
	Op string
	// Cmd is the command of a run.
	Cmd string
	// Path is the file of a read, write or stat; the address of a dial.
	Path string
	// Stdin is what a run was given on standard input, the data of a
	// write. Tests can check that a secret went there and not into Cmd.
	Stdin []byte
}

// Response is what a scripted command does.
type Response struct {
	Stdout, Stderr string
	// Exit is the exit status; non-zero makes Run return a
	// *remote.CommandError.
	Exit int
	// Err, when set, is returned as is instead (a transport failure).
	Err error
}

// Responder answers a command. It may block, honouring ctx.
type Responder func(ctx context.Context, c Call) Response

// Matcher selects commands.
type Matcher func(cmd string) bool

// Exact matches one command exactly.
func Exact(cmd string) Matcher { return func(c string) bool { return c == cmd } }

// Prefix matches commands starting with p.
func Prefix(p string) Matcher { return func(c string) bool { return strings.HasPrefix(c, p) } }

// Contains matches commands containing s.
func Contains(s string) Matcher { return func(c string) bool { return strings.Contains(c, s) } }

// Regexp matches commands the regular expression matches (it panics on a
// bad expression, like regexp.MustCompile).
func Regexp(expr string) Matcher {
	re := regexp.MustCompile(expr)
	return re.MatchString
}

// Any matches every command.
func Any() Matcher { return func(string) bool { return true } }

// Reply succeeds with stdout.
func Reply(stdout string) Responder {
	return func(context.Context, Call) Response { return Response{Stdout: stdout} }
}

// Fail exits with a status and standard error.
func Fail(exit int, stderr string) Responder {
	return func(context.Context, Call) Response { return Response{Exit: exit, Stderr: stderr} }
}

type responder struct {
	match Matcher
	fn    Responder
}

// Host is an in-memory stand-in for a server, implementing remote.Host.
// Commands are answered by responders (the last registered match wins);
// a command nobody answers fails with exit status 127, so an unexpected
// command shows up in the test. Files live in a map with their mode and
// owners; directories are not modelled. Everything is recorded in Calls.
// Safe for concurrent use.
type Host struct {
	name string

	mu         sync.Mutex
	files      map[string]File
	responders []responder
	calls      []Call
	writeErrs  map[string]error
	listeners  map[string]func(net.Conn)
}

var _ remote.Host = (*Host)(nil)

// NewHost returns an empty host; name appears in its errors.
func NewHost(name string) *Host {
	return &Host{name: name, files: map[string]File{}, writeErrs: map[string]error{}, listeners: map[string]func(net.Conn){}}
}

// On makes commands that m matches answer with r. Later registrations
// take precedence, so a test can register a catch-all first
// (On(Any(), Reply(""))) and specific answers after.
func (h *Host) On(m Matcher, r Responder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.responders = append(h.responders, responder{m, r})
}

// SetFile puts a file on the host.
func (h *Host) SetFile(p string, data []byte, mode fs.FileMode, owner, group string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[p] = File{Data: bytes.Clone(data), Mode: mode, Owner: owner, Group: group}
}

// RemoveFile deletes a file from the host.
func (h *Host) RemoveFile(p string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.files, p)
}

// File returns a file of the host.
func (h *Host) File(p string) (File, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[p]
	f.Data = bytes.Clone(f.Data)
	return f, ok
}

// Files returns a copy of the whole file system.
func (h *Host) Files() map[string]File {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]File, len(h.files))
	for p, f := range h.files {
		f.Data = bytes.Clone(f.Data)
		out[p] = f
	}
	return out
}

// FailWrite makes writes to p fail with err (nil: succeed again); the
// file is left as it was, as the atomic WriteFile does.
func (h *Host) FailWrite(p string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.writeErrs, p)
	} else {
		h.writeErrs[p] = err
	}
}

// HandleTCP serves DialTCP to addr: each dial runs serve on the other end
// of an in-memory connection (which serve must close).
func (h *Host) HandleTCP(addr string, serve func(net.Conn)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.listeners[addr] = serve
}

// Calls returns everything the host received, in order.
func (h *Host) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Call(nil), h.calls...)
}

// Commands returns the commands run, in order.
func (h *Host) Commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var cmds []string
	for _, c := range h.calls {
		if c.Op == "run" {
			cmds = append(cmds, c.Cmd)
		}
	}
	return cmds
}

func (h *Host) record(c Call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
}

// Run implements remote.Host.
func (h *Host) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := h.Exec(ctx, cmd, remote.Streams{Stdin: stdin, Stdout: &out})
	return out.Bytes(), err
}

// Exec implements remote.Host. Standard input is read to the end before
// the responder runs.
func (h *Host) Exec(ctx context.Context, cmd string, s remote.Streams) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run %q on %s: %w", cmd, h.name, err)
	}
	c := Call{Op: "run", Cmd: cmd}
	if s.Stdin != nil {
		b, err := io.ReadAll(s.Stdin)
		if err != nil {
			return fmt.Errorf("run %q on %s: read standard input: %w", cmd, h.name, err)
		}
		c.Stdin = b
	}
	h.record(c)
	fn := h.responder(cmd)
	var r Response
	if fn == nil {
		r = Response{Exit: 127, Stderr: "remotetest: no responder for this command"}
	} else {
		r = fn(ctx, c)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run %q on %s: %w", cmd, h.name, err)
	}
	if r.Err != nil {
		return r.Err
	}
	if s.Stdout != nil {
		if _, err := io.WriteString(s.Stdout, r.Stdout); err != nil {
			return fmt.Errorf("run %q on %s: write standard output: %w", cmd, h.name, err)
		}
	}
	if s.Stderr != nil {
		if _, err := io.WriteString(s.Stderr, r.Stderr); err != nil {
			return fmt.Errorf("run %q on %s: write standard error: %w", cmd, h.name, err)
		}
	}
	if r.Exit != 0 {
		return &remote.CommandError{Host: h.name, Command: cmd, ExitCode: r.Exit, Stderr: r.Stderr}
	}
	return nil
}

func (h *Host) responder(cmd string) Responder {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.responders) - 1; i >= 0; i-- {
		if h.responders[i].match(cmd) {
			return h.responders[i].fn
		}
	}
	return nil
}

func checkPath(p string) error {
	if !path.IsAbs(p) || strings.HasSuffix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("path %q is not a clean absolute file path", p)
	}
	return nil
}

// ReadFile implements remote.Host.
func (h *Host) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, h.name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, h.name, err)
	}
	h.record(Call{Op: "read", Path: p})
	f, ok := h.File(p)
	if !ok {
		return nil, fmt.Errorf("read %s on %s: %w", p, h.name, fs.ErrNotExist)
	}
	return f.Data, nil
}

// WriteFile implements remote.Host: the file is replaced as a whole with
// the mode and owners given (empty owner or group: root).
func (h *Host) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	if err := checkPath(p); err != nil {
		return fmt.Errorf("write %s on %s: %w", p, h.name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %s on %s: %w", p, h.name, err)
	}
	h.record(Call{Op: "write", Path: p, Stdin: bytes.Clone(data)})
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.writeErrs[p]; err != nil {
		return fmt.Errorf("write %s on %s: %w", p, h.name, err)
	}
	if owner == "" {
		owner = "root"
	}
	if group == "" {
		group = "root"
	}
	h.files[p] = File{Data: bytes.Clone(data), Mode: mode, Owner: owner, Group: group}
	return nil
}

// Stat implements remote.Host for the files of the host (all regular).
func (h *Host) Stat(ctx context.Context, p string) (remote.FileInfo, error) {
	if err := checkPath(p); err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, h.name, err)
	}
	if err := ctx.Err(); err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, h.name, err)
	}
	h.record(Call{Op: "stat", Path: p})
	f, ok := h.File(p)
	if !ok {
		return remote.FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, h.name, fs.ErrNotExist)
	}
	sum := sha256.Sum256(f.Data)
	return remote.FileInfo{Mode: f.Mode, Owner: f.Owner, Group: f.Group, Size: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// DialTCP implements remote.Host with the handlers of HandleTCP; other
// addresses refuse the connection.
func (h *Host) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open tunnel to %s on %s: %w", addr, h.name, err)
	}
	h.record(Call{Op: "dial", Path: addr})
	h.mu.Lock()
	serve := h.listeners[addr]
	h.mu.Unlock()
	if serve == nil {
		return nil, fmt.Errorf("open tunnel to %s on %s: %w", addr, h.name, syscall.ECONNREFUSED)
	}
	client, server := net.Pipe()
	go serve(server)
	return client, nil
}

// DialContext implements remote.Host: DialTCP for TCP networks.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, fmt.Errorf("open tunnel to %s on %s: network %q not supported", addr, h.name, network)
	}
	return h.DialTCP(ctx, addr)
}
