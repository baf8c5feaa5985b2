package acmelab

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/go-acme/lego/v4/registration"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
)

// acmeUser is lego's registration.User.
type acmeUser struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *acmeUser) GetEmail() string                        { return "lab@example.test" }
func (u *acmeUser) GetRegistration() *registration.Resource { return u.reg }
func (u *acmeUser) GetPrivateKey() crypto.PrivateKey        { return u.key }

// labStack is the lab's certificate path: the Cloudflare stand-in, the lab
// DNS serving its zones, and Pebble validating against that DNS.
type labStack struct {
	cf     *cfsim.Server
	api    *cfsim.HTTPServer
	dns    *labdns.Server
	pebble *Pebble
	token  cfsim.Token
	zone   cfsim.Zone

	mu      sync.Mutex
	changes []cfsim.Change
}

func startLabStack(t *testing.T, pcfg Config) *labStack {
	t.Helper()
	ctx := context.Background()
	s := &labStack{}
	var err error
	if s.cf, err = cfsim.New(cfsim.Options{}); err != nil {
		t.Fatal(err)
	}
	if s.zone, err = s.cf.AddZone(cfsim.Zone{Name: "example.test", NameServers: []string{"ns1.example.test", "ns2.example.test"}}); err != nil {
		t.Fatal(err)
	}
	// What lego's docs ask for: Zone:Read and DNS:Edit, on this zone only.
	if s.token, err = s.cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: []string{s.zone.ID}}); err != nil {
		t.Fatal(err)
	}
	s.cf.Subscribe(func(c cfsim.Change) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.changes = append(s.changes, c)
	})
	if s.api, err = s.cf.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.dns, err = labdns.Start(ctx, labdns.Config{Addr: "127.0.0.1:0", Source: cfdns.Source(s.cf)}); err != nil {
		t.Fatal(err)
	}
	pcfg.DNSServer = s.dns.Addr()
	pcfg.Dir = t.TempDir()
	if s.pebble, err = Start(ctx, pcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stopAndCheck(t) })
	return s
}

// stopAndCheck stops everything and checks nothing is left: no Pebble
// process, every port free again.
func (s *labStack) stopAndCheck(t *testing.T) {
	pid := s.pebble.PID()
	addrs := []string{s.api.Addr, s.dns.Addr(), s.pebble.ACMEAddr, s.pebble.ManagementAddr}
	if err := s.pebble.Stop(); err != nil {
		t.Errorf("stop pebble: %v", err)
	}
	if err := s.dns.Close(); err != nil {
		t.Errorf("stop dns: %v", err)
	}
	if err := s.api.Close(); err != nil {
		t.Errorf("stop cloudflare stand-in: %v", err)
	}
	if !processGone(pid) {
		t.Errorf("pebble pid %d left running", pid)
	}
	for _, a := range addrs {
		if !portFree(a) {
			t.Errorf("tcp %s still listening", a)
		}
	}
	if pc, err := net.ListenPacket("udp", s.dns.Addr()); err != nil {
		t.Errorf("udp %s still bound: %v", s.dns.Addr(), err)
	} else {
		pc.Close()
	}
}

// legoClient builds lego exactly as production would, with lab settings
// passed explicitly: the directory URL and an HTTP client trusting the
// lab's ACME TLS CA; the real Cloudflare provider pointed at the stand-in;
// propagation checked against the lab DNS.
func (s *labStack) legoClient(t *testing.T) *lego.Client {
	t.Helper()
	legolog.Logger = testLogger{t}
	t.Cleanup(func() { legolog.Logger = discardLogger{} })
	key, err := certcrypto.GeneratePrivateKey(certcrypto.EC256)
	if err != nil {
		t.Fatal(err)
	}
	u := &acmeUser{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = s.pebble.DirectoryURL
	cfg.HTTPClient = s.pebble.HTTPClient()
	cfg.Certificate.KeyType = certcrypto.EC256
	client, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc := cloudflare.NewDefaultConfig()
	pc.AuthToken = s.token.Value
	pc.BaseURL = s.api.BaseURL
	pc.PropagationTimeout = 30 * time.Second
	pc.PollingInterval = 200 * time.Millisecond
	pc.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	prov, err := cloudflare.NewDNSProviderConfig(pc)
	if err != nil {
		t.Fatal(err)
	}
	// lego's DNS options are package globals: tests using them do not run
	// in parallel.
	if err := client.Challenge.SetDNS01Provider(prov,
		dns01.AddRecursiveNameservers([]string{s.dns.Addr()}),
		dns01.RecursiveNSsPropagationRequirement(), // the value must be served by the lab DNS
		dns01.DisableAuthoritativeNssPropagationRequirement(),
		dns01.AddDNSTimeout(2*time.Second),
	); err != nil {
		t.Fatal(err)
	}
	reg, err := client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatal(err)
	}
	u.reg = reg
	return client
}

type testLogger struct{ t *testing.T }

func (l testLogger) Fatal(args ...any)                 { l.t.Helper(); l.t.Fatal(args...) }
func (l testLogger) Fatalln(args ...any)               { l.t.Helper(); l.t.Fatal(args...) }
func (l testLogger) Fatalf(format string, args ...any) { l.t.Helper(); l.t.Fatalf(format, args...) }
func (l testLogger) Print(args ...any)                 { l.t.Log(args...) }
func (l testLogger) Println(args ...any)               { l.t.Log(args...) }
func (l testLogger) Printf(format string, args ...any) { l.t.Logf(format, args...) }

type discardLogger struct{}

func (discardLogger) Fatal(args ...any)     {}
func (discardLogger) Fatalln(args ...any)   {}
func (discardLogger) Fatalf(string, ...any) {}
func (discardLogger) Print(args ...any)     {}
func (discardLogger) Println(args ...any)   {}
func (discardLogger) Printf(string, ...any) {}

func (s *labStack) txtChanges() (created, deleted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.changes {
		switch {
		case c.Kind == cfsim.RecordCreated && c.Record.Type == "TXT":
			created++
		case c.Kind == cfsim.RecordDeleted && c.Previous.Type == "TXT":
			deleted++
		}
	}
	return created, deleted
}

func TestLegoObtainsACertificateThroughTheLab(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Pebble, DNS-01, lego")
	}
	bin := pebbleBinary(t)
	s := startLabStack(t, Config{Binary: bin})
	client := s.legoClient(t)
	names := []string{"chat.example.test", "www.example.test"}

	start := time.Now()
	res, err := client.Certificate.Obtain(certificate.ObtainRequest{Domains: names, Bundle: true})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("obtain: %v", err)
	}
	t.Logf("certificate for %v obtained in %v", names, took.Round(time.Millisecond))

	leaf, err := s.pebble.VerifyChain(res.Certificate, names...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("certificate key is %T, want ECDSA", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 89*24*time.Hour || life > 90*24*time.Hour {
		t.Errorf("lifetime %v, want the default profile's 90 days", life)
	}

	// The DNS-01 records went through the stand-in's API and are gone.
	created, deleted := s.txtChanges()
	if created != 2 || deleted != 2 {
		t.Errorf("TXT records created %d, deleted %d; want 2 and 2", created, deleted)
	}
	recs, err := s.cf.Records(s.zone.ID)
	if err != nil || len(recs) != 0 {
		t.Errorf("records left in the zone after CleanUp: %+v %v", recs, err)
	}
	var calls []string
	for _, r := range s.cf.Requests() {
		calls = append(calls, r.Method+" "+strings.ReplaceAll(r.Path, s.zone.ID, "{zone}"))
	}
	joined := strings.Join(calls, "\n")
	if strings.Count(joined, "POST /zones/{zone}/dns_records") != 2 || strings.Count(joined, "DELETE /zones/{zone}/dns_records/") != 2 ||
		!strings.Contains(joined, "GET /zones") {
		t.Errorf("cloudflare calls:\n%s", joined)
	}
	if st := s.dns.Stats(); st.TCPQueries == 0 || st.UDPQueries == 0 {
		t.Errorf("dns stats %+v: want UDP (lego) and TCP (Pebble's validation) queries", st)
	}
}

func TestShortLivedCertificatesRenewThroughDNS01Again(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: Pebble, DNS-01, lego")
	}
	bin := pebbleBinary(t)
	s := startLabStack(t, Config{Binary: bin, Profiles: ShortLivedProfiles(5 * time.Minute)})
	client := s.legoClient(t)
	names := []string{"chat.example.test"}
	res, err := client.Certificate.Obtain(certificate.ObtainRequest{Domains: names, Bundle: true})
	if err != nil {
		t.Fatalf("obtain: %v", err)
	}
	first, err := s.pebble.VerifyChain(res.Certificate, names...)
	if err != nil {
		t.Fatal(err)
	}
	if life := first.NotAfter.Sub(first.NotBefore); life != 5*time.Minute-time.Second {
		t.Errorf("lifetime %v, want the profile's 5m (Pebble subtracts 1 s)", life)
	}
	start := time.Now()
	renewed, err := client.Certificate.RenewWithOptions(*res, &certificate.RenewOptions{Bundle: true})
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	t.Logf("renewal took %v", time.Since(start).Round(time.Millisecond))
	second, err := s.pebble.VerifyChain(renewed.Certificate, names...)
	if err != nil {
		t.Fatal(err)
	}
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("renewal returned the same certificate")
	}
	// Authz reuse is off: the renewal was validated with a new TXT record.
	if created, deleted := s.txtChanges(); created != 2 || deleted != 2 {
		t.Errorf("TXT records created %d, deleted %d over obtain+renew; want 2 and 2", created, deleted)
	}
}
