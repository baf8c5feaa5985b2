package certs

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
	"github.com/lghs/lghsctl/inventory"
)

// dnsLab is cfsim and the lab DNS without Pebble (fast: runs with -short).
type dnsLab struct {
	cf     *cfsim.Server
	api    *cfsim.HTTPServer
	dns    *labdns.Server
	zone   cfsim.Zone
	tokens map[string]cfsim.Token
}

func startDNSLab(t *testing.T) *dnsLab {
	t.Helper()
	ctx := context.Background()
	l := &dnsLab{tokens: map[string]cfsim.Token{}}
	var err error
	if l.cf, err = cfsim.New(cfsim.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{zoneBE, zoneSpace} {
		z, err := l.cf.AddZone(cfsim.Zone{Name: name, NameServers: []string{"ns1." + name}})
		if err != nil {
			t.Fatal(err)
		}
		if name == zoneBE {
			l.zone = z
		}
		tok, err := l.cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: []string{z.ID}})
		if err != nil {
			t.Fatal(err)
		}
		l.tokens[name] = tok
	}
	if l.api, err = l.cf.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.api.Close() })
	if l.dns, err = labdns.Start(ctx, labdns.Config{Addr: "127.0.0.1:0", Source: cfdns.Source(l.cf)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dns.Close() })
	return l
}

func (l *dnsLab) publisher() *CloudflareCAA {
	return &CloudflareCAA{
		BaseURL: l.api.BaseURL,
		Token:   func(z string) inventory.Secret { return inventory.Secret(l.tokens[z].Value) },
		ZoneOf:  zoneOf,
		Comment: CAAComment("lghs-lab"),
	}
}

// lookupCAA asks the lab DNS, as a CA would.
func lookupCAA(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeCAA)
	r, err := dns.Exchange(m, server)
	if err != nil {
		t.Fatalf("CAA lookup %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if c, ok := rr.(*dns.CAA); ok {
			out = append(out, c.Tag+" "+c.Value)
		}
	}
	slices.Sort(out)
	return out
}

func TestCAARecordsPinTheCAAccountAndDNS01(t *testing.T) {
	got := CAARecords("letsencrypt.org", "https://acme-v02.api.letsencrypt.org/acme/acct/123")
	want := []string{
		`0 issue "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123; validationmethods=dns-01"`,
		`0 issuewild ";"`,
	}
	for i, c := range got {
		if c.String() != want[i] {
			t.Errorf("record %d = %s, want %s", i, c, want[i])
		}
	}
}

// TestEnsureCAAPublishesOwnedRecordsIdempotently: check mode changes
// nothing; apply adds both records, visible through the lab DNS; a second
// run changes nothing; a new account URI replaces the owned record and a
// record lghsctl did not make is kept.
func TestEnsureCAAPublishesOwnedRecordsIdempotently(t *testing.T) {
	l := startDNSLab(t)
	p := l.publisher()
	ctx := context.Background()
	name := "chat." + zoneBE
	recs := CAARecords("pebble.lab.test", "https://127.0.0.1:14000/my-account/1")

	changes, err := p.EnsureCAA(ctx, name, recs, true)
	if err != nil || len(changes) != 2 {
		t.Fatalf("check: %v %q", err, changes)
	}
	if got := lookupCAA(t, l.dns.Addr(), name); len(got) != 0 {
		t.Fatalf("check mode published %v", got)
	}
	if changes, err = p.EnsureCAA(ctx, name, recs, false); err != nil || len(changes) != 2 {
		t.Fatalf("apply: %v %q", err, changes)
	}
	want := []string{"issue pebble.lab.test; accounturi=https://127.0.0.1:14000/my-account/1; validationmethods=dns-01", "issuewild ;"}
	if got := lookupCAA(t, l.dns.Addr(), name); !slices.Equal(got, want) {
		t.Errorf("lab DNS answers %q, want %q", got, want)
	}
	if changes, err = p.EnsureCAA(ctx, name, recs, false); err != nil || len(changes) != 0 {
		t.Errorf("second apply: %v %q; want no change", err, changes)
	}

	foreign := cfsim.CAAData{Tag: "iodef", Value: "mailto:security@lghs-be.test"}
	if _, err := l.cf.AddRecord(l.zone.ID, cfsim.Record{Name: name, Type: "CAA", CAA: &foreign, TTL: 1}); err != nil {
		t.Fatal(err)
	}
	recs2 := CAARecords("pebble.lab.test", "https://127.0.0.1:14000/my-account/2")
	changes, err = p.EnsureCAA(ctx, name, recs2, false)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(changes, "\n")
	for _, s := range []string{"remove CAA " + name + ` 0 issue "pebble.lab.test; accounturi=https://127.0.0.1:14000/my-account/1`,
		"add CAA " + name + ` 0 issue "pebble.lab.test; accounturi=https://127.0.0.1:14000/my-account/2`,
		`keep CAA ` + name + ` 0 iodef "mailto:security@lghs-be.test" (not made by lghsctl)`} {
		if !strings.Contains(joined, s) {
			t.Errorf("changes lack %q:\n%s", s, joined)
		}
	}
	got := lookupCAA(t, l.dns.Addr(), name)
	if len(got) != 3 || !slices.Contains(got, "iodef mailto:security@lghs-be.test") || !strings.Contains(strings.Join(got, "|"), "my-account/2") {
		t.Errorf("after account change, lab DNS answers %q", got)
	}
}
