// Package labtest starts lab hosts (package labhost) from Go tests: it
// decides whether a lab test can run, opens a lab and starts hosts that are
// cleaned up with t.Cleanup, and dials them over SSH with their host key
// pinned.
//
// Lab tests skip under `go test -short` and when the box cannot run a lab
// (not root, systemd-nspawn or debootstrap missing, ...), with the reason;
// when the environment has CI=true, a lab test that cannot run fails
// instead (a CI that silently skips every lab test proves nothing).
package labtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labhost"
)

// Require skips t when lab tests cannot run here, or fails it when CI=true
// (except under -short, which always skips: unit runs stay hermetic).
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: skipped under -short")
	}
	if err := labhost.CheckPrerequisites(labhost.Config{}); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab test cannot run and CI=true: %v", err)
		}
		t.Skipf("lab test skipped: %v", err)
	}
}

// Lab requires a lab (see Require), opens one with cfg and closes it when
// the test ends, failing the test if closing fails or leaves anything
// behind.
// cfg.Logger defaults to the test log (debug level with
// LGHSCTL_LAB_DEBUG=1).
func Lab(t testing.TB, cfg labhost.Config) *labhost.Lab {
	t.Helper()
	Require(t)
	if cfg.Logger == nil {
		cfg.Logger = Logger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l, err := labhost.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open lab: %v", err)
	}
	t.Cleanup(func() {
		// Close fails if anything of the lab is left behind.
		if err := l.Close(); err != nil {
			t.Errorf("close lab %s: %v", l.Name(), err)
		}
	})
	return l
}

// Host starts a host on l and removes it when the test ends. A spec with no
// Name is named after a counter.
func Host(t testing.TB, l *labhost.Lab, spec labhost.Spec) *labhost.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	h, err := l.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start lab host: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := h.Remove(ctx); err != nil {
			t.Errorf("remove lab host %s: %v", h.Name(), err)
		}
	})
	return h
}

// Key makes a fresh SSH client key: the signer and its authorized_keys
// line.
func Key(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " labtest"
}

// Dial opens an SSH connection to h as root, accepting only h's host keys
// as the lab reported them, and closes it when the test ends.
func Dial(t testing.TB, h *labhost.Host, signer ssh.Signer) *ssh.Client {
	t.Helper()
	c, err := DialAddr(h.SSHAddr(), h, signer)
	if err != nil {
		t.Fatalf("ssh to %s: %v", h.Name(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DialAddr is Dial through another address (a DelayProxy, say), still
// pinning h's host keys; the caller closes the client.
func DialAddr(addr string, h *labhost.Host, signer ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: h.HostKeyCallback(),
		Timeout:         15 * time.Second,
	})
}

// SSH runs cmd over c and returns its standard output; the test fails when
// the command does.
func SSH(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	out, err := SSHOutput(c, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SSHOutput runs cmd over c: standard output, and an error with the exit
// status and standard error when it fails.
func SSHOutput(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if err := s.Run(cmd); err != nil {
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return stdout.String(), fmt.Errorf("ssh %q: exit %d: %s", cmd, ee.ExitStatus(), strings.TrimSpace(stderr.String()))
		}
		return stdout.String(), fmt.Errorf("ssh %q: %w", cmd, err)
	}
	return stdout.String(), nil
}

// Logger is a slog.Logger writing to the test log until the test ends
// (later records, from background goroutines, are dropped instead of
// panicking).
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("LGHSCTL_LAB_DEBUG") == "1" {
		level = slog.LevelDebug
	}
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// TCPAnswers says whether something accepts TCP connections at addr.
func TCPAnswers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
