// Package acmelab runs the lab's ACME CA: the pinned Pebble binary
// (Let's Encrypt's test CA), started with -dnsserver pointing at the lab DNS
// so DNS-01 challenges are checked against the lab's zones, listening only
// on the address it is given, with every knob that changes its behaviour
// set explicitly (no random validation sleeps, no rejected nonces, authz
// reuse, certificate profiles, no External Account Binding).
//
// Pebble's HTTPS endpoints get a certificate from a lab CA generated here
// (Pebble's bundled one only names localhost and 127.0.0.1, and lab hosts
// reach the box on another address). Start writes the files clients need:
// the lab TLS CA (to trust the ACME endpoint), Pebble's issuing roots
// fetched from its management interface (to verify issued certificates),
// and a bundle of both.
//
// The binary must be built from the module version go.mod pins (CheckBinary
// reads its build information). Either of these does it:
//
//	go install github.com/letsencrypt/pebble/v2/cmd/pebble     # inside the module: go.mod's version, into $(go env GOPATH)/bin
//	GOBIN=${XDG_CACHE_HOME:-$HOME/.cache}/lghsctl/pebble/v2.10.1 go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1
//
// FindBinary looks in the directories it is given (CacheDir, GOBIN,
// GOPATH/bin); Build and EnsureBinary run the second command.
package acmelab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Profile is a Pebble certificate profile.
type Profile struct {
	Description string
	// ValidityPeriod is the certificates' lifetime (whole seconds, > 0).
	ValidityPeriod time.Duration
}

// DefaultProfile is the profile name DefaultProfiles defines.
const DefaultProfile = "default"

// DefaultProfiles is one 90-day profile, like Let's Encrypt's classic
// certificates.
func DefaultProfiles() map[string]Profile {
	return map[string]Profile{DefaultProfile: {Description: "90-day certificates", ValidityPeriod: 90 * 24 * time.Hour}}
}

// ShortLivedProfiles is one profile, named "default" so that clients that
// name no profile get it, issuing certificates valid for d: a renewal test
// sets d to minutes so that a client's "renew when a third of the lifetime
// is left" fires during the test.
func ShortLivedProfiles(d time.Duration) map[string]Profile {
	return map[string]Profile{DefaultProfile: {Description: "short-lived certificates (" + d.String() + ")", ValidityPeriod: d}}
}

// Config configures a Pebble run. Binary, Dir and DNSServer are required.
type Config struct {
	// Binary is the pinned pebble (FindBinary, EnsureBinary).
	Binary string
	// Dir holds the generated configuration, certificates, CA files and the
	// log. The lab TLS CA found there is reused (see Pebble.TLSCAFile).
	Dir string
	// ListenIP is the only address Pebble listens on (default 127.0.0.1).
	ListenIP netip.Addr
	// ACMEPort and ManagementPort: 0 picks free ports.
	ACMEPort, ManagementPort int
	// DNSServer is the "ip:port" of the lab DNS that Pebble's validation
	// authority queries (over TCP) for DNS-01 (Pebble's -dnsserver).
	DNSServer string
	// TLSNames and TLSAddrs are added to Pebble's HTTPS certificate, which
	// always covers ListenIP and "pebble" (and "localhost" on loopback).
	TLSNames []string
	TLSAddrs []netip.Addr
	// Profiles are the certificate profiles (default DefaultProfiles). An
	// order naming no profile gets a random one when there are several
	// (Pebble's behaviour), so keep one unless clients name theirs.
	Profiles map[string]Profile
	// AuthzReusePercent is how often a valid authorization is reused for a
	// new order (PEBBLE_AUTHZREUSE; default 0: every order is validated
	// again, so renewals exercise DNS-01).
	AuthzReusePercent int
	// NonceRejectPercent is how many good nonces are refused as bad
	// (PEBBLE_WFE_NONCEREJECT; default 0).
	NonceRejectPercent int
	// RetryAfter is sent on authorization and order polls (default 1 s).
	RetryAfter time.Duration
	// ChainLength is the number of intermediates (PEBBLE_CHAIN_LENGTH,
	// default 1) and AlternateRoots the number of extra root chains
	// (PEBBLE_ALTERNATE_ROOTS, default 0).
	ChainLength, AlternateRoots int
	// KeyAlgorithm of Pebble's issuing keys: "ecdsa" (default) or "rsa".
	KeyAlgorithm string
	// StartTimeout bounds the wait for the ACME directory (default 15 s).
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Pebble is a running Pebble.
type Pebble struct {
	// DirectoryURL is the ACME directory ("https://<ip>:<port>/dir");
	// ManagementURL the management interface base.
	DirectoryURL, ManagementURL string
	// ACMEAddr and ManagementAddr are the "ip:port" Pebble listens on.
	ACMEAddr, ManagementAddr string
	// TLSCAFile (PEM) is the CA of Pebble's HTTPS certificate: what an ACME
	// client must trust. RootsFile (PEM) holds Pebble's issuing roots,
	// fetched after start: what a TLS client must trust to verify issued
	// certificates. BundleFile holds both.
	TLSCAFile, RootsFile, BundleFile string
	// ConfigFile and LogFile are Pebble's configuration and its output.
	ConfigFile, LogFile string

	cfg           Config
	log           *slog.Logger
	cmd           *exec.Cmd
	exited        chan struct{}
	waitErr       error
	tlsPool       *x509.CertPool
	client        *http.Client
	roots         []*x509.Certificate
	intermediates []*x509.Certificate
	stopOnce      sync.Once
	stopErr       error
	unwatch       func() bool
}

func (c *Config) defaults() error {
	if c.Binary == "" || c.Dir == "" || c.DNSServer == "" {
		return errors.New("start pebble: Binary, Dir and DNSServer are required")
	}
	if _, err := netip.ParseAddrPort(c.DNSServer); err != nil {
		return fmt.Errorf("start pebble: dns server %q is not ip:port: %w", c.DNSServer, err)
	}
	if !c.ListenIP.IsValid() {
		c.ListenIP = netip.MustParseAddr("127.0.0.1")
	}
	if c.ListenIP.IsUnspecified() {
		return fmt.Errorf("start pebble: listen ip %s is unspecified; give the one address to listen on", c.ListenIP)
	}
	if c.Profiles == nil {
		c.Profiles = DefaultProfiles()
	}
	for name, p := range c.Profiles {
		if p.ValidityPeriod < time.Second {
			return fmt.Errorf("start pebble: profile %s: validity %v is shorter than a second", name, p.ValidityPeriod)
		}
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.ChainLength == 0 {
		c.ChainLength = 1
	}
	if c.KeyAlgorithm == "" {
		c.KeyAlgorithm = "ecdsa"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// env is Pebble's whole environment: every variable it reads, explicit.
func (c *Config) env() []string {
	return []string{
		"PEBBLE_VA_NOSLEEP=1",
		"PEBBLE_VA_ALWAYS_VALID=0",
		"PEBBLE_WFE_NONCEREJECT=" + strconv.Itoa(c.NonceRejectPercent),
		"PEBBLE_AUTHZREUSE=" + strconv.Itoa(c.AuthzReusePercent),
		"PEBBLE_CHAIN_LENGTH=" + strconv.Itoa(c.ChainLength),
		"PEBBLE_ALTERNATE_ROOTS=" + strconv.Itoa(c.AlternateRoots),
	}
}

type pebbleConfig struct {
	Pebble struct {
		ListenAddress                  string                   `json:"listenAddress"`
		ManagementListenAddress        string                   `json:"managementListenAddress"`
		Certificate                    string                   `json:"certificate"`
		PrivateKey                     string                   `json:"privateKey"`
		HTTPPort                       int                      `json:"httpPort"`
		TLSPort                        int                      `json:"tlsPort"`
		OCSPResponderURL               string                   `json:"ocspResponderURL"`
		ExternalAccountBindingRequired bool                     `json:"externalAccountBindingRequired"`
		DomainBlocklist                []string                 `json:"domainBlocklist"`
		KeyAlgorithm                   string                   `json:"keyAlgorithm"`
		RetryAfter                     map[string]int           `json:"retryAfter"`
		Profiles                       map[string]pebbleProfile `json:"profiles"`
	} `json:"pebble"`
}

type pebbleProfile struct {
	Description    string `json:"description"`
	ValidityPeriod uint64 `json:"validityPeriod"`
}

// errAddrInUse marks a start that failed because a picked port was taken
// in the meantime; Start then retries with other ports.
var errAddrInUse = errors.New("address already in use")

// Start writes Pebble's configuration and TLS certificate into cfg.Dir,
// starts it in its own process group, waits for its ACME directory, and
// fetches its issuing roots. Pebble is stopped by Stop or when ctx is done.
func Start(ctx context.Context, cfg Config) (*Pebble, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := CheckBinary(cfg.Binary); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	now := time.Now()
	ca, err := loadOrCreateCA(cfg.Dir, now)
	if err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	names := append([]string{"pebble"}, cfg.TLSNames...)
	if cfg.ListenIP.IsLoopback() {
		names = append(names, "localhost")
	}
	addrs := append([]netip.Addr{cfg.ListenIP}, cfg.TLSAddrs...)
	certPath, keyPath := filepath.Join(cfg.Dir, "pebble-cert.pem"), filepath.Join(cfg.Dir, "pebble-key.pem")
	if err := ca.issue(certPath, keyPath, names, addrs, now); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	for attempt := 1; ; attempt++ {
		p, err := launch(ctx, cfg, pool, certPath, keyPath)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errAddrInUse) || cfg.ACMEPort != 0 && cfg.ManagementPort != 0 || attempt == 3 {
			return nil, err
		}
		cfg.Logger.Warn("pebble port taken, retrying with others", slog.Any("err", err))
	}
}

func freePort(ip netip.Addr) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func launch(ctx context.Context, cfg Config, pool *x509.CertPool, certPath, keyPath string) (*Pebble, error) {
	acmePort, mgmtPort := cfg.ACMEPort, cfg.ManagementPort
	var err error
	for acmePort == 0 || acmePort == mgmtPort {
		if acmePort, err = freePort(cfg.ListenIP); err != nil {
			return nil, fmt.Errorf("start pebble: pick a port on %s: %w", cfg.ListenIP, err)
		}
	}
	for mgmtPort == 0 || mgmtPort == acmePort {
		if mgmtPort, err = freePort(cfg.ListenIP); err != nil {
			return nil, fmt.Errorf("start pebble: pick a port on %s: %w", cfg.ListenIP, err)
		}
	}
	ip := cfg.ListenIP.String()
	p := &Pebble{
		cfg: cfg, log: cfg.Logger, tlsPool: pool, exited: make(chan struct{}),
		ACMEAddr:       net.JoinHostPort(ip, strconv.Itoa(acmePort)),
		ManagementAddr: net.JoinHostPort(ip, strconv.Itoa(mgmtPort)),
		TLSCAFile:      filepath.Join(cfg.Dir, "tls-ca.pem"),
		RootsFile:      filepath.Join(cfg.Dir, "issuer-roots.pem"),
		BundleFile:     filepath.Join(cfg.Dir, "ca-bundle.pem"),
		ConfigFile:     filepath.Join(cfg.Dir, "pebble-config.json"),
		LogFile:        filepath.Join(cfg.Dir, "pebble.log"),
	}
	p.DirectoryURL = "https://" + p.ACMEAddr + "/dir"
	p.ManagementURL = "https://" + p.ManagementAddr
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:           nil, // never through a proxy: the CA is on the lab network
	}}

	var pc pebbleConfig
	c := &pc.Pebble
	c.ListenAddress, c.ManagementListenAddress = p.ACMEAddr, p.ManagementAddr
	c.Certificate, c.PrivateKey = certPath, keyPath
	// Ports Pebble's validation authority would connect to for http-01 and
	// tls-alpn-01 (the lab uses DNS-01): the real ones.
	c.HTTPPort, c.TLSPort = 80, 443
	c.DomainBlocklist = []string{}
	c.KeyAlgorithm = cfg.KeyAlgorithm
	secs := int((cfg.RetryAfter + time.Second - 1) / time.Second)
	c.RetryAfter = map[string]int{"authz": secs, "order": secs}
	c.Profiles = map[string]pebbleProfile{}
	for name, pr := range cfg.Profiles {
		c.Profiles[name] = pebbleProfile{Description: pr.Description, ValidityPeriod: uint64(pr.ValidityPeriod / time.Second)}
	}
	if len(c.Profiles) > 1 {
		p.log.Warn("pebble has several profiles: orders naming none get a random one", slog.Int("profiles", len(c.Profiles)))
	}
	b, err := json.MarshalIndent(pc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("start pebble: encode config: %w", err)
	}
	if err := writeFile(p.ConfigFile, b, 0o644); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}

	logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	p.cmd = exec.Command(cfg.Binary, "-config", p.ConfigFile, "-dnsserver", cfg.DNSServer)
	p.cmd.Dir = cfg.Dir
	p.cmd.Env = cfg.env()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group, so Stop reaches anything it starts; killed if
	// this process dies first, so a crashed test leaves no Pebble behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start pebble %s: %w", cfg.Binary, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	p.unwatch = context.AfterFunc(ctx, func() { _ = p.Stop() })
	p.log.Info("pebble started", slog.Int("pid", p.cmd.Process.Pid), slog.String("directory", p.DirectoryURL),
		slog.String("dnsserver", cfg.DNSServer))

	if err := p.waitReady(ctx, logStart); err != nil {
		_ = p.Stop()
		return nil, err
	}
	if err := p.fetchRoots(ctx); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls the ACME directory until it answers 200, Pebble exits,
// or the start timeout passes.
func (p *Pebble) waitReady(ctx context.Context, logStart int64) error {
	deadline := time.Now().Add(p.cfg.StartTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.DirectoryURL, nil)
		resp, err := p.client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			out := p.logSince(logStart)
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("start pebble on %s/%s: %w: %s", p.ACMEAddr, p.ManagementAddr, errAddrInUse, out)
			}
			return fmt.Errorf("start pebble: exited (%v): %s", p.waitErr, out)
		case <-ctx.Done():
			return fmt.Errorf("start pebble: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start pebble: %s not answering after %v (last error %v): %s",
				p.DirectoryURL, p.cfg.StartTimeout, err, p.logSince(logStart))
		}
	}
}

func (p *Pebble) logSince(off int64) string {
	b, err := os.ReadFile(p.LogFile)
	if err != nil || off > int64(len(b)) {
		return ""
	}
	s := strings.TrimSpace(string(b[off:]))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// fetchRoots reads the issuing roots and intermediates from the
// management interface and writes RootsFile and BundleFile.
func (p *Pebble) fetchRoots(ctx context.Context) error {
	var roots, inters []*x509.Certificate
	for i := 0; i <= p.cfg.AlternateRoots; i++ {
		r, err := p.getCerts(ctx, fmt.Sprintf("/roots/%d", i))
		if err != nil {
			return err
		}
		in, err := p.getCerts(ctx, fmt.Sprintf("/intermediates/%d", i))
		if err != nil {
			return err
		}
		roots, inters = append(roots, r...), append(inters, in...)
	}
	p.roots, p.intermediates = roots, inters
	var rootsPEM bytes.Buffer
	for _, c := range roots {
		_ = pem.Encode(&rootsPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	tlsCA, err := os.ReadFile(p.TLSCAFile)
	if err != nil {
		return fmt.Errorf("start pebble: %w", err)
	}
	if err := writeFile(p.RootsFile, rootsPEM.Bytes(), 0o644); err != nil {
		return fmt.Errorf("start pebble: %w", err)
	}
	if err := writeFile(p.BundleFile, append(append([]byte(nil), tlsCA...), rootsPEM.Bytes()...), 0o644); err != nil {
		return fmt.Errorf("start pebble: %w", err)
	}
	return nil
}

func (p *Pebble) getCerts(ctx context.Context, path string) ([]*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.ManagementURL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch pebble %s: %w", path, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch pebble %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch pebble %s: status %d: %v", path, resp.StatusCode, err)
	}
	certs, err := parsePEMCerts(b)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("fetch pebble %s: no certificate in the answer: %v", path, err)
	}
	return certs, nil
}

func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// HTTPClient is an HTTP client that trusts Pebble's HTTPS certificate (for
// lego's Config.HTTPClient).
func (p *Pebble) HTTPClient() *http.Client { return p.client }

// RootPool holds Pebble's issuing roots, for verifying issued certificates.
func (p *Pebble) RootPool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, r := range p.roots {
		pool.AddCert(r)
	}
	return pool
}

// Roots are Pebble's issuing roots, fetched at start.
func (p *Pebble) Roots() []*x509.Certificate { return p.roots }

// Intermediates are the issuing intermediates, fetched at start.
func (p *Pebble) Intermediates() []*x509.Certificate { return p.intermediates }

// PID is Pebble's process id (and process group id).
func (p *Pebble) PID() int { return p.cmd.Process.Pid }

// VerifyChain checks that a PEM chain (leaf first, then intermediates, as
// ACME's certificate download) chains to one of Pebble's roots and is valid
// for every name, at now.
func (p *Pebble) VerifyChain(chainPEM []byte, names ...string) (*x509.Certificate, error) {
	certs, err := parsePEMCerts(chainPEM)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("verify certificate chain: no certificate: %v", err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	opts := x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("verify certificate chain of %v: %w", leaf.DNSNames, err)
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return nil, fmt.Errorf("verify certificate for %s: %w", n, err)
		}
	}
	return leaf, nil
}

// Done is closed when the Pebble process has exited.
func (p *Pebble) Done() <-chan struct{} { return p.exited }

// Stop terminates Pebble's process group (SIGTERM, then SIGKILL after 5 s)
// and waits for it. Safe to call more than once.
func (p *Pebble) Stop() error {
	p.stopOnce.Do(func() {
		if p.unwatch != nil {
			p.unwatch()
		}
		pgid := p.cmd.Process.Pid
		select {
		case <-p.exited:
		default:
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
				p.log.Warn("pebble ignored SIGTERM, killing it", slog.Int("pid", pgid))
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				<-p.exited
			}
		}
		if t, ok := p.client.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
		p.log.Info("pebble stopped", slog.Int("pid", pgid))
		var ee *exec.ExitError
		if p.waitErr != nil && !(errors.As(p.waitErr, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled()) {
			p.stopErr = fmt.Errorf("stop pebble (pid %d): it had exited: %w", pgid, p.waitErr)
		}
	})
	return p.stopErr
}
