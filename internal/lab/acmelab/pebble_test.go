package acmelab

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPinnedVersionIsGoModsRequirement(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(PebbleModule) + `\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("go.mod does not require %s", PebbleModule)
	}
	if string(m[1]) != PebbleVersion {
		t.Errorf("go.mod requires %s %s, acmelab pins %s", PebbleModule, m[1], PebbleVersion)
	}
}

func TestCheckBinaryRefusesWhatIsNotThePinnedPebble(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "pebble")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho pebble\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckBinary(script); err == nil || !strings.Contains(err.Error(), "no Go build information") {
		t.Errorf("shell script: %v", err)
	}
	self, _ := os.Executable() // a Go binary, but the test binary
	if err := CheckBinary(self); err == nil || !strings.Contains(err.Error(), "not "+PebblePackage) {
		t.Errorf("other Go binary: %v", err)
	}
	if err := CheckBinary(filepath.Join(dir, "absent")); err == nil {
		t.Error("absent file accepted")
	}
	_, err := FindBinary(dir, "")
	if err == nil || !strings.Contains(err.Error(), "no Go build information") {
		t.Errorf("FindBinary should say why each candidate was refused: %v", err)
	}
}

func TestInstallCommandTargetsTheCacheDir(t *testing.T) {
	got := InstallCommand("/home/u/.cache")
	want := "GOBIN=/home/u/.cache/lghsctl/pebble/v2.10.1 go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1"
	if got != want {
		t.Errorf("InstallCommand = %q, want %q", got, want)
	}
}

func TestConfigIsValidatedBeforeAnythingStarts(t *testing.T) {
	cases := map[string]Config{
		"no binary":          {Dir: t.TempDir(), DNSServer: "127.0.0.1:53"},
		"dns not ip:port":    {Binary: "x", Dir: t.TempDir(), DNSServer: "lab-dns"},
		"unspecified ip":     {Binary: "x", Dir: t.TempDir(), DNSServer: "127.0.0.1:53", ListenIP: netip.MustParseAddr("0.0.0.0")},
		"sub-second profile": {Binary: "x", Dir: t.TempDir(), DNSServer: "127.0.0.1:53", Profiles: ShortLivedProfiles(time.Millisecond)},
		"not pebble":         {Binary: "/bin/sh", Dir: t.TempDir(), DNSServer: "127.0.0.1:53"},
	}
	for name, cfg := range cases {
		if _, err := Start(context.Background(), cfg); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

// fakeDNS is an address nothing answers on: these tests do not validate.
const fakeDNS = "127.0.0.1:1"

func TestPebbleListensOnlyOnItsAddressAndStopsWithoutLeftovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Pebble")
	}
	bin := pebbleBinary(t)
	ip := netip.MustParseAddr("127.0.0.2") // not Pebble's default address
	dir := t.TempDir()
	start := time.Now()
	p, err := Start(context.Background(), Config{Binary: bin, Dir: dir, ListenIP: ip, DNSServer: fakeDNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pebble up (directory answering, roots fetched) in %v", time.Since(start).Round(time.Millisecond))
	defer p.Stop()
	pid := p.PID()

	want := []string{"tcp " + p.ACMEAddr, "tcp " + p.ManagementAddr}
	slices.Sort(want)
	if got := listening(t, pid); !slices.Equal(got, want) {
		t.Errorf("pebble sockets %v, want only %v", got, want)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	gotEnv := strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
	wantEnv := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0", "PEBBLE_WFE_NONCEREJECT=0",
		"PEBBLE_AUTHZREUSE=0", "PEBBLE_CHAIN_LENGTH=1", "PEBBLE_ALTERNATE_ROOTS=0"}
	if !slices.Equal(gotEnv, wantEnv) {
		t.Errorf("pebble environment %q, want exactly %q", gotEnv, wantEnv)
	}
	var cfg map[string]map[string]any
	b, _ := os.ReadFile(p.ConfigFile)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	pc := cfg["pebble"]
	if pc["externalAccountBindingRequired"] != false || pc["keyAlgorithm"] != "ecdsa" ||
		fmt.Sprint(pc["profiles"]) != "map[default:map[description:90-day certificates validityPeriod:7.776e+06]]" {
		t.Errorf("pebble config %s", b)
	}

	// The bundle = the lab TLS CA + Pebble's issuing root; the HTTPS
	// certificate covers the listen address.
	bundle, _ := os.ReadFile(p.BundleFile)
	certs, err := parsePEMCerts(bundle)
	if err != nil || len(certs) != 2 || !certs[0].IsCA || !strings.Contains(certs[1].Subject.CommonName, "Pebble Root CA") {
		t.Errorf("bundle: %d certs %v", len(certs), err)
	}
	leafPEM, _ := os.ReadFile(filepath.Join(dir, "pebble-cert.pem"))
	leaf, _ := parsePEMCerts(leafPEM)
	if len(leaf) != 1 || !slices.ContainsFunc(leaf[0].IPAddresses, func(a net.IP) bool { return a.Equal(ip.AsSlice()) }) {
		t.Errorf("pebble https certificate does not cover %s", ip)
	}
	if len(p.Roots()) != 1 || len(p.Intermediates()) != 1 {
		t.Errorf("roots %d intermediates %d, want 1 and 1", len(p.Roots()), len(p.Intermediates()))
	}
	if _, err := p.Intermediates()[0].Verify(x509.VerifyOptions{Roots: p.RootPool()}); err != nil {
		t.Errorf("intermediate does not chain to the fetched root: %v", err)
	}

	if err := p.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if !processGone(pid) {
		t.Errorf("pebble pid %d still exists after Stop", pid)
	}
	for _, a := range []string{p.ACMEAddr, p.ManagementAddr} {
		if !portFree(a) {
			t.Errorf("%s still taken after Stop", a)
		}
	}
}

func TestRestartKeepsTheTLSCAAndGetsNewIssuingRoots(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Pebble twice")
	}
	bin := pebbleBinary(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	p1, err := Start(ctx, Config{Binary: bin, Dir: dir, DNSServer: fakeDNS})
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(p1.TLSCAFile)
	root1 := p1.Roots()[0]
	pid1 := p1.PID()
	cancel() // a cancelled context stops Pebble
	select {
	case <-p1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("pebble still running after its context was cancelled")
	}
	if err := p1.Stop(); err != nil {
		t.Errorf("stop after cancel: %v", err)
	}
	if !processGone(pid1) {
		t.Errorf("pid %d still exists", pid1)
	}
	p2, err := Start(context.Background(), Config{Binary: bin, Dir: dir, DNSServer: fakeDNS})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Stop()
	ca2, _ := os.ReadFile(p2.TLSCAFile)
	if !bytes.Equal(ca1, ca2) {
		t.Error("the lab TLS CA changed across restarts: lab hosts would stop trusting Pebble")
	}
	if root1.Equal(p2.Roots()[0]) {
		t.Error("pebble's issuing root did not change across restarts (it is random per start)")
	}
}

func TestBuildInstallsThePinnedPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Pebble with go install")
	}
	dir := t.TempDir()
	start := time.Now()
	p, err := Build(context.Background(), nil, goTool(), dir, nil)
	if err != nil {
		skipOrFail(t, fmt.Sprintf("go install of pebble failed (module proxy or module cache needed): %v", err))
	}
	t.Logf("built in %v", time.Since(start).Round(time.Millisecond))
	if p != filepath.Join(dir, "pebble") {
		t.Errorf("built %s, want it in %s", p, dir)
	}
	if got, err := FindBinary(dir); err != nil || got != p {
		t.Errorf("FindBinary after Build: %s %v", got, err)
	}
	if got, err := EnsureBinary(context.Background(), nil, "/nonexistent/go", dir); err != nil || got != p {
		t.Errorf("EnsureBinary must find the built binary without building: %s %v", got, err)
	}
}
