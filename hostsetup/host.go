// Package hostsetup configures a Debian server over SSH, idempotently:
// packages, admin accounts, SSH hardening without lockout, Docker, the
// nginx reverse proxy and site directories.
//
// A run starts with one remote command that gathers every fact the tasks
// need (package versions, service states, file digests, modes and owners),
// so a converged host is checked in one round trip. Each task then
// compares the desired state with the facts, reports ok or changed (decided
// by content digests, never by modification times), and only a task that
// has something to change sends more commands. In check mode nothing is
// sent but the facts command (and reads of files whose diff is asked for).
package hostsetup

import (
	"context"
	"io"
	"io/fs"
)

// Host is what the tasks need of a server. The SSH transport implements it.
//
// Contract: Run executes cmd with /bin/sh as root (or through sudo) and
// returns its stdout; a non-zero exit is an error that includes the
// command's stderr. ReadFile returns an error wrapping fs.ErrNotExist for a
// missing file. WriteFile replaces path atomically (temp file in the same
// directory, then rename) with the given mode, owner and group, creating
// nothing else.
type Host interface {
	Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
	ReadFile(ctx context.Context, path string) ([]byte, error)
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode, owner, group string) error
}
