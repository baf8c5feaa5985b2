package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/crypto/ssh"
)

// sshHost is hostsetup.Host over an SSH client, as root, for the lab
// tests (the project's transport is internal/remote; this keeps the test
// independent of it).
type sshClient = *ssh.Client

type sshHost struct{ c *ssh.Client }

func (h sshHost) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	s, err := h.c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &out, &errb, stdin
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		return nil, ctx.Err()
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", firstLine(cmd), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 80 {
		l = l[:80] + "…"
	}
	return l
}

func (h sshHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	out, err := h.Run(ctx, "if [ -e "+shq(p)+" ]; then cat -- "+shq(p)+"; else exit 44; fi", nil)
	var ee *ssh.ExitError
	if errors.As(err, &ee) && ee.ExitStatus() == 44 {
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	}
	return out, err
}

func (h sshHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	tmp := path.Dir(p) + "/." + path.Base(p) + ".lghsctl-new"
	cmd := fmt.Sprintf("set -e; umask 077; rm -f %[1]s; cat > %[1]s; chown %[3]s:%[4]s %[1]s; chmod %04[5]o %[1]s; mv -f %[1]s %[2]s",
		shq(tmp), shq(p), shq(owner), shq(group), mode.Perm())
	_, err := h.Run(ctx, cmd, bytes.NewReader(data))
	return err
}
