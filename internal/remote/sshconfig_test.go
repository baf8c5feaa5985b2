package remote_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

func writeSSHConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lastUser is the user of the last accepted key on srv.
func lastUser(t *testing.T, srv *remotetest.Server) string {
	t.Helper()
	a := srv.AuthAttempts()
	for i := len(a) - 1; i >= 0; i-- {
		if a[i].Accepted {
			return a[i].User
		}
	}
	t.Fatal("no accepted login")
	return ""
}

func TestConfigHostSuppliesHostNameUserPortAndIdentityFile(t *testing.T) {
	home := t.TempDir()
	key := newKey(t, filepath.Join(home, ".ssh"), "id_chat", "")
	srv := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{
		"alice": {key.pub()}, "bob": {key.pub()},
	}})
	cfg := remote.Config{
		HomeDir:        home,
		KnownHostsFile: writeKnownHosts(t, srv.KnownHostsLine()),
		SSHConfigFile: writeSSHConfig(t, fmt.Sprintf(`
Host other
    User mallory
Host chat
    HostName 127.0.0.1
    Port %d
    User alice
    IdentityFile ~/.ssh/id_chat
Host *
    User fallback
`, srv.Port())),
		ConfigHost: "chat",
	}
	c := dial(t, cfg)
	if c.Name() != fmt.Sprintf("alice@127.0.0.1:%d", srv.Port()) {
		t.Errorf("Name() = %q, want the resolved user@address:port", c.Name())
	}
	c.Close()
	if u := lastUser(t, srv); u != "alice" {
		t.Errorf("logged in as %q, want alice from the alias", u)
	}

	// Explicit fields override the alias.
	cfg.User = "bob"
	dial(t, cfg).Close()
	if u := lastUser(t, srv); u != "bob" {
		t.Errorf("logged in as %q, want the explicit bob", u)
	}
}

func TestConfigHostWithoutConfigFileIsAnError(t *testing.T) {
	_, err := remote.Dial(context.Background(), remote.Config{
		ConfigHost:     "chat",
		SSHConfigFile:  filepath.Join(t.TempDir(), "missing"),
		KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"),
	})
	if err == nil || !strings.Contains(err.Error(), `config host "chat": ssh config file`) {
		t.Fatalf("Dial: %v, want an error naming the missing config file", err)
	}
}

func TestProxyJumpFromConfigHostGoesThroughTheJumpServer(t *testing.T) {
	home := t.TempDir()
	jumpKey := newKey(t, filepath.Join(home, ".ssh"), "id_jump", "")
	targetKey := newKey(t, filepath.Join(home, ".ssh"), "id_target", "")
	jump := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"hopper": {jumpKey.pub()}}})
	target := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"root": {targetKey.pub()}}})
	cfg := remote.Config{
		Name:           "chat",
		HomeDir:        home,
		KnownHostsFile: writeKnownHosts(t, jump.KnownHostsLine(), target.KnownHostsLine()),
		SSHConfigFile: writeSSHConfig(t, fmt.Sprintf(`
Host bastion
    HostName 127.0.0.1
    Port %d
    User hopper
    IdentityFile %%d/.ssh/id_jump
Host chat
    HostName 127.0.0.1
    Port %d
    IdentityFile ~/.ssh/id_target
    ProxyJump bastion
`, jump.Port(), target.Port())),
		ConfigHost: "chat",
	}
	c := dial(t, cfg)
	out, err := c.Run(context.Background(), "echo through", nil)
	if err != nil || string(out) != "through\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	if got, want := jump.Forwards(), []string{target.Addr()}; !slices.Equal(got, want) {
		t.Errorf("jump server forwarded to %q, want %q", got, want)
	}
	if len(jump.Execs()) != 0 || len(target.Execs()) != 1 {
		t.Errorf("commands: jump %q, target %q; want the one command on the target", jump.Execs(), target.Execs())
	}
	if u := lastUser(t, jump); u != "hopper" {
		t.Errorf("jump login %q, want hopper", u)
	}
	if u := lastUser(t, target); u != "root" {
		t.Errorf("target login %q, want root (the default)", u)
	}
}

func TestExplicitProxyJumpChainsTwoHops(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	hop1 := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"one": {l.key.pub()}}})
	hop2 := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"two": {l.key.pub()}}})
	cfg := l.config()
	cfg.KnownHostsFile = writeKnownHosts(t, hop1.KnownHostsLine(), hop2.KnownHostsLine(), l.srv.KnownHostsLine())
	cfg.ProxyJump = fmt.Sprintf("one@127.0.0.1:%d,two@[127.0.0.1]:%d", hop1.Port(), hop2.Port())
	c := dial(t, cfg)
	if _, err := c.Run(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hop1.Forwards(), []string{hop2.Addr()}) || !slices.Equal(hop2.Forwards(), []string{l.srv.Addr()}) {
		t.Errorf("forwards: hop1 %q, hop2 %q; want hop1→hop2→target", hop1.Forwards(), hop2.Forwards())
	}
}

func TestUnknownJumpHostIsRefusedEvenWithTrustNew(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	jump := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"hop": {l.key.pub()}}})
	cfg := l.config()
	cfg.TrustNew = true
	cfg.ProxyJump = fmt.Sprintf("hop@127.0.0.1:%d", jump.Port())
	_, err := remote.Dial(context.Background(), cfg)
	var ue *remote.UnknownHostError
	if !errors.As(err, &ue) || ue.Host != "jump host 127.0.0.1" {
		t.Fatalf("Dial: %v, want *UnknownHostError for the jump host", err)
	}
	if len(jump.AuthAttempts()) != 0 || len(l.srv.AuthAttempts()) != 0 {
		t.Error("keys offered although the jump host is unknown")
	}
}
