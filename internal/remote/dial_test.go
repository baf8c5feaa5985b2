package remote_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

func TestIdentityFileLogsInAndRunsCommand(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	out, err := c.Run(context.Background(), "echo hello; echo noise >&2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "hello\n" {
		t.Errorf("stdout = %q, want %q", out, "hello\n")
	}
	if got, want := l.srv.Execs(), []string{"/bin/sh -c 'echo hello; echo noise >&2'"}; !slices.Equal(got, want) {
		t.Errorf("server ran %q, want %q", got, want)
	}
	if got := ssh.FingerprintSHA256(c.HostKey()); got != ssh.FingerprintSHA256(l.srv.HostKey()) {
		t.Errorf("HostKey = %s, want the server's %s", got, ssh.FingerprintSHA256(l.srv.HostKey()))
	}
}

func TestAgentKeyLogsIn(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.IdentityFiles = nil
	cfg.AgentSocket = serveAgent(t, l.key)
	c := dial(t, cfg)
	if _, err := c.Run(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestPassphraseProtectedIdentityIsUsedThroughTheAgent(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t, dir, "id_locked", "secret passphrase")
	other := newKey(t, dir, "id_other", "")
	l := newLab(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"root": {key.pub()}}})
	cfg := l.config()
	cfg.IdentityFiles = []string{key.path}

	// The agent holds another key too; with IdentitiesOnly-like ordering
	// the file's key is offered first.
	cfg.AgentSocket = serveAgent(t, other, key)
	c := dial(t, cfg)
	c.Close()
	if a := l.srv.AuthAttempts(); len(a) == 0 || a[0].Fingerprint != ssh.FingerprintSHA256(key.pub()) {
		t.Errorf("first key offered = %+v, want the identity file's key %s", a, ssh.FingerprintSHA256(key.pub()))
	}

	// Without the agent there is no way to use the file: the error says so.
	cfg.AgentSocket = ""
	_, err := remote.Dial(context.Background(), cfg)
	var ae *remote.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("Dial without agent: %v, want *AuthError", err)
	}
	if !strings.Contains(err.Error(), key.path+" is passphrase-protected and its key is not in the agent") {
		t.Errorf("error %q does not explain the locked identity file", err)
	}
}

func TestAuthFailureNamesTheKeysTriedNotTheirContents(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	wrong := newKey(t, t.TempDir(), "id_wrong", "")
	cfg := l.config()
	cfg.IdentityFiles = []string{wrong.path}
	cfg.AgentSocket = filepath.Join(t.TempDir(), "no-agent")
	_, err := remote.Dial(context.Background(), cfg)
	var ae *remote.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("Dial: %v, want *AuthError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"authenticate as root on lab",
		"identity file " + wrong.path + " (ssh-ed25519 " + ssh.FingerprintSHA256(wrong.pub()) + ")",
		"agent " + cfg.AgentSocket + " unreachable",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	priv, _ := os.ReadFile(wrong.path)
	for _, line := range strings.Split(string(priv), "\n")[1:3] {
		if strings.Contains(msg, line) {
			t.Errorf("error leaks key material %q", line)
		}
	}
	if len(ae.Tried) != 1 {
		t.Errorf("Tried = %q, want the one identity file", ae.Tried)
	}
}

func TestMissingExplicitIdentityFileIsAnError(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.IdentityFiles = []string{filepath.Join(t.TempDir(), "nope")}
	_, err := remote.Dial(context.Background(), cfg)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "identity file") {
		t.Fatalf("Dial: %v, want a missing identity file error", err)
	}
	if n := l.srv.Handshakes(); n != 0 {
		t.Errorf("%d handshakes, want none: the key problem is found before connecting", n)
	}
}

func TestUnknownHostWithoutTrustNewFailsBeforeAuthentication(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "inv", "known_hosts")
	_, err := remote.Dial(context.Background(), cfg)
	var ue *remote.UnknownHostError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial: %v, want *UnknownHostError", err)
	}
	if ue.Presented != ssh.FingerprintSHA256(l.srv.HostKey()) {
		t.Errorf("Presented = %s, want %s", ue.Presented, ssh.FingerprintSHA256(l.srv.HostKey()))
	}
	for _, want := range []string{"is unknown", ue.Presented, "ssh-keyscan -p " + fmt.Sprint(l.srv.Port()) + " 127.0.0.1 >> " + cfg.KnownHostsFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if a := l.srv.AuthAttempts(); len(a) != 0 {
		t.Errorf("keys offered to an unknown host: %+v", a)
	}
	if e := l.srv.Execs(); len(e) != 0 {
		t.Errorf("commands reached an unknown host: %q", e)
	}
	if _, err := os.Stat(cfg.KnownHostsFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("known_hosts written without TrustNew (stat: %v)", err)
	}
}

func TestTrustNewPinsTheKeyInANewKnownHostsFile(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "inventory", "known_hosts")
	cfg.TrustNew = true
	c := dial(t, cfg)
	c.Close()

	st, err := os.Stat(cfg.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %o, want 600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(cfg.KnownHostsFile)
	want := knownhosts.Line([]string{l.srv.Addr()}, l.srv.HostKey()) + "\n"
	if string(b) != want {
		t.Errorf("known_hosts = %q, want %q", b, want)
	}

	// Pinned: the next connection needs no trust, and a second TOFU
	// connection does not duplicate the entry.
	cfg.TrustNew = false
	dial(t, cfg).Close()
	cfg.TrustNew = true
	dial(t, cfg).Close()
	if b2, _ := os.ReadFile(cfg.KnownHostsFile); string(b2) != want {
		t.Errorf("known_hosts after reconnecting = %q, want unchanged %q", b2, want)
	}
}

func TestChangedHostKeyFailsWithBothFingerprintsBeforeAnyCommand(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	old := remotetest.NewKey(t).PublicKey()
	cfg := l.config()
	cfg.KnownHostsFile = writeKnownHosts(t, "# pinned by lghsctl\n", knownhosts.Line([]string{l.srv.Addr()}, old)+"\n")
	cfg.TrustNew = true // never overrides a pinned key
	cfg.ExpectedKeys = []ssh.PublicKey{l.srv.HostKey()}

	c, err := remote.Dial(context.Background(), cfg)
	var he *remote.HostKeyChangedError
	if !errors.As(err, &he) {
		if c != nil {
			c.Run(context.Background(), "echo should-not-run", nil)
		}
		t.Fatalf("Dial: %v, want *HostKeyChangedError", err)
	}
	wantOld, wantNew := ssh.FingerprintSHA256(old), ssh.FingerprintSHA256(l.srv.HostKey())
	if len(he.Known) != 1 || he.Known[0].Fingerprint != wantOld || he.Known[0].File != cfg.KnownHostsFile || he.Known[0].Line != 2 {
		t.Errorf("Known = %+v, want %s at %s:2", he.Known, wantOld, cfg.KnownHostsFile)
	}
	if he.Presented != wantNew {
		t.Errorf("Presented = %s, want %s", he.Presented, wantNew)
	}
	for _, want := range []string{wantOld, wantNew, cfg.KnownHostsFile + ":2", "ssh-keygen -R"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if a := l.srv.AuthAttempts(); len(a) != 0 {
		t.Errorf("keys offered to a host with a changed key: %+v", a)
	}
	if e := l.srv.Execs(); len(e) != 0 {
		t.Errorf("commands reached a host with a changed key: %q", e)
	}
	if b, _ := os.ReadFile(cfg.KnownHostsFile); strings.Contains(string(b), wantNew) || strings.Count(string(b), "\n") != 2 {
		t.Errorf("known_hosts changed: %q", b)
	}
}

func TestExpectedKeyIsPinnedAndAnyOtherRefused(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	cfg.TrustNew = true
	cfg.ExpectedKeys = []ssh.PublicKey{remotetest.NewKey(t).PublicKey()}
	_, err := remote.Dial(context.Background(), cfg)
	var he *remote.HostKeyChangedError
	if !errors.As(err, &he) || he.Known[0].File != "" || !strings.Contains(err.Error(), "expected by the caller") {
		t.Fatalf("Dial with another expected key: %v, want *HostKeyChangedError against the expected key", err)
	}
	if len(l.srv.AuthAttempts()) != 0 {
		t.Error("keys offered to a host whose key is not the expected one")
	}

	cfg.TrustNew = false
	cfg.ExpectedKeys = []ssh.PublicKey{l.srv.HostKey()}
	dial(t, cfg).Close()
	b, _ := os.ReadFile(cfg.KnownHostsFile)
	if !strings.Contains(string(b), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(l.srv.HostKey())))) {
		t.Errorf("expected key not pinned: %q", b)
	}
}

func TestConcurrentFirstConnectionsKeepKnownHostsIntact(t *testing.T) {
	const n = 8
	known := filepath.Join(t.TempDir(), "known_hosts")
	var labs []lab
	for range n {
		labs = append(labs, newLab(t, remotetest.ServerOptions{}))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, l := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := l.config()
			cfg.KnownHostsFile = known
			cfg.TrustNew = true
			c, err := remote.Dial(context.Background(), cfg)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("dial %d: %v", i, err)
		}
	}
	f, err := os.Open(known)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines++
		if _, _, _, _, _, err := ssh.ParseKnownHosts(sc.Bytes()); err != nil {
			t.Errorf("line %d %q: %v", lines, sc.Text(), err)
		}
	}
	if lines != n {
		t.Errorf("%d lines in known_hosts, want %d", lines, n)
	}
	// Every host is now pinned.
	for _, l := range labs {
		cfg := l.config()
		cfg.KnownHostsFile = known
		dial(t, cfg).Close()
	}
}

// Without the known_hosts lock, racing first connections append the same
// key more than once; the race is only hit now and then (about one run in
// five), so this test catches a lost lock over a few runs, not each time.
func TestConcurrentFirstConnectionsToOneHostPinItOnce(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	cfg.TrustNew = true
	var wg sync.WaitGroup
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := remote.Dial(context.Background(), cfg)
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(cfg.KnownHostsFile)
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Errorf("known_hosts has %d lines, want the host pinned once:\n%s", n, b)
	}
}

func TestHandshakeAsksForThePinnedKeyType(t *testing.T) {
	// The server has an RSA and an Ed25519 key; only the Ed25519 key is
	// pinned. Unrestricted, x/crypto prefers RSA and would see a "changed"
	// key; and conversely with only RSA pinned.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ed := remotetest.NewKey(t)
	l := newLab(t, remotetest.ServerOptions{HostKey: rsaSigner, ExtraHostKeys: []ssh.Signer{ed}})
	cfg := l.config()
	cfg.KnownHostsFile = writeKnownHosts(t, knownhosts.Line([]string{l.srv.Addr()}, ed.PublicKey())+"\n")
	c := dial(t, cfg)
	if c.HostKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s, want the pinned ssh-ed25519", c.HostKey().Type())
	}
	c.Close()

	// And the other way round: only RSA pinned.
	cfg.KnownHostsFile = writeKnownHosts(t, knownhosts.Line([]string{l.srv.Addr()}, rsaSigner.PublicKey())+"\n")
	if k := dial(t, cfg).HostKey(); k.Type() != ssh.KeyAlgoRSA {
		t.Errorf("host key type %s, want the pinned ssh-rsa", k.Type())
	}
}

func TestFirstUsePinsTheKeyTypeOpenSSHPrefers(t *testing.T) {
	ecdsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaSigner, err := ssh.NewSignerFromKey(ecdsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ed := remotetest.NewKey(t)
	l := newLab(t, remotetest.ServerOptions{HostKey: ecdsaSigner, ExtraHostKeys: []ssh.Signer{ed}})
	cfg := l.config()
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	cfg.TrustNew = true
	if k := dial(t, cfg).HostKey(); k.Type() != ssh.KeyAlgoED25519 {
		t.Errorf("pinned a %s key, want ssh-ed25519 as ssh(1) would", k.Type())
	}
}

func TestExtraKnownHostsAreReadOnly(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	cfg := l.config()
	cfg.ExtraKnownHosts = []string{l.known}
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	dial(t, cfg).Close()
	if _, err := os.Stat(cfg.KnownHostsFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a host known from ExtraKnownHosts was pinned again (stat: %v)", err)
	}
}

func TestConnectTimeoutBoundsASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	start := time.Now()
	_, err = remote.Dial(context.Background(), remote.Config{
		Name:           "silent",
		Address:        "127.0.0.1",
		Port:           ln.Addr().(*net.TCPAddr).Port,
		KnownHostsFile: filepath.Join(t.TempDir(), "known_hosts"),
		ConnectTimeout: 300 * time.Millisecond,
	})
	if err == nil || !strings.Contains(err.Error(), "connect timeout 300ms") {
		t.Fatalf("Dial: %v, want a connect timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial took %s", d)
	}
}

func TestForgetHostRemovesOnlyThatHost(t *testing.T) {
	a, b := remotetest.NewKey(t).PublicKey(), remotetest.NewKey(t).PublicKey()
	hashed := knownhosts.HashHostname(knownhosts.Normalize("10.0.0.1:22"))
	known := writeKnownHosts(t,
		"# comment\n",
		knownhosts.Line([]string{"10.0.0.1:22", "chat.example"}, a)+"\n",
		hashed+" "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(b)))+"\n",
		knownhosts.Line([]string{"10.0.0.2:2222"}, b)+"\n",
	)
	n, err := remote.ForgetHost(known, "10.0.0.1", 22)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("removed %d names, want 2 (plain and hashed)", n)
	}
	got, _ := os.ReadFile(known)
	want := "# comment\n" + knownhosts.Line([]string{"chat.example"}, a) + "\n" + knownhosts.Line([]string{"10.0.0.2:2222"}, b) + "\n"
	if string(got) != want {
		t.Errorf("known_hosts =\n%s\nwant\n%s", got, want)
	}
	if n, err := remote.ForgetHost(filepath.Join(t.TempDir(), "none"), "10.0.0.1", 22); n != 0 || err != nil {
		t.Errorf("ForgetHost on a missing file = %d, %v", n, err)
	}
}
