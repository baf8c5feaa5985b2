// Package labd assembles the whole lab as one long-running process: a
// labhost instance (the lab's network and Debian hosts), the Scaleway
// stand-in whose powered-on servers are lab hosts, the Cloudflare stand-in
// and the authoritative DNS server serving its zones, and Pebble. Every
// service listens on the lab's box address, so the operator's lghsctl and
// the lab hosts (their certificate renewal timer) reach them alike.
//
// Environment returns what points lghsctl at the lab: the same variables
// it reads for the real services (SCW_*, CLOUDFLARE_*) and the lab
// overrides of the inventory's ACME settings (LGHSCTL_ACME_*,
// LGHSCTL_DNS_RESOLVERS). Production code has no lab branch.
//
// A lab's cloud state lives in memory: Close terminates its servers and
// forgets its records. The state directory keeps what must survive a
// restart: the operator's SSH key and Pebble's TLS CA.
package labd

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/acmelab"
	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labreg"
	"github.com/lghs/lghsctl/internal/lab/scwsim"
)

// Fixed lab credentials: they pass the Scaleway SDK's format checks and
// mean nothing outside the lab.
const (
	AccessKey      = "SCWLABXXXXXXXXXXXXXX"
	SecretKey      = "5ca1ab1e-0000-4000-8000-000000000001"
	ProjectID      = "5ca1ab1e-0000-4000-8000-00000000000a"
	OrganizationID = "5ca1ab1e-0000-4000-8000-00000000000b"
)

// Ports of the services on the box address.
const (
	ScalewayPort   = 8080
	CloudflarePort = 8081
	DNSPort        = 53
	ACMEPort       = 14000
	PebbleMgmtPort = 15000
	RegistryPort   = 5443
)

// RegistryHost is the lab registry's name (served by the lab DNS in its
// own zone, lab.test); images are RegistryHost:RegistryPort/<name>:<tag>.
const (
	RegistryZone = "lab.test"
	RegistryHost = "registry." + RegistryZone
)

// Zone is a DNS zone the lab serves, with the environment variable that
// will hold its DNS-01 token (DNS edit on this zone only).
type Zone struct {
	Name     string
	TokenEnv string
}

// Config configures a lab.
type Config struct {
	// StateDir keeps the operator key and Pebble's files (created 0700).
	StateDir string
	// Zones are created in the Cloudflare stand-in and served by the DNS.
	Zones []Zone
	// ProjectName is the Scaleway project's name (the inventory's
	// scaleway.project), found by name through the Account API.
	ProjectName string
	// MainTokenEnv names the variable of the token with Zone:Read and
	// DNS:Edit on every zone (default CLOUDFLARE_API_TOKEN).
	MainTokenEnv string
	// Hosts configures the lab hosts (cache, release, apt proxy).
	Hosts labhost.Config
	// PebbleDirs are where the pinned pebble binary is looked for (the
	// setup script installs it in $(go env GOPATH)/bin).
	PebbleDirs []string
	// Profiles are Pebble's certificate profiles (default: Pebble's own).
	Profiles map[string]acmelab.Profile
	// Images are served by the lab registry (hosts pull them as
	// RegistryHost:RegistryPort/<name>:<tag>).
	Images []labreg.Image
	// Binaries, if set, let the registry build any other version of the
	// stand-ins asked for (see ImagesFor), so an inventory changed while
	// the lab runs can name a new tag.
	Binaries *ImageBinaries
	Log      *slog.Logger
}

// Lab is a running lab.
type Lab struct {
	Hosts      *labhost.Lab
	Scaleway   *scwsim.Sim
	Cloudflare *cfsim.Server
	DNS        *labdns.Server
	Pebble     *acmelab.Pebble

	cfg      Config
	scwURL   string
	cfHTTP   *cfsim.HTTPServer
	registry *http.Server
	cancel   context.CancelFunc
	served   chan error
	tokens   map[string]string // env name → token
	keyFile  string
}

// Start brings the whole lab up; on error, what was started is stopped.
func Start(ctx context.Context, cfg Config) (l *Lab, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MainTokenEnv == "" {
		cfg.MainTokenEnv = "CLOUDFLARE_API_TOKEN"
	}
	if cfg.Hosts.Logger == nil {
		cfg.Hosts.Logger = cfg.Log
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("lab state directory: %w", err)
	}
	l = &Lab{cfg: cfg, tokens: map[string]string{}}
	defer func() {
		if err != nil {
			l.Close(context.WithoutCancel(ctx))
		}
	}()
	if l.keyFile, err = operatorKey(cfg.StateDir); err != nil {
		return l, err
	}
	pebbleBin, err := acmelab.FindBinary(cfg.PebbleDirs...)
	if err != nil {
		return l, fmt.Errorf("pebble (install it with scripts/setup.sh): %w", err)
	}

	if l.Hosts, err = labhost.Open(ctx, cfg.Hosts); err != nil {
		return l, fmt.Errorf("open the lab network: %w", err)
	}
	box := l.Hosts.BoxAddr4()
	cfg.Log.Info("lab network up", "name", l.Hosts.Name(), "box4", box, "box6", l.Hosts.BoxAddr6())

	// Cloudflare stand-in, its zones and tokens.
	if l.Cloudflare, err = cfsim.New(cfsim.Options{Logger: cfg.Log, Quota: -1}); err != nil {
		return l, err
	}
	var zoneIDs []string
	for _, z := range cfg.Zones {
		zone, err := l.Cloudflare.AddZone(cfsim.Zone{Name: z.Name, NameServers: []string{"ns1." + z.Name, "ns2." + z.Name}})
		if err != nil {
			return l, fmt.Errorf("lab zone %s: %w", z.Name, err)
		}
		zoneIDs = append(zoneIDs, zone.ID)
		if z.TokenEnv != "" {
			tok, err := l.Cloudflare.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: []string{zone.ID}})
			if err != nil {
				return l, err
			}
			l.tokens[z.TokenEnv] = tok.Value
		}
	}
	main, err := l.Cloudflare.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: zoneIDs})
	if err != nil {
		return l, err
	}
	l.tokens[cfg.MainTokenEnv] = main.Value
	// The registry's name, in a zone of the lab's own.
	regZone, err := l.Cloudflare.AddZone(cfsim.Zone{Name: RegistryZone, NameServers: []string{"ns1." + RegistryZone}})
	if err != nil {
		return l, err
	}
	for typ, addr := range map[string]netip.Addr{"A": box, "AAAA": l.Hosts.BoxAddr6()} {
		if _, err := l.Cloudflare.AddRecord(regZone.ID, cfsim.Record{Name: RegistryHost, Type: typ, Content: addr.String(), TTL: 300}); err != nil {
			return l, fmt.Errorf("registry record: %w", err)
		}
	}
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	if l.cfHTTP, err = l.Cloudflare.Start(srvCtx, netip.AddrPortFrom(box, CloudflarePort).String()); err != nil {
		return l, fmt.Errorf("cloudflare stand-in: %w", err)
	}

	// The authoritative DNS, on the box address: lghsctl, lego, Pebble and
	// the hosts resolve through it.
	if l.DNS, err = labdns.Start(srvCtx, labdns.Config{Addr: netip.AddrPortFrom(box, DNSPort).String(), Source: cfdns.Source(l.Cloudflare)}); err != nil {
		return l, fmt.Errorf("lab DNS: %w", err)
	}

	// Pebble, validating DNS-01 through the lab DNS.
	if l.Pebble, err = acmelab.Start(ctx, acmelab.Config{
		Binary: pebbleBin, Dir: filepath.Join(cfg.StateDir, "pebble"), ListenIP: box,
		ACMEPort: ACMEPort, ManagementPort: PebbleMgmtPort, DNSServer: l.DNS.Addr(),
		Profiles: cfg.Profiles, Logger: cfg.Log,
	}); err != nil {
		return l, fmt.Errorf("pebble: %w", err)
	}

	// The registry, with a CA every host trusts for it.
	reg := labreg.New()
	if b := cfg.Binaries; b != nil {
		reg.Build = func(name, tag string) (*labreg.Image, error) {
			imgs, err := ImagesFor([]string{Registry + name + ":" + tag}, *b)
			if err != nil || len(imgs) == 0 {
				return nil, err
			}
			cfg.Log.Info("lab registry: built on demand", "image", name+":"+tag)
			return &imgs[0], nil
		}
	}
	for _, img := range cfg.Images {
		if _, err := reg.Add(img); err != nil {
			return l, fmt.Errorf("lab image %s:%s: %w", img.Name, img.Tag, err)
		}
	}
	regTLS, err := labreg.NewTLS([]string{RegistryHost}, []netip.Addr{box, l.Hosts.BoxAddr6()})
	if err != nil {
		return l, err
	}
	regLn, err := net.Listen("tcp", netip.AddrPortFrom(box, RegistryPort).String())
	if err != nil {
		return l, fmt.Errorf("lab registry: %w", err)
	}
	l.registry = &http.Server{Handler: reg, TLSConfig: regTLS.Config, ReadHeaderTimeout: 10 * time.Second}
	go l.registry.ServeTLS(regLn, "", "")
	hostFiles := []labhost.File{{Path: fmt.Sprintf("/etc/docker/certs.d/%s:%d/ca.crt", RegistryHost, RegistryPort), Data: regTLS.CAPEM}}

	// Scaleway stand-in whose servers are lab hosts resolving through the
	// lab DNS.
	machines, err := scwsim.NewLabHosts(scwsim.LabHostsConfig{Lab: l.Hosts, Dir: filepath.Join(cfg.StateDir, "layers"), Resolvers: []netip.Addr{box}, Files: hostFiles, Log: cfg.Log})
	if err != nil {
		return l, err
	}
	if l.Scaleway, err = scwsim.New(scwsim.Config{
		SecretKeys: []string{SecretKey},
		Projects:   []scwsim.Project{{ID: ProjectID, OrganizationID: OrganizationID, Name: cfg.ProjectName}},
		Machines:   machines,
		Timings:    scwsim.RealisticTimings(),
		Log:        cfg.Log,
	}); err != nil {
		return l, err
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(box, ScalewayPort).String())
	if err != nil {
		return l, fmt.Errorf("scaleway stand-in: %w", err)
	}
	l.scwURL = "http://" + ln.Addr().String()
	l.served = make(chan error, 1)
	go func() { l.served <- l.Scaleway.Serve(srvCtx, ln) }()
	return l, nil
}

// operatorKey makes (once) the operator's SSH key in the state directory:
// the lab's "admin" key that the inventory registers as a project key.
func operatorKey(dir string) (string, error) {
	path := filepath.Join(dir, "id_ed25519")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "lghsctl lab operator")
	if err != nil {
		return "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " lghsctl-lab-operator\n"
	if err := os.WriteFile(path+".pub", []byte(line), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// Environment is what points lghsctl at the lab, sorted by name.
func (l *Lab) Environment() [][2]string {
	box := l.Hosts.BoxAddr4()
	env := map[string]string{
		"SCW_API_URL":                 l.scwURL,
		"SCW_ACCESS_KEY":              AccessKey,
		"SCW_SECRET_KEY":              SecretKey,
		"SCW_DEFAULT_PROJECT_ID":      ProjectID,
		"SCW_DEFAULT_ORGANIZATION_ID": OrganizationID,
		"SCW_DEFAULT_ZONE":            "fr-par-1",
		// No scw config file: the user's real profile must not mix in.
		"SCW_CONFIG_PATH":        filepath.Join(l.cfg.StateDir, "no-scw-config.yaml"),
		"CLOUDFLARE_BASE_URL":    l.cfHTTP.BaseURL,
		"LGHSCTL_ACME_DIRECTORY": l.Pebble.DirectoryURL,
		"LGHSCTL_ACME_CA_BUNDLE": l.Pebble.BundleFile,
		"LGHSCTL_DNS_RESOLVERS":  netip.AddrPortFrom(box, DNSPort).String(),
		"LGHSCTL_LAB_STATE":      l.cfg.StateDir,
	}
	for k, v := range l.tokens {
		env[k] = v
	}
	var out [][2]string
	for k, v := range env {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// KeyFile is the operator's private key.
func (l *Lab) KeyFile() string { return l.keyFile }

// Close stops everything: the servers (terminated, layers deleted), the
// stand-ins, Pebble, the DNS and the lab network. It reports the first
// error but always goes on.
func (l *Lab) Close(ctx context.Context) error {
	var errs []error
	if l.Scaleway != nil {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		errs = append(errs, l.Scaleway.Teardown(tctx))
		cancel()
	}
	if l.cancel != nil {
		l.cancel()
	}
	if l.served != nil {
		<-l.served
	}
	if l.Scaleway != nil {
		errs = append(errs, l.Scaleway.Close(ctx))
	}
	if l.cfHTTP != nil {
		errs = append(errs, l.cfHTTP.Close())
	}
	if l.registry != nil {
		errs = append(errs, l.registry.Close())
	}
	if l.DNS != nil {
		errs = append(errs, l.DNS.Close())
	}
	if l.Pebble != nil {
		errs = append(errs, l.Pebble.Stop())
	}
	if l.Hosts != nil {
		errs = append(errs, l.Hosts.Close())
	}
	return errors.Join(errs...)
}
