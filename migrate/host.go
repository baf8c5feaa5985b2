package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
)

// Shell runs commands on a host. The SSH transport implements it; tests
// use a local one.
//
// Contract: Stream runs cmd with /bin/sh -c on the host (as root, or
// through sudo), reads its stdin from stdin (nil: no input, stdin
// closed), and copies its stdout to stdout as it arrives (nil: discard).
// It returns when the command has exited and its output was copied. A
// non-zero exit is an error that holds the exit status and the tail of
// the command's stderr. Cancelling ctx stops the command. It must be safe
// to call Stream concurrently.
type Shell interface {
	Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) error
}

// Dialer opens TCP connections from a host, to addresses as the host sees
// them (the databases stay bound to the hosts' loopback). The SSH
// transport implements it with direct-tcpip channels; the connections may
// not support deadlines (x/crypto/ssh's do not), which is why database
// clients reach them through a local forwarder (see tunnel).
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Host is one machine of a migration.
type Host struct {
	// Name is the host's name in messages (inventory name).
	Name  string
	Shell Shell
	Dial  Dialer
}

// run runs cmd and returns its stdout.
func (h Host) run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	err := h.Shell.Stream(ctx, cmd, stdin, &out)
	return out.Bytes(), err
}

// Run is the buffered form of Stream, the shape appstack.Runner and
// hostsetup.Host share.
func (h Host) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	return h.run(ctx, cmd, stdin)
}

// q quotes s for /bin/sh.
func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// readFile returns a file's content, or an error wrapping fs.ErrNotExist.
func (h Host) readFile(ctx context.Context, path string) ([]byte, error) {
	out, err := h.run(ctx, "if [ -e "+q(path)+" ]; then cat "+q(path)+"; else echo __lghsctl_missing__; fi", nil)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", path, h.Name, err)
	}
	if string(out) == "__lghsctl_missing__\n" {
		return nil, fmt.Errorf("read %s on %s: %w", path, h.Name, fs.ErrNotExist)
	}
	return out, nil
}

// writeFile replaces path atomically (mode 0600, its directory created
// 0700).
func (h Host) writeFile(ctx context.Context, path string, data []byte) error {
	dir := path[:strings.LastIndex(path, "/")+1]
	cmd := fmt.Sprintf("set -e; umask 077; mkdir -p %s; cat > %s.tmp; mv -f %s.tmp %s", q(dir), q(path), q(path), q(path))
	if err := h.Shell.Stream(ctx, cmd, bytes.NewReader(data), nil); err != nil {
		return fmt.Errorf("write %s on %s: %w", path, h.Name, err)
	}
	return nil
}

// readJSON decodes a JSON file; a missing file leaves v untouched and
// returns false.
func (h Host) readJSON(ctx context.Context, path string, v any) (bool, error) {
	b, err := h.readFile(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("read %s on %s: %w", path, h.Name, err)
	}
	return true, nil
}

func (h Host) writeJSON(ctx context.Context, path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return h.writeFile(ctx, path, append(b, '\n'))
}
