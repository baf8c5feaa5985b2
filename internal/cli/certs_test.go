package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/certs"
	"github.com/lghs/lghsctl/internal/logging"
	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/provision"
)

const certsInventory = `version: 1
name: lghs-lab
dns:
  token: {env: CLOUDFLARE_API_TOKEN}
  zones:
    - name: lghs-space.test
      acme_token: {env: TOKEN_SPACE}
    - name: lghs-be.test
      acme_token: {env: TOKEN_BE}
acme:
  email: infra@lghs-be.test
  directory: https://pebble.lab.test/dir
  caa: true
  caa_identity: pebble.lab.test
  renew_schedule: daily
hosts:
  - name: lghs-chat
    provider: none
    ssh: {address: 192.0.2.10}
    sites:
      - name: chat.lghs-be.test
        upstream: "[::1]:3000"
`

func loadCertsInventory(t *testing.T) *inventory.File {
	t.Helper()
	f, err := inventory.Parse(filepath.Join(t.TempDir(), "inventory.yaml"), []byte(certsInventory))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCertsSettingsTakeTheInventoryThenTheLabOverrides: the endpoints come
// from the inventory, and the environment variables the lab sets override
// them (the CLI is the only environment reader; certs gets explicit
// values).
func TestCertsSettingsTakeTheInventoryThenTheLabOverrides(t *testing.T) {
	f := loadCertsInventory(t)
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	s, err := certsSettings(f, getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.DirectoryURL != "https://pebble.lab.test/dir" || s.CloudflareURL != "" || len(s.Resolvers) != 0 || s.RenewBefore != 30*24*time.Hour || s.KeyType != "ec256" {
		t.Errorf("from the inventory: %+v", s)
	}
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bundle, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	env = map[string]string{
		"LGHSCTL_ACME_DIRECTORY": "https://10.200.0.1:14000/dir",
		"LGHSCTL_ACME_CA_BUNDLE": bundle,
		"LGHSCTL_DNS_RESOLVERS":  "10.200.0.1:53, [fd6c::1]:53",
		"CLOUDFLARE_BASE_URL":    "http://10.200.0.1:8080/client/v4",
	}
	if s, err = certsSettings(f, getenv, nil); err != nil {
		t.Fatal(err)
	}
	if s.DirectoryURL != "https://10.200.0.1:14000/dir" || s.CloudflareURL != "http://10.200.0.1:8080/client/v4" ||
		!slices.Equal(s.Resolvers, []string{"10.200.0.1:53", "[fd6c::1]:53"}) || !bytes.HasPrefix(s.CABundle, []byte("-----BEGIN")) {
		t.Errorf("with overrides: %+v", s)
	}
	env["LGHSCTL_ACME_CA_BUNDLE"] = "/nonexistent/ca.pem"
	if _, err := certsSettings(f, getenv, nil); err == nil || !strings.Contains(err.Error(), "acme CA bundle") {
		t.Errorf("missing bundle: %v", err)
	}
}

func TestCertsPhaseConfigResolvesTokensRedactsThemAndWiresCAA(t *testing.T) {
	f := loadCertsInventory(t)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "main-token-value-123", "TOKEN_BE": "be-token-value-456"}
	g := &Globals{IO: IO{Getenv: func(k string) string { return env[k] }}, Inventory: f.Path}
	red := &logging.Redactor{}
	cfg, err := g.certsPhaseConfig(f, &f.Hosts[0], red, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tokens) != 1 || cfg.Tokens["lghs-be.test"].Reveal() != "be-token-value-456" {
		t.Errorf("tokens: %v (the lghs-space.test token is not needed: no site there)", cfg.Tokens)
	}
	if got := red.Redact("x be-token-value-456 main-token-value-123"); got != "x [redacted] [redacted]" {
		t.Errorf("redactor: %q", got)
	}
	if cfg.CAA == nil || cfg.CAAIdentity != "pebble.lab.test" || cfg.Schedule != "daily" || cfg.StateDir != filepath.Join(filepath.Dir(f.Path), ".lghsctl") {
		t.Errorf("phase config: %+v", cfg)
	}
	if _, err := certs.NewPhase(cfg); err != nil {
		t.Errorf("NewPhase: %v", err)
	}
	exe, _ := os.Executable()
	if b, err := cfg.Binary(); err != nil || len(b) == 0 {
		t.Errorf("binary (%s): %d bytes, %v", exe, len(b), err)
	}
	other := filepath.Join(t.TempDir(), "lghsctl-linux-amd64")
	os.WriteFile(other, []byte("cross-built"), 0o755)
	env["LGHSCTL_HOST_BINARY"] = other
	if b, err := cfg.Binary(); err != nil || string(b) != "cross-built" {
		t.Errorf("LGHSCTL_HOST_BINARY: %q %v", b, err)
	}
	delete(env, "TOKEN_BE")
	if _, err := g.certsPhaseConfig(f, &f.Hosts[0], red, nil); err == nil || !strings.Contains(err.Error(), "dns.zones[1].acme_token: environment variable TOKEN_BE is not set") {
		t.Errorf("missing token: %v", err)
	}
}

// TestCertsStatusShowsTheDeployedCertificateAndTheLastRun reads a live
// directory and a state file as the host has them.
func TestCertsStatusShowsTheDeployedCertificateAndTheLastRun(t *testing.T) {
	dir := t.TempDir()
	chain := selfSignedPEM(t, "chat.lghs-be.test")
	os.MkdirAll(filepath.Join(dir, "live", "chat.lghs-be.test"), 0o755)
	os.WriteFile(filepath.Join(dir, "live", "chat.lghs-be.test", "fullchain.pem"), chain, 0o644)
	info, _, _ := certs.Inspect(chain)
	os.MkdirAll(filepath.Join(dir, "state"), 0o755)
	st := `{"finished":"2026-11-22T04:12:00Z","ok":false,"certificates":[{"name":"chat.lghs-be.test","cert":{},"result":"failed",
"detail":"cloudflare token for lghs-be.test: GET /user/tokens/verify: status 401: 1000 Invalid API Token","last_renewed":"2026-10-01T04:00:00Z"}]}`
	os.WriteFile(filepath.Join(dir, "state", "state.json"), []byte(st), 0o644)
	cfg := `{"directory":"https://127.0.0.1:1/dir","account_key":"k","account_uri":"u","tokens":{"lghs-be.test":"t"},
"live_root":"` + dir + `/live","state_file":"` + dir + `/state/state.json",
"certificates":[{"name":"chat.lghs-be.test","names":["chat.lghs-be.test"],"zones":{"chat.lghs-be.test":"lghs-be.test"}}]}`
	os.WriteFile(filepath.Join(dir, "renew.json"), []byte(cfg), 0o644)

	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"certs", "status", "--config", filepath.Join(dir, "renew.json")},
		IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(string) string { return "" }})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"chat.lghs-be.test\n",
		"  names    chat.lghs-be.test\n",
		"  serial   " + info.Serial + "\n",
		"  expires  " + info.NotAfter.Format(time.RFC3339) + " (in ",
		"  renewal  failed at 2026-11-22T04:12:00Z: cloudflare token for lghs-be.test: GET /user/tokens/verify: status 401: 1000 Invalid API Token\n",
		"  renewed  2026-10-01T04:00:00Z\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	code = Main(context.Background(), []string{"certs", "status", "--json", "--config", filepath.Join(dir, "renew.json")},
		IO{In: strings.NewReader(""), Out: &out, Err: io.Discard, Getenv: func(string) string { return "" }})
	if code != 0 || !strings.Contains(out.String(), `"type":"certificate"`) || !strings.Contains(out.String(), `"serial":"`+info.Serial+`"`) {
		t.Errorf("json (exit %d): %s", code, out.String())
	}
}

func selfSignedPEM(t *testing.T, names ...string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0x5eed), Subject: pkix.Name{CommonName: "lab issuer"}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(60 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// fakeDNS is provision.DNS in memory, as provision/cloudflare answers
// (CAA content in presentation form).
type fakeDNS struct {
	provision.DNS
	recs   []provision.Record
	nextID int
}

func (f *fakeDNS) Zone(ctx context.Context, name string) (provision.Zone, error) {
	return provision.Zone{ID: "z-" + name, Name: name}, nil
}
func (f *fakeDNS) Records(ctx context.Context, zoneID string) ([]provision.Record, error) {
	return slices.Clone(f.recs), nil
}
func (f *fakeDNS) CreateRecord(ctx context.Context, zoneID string, r provision.Record) (provision.Record, error) {
	f.nextID++
	r.ID = fmt.Sprint(f.nextID)
	f.recs = append(f.recs, r)
	return r, nil
}
func (f *fakeDNS) DeleteRecord(ctx context.Context, zoneID, id string) error {
	f.recs = slices.DeleteFunc(f.recs, func(r provision.Record) bool { return r.ID == id })
	return nil
}

// TestCAAThroughProvisionsDNSIsIdempotentAndKeepsForeignRecords proves the
// adapter to provision's DNS code honours certs.CAAPublisher's contract.
func TestCAAThroughProvisionsDNSIsIdempotentAndKeepsForeignRecords(t *testing.T) {
	dnsf := &fakeDNS{recs: []provision.Record{
		{ID: "a", Name: "chat.lghs.be", Type: "A", Content: "192.0.2.1", Comment: "managed by lghsctl: lghs/lghs-chat"},
		{ID: "f", Name: "chat.lghs.be", Type: "CAA", Content: `0 iodef "mailto:infra@lghs.be"`},
		{ID: "old", Name: "chat.lghs.be", Type: "CAA", Content: `0 issue "letsencrypt.org; accounturi=https://acme/acct/1; validationmethods=dns-01"`, Comment: certs.CAAComment("lghs")},
	}}
	p := &dnsCAA{dns: dnsf, zoneOf: func(string) string { return "lghs.be" }, comment: certs.CAAComment("lghs")}
	want := certs.CAARecords("letsencrypt.org", "https://acme/acct/2")
	ctx := context.Background()
	changes, err := p.EnsureCAA(ctx, "chat.lghs.be", want, true)
	if err != nil || len(changes) != 4 || len(dnsf.recs) != 3 {
		t.Fatalf("check: %v %q, records %d", err, changes, len(dnsf.recs))
	}
	if changes, err = p.EnsureCAA(ctx, "chat.lghs.be", want, false); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(changes, "\n")
	for _, s := range []string{`remove CAA chat.lghs.be 0 issue "letsencrypt.org; accounturi=https://acme/acct/1`, `add CAA chat.lghs.be 0 issuewild ";"`, `keep CAA chat.lghs.be 0 iodef`} {
		if !strings.Contains(joined, s) {
			t.Errorf("changes lack %q:\n%s", s, joined)
		}
	}
	var contents []string
	for _, r := range dnsf.recs {
		contents = append(contents, r.ID+" "+r.Type+" "+r.Content)
	}
	if len(dnsf.recs) != 4 || !strings.Contains(strings.Join(contents, "|"), `acct/2; validationmethods=dns-01"`) {
		t.Errorf("records: %q", contents)
	}
	if changes, err = p.EnsureCAA(ctx, "chat.lghs.be", want, false); err != nil || changes != nil {
		t.Errorf("second run: %v %q", err, changes)
	}
}
