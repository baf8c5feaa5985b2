package certs

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/netip"

	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

const phaseInventory = `
version: 1
name: lghs-lab
dns:
  zones:
    - {name: lghs-space.test}
    - {name: lghs-be.test}
acme: {email: infra@lghs-be.test, directory: "https://pebble.lab.test/dir", caa: true, caa_identity: pebble.lab.test}
hosts:
  - name: lghs-chat
    provider: none
    ssh: {address: 192.0.2.10}
    sites:
      - name: chat.lghs-be.test
        aliases: [lghs-chat-prod.lghs-space.test]
        upstream: "[::1]:3000"
      - name: static.lghs-be.test
        upstream: "[::1]:3001"
        tls: self-signed
`

type phaseRig struct {
	l     *lab
	inv   *inventory.File
	state string
	cfg   PhaseConfig
	bin   []byte
	// log is the debug log of the runs (the runner's and lego's), kept
	// in logBuf to be scanned for secrets.
	log    *slog.Logger
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newPhaseRig(t *testing.T, l *lab) *phaseRig {
	t.Helper()
	inv, err := inventory.Parse("inventory.yaml", []byte(phaseInventory))
	if err != nil {
		t.Fatal(err)
	}
	r := &phaseRig{l: l, inv: inv, state: t.TempDir(), bin: fakeELF(elf.EM_X86_64, false), logBuf: &syncBuffer{}}
	// The debug log is kept, not streamed: a failing test shows its last
	// lines after the failure's own message, which stays readable.
	r.log = slog.New(slog.NewTextHandler(r.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the debug log:\n%s", lastLines(r.logBuf.String(), 40))
		}
	})
	settings := l.settings(t)
	settings.Logger = r.log
	r.cfg = PhaseConfig{
		Inventory:   inv,
		Host:        &inv.Hosts[0],
		Settings:    settings,
		StateDir:    r.state,
		Tokens:      l.secrets(),
		CAA:         &CloudflareCAA{BaseURL: l.api.BaseURL, Token: func(z string) inventory.Secret { return l.secrets()[z] }, ZoneOf: inv.ZoneOf, Comment: CAAComment(inv.Name)},
		CAAIdentity: "pebble.lab.test",
		Binary:      func() ([]byte, error) { return r.bin, nil },
	}
	return r
}

// run runs the phase on h like `up` would (its own target) and returns the
// report's text and the recap of the host.
func (r *phaseRig) run(t *testing.T, h *fakeHost, check bool) (string, report.HostRecap, error) {
	t.Helper()
	p, err := NewPhase(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	txt := report.NewText(&out)
	txt.Verbose, txt.Diff = true, true
	tally := report.NewTally(txt)
	runner := task.Runner{Check: check, Diff: true, Reporter: tally, Log: r.log}
	err = runner.Run(context.Background(), []task.Target{p.Target(func(context.Context) error { p.Attach(h); return nil }, nil)})
	t.Logf("check=%v: err %v:\n%s", check, err, withoutDiffs(out.String()))
	noSecrets(t, r.l, "debug log (lego's lines included)", r.logBuf.String())
	recaps := tally.Recaps()
	if len(recaps) != 1 {
		t.Fatalf("recaps %+v", recaps)
	}
	return out.String(), recaps[0], err
}

func newLabFakeHost() *fakeHost {
	h := newFakeHost()
	h.dirs["/etc/systemd"] = 0o755
	h.dirs["/etc/systemd/system"] = 0o755
	return h
}

// TestPhaseDryRunApplyDryRun: check mode changes nothing and contacts no
// CA; apply obtains one certificate per ACME site (names in two zones),
// deploys it in certbot's layout, publishes CAA and installs the renewal;
// then apply and check again change nothing and order nothing.
func TestPhaseDryRunApplyDryRun(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	r := newPhaseRig(t, l)
	h := newLabFakeHost()

	out, recap, err := r.run(t, h, true)
	if err != nil || recap.Changed != 4 || len(h.writes) != 0 || len(h.commands) != 0 {
		t.Fatalf("check on a fresh host: %v, recap %+v, writes %v, commands %v", err, recap, h.writes, h.commands)
	}
	if l.pebbleOrders(t) != 0 || l.pebbleAccounts(t) != 0 {
		t.Error("check mode talked to the CA")
	}
	noSecrets(t, l, "check output", out)

	out, recap, err = r.run(t, h, false)
	if err != nil || recap.Changed != 3 || recap.Skipped != 1 || recap.Failed != 0 {
		t.Fatalf("apply: %v, recap %+v", err, recap)
	}
	noSecrets(t, l, "apply output", out)
	if !strings.Contains(r.logBuf.String(), "lego: ") {
		t.Error("the debug log has no lego line: the secrets scan of the log proves nothing")
	}
	chain, ok := h.file("/etc/letsencrypt/live/chat.lghs-be.test/fullchain.pem")
	key, ok2 := h.file("/etc/letsencrypt/live/chat.lghs-be.test/privkey.pem")
	if !ok || !ok2 || key.mode != 0o600 || chain.mode != 0o644 {
		t.Fatalf("live files: chain %v %o, key %v %o", ok, chain.mode, ok2, key.mode)
	}
	if _, err := l.pebble.VerifyChain(chain.content, "chat.lghs-be.test", "lghs-chat-prod.lghs-space.test"); err != nil {
		t.Error(err)
	}
	if _, ok := h.file("/etc/letsencrypt/live/static.lghs-be.test/fullchain.pem"); ok {
		t.Error("a self-signed site got an ACME certificate")
	}
	for p, mode := range map[string]uint32{HostAccountKey: 0o600, HostTokenFile(zoneBE): 0o600, HostTokenFile(zoneSpace): 0o600,
		HostRenewConfig: 0o644, HostCABundle: 0o644, HostBinary: 0o755, unitPath(".service"): 0o644, unitPath(".timer"): 0o644} {
		f, ok := h.file(p)
		if !ok || uint32(f.mode) != mode {
			t.Errorf("%s: present %v mode %o, want %o", p, ok, f.mode, mode)
		}
	}
	if h.dirs[HostConfigDir] != 0o700 || h.dirs[HostTokenDir] != 0o700 {
		t.Errorf("config dir %o, token dir %o; want 0700", h.dirs[HostConfigDir], h.dirs[HostTokenDir])
	}
	if u := h.units[RenewUnit+".timer"]; u.Enabled != "enabled" || u.Active != "active" {
		t.Errorf("timer %+v", u)
	}
	rc, _ := h.file(HostRenewConfig)
	var cfg RenewConfig
	if err := json.Unmarshal(rc.content, &cfg); err != nil || cfg.AccountURI == "" || len(cfg.Certificates) != 1 {
		t.Errorf("renew.json: %v %s", err, rc.content)
	}
	noSecrets(t, l, "renew.json", string(rc.content))
	if tok, _ := h.file(HostTokenFile(zoneBE)); strings.TrimSpace(string(tok.content)) != l.tokens[zoneBE].Value {
		t.Error("the host's token file does not hold the zone's token")
	}
	acct, _ := PeekAccount(r.state, r.cfg.Settings)
	for _, n := range []string{"chat.lghs-be.test", "lghs-chat-prod.lghs-space.test"} {
		got := lookupCAA(t, l.dns.Addr(), n)
		if len(got) != 2 || !strings.Contains(got[0], "accounturi="+acct.URI) || !strings.Contains(got[0], "validationmethods=dns-01") {
			t.Errorf("CAA at %s: %q", n, got)
		}
	}
	orders := l.pebbleOrders(t)
	if orders != 1 {
		t.Errorf("orders %d, want 1", orders)
	}

	h.reset()
	_, recap, err = r.run(t, h, false)
	if err != nil || recap.Changed != 0 || len(h.writes) != 0 || len(h.commands) != 0 {
		t.Errorf("second apply: %v, recap %+v, writes %v, commands %v", err, recap, h.writes, h.commands)
	}
	_, recap, err = r.run(t, h, true)
	if err != nil || recap.Changed != 0 {
		t.Errorf("check after apply: %v, recap %+v", err, recap)
	}
	if got := l.pebbleOrders(t); got != orders || l.pebbleAccounts(t) != 1 {
		t.Errorf("orders %d (want %d), accounts %d (want 1)", got, orders, l.pebbleAccounts(t))
	}

	// A new host for the same inventory gets the issued certificate from
	// the operator's cache, without a new order.
	// Its nginx runs: the deployed certificate is served after one reload.
	h2 := newLabFakeHost()
	h2.nginxActive = true
	if _, _, err := r.run(t, h2, false); err != nil {
		t.Fatal(err)
	}
	if h2.reloads != 1 {
		t.Errorf("nginx reloaded %d times on the new host, want 1", h2.reloads)
	}
	c2, _ := h2.file("/etc/letsencrypt/live/chat.lghs-be.test/fullchain.pem")
	if !chainEqual(c2.content, chain.content) || l.pebbleOrders(t) != orders {
		t.Errorf("new host: same chain %v, orders %d", chainEqual(c2.content, chain.content), l.pebbleOrders(t))
	}
}

// TestPhaseRefusesToCopyATokenReachingOtherZones: a token that can edit
// every zone may be used from the operator's machine, never left on a
// server.
func TestPhaseRefusesToCopyATokenReachingOtherZones(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	r := newPhaseRig(t, l)
	r.cfg.CAA = nil
	r.cfg.Tokens[zoneBE] = inventory.Secret(l.broad.Value)
	h := newLabFakeHost()
	out, recap, err := r.run(t, h, false)
	if err == nil || recap.Failed != 1 {
		t.Fatalf("err %v recap %+v", err, recap)
	}
	if !strings.Contains(out, "the DNS-01 token of lghs-be.test reaches 2 zones (lghs-be.test, lghs-space.test)") {
		t.Errorf("output does not say why:\n%s", out)
	}
	if strings.Contains(out, l.broad.Value) {
		t.Error("output shows the token")
	}
	if _, ok := h.file(HostTokenFile(zoneBE)); ok {
		t.Error("the broad token was copied")
	}
}

func (l *lab) pebbleAccounts(t *testing.T) int {
	t.Helper()
	b, _ := readPebbleLog(l)
	return strings.Count(b, "POST /sign-me-up")
}

// TestPhasePinsANewAccountInCAABeforeReissuing: the operator's state is
// lost (a new ACME account) and the certificate is due; CAA records still
// pin the old account, so the CA would refuse the order: the certificate
// step publishes the new account's records before ordering.
func TestPhasePinsANewAccountInCAABeforeReissuing(t *testing.T) {
	l := startLab(t, acmelab.Config{})
	r := newPhaseRig(t, l)
	h := newLabFakeHost()
	if _, _, err := r.run(t, h, false); err != nil {
		t.Fatal(err)
	}
	old, err := PeekAccount(r.state, r.cfg.Settings)
	if old == nil {
		t.Fatalf("no account stored after the first run: %v", err)
	}

	r.state = t.TempDir()
	r.cfg.StateDir = r.state
	r.cfg.Settings.RenewBefore = 100 * 24 * time.Hour
	out, _, err := r.run(t, h, false)
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := PeekAccount(r.state, r.cfg.Settings)
	if acct == nil || acct.URI == old.URI {
		t.Fatalf("no new account: %v", acct)
	}
	if !strings.Contains(out, "CAA records updated first: remove CAA chat.lghs-be.test 0 issue \"pebble.lab.test; accounturi="+old.URI) {
		t.Errorf("the certificate step did not pin the new account first:\n%s", out)
	}
	for _, n := range []string{"chat.lghs-be.test", "lghs-chat-prod.lghs-space.test"} {
		got := strings.Join(lookupCAA(t, l.dns.Addr(), n), "|")
		if !strings.Contains(got, "accounturi="+acct.URI) || strings.Contains(got, old.URI) {
			t.Errorf("CAA at %s: %s", n, got)
		}
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// withoutDiffs keeps a report's task lines (the ones a failure is about),
// not the diffs under them.
func withoutDiffs(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "@") && !strings.HasPrefix(l, "(") && !strings.HasPrefix(l, "add ") && !strings.HasPrefix(l, "remove ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestPublicNamesAwaitingCutoverAreCheckedOnTheHost: while the inventory
// migrates to this host, its public names may still point at the old
// server: the HTTPS checks (up's and the on-host renewal's) dial the
// host's own addresses for them, and DNS for the technical names.
func TestPublicNamesAwaitingCutoverAreCheckedOnTheHost(t *testing.T) {
	inv, err := inventory.Parse("inventory.yaml", []byte(phaseInventory))
	if err != nil {
		t.Fatal(err)
	}
	inv.Hosts[0].DNS = []inventory.DNSName{{Name: "lghs-chat-prod." + zoneSpace, Role: "technical"}, {Name: "chat." + zoneBE, Role: "public"}}
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	p := &Phase{cfg: PhaseConfig{Inventory: inv, Host: &inv.Hosts[0], HostAddrs: addrs}}
	names := []string{"chat." + zoneBE, "lghs-chat-prod." + zoneSpace}
	if got := p.pinned(names); got != nil {
		t.Errorf("without a migration: %v", got)
	}
	inv.Migrate = &inventory.Migrate{To: inv.Hosts[0].Name}
	got := p.pinned(names)
	if len(got) != 1 || fmt.Sprint(got["chat."+zoneBE]) != fmt.Sprint(addrs) {
		t.Errorf("pinned %v, want only the public name on %v", got, addrs)
	}
}
