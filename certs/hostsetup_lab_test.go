package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/hostsetup"
	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
)

// TestWithHostSetupNginxSwitchesFromTheSelfSignedCertificate runs the real
// host setup around the phase, in the order up uses: host setup on a fresh
// host (nginx with its temporary self-signed certificate), the certificate
// phase, host setup again (it now finds the certbot files and points nginx
// at them), then the HTTPS check: the site is served with the ACME
// certificate, verified against Pebble's roots, and reaches the app. A
// third round changes nothing.
func TestWithHostSetupNginxSwitchesFromTheSelfSignedCertificate(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	l := startLabOn(t, lb.BoxAddr4(), acmelab.Config{})
	signer, authKey := labtest.Key(t)
	h := labtest.Host(t, lb, labhost.Spec{Name: "chat", AuthorizedKeys: []string{authKey}})
	c := labtest.Dial(t, h, signer)
	rcfg := remoteConfig(t, h, c)
	host, err := remote.Dial(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	site, alias := "chat."+zoneBE, "lghs-chat-prod."+zoneSpace
	for _, n := range []string{site, alias} {
		z := l.zones[zoneOf(n)]
		for _, r := range []cfsim.Record{{Name: n, Type: "A", Content: h.Addr4().String(), TTL: 60}, {Name: n, Type: "AAAA", Content: h.Addr6().String(), TTL: 60}} {
			if _, err := l.cf.AddRecord(z.ID, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	labtest.SSH(t, c, "systemd-run --unit=lab-app --property=Restart=always python3 -m http.server --bind ::1 --directory /usr/share/doc 3000")

	r := newPhaseRig(t, l)
	bin := buildStaticLghsctl(t)
	r.cfg.Binary = func() ([]byte, error) { return os.ReadFile(bin) }
	r.inv.Hosts[0].Sites = r.inv.Hosts[0].Sites[:1] // the ACME site only
	r.inv.Hosts[0].UnattendedUpgrades = new(bool)
	hs := hostsetup.NewRun(hostsetup.Config{
		Inventory: r.inv, Host: &r.inv.Hosts[0],
		// A fresh lab host has no package lists but a recent lists/partial
		// directory, which host setup takes for fresh lists.
		AptMaxAge: time.Nanosecond,
		// A new login, as up checks before keeping an sshd change.
		// sshd restarts its listener on reload: retry a few seconds.
		VerifyLogin: func(ctx context.Context, user string) error {
			var err error
			for range 20 {
				var c2 *remote.Client
				if c2, err = remote.Dial(ctx, rcfg); err == nil {
					_, err = c2.Run(ctx, "true", nil)
					c2.Close()
					return err
				}
				time.Sleep(250 * time.Millisecond)
			}
			return err
		},
	})
	var out bytes.Buffer
	run := func(what string, targets ...task.Target) report.HostRecap {
		t.Helper()
		out.Reset()
		txt := report.NewText(&out)
		txt.Verbose = true
		tally := report.NewTally(txt)
		err := (&task.Runner{Reporter: tally, Log: r.log}).Run(ctx, targets)
		t.Logf("%s:\n%s", what, out.String())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return tally.Recaps()[0]
	}
	attach := func(hh *hostsetup.Run) func(context.Context) error {
		return func(context.Context) error { hh.Attach(host); return nil }
	}
	start := time.Now()
	run("host setup on a fresh host", hs.Target(attach(hs), nil))
	served := CheckServed(ctx, Probe{Names: []string{site}, Roots: r.cfg.Settings.Roots(), Resolvers: []string{l.dns.Addr()}})
	var unknown x509.UnknownAuthorityError
	if len(served) == 0 || !errors.As(served[0].Err, &unknown) {
		t.Fatalf("before the phase nginx should serve the temporary self-signed certificate: %v", served)
	}

	p, err := NewPhase(r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	run("certificate phase", p.Target(func(context.Context) error { p.Attach(host); return nil }, nil))
	hs2 := hostsetup.NewRun(hostsetup.Config{Inventory: r.inv, Host: &r.inv.Hosts[0], VerifyLogin: func(context.Context, string) error { return nil }})
	run("host setup again", hs2.Target(attach(hs2), nil))
	if !strings.Contains(out.String(), "nginx: sites") || !strings.Contains(out.String(), "reloaded nginx") {
		t.Errorf("host setup did not switch nginx to the certbot files:\n%s", out.String())
	}
	res, err := p.Verify().Run(ctx, task.Env{Log: r.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fresh host → host setup, certificate, host setup → valid HTTPS in %v: %s", time.Since(start).Round(time.Millisecond), res.Message)

	// Converged: the three rounds change nothing.
	hs3 := hostsetup.NewRun(hostsetup.Config{Inventory: r.inv, Host: &r.inv.Hosts[0], VerifyLogin: func(context.Context, string) error { return nil }})
	p3, _ := NewPhase(r.cfg)
	if rc := run("again", p3.Target(func(context.Context) error { p3.Attach(host); return nil }, nil)); rc.Changed != 0 {
		t.Errorf("certificate phase again: %+v", rc)
	}
	if rc := run("again", hs3.Target(attach(hs3), nil)); rc.Changed != 0 {
		t.Errorf("host setup again: %+v", rc)
	}
	b, _ := os.ReadFile(l.pebble.LogFile)
	if n := strings.Count(string(b), "POST /order-plz"); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
}
