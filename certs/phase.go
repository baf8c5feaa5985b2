package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lghs/lghsctl/hostsetup"
	"github.com/lghs/lghsctl/internal/diff"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

// ReloadHandler is the handler the certificate steps notify when they
// deploy a certificate. It has hostsetup's handler's name, so the steps can
// also run inside host setup's target and use its handler.
const ReloadHandler = "reload nginx"

// Endpoints are the addresses a host uses to reach the CA, the Cloudflare
// API and DNS when they differ from the operator's (in the lab, the box's
// address rather than loopback). Empty fields mean the operator's.
type Endpoints struct {
	DirectoryURL  string
	CloudflareURL string
	Resolvers     []string
}

// PhaseConfig is what the certificate phase needs for one host. The CLI
// builds it: secrets resolved, endpoints with their overrides applied.
type PhaseConfig struct {
	Inventory *inventory.File
	Host      *inventory.Host
	// Settings reach the CA and Cloudflare from the operator's machine.
	Settings Settings
	// HostEndpoints reach them from the host (renewal).
	HostEndpoints Endpoints
	// StateDir is the operator's state directory: the ACME account
	// (acme/<directory>/) and a cache of issued certificates (certs/<site>/),
	// all mode 0600 in 0700 directories.
	StateDir string
	// Tokens maps each zone holding a site name to its DNS-01 token
	// (dns.zones[].acme_token). They are verified before use; the ones
	// copied to the host must reach their one zone only.
	Tokens map[string]inventory.Secret
	// CAA publishes CAA records after issuance; nil means CAA is off.
	CAA CAAPublisher
	// CAAIdentity is the CA's issuer domain in CAA records.
	CAAIdentity string
	// Binary returns the lghsctl binary copied to the host for renewals
	// (a static Linux build: the operator's own executable).
	Binary func() ([]byte, error)
	// Schedule is the renewal timer's OnCalendar (default twice a day).
	Schedule string
	// ProbePort and ProbePath are where Verify checks each site (default
	// 443 and "/"); ProbeWait is how long it retries (default 30 s).
	ProbePort int
	ProbePath string
	ProbeWait time.Duration
	// HostAddrs are the host's public addresses: Verify dials them for the
	// public names that still point at the old server (the inventory's
	// migration to this host is not cut over yet).
	HostAddrs []netip.Addr
}

// Phase is the certificate phase on one host: its steps share what the
// first one gathered.
type Phase struct {
	cfg   PhaseConfig
	s     Settings
	host  hostsetup.Host
	sites []siteCert
	facts *hostsetup.Facts
	// served maps a site to the fullchain.pem deployed on the host.
	served map[string][]byte
	acct   *Account
}

type siteCert struct {
	name  string
	names []string
	zones map[string]string // name → zone
	// appStopped: the inventory holds the site's app stopped (during a
	// data move), so nginx answering 502 is expected.
	appStopped bool
}

// NewPhase prepares the phase for a host. It has nothing to do (Steps is
// empty) when no site of the host uses tls: acme.
func NewPhase(cfg PhaseConfig) (*Phase, error) {
	p := &Phase{cfg: cfg, s: cfg.Settings.withDefaults(), served: map[string][]byte{}}
	if err := p.s.validate(); err != nil {
		return nil, fmt.Errorf("certificates for %s: %w", cfg.Host.Name, err)
	}
	if p.cfg.Schedule == "" {
		p.cfg.Schedule = inventory.DefaultRenewSchedule
	}
	if p.cfg.ProbePath == "" {
		p.cfg.ProbePath = "/"
	}
	if p.cfg.ProbeWait == 0 {
		p.cfg.ProbeWait = 30 * time.Second
	}
	for _, s := range cfg.Host.Sites {
		if s.TLS != "acme" {
			continue
		}
		sc := siteCert{name: s.Name, names: append([]string{s.Name}, s.Aliases...), zones: map[string]string{}}
		if s.App != nil {
			for _, svc := range s.App.Services {
				if svc.Role == "app" && svc.State == "stopped" {
					sc.appStopped = true
				}
			}
		}
		for _, n := range sc.names {
			z := cfg.Inventory.ZoneOf(n)
			if z == "" {
				return nil, fmt.Errorf("certificate %s: %s is in no declared zone", s.Name, n)
			}
			if _, ok := cfg.Tokens[z]; !ok {
				return nil, fmt.Errorf("certificate %s: no DNS-01 token for zone %s", s.Name, z)
			}
			sc.zones[n] = z
		}
		p.sites = append(p.sites, sc)
	}
	return p, nil
}

// Attach sets the host the steps act on (from task.Target.Connect).
func (p *Phase) Attach(h hostsetup.Host) { p.host = h }

// Steps are the phase's steps, in order: gather, one per certificate
// (reuse, or obtain, and deploy), CAA, and the on-host renewal. Each
// certificate step notifies ReloadHandler when it deploys.
//
// Run them before host setup's nginx steps (or as a target before host
// setup): nginx's sites use the certbot paths as soon as the files exist
// when host setup gathers its facts, and the self-signed ones otherwise.
func (p *Phase) Steps() []task.Step {
	if len(p.sites) == 0 {
		return nil
	}
	steps := []task.Step{{Name: "certificates: facts", Run: p.gather}}
	for _, sc := range p.sites {
		steps = append(steps, task.Step{Name: "certificate " + sc.name, Run: p.certificateStep(sc), Notify: []string{ReloadHandler}})
	}
	if p.cfg.CAA != nil {
		steps = append(steps, task.Step{Name: "certificates: CAA", Run: p.caaStep})
	}
	steps = append(steps, task.Step{Name: "certificates: renewal on the host", Run: p.renewalStep})
	return steps
}

// Handlers is the phase's own ReloadHandler, for a target of its own: it
// reloads nginx only when it runs (on a fresh host, host setup installs
// and configures it afterwards).
func (p *Phase) Handlers() []task.Step {
	return []task.Step{{Name: ReloadHandler, Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		if env.Check {
			return task.Changedf("would reload nginx if it runs"), nil
		}
		out, err := p.host.Run(ctx, "systemctl is-active nginx.service || true", nil)
		if err != nil {
			return task.Result{}, fmt.Errorf("reload nginx: %w", err)
		}
		if strings.TrimSpace(string(out)) != "active" {
			return task.Skipf("nginx is not running yet"), nil
		}
		// Host setup's reload: it returns once nginx serves the new
		// certificates, so the HTTPS check that follows sees them.
		if _, err := p.host.Run(ctx, hostsetup.ReloadNginxScript, nil); err != nil {
			return task.Result{}, fmt.Errorf("reload nginx: %w", err)
		}
		return task.Changedf("reloaded nginx"), nil
	}}}
}

// Target is the phase as a target of its own; connect must dial the host
// and call Attach.
func (p *Phase) Target(connect func(ctx context.Context) error, close func()) task.Target {
	return task.Target{Name: p.cfg.Host.Name, Connect: connect, Steps: p.Steps(), Handlers: p.Handlers(), Close: close}
}

func (p *Phase) livePaths(site string) (chain, key string) {
	dir := hostsetup.LiveDir(site)
	return dir + "/fullchain.pem", dir + "/privkey.pem"
}

func (p *Phase) gather(ctx context.Context, env task.Env) (task.Result, error) {
	req := hostsetup.FactsRequest{Units: []string{RenewUnit + ".timer", "nginx.service"}}
	req.Paths = append(req.Paths, LiveRoot, HostConfigDir, HostTokenDir, HostAccountKey, HostCABundle, HostRenewConfig,
		HostStateDir, filepath.Dir(HostBinary), HostBinary, unitPath(".service"), unitPath(".timer"))
	for _, sc := range p.sites {
		c, k := p.livePaths(sc.name)
		req.Paths = append(req.Paths, hostsetup.LiveDir(sc.name), c, k)
		for _, z := range sc.zones {
			req.Paths = append(req.Paths, HostTokenFile(z))
		}
	}
	f, err := hostsetup.Gather(ctx, p.host, req)
	if err != nil {
		return task.Result{}, err
	}
	p.facts = f
	for _, sc := range p.sites {
		c, _ := p.livePaths(sc.name)
		if f.Path(c).Type != "file" {
			continue
		}
		b, err := p.host.ReadFile(ctx, c)
		if err != nil {
			return task.Result{}, fmt.Errorf("read %s: %w", c, err)
		}
		p.served[sc.name] = b
	}
	return task.Unchanged(), nil
}

// account returns the ACME account, registering it unless in check mode
// (then it may be nil).
func (p *Phase) account(ctx context.Context, check bool) (*Account, error) {
	if p.acct != nil {
		return p.acct, nil
	}
	if check {
		a, err := PeekAccount(p.cfg.StateDir, p.s)
		if err != nil || a == nil {
			return nil, err
		}
		p.acct = a
		return a, nil
	}
	a, err := OpenAccount(ctx, p.cfg.StateDir, p.s)
	if err != nil {
		return nil, err
	}
	p.acct = a
	return a, nil
}

// candidate is a certificate that could serve a site.
type candidate struct {
	from   string // "host" or "cache"
	bundle Bundle
	leaf   *x509.Certificate
	due    bool
	why    string
}

func (p *Phase) certificateStep(sc siteCert) func(context.Context, task.Env) (task.Result, error) {
	return func(ctx context.Context, env task.Env) (task.Result, error) {
		chainPath, keyPath := p.livePaths(sc.name)
		roots := p.s.Roots()
		now := p.s.Now()
		acct, err := p.account(ctx, env.Check)
		if err != nil {
			return task.Result{}, err
		}
		usable := func(from string, b Bundle) *candidate {
			if len(b.Chain) == 0 {
				return nil
			}
			leaf, err := checkChain(b.Chain, sc.names, roots, now)
			if err != nil || !sameNames(leaf, sc.names) {
				env.Log.Debug("certificate not usable", "site", sc.name, "from", from, "err", err)
				return nil
			}
			c := &candidate{from: from, bundle: b, leaf: leaf}
			c.due, c.why = Due(ctx, p.s, acct, leaf)
			return c
		}
		host := usable("host", Bundle{Chain: p.served[sc.name]})
		if host != nil && p.facts.Path(keyPath).Type != "file" {
			host = nil
		}
		if host != nil && !host.due {
			// The key must not be readable by others, whoever wrote it.
			kf := p.facts.Path(keyPath)
			if fs.FileMode(kf.Mode).Perm() != 0o600 || kf.Owner != "root" {
				if !env.Check {
					if _, err := p.host.Run(ctx, "chown root:root "+shq(keyPath)+" && chmod 0600 "+shq(keyPath), nil); err != nil {
						return task.Result{}, fmt.Errorf("protect %s: %w", keyPath, err)
					}
				}
				return task.Changedf("%s was mode %04o %s: now 0600 root", keyPath, kf.Mode, kf.Owner), nil
			}
			return task.Result{Message: fmt.Sprintf("serial %s, %s", serialHex(host.leaf), host.why)}, nil
		}
		cached, cerr := p.readCache(sc.name)
		if cerr != nil {
			env.Log.Warn("certificate cache unreadable", "site", sc.name, "err", cerr)
		}
		cache := usable("cache", cached)
		if cache != nil && checkPair(cache.bundle) != nil {
			cache = nil
		}
		var use *candidate
		var msg string
		switch {
		case cache != nil && !cache.due && (host == nil || cache.leaf.NotAfter.After(host.leaf.NotAfter)):
			use, msg = cache, fmt.Sprintf("deployed serial %s (issued earlier, %s)", serialHex(cache.leaf), cache.why)
		case env.Check:
			why := "none deployed"
			if host != nil {
				why = host.why
			} else if len(p.served[sc.name]) > 0 {
				why = "the deployed one is not valid for " + strings.Join(sc.names, ", ")
			}
			return task.Changedf("would obtain a certificate for %s (%s)", strings.Join(sc.names, ", "), why), nil
		default:
			o := Order{Names: sc.names, ZoneOf: func(n string) string { return sc.zones[n] }, Tokens: map[string]inventory.Secret{}}
			for _, z := range sc.zones {
				if _, done := o.Tokens[z]; done {
					continue
				}
				if _, err := VerifyToken(ctx, p.s, p.cfg.Tokens[z], z); err != nil {
					return task.Result{}, err
				}
				o.Tokens[z] = p.cfg.Tokens[z]
			}
			why := "none deployed"
			switch {
			case host != nil:
				o.Replaces, why = host.leaf, host.why
			case cache != nil:
				o.Replaces, why = cache.leaf, cache.why
			}
			caaNote := ""
			if p.cfg.CAA != nil && (len(p.served[sc.name]) > 0 || len(cached.Chain) > 0) {
				// Not the first issuance: CAA records may pin another
				// account (the operator's state was lost and a new account
				// registered), and the CA would refuse this order. Pin
				// this account first.
				changes, err := p.ensureCAA(ctx, sc.names, acct, false)
				if err != nil {
					return task.Result{}, err
				}
				if len(changes) > 0 {
					caaNote = fmt.Sprintf("; CAA records updated first: %s", strings.Join(changes, "; "))
				}
			}
			b, err := Obtain(ctx, p.s, acct, o)
			if err != nil {
				return task.Result{}, err
			}
			if err := p.writeCache(sc.name, b); err != nil {
				return task.Result{}, err
			}
			leaf, _ := checkChain(b.Chain, sc.names, roots, now)
			use = &candidate{from: "new", bundle: b, leaf: leaf}
			msg = fmt.Sprintf("obtained serial %s for %s, valid until %s (%s)%s", serialHex(leaf), strings.Join(sc.names, ", "), leaf.NotAfter.UTC().Format(time.RFC3339), why, caaNote)
		}
		res := task.Changedf("%s", msg)
		if env.Diff {
			res.Diff = chainDiff(chainPath, p.served[sc.name], use.bundle.Chain) +
				fmt.Sprintf("--- %s\n+++ %s\n(content hidden: secret)\n", keyPath, keyPath)
		}
		if env.Check {
			return res, nil
		}
		dir := hostsetup.LiveDir(sc.name)
		if _, err := p.host.Run(ctx, "mkdir -p "+shq(dir)+" && chmod 0755 "+shq(LiveRoot)+" "+shq(dir), nil); err != nil {
			return task.Result{}, fmt.Errorf("create %s: %w", dir, err)
		}
		if err := p.host.WriteFile(ctx, keyPath, use.bundle.Key.Bytes(), 0o600, "root", "root"); err != nil {
			return task.Result{}, fmt.Errorf("write %s: %w", keyPath, err)
		}
		if err := p.host.WriteFile(ctx, chainPath, use.bundle.Chain, 0o644, "root", "root"); err != nil {
			return task.Result{}, fmt.Errorf("write %s: %w", chainPath, err)
		}
		p.served[sc.name] = use.bundle.Chain
		p.facts.Paths[keyPath] = hostsetup.PathFact{Type: "file", Mode: 0o600, Owner: "root", Group: "root", SHA256: digest(use.bundle.Key.Bytes())}
		p.facts.Paths[chainPath] = hostsetup.PathFact{Type: "file", Mode: 0o644, Owner: "root", Group: "root", SHA256: digest(use.bundle.Chain)}
		return res, nil
	}
}

// The operator's cache of issued certificates: a certificate obtained but
// not deployed (the host was unreachable) is not requested again.
func (p *Phase) cacheDir(site string) string { return filepath.Join(p.cfg.StateDir, "certs", site) }

func (p *Phase) readCache(site string) (Bundle, error) {
	dir := p.cacheDir(site)
	chain, err := os.ReadFile(filepath.Join(dir, "fullchain.pem"))
	if isNotExist(err) {
		return Bundle{}, nil
	}
	if err != nil {
		return Bundle{}, err
	}
	key, err := readSecretFile(filepath.Join(dir, "privkey.pem"))
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{Chain: chain, Key: KeyPEM(key)}, nil
}

func (p *Phase) writeCache(site string, b Bundle) error {
	dir := p.cacheDir(site)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cache certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "privkey.pem"), b.Key.Bytes(), 0o600); err != nil {
		return fmt.Errorf("cache certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "fullchain.pem"), b.Chain, 0o600); err != nil {
		return fmt.Errorf("cache certificate: %w", err)
	}
	return nil
}

func (p *Phase) caaStep(ctx context.Context, env task.Env) (task.Result, error) {
	acct, err := p.account(ctx, env.Check)
	if err != nil {
		return task.Result{}, err
	}
	if acct == nil {
		return task.Changedf("would publish CAA records for %s once the ACME account is registered", strings.Join(p.allNames(), ", ")), nil
	}
	changes, err := p.ensureCAA(ctx, p.allNames(), acct, env.Check)
	if err != nil {
		return task.Result{}, err
	}
	if len(changes) == 0 {
		return task.Result{Message: fmt.Sprintf("issuance pinned to %s, account %s, dns-01", p.cfg.CAAIdentity, acct.URI)}, nil
	}
	res := task.Changedf("%d CAA record changes at %s (issue %s, account %s, dns-01; issuewild none)", len(changes), strings.Join(p.allNames(), ", "), p.cfg.CAAIdentity, acct.URI)
	res.Diff = strings.Join(changes, "\n") + "\n"
	return res, nil
}

// chainDiff describes a certificate change by what matters (PEM diffs
// say nothing to a reader).
func chainDiff(path string, old, new []byte) string {
	describe := func(b []byte) string {
		if len(b) == 0 {
			return "(none)"
		}
		info, _, err := Inspect(b)
		if err != nil {
			return "(unreadable: " + err.Error() + ")"
		}
		return fmt.Sprintf("serial %s, %s, issuer %q, until %s", info.Serial, strings.Join(info.Names, " "), info.Issuer, info.NotAfter.Format(time.RFC3339))
	}
	return fmt.Sprintf("--- %s\n+++ %s\n-%s\n+%s\n", path, path, describe(old), describe(new))
}

// ensureCAA pins names to the CA, the account and DNS-01.
func (p *Phase) ensureCAA(ctx context.Context, names []string, acct *Account, check bool) ([]string, error) {
	recs := CAARecords(p.cfg.CAAIdentity, acct.URI)
	var changes []string
	for _, n := range names {
		c, err := p.cfg.CAA.EnsureCAA(ctx, n, recs, check)
		if err != nil {
			return changes, err
		}
		changes = append(changes, c...)
	}
	return changes, nil
}

func (p *Phase) allNames() []string {
	var out []string
	for _, sc := range p.sites {
		for _, n := range sc.names {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// hostFile is a file of the renewal installation.
type hostFile struct {
	path    string
	content []byte
	mode    fs.FileMode
	secret  bool
}

type remoteDir struct {
	path string
	mode fs.FileMode
}

// RenewConfigFor is the renew.json the phase installs on the host.
func (p *Phase) RenewConfigFor(acct *Account) RenewConfig {
	ep := p.cfg.HostEndpoints
	rc := RenewConfig{
		Directory:     or(ep.DirectoryURL, p.s.DirectoryURL),
		Email:         p.s.Email,
		AccountKey:    HostAccountKey,
		AccountURI:    acct.URI,
		KeyType:       p.s.KeyType,
		RenewBefore:   p.s.RenewBefore.String(),
		Resolvers:     ep.Resolvers,
		CloudflareURL: or(ep.CloudflareURL, p.s.CloudflareURL),
		Tokens:        map[string]string{},
	}
	if len(rc.Resolvers) == 0 {
		rc.Resolvers = p.s.Resolvers
	}
	if len(p.s.CABundle) > 0 {
		rc.CABundle = HostCABundle
	}
	for _, sc := range p.sites {
		rc.Certificates = append(rc.Certificates, RenewCertificate{Name: sc.name, Names: sc.names, Zones: sc.zones, Addrs: p.pinned(sc.names)})
		for _, z := range sc.zones {
			rc.Tokens[z] = HostTokenFile(z)
		}
	}
	return rc
}

func unitPath(suffix string) string { return "/etc/systemd/system/" + RenewUnit + suffix }

func (p *Phase) renewalFiles(ctx context.Context, acct *Account) ([]remoteDir, []hostFile, error) {
	dirs := []remoteDir{{filepath.Dir(HostBinary), 0o755}, {HostConfigDir, 0o700}, {HostTokenDir, 0o700}, {HostStateDir, 0o755}}
	bin, err := p.cfg.Binary()
	if err != nil {
		return nil, nil, fmt.Errorf("read the lghsctl binary to copy: %w", err)
	}
	rc, err := json.MarshalIndent(p.RenewConfigFor(acct), "", "  ")
	if err != nil {
		return nil, nil, err
	}
	files := []hostFile{
		{path: HostBinary, content: bin, mode: 0o755},
		{path: HostAccountKey, content: acct.Key.Bytes(), mode: 0o600, secret: true},
		{path: HostRenewConfig, content: append(rc, '\n'), mode: 0o644},
		{path: unitPath(".service"), content: []byte(serviceUnit()), mode: 0o644},
		{path: unitPath(".timer"), content: []byte(timerUnit(p.cfg.Schedule)), mode: 0o644},
	}
	if len(p.s.CABundle) > 0 {
		files = append(files, hostFile{path: HostCABundle, content: p.s.CABundle, mode: 0o644})
	}
	zones := map[string]bool{}
	for _, sc := range p.sites {
		for _, z := range sc.zones {
			zones[z] = true
		}
	}
	for _, z := range sortedKeys(zones) {
		files = append(files, hostFile{path: HostTokenFile(z), content: []byte(p.cfg.Tokens[z].Reveal() + "\n"), mode: 0o600, secret: true})
	}
	return dirs, files, nil
}

func (p *Phase) renewalStep(ctx context.Context, env task.Env) (task.Result, error) {
	acct, err := p.account(ctx, env.Check)
	if err != nil {
		return task.Result{}, err
	}
	if acct == nil {
		return task.Changedf("would install the renewal (%s.timer) once the ACME account is registered", RenewUnit), nil
	}
	dirs, files, err := p.renewalFiles(ctx, acct)
	if err != nil {
		return task.Result{}, err
	}
	var changed []string
	var diffs bytes.Buffer
	for _, d := range dirs {
		f := p.facts.Path(d.path)
		if f.Type == "dir" && fs.FileMode(f.Mode).Perm() == d.mode && f.Owner == "root" {
			continue
		}
		changed = append(changed, d.path+"/")
		if !env.Check {
			cmd := fmt.Sprintf("mkdir -p %s && chown root:root %s && chmod %04o %s", shq(d.path), shq(d.path), d.mode, shq(d.path))
			if _, err := p.host.Run(ctx, cmd, nil); err != nil {
				return task.Result{}, fmt.Errorf("create %s: %w", d.path, err)
			}
			p.facts.Paths[d.path] = hostsetup.PathFact{Type: "dir", Mode: uint32(d.mode), Owner: "root", Group: "root"}
		}
	}
	tokensChecked := map[string]bool{}
	unitsChanged := false
	for _, f := range files {
		fact := p.facts.Path(f.path)
		if fact.Type == "file" && fact.SHA256 == digest(f.content) && fs.FileMode(fact.Mode).Perm() == f.mode && fact.Owner == "root" && fact.Group == "root" {
			continue
		}
		if f.path == HostBinary {
			if err := p.checkBinary(ctx, f.content); err != nil {
				return task.Result{}, err
			}
		}
		if zone, ok := tokenZone(f.path); ok && !tokensChecked[zone] {
			// Only a token limited to its zone goes on a server.
			scope, err := VerifyToken(ctx, p.s, p.cfg.Tokens[zone], zone)
			if err != nil {
				return task.Result{}, err
			}
			if !scope.OneZone() {
				return task.Result{}, fmt.Errorf("the DNS-01 token of %s reaches %d zones (%s): the token copied to %s must be limited to %s (Zone:Read and DNS:Edit on that zone only; set dns.zones[].acme_token)",
					zone, len(scope.Zones), strings.Join(scope.Zones, ", "), p.cfg.Host.Name, zone)
			}
			tokensChecked[zone] = true
		}
		changed = append(changed, f.path)
		if strings.HasPrefix(f.path, "/etc/systemd/") {
			unitsChanged = true
		}
		if env.Diff {
			switch {
			case f.secret:
				fmt.Fprintf(&diffs, "--- %s\n+++ %s\n(content hidden: secret)\n", f.path, f.path)
			case f.path == HostBinary:
				fmt.Fprintf(&diffs, "--- %s\n+++ %s\n(binary, %d bytes, sha256 %s)\n", f.path, f.path, len(f.content), digest(f.content))
			default:
				var old []byte
				if fact.Type == "file" {
					old, _ = p.host.ReadFile(ctx, f.path)
				}
				diffs.WriteString(diff.Unified(f.path, f.path, string(old), string(f.content)))
			}
		}
		if env.Check {
			continue
		}
		if err := p.host.WriteFile(ctx, f.path, f.content, f.mode, "root", "root"); err != nil {
			return task.Result{}, fmt.Errorf("write %s: %w", f.path, err)
		}
		if f.path == HostBinary {
			if _, err := p.host.Run(ctx, HostBinary+" version", nil); err != nil {
				return task.Result{}, fmt.Errorf("the lghsctl copied to %s does not run there: %w", HostBinary, err)
			}
		}
		p.facts.Paths[f.path] = hostsetup.PathFact{Type: "file", Mode: uint32(f.mode), Owner: "root", Group: "root", SHA256: digest(f.content)}
	}
	timer := p.facts.Units[RenewUnit+".timer"]
	var cmds []string
	if unitsChanged {
		cmds = append(cmds, "systemctl daemon-reload")
	}
	if timer.Enabled != "enabled" || timer.Active != "active" || unitsChanged {
		cmds = append(cmds, "systemctl enable "+RenewUnit+".timer", "systemctl restart "+RenewUnit+".timer")
		if timer.Enabled != "enabled" || timer.Active != "active" {
			changed = append(changed, RenewUnit+".timer enabled and started")
		}
	}
	if len(changed) == 0 {
		return task.Result{Message: fmt.Sprintf("%s.timer active (%s)", RenewUnit, p.cfg.Schedule)}, nil
	}
	if !env.Check && len(cmds) > 0 {
		if _, err := p.host.Run(ctx, strings.Join(cmds, " && "), nil); err != nil {
			return task.Result{}, fmt.Errorf("start %s.timer: %w", RenewUnit, err)
		}
		p.facts.Units[RenewUnit+".timer"] = hostsetup.UnitFact{Enabled: "enabled", Active: "active"}
	}
	res := task.Changedf("%s", strings.Join(changed, ", "))
	res.Diff = diffs.String()
	return res, nil
}

// checkBinary refuses a binary the host cannot run: not Linux ELF, another
// architecture, or dynamically linked (a cgo build may need a newer C
// library than the host's). The Makefile builds a static one
// (CGO_ENABLED=0).
func (p *Phase) checkBinary(ctx context.Context, b []byte) error {
	out, err := p.host.Run(ctx, "uname -m", nil)
	if err != nil {
		return fmt.Errorf("host architecture: %w", err)
	}
	arch := strings.TrimSpace(string(out))
	if err := checkELF(b, arch); err != nil {
		return fmt.Errorf("cannot install the renewal on %s: the lghsctl binary to copy %w; build one with CGO_ENABLED=0 GOOS=linux GOARCH=%s (make build) and run it, or name it in LGHSCTL_HOST_BINARY",
			p.cfg.Host.Name, err, goArch(arch))
	}
	return nil
}

var elfMachines = map[string]elf.Machine{"x86_64": elf.EM_X86_64, "aarch64": elf.EM_AARCH64, "armv7l": elf.EM_ARM, "riscv64": elf.EM_RISCV, "i686": elf.EM_386}

func checkELF(b []byte, arch string) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("is not a Linux executable")
	}
	defer f.Close()
	if want, ok := elfMachines[arch]; ok && f.Machine != want {
		return fmt.Errorf("is for %s, the host is %s", f.Machine, arch)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("is dynamically linked")
		}
	}
	return nil
}

func goArch(uname string) string {
	switch uname {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	case "armv7l":
		return "arm"
	case "i686":
		return "386"
	}
	return uname
}

func tokenZone(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, HostTokenDir+"/")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, ".token")
}

func serviceUnit() string {
	return `# Managed by lghsctl: renews the TLS certificates of this host.
[Unit]
Description=Renew the TLS certificates lghsctl manages
Documentation=https://github.com/lghs/lghsctl/blob/main/docs/certs.md
Wants=network-online.target
After=network-online.target nginx.service

[Service]
Type=oneshot
ExecStart=` + HostBinary + ` certs renew --config ` + HostRenewConfig + `
UMask=0077
PrivateTmp=yes
NoNewPrivileges=yes
ProtectHome=yes
ProtectSystem=full
ReadWritePaths=-/etc/letsencrypt ` + HostStateDir + `
TimeoutStartSec=15min
`
}

func timerUnit(schedule string) string {
	return `# Managed by lghsctl: when to check the TLS certificates for renewal.
[Unit]
Description=Check the TLS certificates lghsctl manages for renewal

[Timer]
OnCalendar=` + schedule + `
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
`
}

// beforeCutover maps the host's public names awaiting migrate cutover (the
// inventory migrates to this host; the name may still point at the old
// server) to the host's own addresses.
func (p *Phase) beforeCutover() map[string][]netip.Addr {
	m := p.cfg.Inventory.Migrate
	if m == nil || m.To != p.cfg.Host.Name || len(p.cfg.HostAddrs) == 0 {
		return nil
	}
	out := map[string][]netip.Addr{}
	for _, n := range p.cfg.Host.DNS {
		if n.Role == "public" {
			out[n.Name] = p.cfg.HostAddrs
		}
	}
	return out
}

// pinned is beforeCutover for names (nil when none awaits cutover).
func (p *Phase) pinned(names []string) map[string][]netip.Addr {
	var out map[string][]netip.Addr
	for n, addrs := range p.beforeCutover() {
		if slices.Contains(names, n) {
			if out == nil {
				out = map[string][]netip.Addr{}
			}
			out[n] = addrs
		}
	}
	return out
}

// Verify is the step that ends `up`: an HTTPS request to each site name,
// resolved through the configured resolvers, on each IPv4 and IPv6
// address, must complete with the chain verified against the trust pool
// (the CA's roots) and reach the site's application (nginx answering 502
// or 504 means it could not). Run it after host setup.
func (p *Phase) Verify() task.Step {
	return task.Step{Name: "certificates: HTTPS", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		if len(p.sites) == 0 {
			return task.Skipf("no ACME site"), nil
		}
		if env.Check {
			return task.Skipf("check mode: nothing is served yet"), nil
		}
		// nginx opens its sockets and starts new workers just after a
		// reload returns, and an application may still be starting: retry
		// for a while before calling it a failure.
		deadline := time.Now().Add(p.cfg.ProbeWait)
		for {
			var ok, bad []string
			for _, sc := range p.sites {
				served := CheckServed(ctx, Probe{Names: sc.names, Port: p.cfg.ProbePort, Roots: p.s.Roots(), Resolvers: p.s.Resolvers, Path: p.cfg.ProbePath, Addrs: p.beforeCutover()})
				for _, sv := range served {
					switch {
					case sv.Err != nil:
						bad = append(bad, sv.String())
					case (sv.Status == 502 || sv.Status == 504) && sc.appStopped:
						ok = append(ok, fmt.Sprintf("%s %s HTTP %d serial %s (the app is held stopped)", sv.Name, sv.Addr, sv.Status, sv.Cert.Serial))
					case sv.Status == 502 || sv.Status == 504:
						bad = append(bad, fmt.Sprintf("%s: nginx could not reach the application", sv))
					default:
						ok = append(ok, fmt.Sprintf("%s %s HTTP %d serial %s", sv.Name, sv.Addr, sv.Status, sv.Cert.Serial))
					}
				}
			}
			if len(bad) == 0 {
				return task.Result{Message: strings.Join(ok, "; ")}, nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return task.Result{}, fmt.Errorf("HTTPS check failed: %s", strings.Join(bad, "; "))
			}
			env.Log.Debug("HTTPS check: retrying", "problems", bad)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// shq quotes s for /bin/sh.
func shq(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
