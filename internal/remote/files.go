package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/pkg/sftp"
)

// exitNotExist is the exit code the read and stat scripts use for a
// missing file.
const exitNotExist = 44

// ReadFile returns the content of the file at path (absolute). A missing
// file is an error wrapping fs.ErrNotExist. Logged in as root it reads
// over SFTP; through sudo (or without an SFTP subsystem) with cat.
func (c *Client) ReadFile(ctx context.Context, p string) ([]byte, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, c.name, err)
	}
	if !c.sudo {
		if cl := c.sftpClient(); cl != nil {
			return c.readSFTP(ctx, cl, p)
		}
	}
	var out bytes.Buffer
	script := "p=" + Quote(p) + `; [ -e "$p" ] || { echo "$p: no such file" >&2; exit ` + strconv.Itoa(exitNotExist) + `; }; exec cat -- "$p"`
	err := c.exec(ctx, script, Streams{Stdout: &out}, "read "+p)
	if ce := (*CommandError)(nil); errors.As(err, &ce) && ce.ExitCode == exitNotExist {
		return nil, fmt.Errorf("read %s on %s: %w", p, c.name, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (c *Client) readSFTP(ctx context.Context, cl *sftp.Client, p string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, c.name, err)
	}
	f, err := cl.Open(p)
	if err != nil {
		return nil, c.fileErr("read", p, err)
	}
	defer f.Close()
	// SFTP calls take no context: closing the file interrupts the read.
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	var b bytes.Buffer
	_, err = io.Copy(&b, f)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("read %s on %s: %w", p, c.name, ctx.Err())
	}
	if err != nil {
		return nil, c.fileErr("read", p, err)
	}
	c.log.Debug("ssh read", "path", p, "bytes", b.Len(), "via", "sftp")
	return b.Bytes(), nil
}

func (c *Client) fileErr(op, p string, err error) error {
	if lost := c.lostErr(); lost != nil {
		return fmt.Errorf("%s %s on %s: %w", op, p, c.name, lost)
	}
	return fmt.Errorf("%s %s on %s: %w", op, p, c.name, err)
}

// sftpClient opens the SFTP subsystem once; nil when the server has none
// (the shell path is used then).
func (c *Client) sftpClient() *sftp.Client {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil || c.noSFTP {
		return c.sftp
	}
	cl, err := sftp.NewClient(c.conn)
	if err != nil {
		c.log.Debug("no sftp subsystem, files go through the shell", "err", err)
		c.noSFTP = true
		return nil
	}
	c.sftp = cl
	return cl
}

// WriteFile replaces the file at path (absolute) with data, atomically: a
// reader sees the old content or the new one, never a mix. The data goes
// to a temporary file in the same directory, created 0600 (umask 077),
// whose size is checked (a cut transfer never lands), given owner, group
// and mode, fsynced, then renamed over path; the directory is fsynced
// after. The temporary file is removed on failure. The directory must
// exist; a symbolic link at path is replaced, not followed.
//
// owner and group are names (or numeric ids) on the host; empty leaves the
// file to the user the write runs as (root, directly or through sudo).
// mode keeps its permission, setuid, setgid and sticky bits.
//
// The data travels on the command's standard input, in one session, for
// root and sudo alike; it is never logged.
func (c *Client) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	if err := checkPath(p); err != nil {
		return fmt.Errorf("write %s on %s: %w", p, c.name, err)
	}
	script := writeScript(p, len(data), mode, owner, group)
	return c.exec(ctx, script, Streams{Stdin: bytes.NewReader(data)}, "write "+p)
}

// writeScript is WriteFile's remote side. The traps remove the temporary
// file on any failure, including a signal (the session being cancelled).
func writeScript(p string, size int, mode fs.FileMode, owner, group string) string {
	var chown string
	switch {
	case owner != "" && group != "":
		chown = `chown -- "$owner:$group" "$tmp" || exit 1`
	case owner != "":
		chown = `chown -- "$owner" "$tmp" || exit 1`
	case group != "":
		chown = `chgrp -- "$group" "$tmp" || exit 1`
	}
	return strings.Join([]string{
		"p=" + Quote(p) + " size=" + strconv.Itoa(size) + " mode=" + octalMode(mode) + " owner=" + Quote(owner) + " group=" + Quote(group),
		`d=${p%/*}; [ -n "$d" ] || d=/`,
		`if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p is a directory" >&2; exit 1; fi`,
		`umask 077`,
		// Traps first: a signal arriving while mktemp runs is handled
		// once the assignment is done, so the file is never forgotten.
		`tmp=`,
		`trap '[ -z "$tmp" ] || rm -f -- "$tmp"' EXIT`,
		`trap 'exit 129' HUP INT TERM PIPE`,
		`tmp=$(mktemp "$d/.${p##*/}.lghsctl-XXXXXX") || exit 1`,
		`cat > "$tmp" || exit 1`,
		`n=$(wc -c < "$tmp") || exit 1`,
		`[ "$n" -eq "$size" ] || { echo "received $n of $size bytes" >&2; exit 1; }`,
		chown,
		`chmod -- "$mode" "$tmp" || exit 1`,
		`sync -- "$tmp" 2>/dev/null || sync`,
		`mv -f -- "$tmp" "$p" || exit 1`,
		`tmp=`,
		`sync -- "$d" 2>/dev/null || :`,
	}, "\n")
}

func octalMode(m fs.FileMode) string {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		o |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	return fmt.Sprintf("%04o", o)
}

func checkPath(p string) error {
	if !path.IsAbs(p) || strings.HasSuffix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("path %q is not a clean absolute file path", p)
	}
	return nil
}

// FileInfo describes a file on a host, as Stat sees it.
type FileInfo struct {
	// Mode has the type bits (fs.ModeDir, fs.ModeSymlink...) and the
	// permission, setuid, setgid and sticky bits.
	Mode fs.FileMode
	// Owner and Group are names (numeric ids when the host has no name for
	// them).
	Owner, Group string
	Size         int64
	// SHA256 is the hex digest of a regular file's content; empty for
	// other types.
	SHA256 string
}

// Stat describes the file at path (absolute) without following a final
// symbolic link, with the digest of a regular file, in one command. A
// missing file is an error wrapping fs.ErrNotExist.
func (c *Client) Stat(ctx context.Context, p string) (FileInfo, error) {
	if err := checkPath(p); err != nil {
		return FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, c.name, err)
	}
	script := "p=" + Quote(p) + `; { [ -e "$p" ] || [ -L "$p" ]; } || exit ` + strconv.Itoa(exitNotExist) + `
stat -c '%f %U %G %s' -- "$p" || exit 1
if [ -f "$p" ] && [ ! -L "$p" ]; then sha256sum < "$p" || exit 1; fi`
	var out bytes.Buffer
	err := c.exec(ctx, script, Streams{Stdout: &out}, "stat "+p)
	if ce := (*CommandError)(nil); errors.As(err, &ce) && ce.ExitCode == exitNotExist {
		return FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, c.name, fs.ErrNotExist)
	}
	if err != nil {
		return FileInfo{}, err
	}
	fi, err := parseStat(out.String())
	if err != nil {
		return FileInfo{}, fmt.Errorf("stat %s on %s: %w", p, c.name, err)
	}
	return fi, nil
}

// parseStat reads "RAWMODEHEX OWNER GROUP SIZE\n[SHA256  -\n]".
func parseStat(out string) (FileInfo, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[0])
	if len(f) != 4 {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", out)
	}
	raw, err1 := strconv.ParseUint(f[0], 16, 32)
	size, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", out)
	}
	fi := FileInfo{Mode: unixMode(uint32(raw)), Owner: f[1], Group: f[2], Size: size}
	if len(lines) > 1 {
		if s := strings.Fields(lines[1]); len(s) > 0 && len(s[0]) == 64 {
			fi.SHA256 = s[0]
		}
	}
	return fi, nil
}

// unixMode converts st_mode bits to an fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
