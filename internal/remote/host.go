package remote

import (
	"context"
	"io"
	"io/fs"
	"net"
)

// Host is everything lghsctl does on a server. *Client implements it
// over SSH, remotetest.Host in memory. Consumers usually declare the
// smaller interface they need (hostsetup.Host, appstack.Runner); this one
// keeps the fake and the client in step.
//
// Contracts (the fake honours them too):
//   - Run and Exec run a command with /bin/sh as root (directly or through
//     sudo); a non-zero exit is a *CommandError with the exit code and the
//     end of standard error; a cancelled ctx stops the command and the
//     error wraps ctx.Err(). Standard input is never logged.
//   - ReadFile and Stat return an error wrapping fs.ErrNotExist for a
//     missing file.
//   - WriteFile replaces a file atomically with the given mode, owner and
//     group, and creates nothing else (not even the directory).
//   - DialTCP and DialContext connect to an address as seen from the
//     host.
type Host interface {
	Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	Exec(ctx context.Context, cmd string, s Streams) error
	ReadFile(ctx context.Context, path string) ([]byte, error)
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner, group string) error
	Stat(ctx context.Context, path string) (FileInfo, error)
	DialTCP(ctx context.Context, addr string) (net.Conn, error)
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ Host = (*Client)(nil)
