package certs

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
	"github.com/lghs/lghsctl/inventory"
)

// skipOrFail skips a test whose prerequisite is missing, except under
// CI=true where it fails.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing (CI=true): %s", reason)
	}
	t.Skip(reason)
}

func pebbleBinary(t *testing.T) string {
	t.Helper()
	var dirs []string
	if c, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, acmelab.CacheDir(c))
	}
	dirs = append(dirs, os.Getenv("GOBIN"))
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	} else if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	p, err := acmelab.FindBinary(dirs...)
	if err != nil {
		c, _ := os.UserCacheDir()
		skipOrFail(t, fmt.Sprintf("%v; build it with: %s", err, acmelab.InstallCommand(c)))
	}
	return p
}

// lab is the certificate path of the lab, in this process: the Cloudflare
// stand-in with two zones, the lab DNS serving them, and Pebble validating
// DNS-01 against that DNS.
type lab struct {
	cf     *cfsim.Server
	api    *cfsim.HTTPServer
	dns    *labdns.Server
	pebble *acmelab.Pebble
	zones  map[string]cfsim.Zone
	// tokens: one per zone (Zone:Read + DNS:Edit on that zone only).
	tokens map[string]cfsim.Token
	// broad reaches every zone.
	broad cfsim.Token
}

const (
	zoneBE    = "lghs-be.test"
	zoneSpace = "lghs-space.test"
)

func startLab(t *testing.T, pcfg acmelab.Config) *lab {
	t.Helper()
	if testing.Short() {
		t.Skip("lab: Pebble, DNS-01, lego (skipped with -short)")
	}
	return startLabOn(t, netip.MustParseAddr("127.0.0.1"), pcfg)
}

// startLabOn starts the stack listening on ip (the box's lab address when
// lab hosts must reach it).
func startLabOn(t *testing.T, ip netip.Addr, pcfg acmelab.Config) *lab {
	t.Helper()
	pcfg.Binary = pebbleBinary(t)
	pcfg.ListenIP = ip
	on := net.JoinHostPort(ip.String(), "0")
	ctx := context.Background()
	l := &lab{zones: map[string]cfsim.Zone{}, tokens: map[string]cfsim.Token{}}
	var err error
	if l.cf, err = cfsim.New(cfsim.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{zoneBE, zoneSpace} {
		z, err := l.cf.AddZone(cfsim.Zone{Name: name, NameServers: []string{"ns1." + name, "ns2." + name}})
		if err != nil {
			t.Fatal(err)
		}
		l.zones[name] = z
		tok, err := l.cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: []string{z.ID}})
		if err != nil {
			t.Fatal(err)
		}
		l.tokens[name] = tok
	}
	if l.broad, err = l.cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}}); err != nil {
		t.Fatal(err)
	}
	if l.api, err = l.cf.Start(ctx, on); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.api.Close() })
	if l.dns, err = labdns.Start(ctx, labdns.Config{Addr: on, Source: cfdns.Source(l.cf)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dns.Close() })
	pcfg.DNSServer = l.dns.Addr()
	pcfg.Dir = t.TempDir()
	if l.pebble, err = acmelab.Start(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pid := l.pebble.PID()
		if err := l.pebble.Stop(); err != nil {
			t.Errorf("stop pebble: %v", err)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("pebble pid %d left running", pid)
		}
	})
	return l
}

// settings points certs at the lab, as the CLI does from the environment.
func (l *lab) settings(t *testing.T) Settings {
	t.Helper()
	bundle, err := os.ReadFile(l.pebble.BundleFile)
	if err != nil {
		t.Fatal(err)
	}
	return Settings{
		DirectoryURL:       l.pebble.DirectoryURL,
		CABundle:           bundle,
		Email:              "infra@lghs-be.test",
		Resolvers:          []string{l.dns.Addr()},
		CloudflareURL:      l.api.BaseURL,
		PropagationTimeout: 30 * time.Second,
		PollingInterval:    200 * time.Millisecond,
		Logger:             testLogger(t),
	}
}

func (l *lab) secrets() map[string]inventory.Secret {
	m := map[string]inventory.Secret{}
	for z, tok := range l.tokens {
		m[z] = inventory.Secret(tok.Value)
	}
	return m
}

func zoneOf(name string) string {
	for _, z := range []string{zoneBE, zoneSpace} {
		if name == z || len(name) > len(z) && name[len(name)-len(z)-1:] == "."+z {
			return z
		}
	}
	return ""
}

// testLogger is a debug logger whose lines are shown, the last ones
// only, when the test fails: a failure's own message stays in view.
func testLogger(t *testing.T) *slog.Logger {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of the debug log:\n%s", lastLines(buf.String(), 40))
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// freePort returns a TCP port free on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
