package remote_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
)

// TestAgainstARealOpenSSHServer checks the client against a lab host
// (systemd-nspawn Debian, real sshd and sftp-server, real sudo): the key
// the lab reports is pinned, commands and files work as root, a cancelled
// command dies on the server, tunnels reach the host's loopback, and a
// non-root admin works through sudo -n. It skips under -short and where
// the lab cannot run (fails when CI=true).
func TestAgainstARealOpenSSHServer(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	key := newKey(t, t.TempDir(), "id_ed25519", "")
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.pub())))
	h := labtest.Host(t, l, labhost.Spec{Name: "remote", AuthorizedKeys: []string{authorized}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	known := filepath.Join(t.TempDir(), "inventory", "known_hosts")
	cfg := remote.Config{
		Name:           "lab-remote",
		Address:        h.Addr4().String(),
		User:           "root",
		IdentityFiles:  []string{key.path},
		KnownHostsFile: known,
		ExpectedKeys:   h.HostKeys(),
		ConnectTimeout: 15 * time.Second,
		KeepAlive:      5 * time.Second,
	}
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := ssh.FingerprintSHA256(c.HostKey()); got != h.Fingerprint() {
		t.Errorf("host key %s, lab reported %s", got, h.Fingerprint())
	}
	if b, _ := os.ReadFile(known); !strings.Contains(string(b), h.Addr4().String()+" "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.HostKey())))) {
		t.Errorf("known_hosts does not pin the lab's key:\n%s", b)
	}

	t.Run("pinned key suffices", func(t *testing.T) {
		cfg := cfg
		cfg.ExpectedKeys = nil
		c2, err := remote.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c2.Close()
	})

	t.Run("commands as root", func(t *testing.T) {
		out, err := c.Run(ctx, "uname -s; id -u; readlink /proc/$$/exe", nil)
		if err != nil || string(out) != "Linux\n0\n/usr/bin/dash\n" {
			t.Errorf("Run = %q, %v; want Linux, uid 0, run by dash (/bin/sh)", out, err)
		}
		_, err = c.Run(ctx, "echo nope >&2; exit 7", nil)
		var ce *remote.CommandError
		if !errors.As(err, &ce) || ce.ExitCode != 7 || strings.TrimSpace(ce.Stderr) != "nope" {
			t.Errorf("failing Run: %v", err)
		}
	})

	t.Run("atomic file write as root", func(t *testing.T) {
		if _, err := c.Run(ctx, "install -d -m 0755 /etc/lghsctl-test", nil); err != nil {
			t.Fatal(err)
		}
		data := []byte("server_tokens off;\n")
		p := "/etc/lghsctl-test/site.conf"
		if err := c.WriteFile(ctx, p, data, 0o640, "root", "adm"); err != nil {
			t.Fatal(err)
		}
		fi, err := c.Stat(ctx, p)
		sum := sha256.Sum256(data)
		want := remote.FileInfo{Mode: 0o640, Owner: "root", Group: "adm", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		if err != nil || fi != want {
			t.Errorf("Stat = %+v, %v; want %+v", fi, err, want)
		}
		if got, err := c.ReadFile(ctx, p); err != nil || string(got) != string(data) {
			t.Errorf("ReadFile (sftp) = %q, %v", got, err)
		}
		if _, err := c.ReadFile(ctx, "/etc/lghsctl-test/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile of a missing file: %v, want fs.ErrNotExist", err)
		}
		if out, _ := c.Run(ctx, "ls -A /etc/lghsctl-test", nil); string(out) != "site.conf\n" {
			t.Errorf("directory holds %q: temporary files left?", out)
		}
	})

	t.Run("cancelled command dies on the server", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := c.Run(cctx, "sleep 300 & echo $! > /run/lghsctl-sleep.pid; wait", nil)
			done <- err
		}()
		waitFor(t, func() bool {
			_, err := c.Run(ctx, "test -s /run/lghsctl-sleep.pid", nil)
			return err == nil
		})
		ccancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want context.Canceled", err)
		}
		waitFor(t, func() bool {
			_, err := c.Run(ctx, `! kill -0 "$(cat /run/lghsctl-sleep.pid)" 2>/dev/null`, nil)
			return err == nil
		})
	})

	t.Run("tunnel to the host's loopback", func(t *testing.T) {
		conn, err := c.DialTCP(ctx, "127.0.0.1:22")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		banner := make([]byte, 8)
		if _, err := io.ReadFull(conn, banner); err != nil || string(banner) != "SSH-2.0-" {
			t.Errorf("read %q, %v through the tunnel; want sshd's banner", banner, err)
		}
	})

	t.Run("sudo for a non-root admin", func(t *testing.T) {
		if _, err := c.Run(ctx, "id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy; install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFile(ctx, "/home/deploy/.ssh/authorized_keys", []byte(authorized+"\n"), 0o600, "deploy", "deploy"); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteFile(ctx, "/etc/sudoers.d/deploy", []byte("deploy ALL=(ALL) NOPASSWD: ALL\n"), 0o440, "root", "root"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Run(ctx, "visudo -cf /etc/sudoers.d/deploy", nil); err != nil {
			t.Fatal(err)
		}
		dcfg := cfg
		dcfg.ExpectedKeys = nil
		dcfg.User = "deploy"
		dcfg.Sudo = true
		d, err := remote.Dial(ctx, dcfg)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if out, err := d.Run(ctx, "id -u; echo $HOME", nil); err != nil || !strings.HasPrefix(string(out), "0\n") {
			t.Errorf("Run through sudo = %q, %v; want uid 0", out, err)
		}
		p := "/root/lghsctl-secret"
		if err := d.WriteFile(ctx, p, []byte("token"), 0o600, "", ""); err != nil {
			t.Fatal(err)
		}
		if fi, err := d.Stat(ctx, p); err != nil || fi.Owner != "root" || fi.Mode != 0o600 {
			t.Errorf("Stat = %+v, %v; want root's 0600 file", fi, err)
		}
		if b, err := d.ReadFile(ctx, p); err != nil || string(b) != "token" {
			t.Errorf("ReadFile through sudo = %q, %v", b, err)
		}
		if _, err := d.ReadFile(ctx, "/root/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile of a missing file through sudo: %v", err)
		}

		// A cancelled command dies with its children, although sshd's
		// signal cannot reach root's processes.
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := d.Run(cctx, "sleep 300 & echo $! > /run/lghsctl-sudo-sleep.pid; wait", nil)
			done <- err
		}()
		waitFor(t, func() bool {
			_, err := c.Run(ctx, "test -s /run/lghsctl-sudo-sleep.pid", nil)
			return err == nil
		})
		ccancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v, want context.Canceled", err)
		}
		waitFor(t, func() bool {
			_, err := c.Run(ctx, `! kill -0 "$(cat /run/lghsctl-sudo-sleep.pid)" 2>/dev/null`, nil)
			return err == nil
		})

		// Without Sudo, the same login is an ordinary user.
		dcfg.Sudo = false
		plain, err := remote.Dial(ctx, dcfg)
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if out, err := plain.Run(ctx, "id -un", nil); err != nil || string(out) != "deploy\n" {
			t.Errorf("Run without sudo = %q, %v", out, err)
		}
		if _, err := plain.ReadFile(ctx, p); err == nil {
			t.Error("an ordinary user read root's 0600 file")
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
