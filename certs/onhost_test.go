package certs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/hostsetup"
	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/templates/nginx"
)

// TestOnARealHostCertificatesDeployServeRenewAndFailVisibly is issue #7's
// acceptance on a lab host (Debian, systemd, nginx), with Pebble, the
// Cloudflare stand-in and the lab DNS on the box:
//   - the phase obtains and deploys the certificate, publishes CAA and
//     installs the renewal; nginx then serves it: an HTTPS request to each
//     name, resolved through the lab DNS, verifies against Pebble's roots
//     and reaches the application, over IPv4 and IPv6;
//   - a second run changes nothing and orders nothing;
//   - the host's renewal unit, with a window larger than the lifetime,
//     obtains a new certificate, reloads nginx, and the served serial
//     changes;
//   - with a broken token the unit fails visibly (systemctl, journal) and
//     nginx keeps serving the previous certificate;
//   - no token or key is printed or logged, or left readable by others.
func TestOnARealHostCertificatesDeployServeRenewAndFailVisibly(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	box := lb.BoxAddr4()
	l := startLabOn(t, box, acmelab.Config{})
	bin := buildStaticLghsctl(t)
	signer, authKey := labtest.Key(t)
	h := labtest.Host(t, lb, labhost.Spec{Name: "chat", AuthorizedKeys: []string{authKey}})
	c := labtest.Dial(t, h, signer) // the test's own look at the host
	host := dialRemote(t, h, c)     // what the phase uses: the project's SSH transport

	site, alias := "chat."+zoneBE, "lghs-chat-prod."+zoneSpace
	for _, n := range []string{site, alias} {
		z := l.zones[zoneOf(n)]
		for _, r := range []cfsim.Record{{Name: n, Type: "A", Content: h.Addr4().String(), TTL: 60}, {Name: n, Type: "AAAA", Content: h.Addr6().String(), TTL: 60}} {
			if _, err := l.cf.AddRecord(z.ID, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What host setup does before: nginx, and the application behind it.
	t0 := time.Now()
	labtest.SSH(t, c, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null")
	labtest.SSH(t, c, "systemd-run --unit=lab-app --property=Restart=always python3 -m http.server --bind ::1 --directory /usr/share/doc 3000")
	t.Logf("nginx installed and app started in %v", time.Since(t0).Round(time.Second))

	r := newPhaseRig(t, l)
	r.cfg.Binary = func() ([]byte, error) { return os.ReadFile(bin) }
	runPhase := func(check bool, extra ...task.Step) (string, report.HostRecap, error) {
		t.Helper()
		p, err := NewPhase(r.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		txt := report.NewText(&out)
		txt.Verbose = true
		tally := report.NewTally(txt)
		tg := p.Target(func(context.Context) error { p.Attach(host); return nil }, nil)
		tg.Steps = append(tg.Steps, extra...)
		err = (&task.Runner{Check: check, Reporter: tally, Log: testLogger(t)}).Run(ctx, []task.Target{tg})
		t.Logf("phase (check=%v):\n%s", check, out.String())
		return out.String(), tally.Recaps()[0], err
	}

	// 1. The phase, then nginx configured as host setup would (the live
	// files exist, so the site uses them), then the HTTPS check.
	start := time.Now()
	out, recap, err := runPhase(false)
	if err != nil || recap.Failed != 0 {
		t.Fatalf("phase: %v %+v", err, recap)
	}
	configureNginx(t, c, host, r.inv, site, alias)
	p, _ := NewPhase(r.cfg)
	verify := p.Verify()
	res, err := verify.Run(ctx, task.Env{Log: testLogger(t)})
	if err != nil {
		t.Fatalf("HTTPS check: %v", err)
	}
	t.Logf("phase start → valid HTTPS answer on every name and address: %v (%s)", time.Since(start).Round(time.Millisecond), res.Message)
	for _, want := range []string{site + " " + h.Addr4().String() + " HTTP 200", site + " " + h.Addr6().String() + " HTTP 200", alias + " " + h.Addr6().String() + " HTTP 200"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("HTTPS check lacks %q: %s", want, res.Message)
		}
	}
	noSecrets(t, l, "phase output", out)
	first := servedSerial(t, l, r, site)

	// 2. Again: nothing to do, no new order, no new account.
	orders := l.pebbleOrders(t)
	if _, recap, err = runPhase(false, verify); err != nil || recap.Changed != 0 {
		t.Errorf("second run: %v %+v", err, recap)
	}
	if l.pebbleOrders(t) != orders || l.pebbleAccounts(t) != 1 {
		t.Errorf("second run ordered %d, accounts %d", l.pebbleOrders(t)-orders, l.pebbleAccounts(t))
	}
	if got := strings.TrimSpace(labtest.SSH(t, c, "systemctl is-enabled "+RenewUnit+".timer; systemctl is-active "+RenewUnit+".timer")); got != "enabled\nactive" {
		t.Errorf("timer: %q", got)
	}
	acct, _ := PeekAccount(r.state, r.cfg.Settings)
	for _, n := range []string{site, alias} {
		if got := lookupCAA(t, l.dns.Addr(), n); len(got) != 2 || !strings.Contains(got[0], "accounturi="+acct.URI) {
			t.Errorf("CAA at %s through the lab DNS: %q", n, got)
		}
	}

	// 3. The host's own unit renews when the window exceeds the lifetime.
	labtest.SSH(t, c, `sed -i 's/"renew_before": "720h0m0s"/"renew_before": "2400h0m0s"/' `+HostRenewConfig)
	if out, err := labtest.SSHOutput(c, "systemctl start "+RenewUnit+".service"); err != nil {
		t.Fatalf("renewal unit failed: %v %s\n%s", err, out, journal(t, c))
	}
	second := servedSerial(t, l, r, site)
	if second == first {
		t.Fatalf("served serial still %s after the host's renewal\n%s", first, journal(t, c))
	}
	t.Logf("the host renewed: served serial %s → %s", first, second)
	status := labtest.SSH(t, c, HostBinary+" certs status --config "+HostRenewConfig)
	if !strings.Contains(status, "serial   "+second) || !strings.Contains(status, "renewal  renewed at") {
		t.Errorf("certs status on the host:\n%s", status)
	}
	st, err := ReadStatus(ctx, host, []string{site}, "", "")
	if err != nil || st[0].Deployed.Serial != second || st[0].Last.Result != ResultRenewed {
		t.Errorf("status over SSH: %v %+v", err, st)
	}

	// 4. A broken token: the unit fails visibly, nginx keeps the
	// certificate.
	labtest.SSH(t, c, "printf 0123456789abcdef0123456789abcdef01234567 > "+HostTokenFile(zoneBE))
	if _, err := labtest.SSHOutput(c, "systemctl start "+RenewUnit+".service"); err == nil {
		t.Fatal("the renewal unit succeeded with a broken token")
	}
	if got := strings.TrimSpace(labtest.SSH(t, c, "systemctl is-failed "+RenewUnit+".service || true")); got != "failed" {
		t.Errorf("unit state %q, want failed", got)
	}
	j := journal(t, c)
	if !strings.Contains(j, "FAILED: cloudflare token for "+zoneBE) {
		t.Errorf("journal does not say what failed:\n%s", j)
	}
	if got := servedSerial(t, l, r, site); got != second {
		t.Errorf("after the failed renewal nginx serves %s, want %s", got, second)
	}

	// 5. Secrets: never in the journal, only in 0600 files.
	noSecrets(t, l, "journal", j)
	for z, tok := range l.tokens {
		files := strings.Fields(labtest.SSH(t, c, "grep -rlF -- '"+tok.Value+"' /etc /var/lib /root /tmp /usr/local/lib/lghsctl 2>/dev/null || true"))
		if z == zoneBE && len(files) != 0 {
			t.Errorf("the replaced %s token is still on the host in %v", z, files)
		}
		for _, f := range files {
			if mode := strings.TrimSpace(labtest.SSH(t, c, "stat -c %a "+f)); mode != "600" {
				t.Errorf("%s holds the %s token with mode %s", f, z, mode)
			}
		}
	}
	for _, f := range []string{HostAccountKey, "/etc/letsencrypt/live/" + site + "/privkey.pem"} {
		if mode := strings.TrimSpace(labtest.SSH(t, c, "stat -c '%a %U' "+f)); mode != "600 root" {
			t.Errorf("%s: %s", f, mode)
		}
	}
	filepath.WalkDir(r.state, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".key") || strings.HasSuffix(p, "privkey.pem")) {
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
				t.Errorf("operator's %s has mode %o", p, fi.Mode().Perm())
			}
		}
		return nil
	})
}

// servedSerial is the serial the host serves for name (checked from the
// box through the lab DNS, chain verified against Pebble's roots).
func servedSerial(t *testing.T, l *lab, r *phaseRig, name string) string {
	t.Helper()
	var serial string
	for _, sv := range CheckServed(context.Background(), Probe{Names: []string{name}, Roots: r.cfg.Settings.Roots(), Resolvers: []string{l.dns.Addr()}}) {
		if sv.Err != nil {
			t.Fatalf("served: %s", sv)
		}
		if serial != "" && sv.Cert.Serial != serial {
			t.Errorf("IPv4 and IPv6 serve different certificates: %s, %s", serial, sv.Cert.Serial)
		}
		serial = sv.Cert.Serial
	}
	return serial
}

func journal(t *testing.T, c *ssh.Client) string {
	out, _ := labtest.SSHOutput(c, "journalctl -u "+RenewUnit+".service --no-pager -o cat")
	return out
}

// configureNginx writes the site as host setup renders it, with the
// certbot paths (the live files exist), and reloads nginx.
func configureNginx(t *testing.T, c *ssh.Client, h hostsetup.Host, inv *inventory.File, site string, aliases ...string) {
	t.Helper()
	common, err := nginx.RenderCommon(inv.Name)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := nginx.RenderSite(nginx.Site{Inventory: inv.Name, Name: site, Aliases: aliases, Upstream: "[::1]:3000",
		Websockets: true, ClientMaxBodySize: "1M", HSTS: true,
		CertFile: LiveRoot + "/" + site + "/fullchain.pem", KeyFile: LiveRoot + "/" + site + "/privkey.pem"},
		nginx.Version{Major: 1, Minor: 26, Patch: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for p, b := range map[string][]byte{"/etc/nginx/conf.d/lghsctl.conf": common, "/etc/nginx/sites-available/" + site + ".conf": conf} {
		if err := h.WriteFile(ctx, p, b, 0o644, "root", "root"); err != nil {
			t.Fatal(err)
		}
	}
	labtest.SSH(t, c, "ln -sfn /etc/nginx/sites-available/"+site+".conf /etc/nginx/sites-enabled/"+site+".conf && rm -f /etc/nginx/sites-enabled/default && nginx -t -q && systemctl reload nginx")
}

// dialRemote connects to a lab host with internal/remote as root, its
// host key pinned from the lab's report.
func dialRemote(t *testing.T, h *labhost.Host, admin *ssh.Client) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), remoteConfig(t, h, admin))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// remoteConfig authorizes a new key on h (through admin) and returns the
// internal/remote configuration logging in with it.
func remoteConfig(t *testing.T, h *labhost.Host, admin *ssh.Client) remote.Config {
	t.Helper()
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id")
	os.WriteFile(key, pem.EncodeToMemory(blk), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	add := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	labtest.SSH(t, admin, "echo '"+add+"' >> /root/.ssh/authorized_keys")
	return remote.Config{Name: h.Name(), Address: h.Addr4().String(), IdentityFiles: []string{key},
		KnownHostsFile: filepath.Join(dir, "known_hosts"), ExpectedKeys: h.HostKeys(), Log: testLogger(t)}
}

// buildStaticLghsctl builds the binary the host runs, as the Makefile
// does (CGO_ENABLED=0: static).
func buildStaticLghsctl(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "lghsctl")
	root, _ := filepath.Abs("..")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", out, "./cmd/lghsctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	t0 := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build lghsctl: %v\n%s", err, b)
	}
	t.Logf("built a static lghsctl in %v", time.Since(t0).Round(time.Second))
	return out
}
