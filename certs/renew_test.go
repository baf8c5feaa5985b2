package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/lab/cfsim"
)

// hostDir is a host's renewal layout under a temporary root, served by a
// fake nginx that reads the live files at every handshake (so a reload is
// not needed for it to switch; the reload command only leaves a trace).
type hostDir struct {
	root    string
	cfg     RenewConfig
	nginx   *fakeNginx
	reloads string
}

func newHostDir(t *testing.T, l *lab, s Settings, acct *Account, names []string) *hostDir {
	t.Helper()
	h := &hostDir{root: t.TempDir()}
	h.reloads = filepath.Join(h.root, "reloads")
	live := filepath.Join(h.root, "live")
	site := names[0]
	h.nginx = startFakeNginx(t, func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(filepath.Join(live, site, "fullchain.pem"), filepath.Join(live, site, "privkey.pem"))
		return &c, err
	})
	// The names point at this machine's loopback, IPv4 and IPv6.
	for _, n := range names {
		z := l.zones[zoneOf(n)]
		for _, r := range []cfsim.Record{{Name: n, Type: "A", Content: "127.0.0.1", TTL: 60}, {Name: n, Type: "AAAA", Content: "::1", TTL: 60}} {
			if _, err := l.cf.AddRecord(z.ID, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(h.root, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	h.cfg = RenewConfig{
		Directory:     s.DirectoryURL,
		CABundle:      write("ca-bundle.pem", s.CABundle, 0o644),
		Email:         s.Email,
		AccountKey:    write("account.key", acct.Key.Bytes(), 0o600),
		AccountURI:    acct.URI,
		KeyType:       "ec256",
		RenewBefore:   "720h0m0s",
		Resolvers:     s.Resolvers,
		CloudflareURL: s.CloudflareURL,
		Tokens:        map[string]string{},
		LiveRoot:      live,
		StateFile:     filepath.Join(h.root, "state", "state.json"),
		Reload:        "echo reload >> " + h.reloads,
		VerifyPort:    h.nginx.port,
		Certificates:  []RenewCertificate{{Name: site, Names: names, Zones: map[string]string{}}},
	}
	for _, n := range names {
		h.cfg.Certificates[0].Zones[n] = zoneOf(n)
	}
	for z, tok := range l.tokens {
		h.cfg.Tokens[z] = write(z+".token", []byte(tok.Value+"\n"), 0o600)
	}
	return h
}

func (h *hostDir) run(t *testing.T, opts RenewOptions) (State, string, error) {
	t.Helper()
	var out bytes.Buffer
	opts.Out = &out
	opts.Log = testLogger(t)
	st, err := Renew(context.Background(), h.cfg, opts)
	t.Logf("renew output:\n%s", out.String())
	return st, out.String(), err
}

func (h *hostDir) live(t *testing.T) Info {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.cfg.LiveRoot, h.cfg.Certificates[0].Name, "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := Inspect(b)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func (h *hostDir) reloadCount() int {
	b, _ := os.ReadFile(h.reloads)
	return strings.Count(string(b), "reload")
}

// noSecrets fails when any of the lab's token values or a private key
// shows up in text.
func noSecrets(t *testing.T, l *lab, what, text string) {
	t.Helper()
	for z, tok := range l.tokens {
		if strings.Contains(text, tok.Value) {
			t.Errorf("%s shows the token of %s", what, z)
		}
	}
	if strings.Contains(text, "PRIVATE KEY") {
		t.Errorf("%s shows a private key", what)
	}
}

// TestRenewOnTheHostObtainsRenewsWhenDueAndKeepsServingOnFailure walks a
// host's renewal runs: first issuance, nothing to do, a forced renewal
// (window larger than the lifetime) that changes the served serial, then a
// broken token that fails visibly while the old certificate keeps being
// served, and a failing reload that puts the previous files back.
func TestRenewOnTheHostObtainsRenewsWhenDueAndKeepsServingOnFailure(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	s := l.settings(t)
	ctx := context.Background()
	acct, err := OpenAccount(ctx, t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"chat." + zoneBE, "lghs-chat-prod." + zoneSpace}
	h := newHostDir(t, l, s, acct, names)

	// 1. Nothing deployed: obtain, write, reload, check the served serial.
	st, out, err := h.run(t, RenewOptions{})
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	noSecrets(t, l, "renew output", out)
	first := h.live(t)
	if !st.OK || st.Certificates[0].Result != ResultRenewed || st.Certificates[0].Cert.Serial != first.Serial || h.reloadCount() != 1 {
		t.Fatalf("first run: state %+v, reloads %d", st, h.reloadCount())
	}
	if got := len(st.Certificates[0].Served); got != 4 {
		t.Errorf("served checks %d, want 2 names × IPv4/IPv6: %v", got, st.Certificates[0].Served)
	}
	keyFile := filepath.Join(h.cfg.LiveRoot, names[0], "privkey.pem")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("privkey.pem mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
	stateB, _ := os.ReadFile(h.cfg.StateFile)
	noSecrets(t, l, "state file", string(stateB))

	// 2. Not due: no order, no reload, still checked.
	orders := l.pebbleOrders(t)
	if orders == 0 {
		t.Fatal("the CA's log shows no order: the order count proves nothing")
	}
	st, _, err = h.run(t, RenewOptions{})
	if err != nil || st.Certificates[0].Result != ResultValid || h.reloadCount() != 1 || l.pebbleOrders(t) != orders {
		t.Fatalf("second run: %v, state %+v, reloads %d", err, st, h.reloadCount())
	}

	// 3. A window larger than the lifetime forces a renewal.
	h.cfg.RenewBefore = "2400h"
	st, _, err = h.run(t, RenewOptions{})
	if err != nil {
		t.Fatalf("forced run: %v", err)
	}
	second := h.live(t)
	if second.Serial == first.Serial || st.Certificates[0].Result != ResultRenewed || h.reloadCount() != 2 {
		t.Fatalf("forced run: serial %s → %s, state %+v", first.Serial, second.Serial, st)
	}
	for _, sv := range st.Certificates[0].Served {
		if !strings.Contains(sv, "serial "+second.Serial) {
			t.Errorf("served after renewal: %s; want serial %s", sv, second.Serial)
		}
	}
	if log, _ := os.ReadFile(l.pebble.LogFile); !strings.Contains(string(log), "is a replacement of") {
		t.Error("the renewal order did not name the certificate it replaces (ARI)")
	}

	// 4. A broken token: the run fails, the certificate stays, and it is
	// still what is served.
	badToken := "0123456789abcdef0123456789abcdef01234567"
	if err := os.WriteFile(h.cfg.Tokens[zoneBE], []byte(badToken), 0o600); err != nil {
		t.Fatal(err)
	}
	st, out, err = h.run(t, RenewOptions{})
	if !errors.Is(err, ErrRenewFailed) {
		t.Fatalf("broken token: err %v, want ErrRenewFailed", err)
	}
	if strings.Contains(out, badToken) {
		t.Error("output shows the token")
	}
	if got := h.live(t); got.Serial != second.Serial || h.reloadCount() != 2 {
		t.Errorf("after a failed renewal the live certificate is %s (want %s kept), reloads %d", got.Serial, second.Serial, h.reloadCount())
	}
	cs := st.Certificates[0]
	if cs.Result != ResultFailed || !strings.Contains(cs.Detail, "cloudflare token for "+zoneBE) || !strings.Contains(out, "FAILED") {
		t.Errorf("broken token: state %+v", cs)
	}
	for _, sv := range cs.Served {
		if !strings.Contains(sv, "serial "+second.Serial) {
			t.Errorf("served after the failure: %s; want the old serial %s", sv, second.Serial)
		}
	}
	var saved State
	b, _ := os.ReadFile(h.cfg.StateFile)
	if err := json.Unmarshal(b, &saved); err != nil || saved.OK || saved.Certificates[0].LastRenewed.IsZero() {
		t.Errorf("state file after failure: %s", b)
	}

	// 5. A token file others can read is refused before any use.
	os.WriteFile(h.cfg.Tokens[zoneBE], []byte(l.tokens[zoneBE].Value), 0o644)
	os.Chmod(h.cfg.Tokens[zoneBE], 0o644)
	_, out, err = h.run(t, RenewOptions{})
	if !errors.Is(err, ErrRenewFailed) || !strings.Contains(out, "chmod 600") {
		t.Errorf("world-readable token: %v\n%s", err, out)
	}
	os.Chmod(h.cfg.Tokens[zoneBE], 0o600)

	// 6. A reload that fails puts the previous files back.
	h.cfg.Reload = "echo 'nginx: [emerg] broken' >&2; exit 1"
	st, out, err = h.run(t, RenewOptions{})
	if !errors.Is(err, ErrRenewFailed) || !strings.Contains(out, "restoring the previous certificates") {
		t.Fatalf("failed reload: %v\n%s", err, out)
	}
	if got := h.live(t); got.Serial != second.Serial {
		t.Errorf("after a failed reload the live certificate is %s, want %s restored", got.Serial, second.Serial)
	}
}

// pebbleOrders counts the orders the CA has seen (from its log).
func (l *lab) pebbleOrders(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(l.pebble.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "POST /order-plz")
}

func readPebbleLog(l *lab) (string, error) {
	b, err := os.ReadFile(l.pebble.LogFile)
	return string(b), err
}
