package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labdns"
)

// testCA is a throw-away CA for hermetic TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf for names valid for life, returned as a Bundle.
func (ca *testCA) issue(t *testing.T, life time.Duration, names ...string) Bundle {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{SerialNumber: serial, DNSNames: names,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(life),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return Bundle{
		Chain: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:   KeyPEM(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})),
	}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// fakeNginx serves HTTPS on 127.0.0.1 and [::1] (same port) with whatever
// certificate getCert returns at each handshake, answering status.
type fakeNginx struct {
	port    int
	status  atomic.Int32
	getCert func() (*tls.Certificate, error)
}

func startFakeNginx(t *testing.T, getCert func() (*tls.Certificate, error)) *fakeNginx {
	t.Helper()
	f := &fakeNginx{getCert: getCert}
	f.status.Store(200)
	ln4, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.port = ln4.Addr().(*net.TCPAddr).Port
	ln6, err := net.Listen("tcp", "[::1]:"+strconv.Itoa(f.port))
	if err != nil {
		ln4.Close()
		t.Skipf("no IPv6 loopback on port %d: %v", f.port, err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(f.status.Load())) }),
		TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return f.getCert() }},
	}
	for _, ln := range []net.Listener{ln4, ln6} {
		go srv.ServeTLS(ln, "", "")
	}
	t.Cleanup(func() { srv.Close() })
	return f
}

func staticCert(t *testing.T, b Bundle) func() (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(b.Chain, b.Key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return func() (*tls.Certificate, error) { return &c, nil }
}

// staticDNS serves names → 127.0.0.1 and ::1.
func staticDNS(t *testing.T, zone string, names ...string) *labdns.Server {
	t.Helper()
	var recs []labdns.Record
	for _, n := range names {
		recs = append(recs, labdns.Record{Name: n, Type: "A", TTL: 60, Content: "127.0.0.1"}, labdns.Record{Name: n, Type: "AAAA", TTL: 60, Content: "::1"})
	}
	src := labdns.SourceFunc(func() []labdns.Zone {
		return []labdns.Zone{{Name: zone, NameServers: []string{"ns1." + zone}, Serial: 1, Records: recs}}
	})
	s, err := labdns.Start(context.Background(), labdns.Config{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCheckServedVerifiesEachNameOnIPv4AndIPv6(t *testing.T) {
	ca := newTestCA(t)
	names := []string{"chat." + zoneBE, "www." + zoneBE}
	b := ca.issue(t, time.Hour, names...)
	ng := startFakeNginx(t, staticCert(t, b))
	dns := staticDNS(t, zoneBE, append(names, "other."+zoneBE)...)
	info, _, _ := Inspect(b.Chain)
	ctx := context.Background()
	p := Probe{Names: names, Port: ng.port, Roots: ca.pool(), Resolvers: []string{dns.Addr()}, Path: "/"}

	got := CheckServed(ctx, p)
	if len(got) != 4 {
		t.Fatalf("got %d results, want 2 names × 2 families: %v", len(got), got)
	}
	for i, s := range got {
		if s.Err != nil || s.Status != 200 || s.Cert.Serial != info.Serial {
			t.Errorf("%s", s)
		}
		if wantV6 := i%2 == 1; s.Addr.Is6() != wantV6 {
			t.Errorf("result %d is %s; want IPv4 then IPv6 for each name", i, s.Addr)
		}
	}

	// Another CA's roots: the chain does not verify.
	p.Roots = newTestCA(t).pool()
	for _, s := range CheckServed(ctx, p) {
		var uerr x509.UnknownAuthorityError
		if !errors.As(s.Err, &uerr) {
			t.Errorf("with foreign roots: %s; want an unknown authority error", s)
		}
	}
	// A name the certificate does not cover.
	p.Roots, p.Names = ca.pool(), []string{"other." + zoneBE}
	for _, s := range CheckServed(ctx, p) {
		if s.Err == nil || !strings.Contains(s.Err.Error(), "other."+zoneBE) {
			t.Errorf("name not covered: %s", s)
		}
	}
	// A name that does not resolve.
	p.Names = []string{"missing." + zoneBE}
	if got := CheckServed(ctx, p); len(got) != 1 || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "resolve missing."+zoneBE) {
		t.Errorf("unresolvable name: %v", got)
	}
	// A name pinned to addresses (a public name before migrate cutover)
	// is checked there, whatever DNS says (here: nothing).
	p.Names, p.Addrs = []string{"missing." + zoneBE}, map[string][]netip.Addr{"missing." + zoneBE: {netip.MustParseAddr("127.0.0.1")}}
	if got := CheckServed(ctx, p); len(got) != 1 || got[0].Addr.String() != "127.0.0.1" || !strings.Contains(fmt.Sprint(got[0].Err), "not missing."+zoneBE) {
		t.Errorf("pinned name: %v", got)
	}
	p.Addrs = nil
	// The handshake-only probe reports the certificate without HTTP.
	p.Names, p.Path = names[:1], ""
	ng.status.Store(502)
	for _, s := range CheckServed(ctx, p) {
		if s.Err != nil || s.Status != 0 || s.Cert.Serial != info.Serial {
			t.Errorf("handshake only: %s", s)
		}
	}
}
