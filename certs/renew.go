package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lghs/lghsctl/inventory"
)

// Where the renewal lives on a host.
const (
	HostBinary      = "/usr/local/lib/lghsctl/lghsctl"
	HostConfigDir   = "/etc/lghsctl/certs"
	HostRenewConfig = HostConfigDir + "/renew.json"
	HostAccountKey  = HostConfigDir + "/account.key"
	HostCABundle    = HostConfigDir + "/ca-bundle.pem"
	HostTokenDir    = HostConfigDir + "/tokens"
	HostStateDir    = "/var/lib/lghsctl/certs"
	HostStateFile   = HostStateDir + "/state.json"
	// LiveRoot is certbot's live directory, which nginx reads.
	LiveRoot = "/etc/letsencrypt/live"
	// RenewUnit is the systemd service (and, with .timer, timer) that
	// renews on the host.
	RenewUnit = "lghsctl-certs-renew"
	// DefaultReload tests nginx's configuration, then reloads it.
	DefaultReload = "nginx -t -q && systemctl reload nginx.service"
)

// HostTokenFile is where a zone's DNS-01 token is kept on a host.
func HostTokenFile(zone string) string { return HostTokenDir + "/" + zone + ".token" }

// RenewConfig is the host's renewal configuration (renew.json). It holds
// no secret: it names the files that do (mode 0600), and Renew refuses
// them if others can read them.
type RenewConfig struct {
	// Directory is the ACME directory URL; CABundle an optional PEM file of
	// extra roots (for the directory's HTTPS and the issued chains).
	Directory string `json:"directory"`
	CABundle  string `json:"ca_bundle,omitempty"`
	Email     string `json:"email"`
	// AccountKey is the ACME account's key file; AccountURI its
	// registration (pinned by the CAA records).
	AccountKey string `json:"account_key"`
	AccountURI string `json:"account_uri"`
	KeyType    string `json:"key_type"`
	// RenewBefore is a Go duration ("720h0m0s").
	RenewBefore string `json:"renew_before"`
	// Resolvers check challenge propagation and resolve the names for the
	// post-renewal check ("host:port"); empty means the system's.
	Resolvers     []string `json:"resolvers,omitempty"`
	CloudflareURL string   `json:"cloudflare_url"`
	// Tokens maps each zone to its token file.
	Tokens map[string]string `json:"tokens"`
	// LiveRoot (default LiveRoot) holds <name>/fullchain.pem and privkey.pem.
	LiveRoot string `json:"live_root,omitempty"`
	// StateFile (default HostStateFile) records each run's results.
	StateFile string `json:"state_file,omitempty"`
	// Reload is the shell command run after a renewal (default DefaultReload).
	Reload string `json:"reload,omitempty"`
	// VerifyPort is where the served certificate is checked (default 443).
	VerifyPort   int                `json:"verify_port,omitempty"`
	Certificates []RenewCertificate `json:"certificates"`
}

// RenewCertificate is one certificate a host renews.
type RenewCertificate struct {
	// Name is the certificate's name (the site; its live directory).
	Name string `json:"name"`
	// Names are its DNS names, each mapped to its zone.
	Names []string          `json:"names"`
	Zones map[string]string `json:"zones"`
	// Addrs are, for some names, the addresses to check what is served
	// on instead of what DNS answers: this host's own, for a public name
	// that may still point at the old server before migrate cutover.
	Addrs map[string][]netip.Addr `json:"addrs,omitempty"`
}

// LoadRenewConfig reads and checks a renew.json.
func LoadRenewConfig(path string) (RenewConfig, error) {
	var c RenewConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read renewal configuration: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("read renewal configuration %s: %w", path, err)
	}
	return c, c.check()
}

func (c *RenewConfig) check() error {
	var missing []string
	for what, v := range map[string]string{"directory": c.Directory, "account_key": c.AccountKey, "account_uri": c.AccountURI} {
		if v == "" {
			missing = append(missing, what)
		}
	}
	if len(c.Certificates) == 0 {
		missing = append(missing, "certificates")
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		return fmt.Errorf("renewal configuration: missing %s", strings.Join(missing, ", "))
	}
	if c.RenewBefore != "" {
		if _, err := time.ParseDuration(c.RenewBefore); err != nil {
			return fmt.Errorf("renewal configuration: renew_before: %w", err)
		}
	}
	for _, cert := range c.Certificates {
		for _, n := range cert.Names {
			z := cert.Zones[n]
			if z == "" || c.Tokens[z] == "" {
				return fmt.Errorf("renewal configuration: %s: no zone or token for %s", cert.Name, n)
			}
		}
	}
	return nil
}

func (c RenewConfig) liveRoot() string  { return or(c.LiveRoot, LiveRoot) }
func (c RenewConfig) stateFile() string { return or(c.StateFile, HostStateFile) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// State is what the last renewal run found and did, kept in the state
// file for `lghsctl certs status`.
type State struct {
	// Finished is when the run ended; OK whether everything succeeded.
	Finished     time.Time   `json:"finished"`
	OK           bool        `json:"ok"`
	Certificates []CertState `json:"certificates"`
}

// CertState is one certificate's outcome.
type CertState struct {
	Name string `json:"name"`
	// Cert is the deployed certificate after the run.
	Cert Info `json:"cert"`
	// Result is "valid" (not due), "renewed" or "failed".
	Result string `json:"result"`
	// Detail says why it was (not) renewed, or what failed.
	Detail string `json:"detail,omitempty"`
	// Served is what each address served after the run.
	Served []string `json:"served,omitempty"`
	// LastRenewed is the last successful renewal on the host.
	LastRenewed time.Time `json:"last_renewed,omitzero"`
}

// Results of a certificate in a renewal run.
const (
	ResultValid   = "valid"
	ResultRenewed = "renewed"
	ResultFailed  = "failed"
)

// RenewOptions are Renew's knobs besides the configuration.
type RenewOptions struct {
	// Force renews every certificate, due or not.
	Force bool
	// Out receives one line per event (the journal, under systemd).
	Out io.Writer
	Log *slog.Logger
	// Now is the clock.
	Now func() time.Time
	// VerifyTimeout bounds the wait for the served certificate to be the
	// deployed one after a reload (default 20 s).
	VerifyTimeout time.Duration
}

// ErrRenewFailed is returned by Renew when a certificate could not be
// renewed or is not served as deployed; the state file and the output say
// which and why.
var ErrRenewFailed = errors.New("certificate renewal failed")

// Renew is the host's renewal run. For each certificate it reads the
// deployed one; when it is due (RenewBefore, or the CA's renewal info), it
// verifies the zone tokens, obtains a new certificate with the account,
// writes it (key 0600) over the live files, and, once all are written, runs
// the reload command (restoring the previous files if that fails). It then
// checks that every address of every name serves the deployed certificate
// (serial and expiry). It records the outcome in the state file and
// returns ErrRenewFailed when anything failed; a failed certificate's live
// files are left as they were, so nginx keeps serving it.
func Renew(ctx context.Context, cfg RenewConfig, o RenewOptions) (State, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = 20 * time.Second
	}
	if err := cfg.check(); err != nil {
		return State{}, err
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, format+"\n", args...) }

	if err := os.MkdirAll(filepath.Dir(cfg.stateFile()), 0o755); err != nil {
		return State{}, fmt.Errorf("renew: %w", err)
	}
	unlock, err := lockFile(cfg.stateFile() + ".lock")
	if err != nil {
		return State{}, fmt.Errorf("renew: %w", err)
	}
	defer unlock()
	prev := readState(cfg.stateFile())

	s, acct, err := cfg.settings(o)
	if err != nil {
		return State{}, err
	}
	tokens := map[string]inventory.Secret{}
	tokenErr := map[string]error{}
	for zone, file := range cfg.Tokens {
		b, err := readSecretFile(file)
		if err != nil {
			tokenErr[zone] = fmt.Errorf("token for %s: %w", zone, err)
			continue
		}
		tokens[zone] = inventory.Secret(strings.TrimSpace(string(b)))
	}
	verified := map[string]error{}
	verify := func(zone string) error {
		if err, done := verified[zone]; done {
			return err
		}
		err := tokenErr[zone]
		if err == nil {
			var scope TokenScope
			scope, err = VerifyToken(ctx, s, tokens[zone], zone)
			if err == nil && !scope.OneZone() {
				say("warning: the token for %s reaches %d zones (%s); Cloudflare recommends one zone per token", zone, len(scope.Zones), strings.Join(scope.Zones, ", "))
			}
		}
		verified[zone] = err
		return err
	}

	state := State{OK: true}
	type written struct {
		name     string
		old      Bundle
		hadOld   bool
		newBndl  Bundle
		newInfo  Info
		stateIdx int
	}
	var renewed []written
	for _, c := range cfg.Certificates {
		cs := CertState{Name: c.Name, LastRenewed: prev.lastRenewed(c.Name)}
		dir := filepath.Join(cfg.liveRoot(), c.Name)
		chain, chainErr := os.ReadFile(filepath.Join(dir, "fullchain.pem"))
		var oldKey []byte
		var leafOK bool
		var due bool
		var why string
		if chainErr == nil {
			info, leaf, err := Inspect(chain)
			if err == nil {
				cs.Cert = info
				leafOK = true
				switch {
				case o.Force:
					due, why = true, "renewal forced"
				case !sameNames(leaf, c.Names):
					due, why = true, fmt.Sprintf("names changed (%s → %s)", strings.Join(info.Names, ", "), strings.Join(c.Names, ", "))
				default:
					due, why = Due(ctx, s, acct, leaf)
				}
				if due {
					oldKey, _ = os.ReadFile(filepath.Join(dir, "privkey.pem"))
				}
			} else {
				due, why = true, "deployed certificate unreadable: "+err.Error()
			}
		} else {
			due, why = true, "no certificate deployed"
		}
		if !due {
			cs.Result, cs.Detail = ResultValid, why
			say("%s: not due: %s", c.Name, why)
			state.Certificates = append(state.Certificates, cs)
			continue
		}
		say("%s: renewing: %s", c.Name, why)
		b, err := renewOne(ctx, s, acct, c, tokens, verify, chain, leafOK)
		if err != nil {
			cs.Result, cs.Detail = ResultFailed, err.Error()
			state.OK = false
			say("%s: FAILED: %v (the deployed certificate stays in place)", c.Name, err)
			state.Certificates = append(state.Certificates, cs)
			continue
		}
		info, _, _ := Inspect(b.Chain)
		if err := writeLive(dir, b); err != nil {
			cs.Result, cs.Detail = ResultFailed, err.Error()
			state.OK = false
			say("%s: FAILED: %v", c.Name, err)
			state.Certificates = append(state.Certificates, cs)
			continue
		}
		renewed = append(renewed, written{name: c.Name, old: Bundle{Chain: chain, Key: KeyPEM(oldKey)}, hadOld: chainErr == nil && len(oldKey) > 0,
			newBndl: b, newInfo: info, stateIdx: len(state.Certificates)})
		prevSerial := cs.Cert.Serial
		cs.Cert, cs.Result, cs.LastRenewed = info, ResultRenewed, o.Now().UTC()
		cs.Detail = why
		say("%s: obtained serial %s (was %s), valid until %s", c.Name, info.Serial, or(prevSerial, "none"), info.NotAfter.Format(time.RFC3339))
		state.Certificates = append(state.Certificates, cs)
	}

	if len(renewed) > 0 {
		reload := or(cfg.Reload, DefaultReload)
		out, err := exec.CommandContext(ctx, "/bin/sh", "-c", reload).CombinedOutput()
		if err != nil {
			state.OK = false
			msg := fmt.Sprintf("reload (%s) failed: %v: %s", reload, err, strings.TrimSpace(string(out)))
			say("FAILED: %s; restoring the previous certificates", msg)
			for _, w := range renewed {
				cs := &state.Certificates[w.stateIdx]
				cs.Result, cs.Detail = ResultFailed, msg
				cs.LastRenewed = prev.lastRenewed(w.name)
				if w.hadOld {
					if rerr := writeLive(filepath.Join(cfg.liveRoot(), w.name), w.old); rerr != nil {
						say("%s: restoring the previous certificate failed too: %v", w.name, rerr)
					} else if info, _, ierr := Inspect(w.old.Chain); ierr == nil {
						cs.Cert = info
					}
				}
			}
		} else {
			say("reloaded nginx")
		}
	}

	// What is served must be what is deployed, on every address.
	for i, c := range cfg.Certificates {
		cs := &state.Certificates[i]
		if cs.Cert.Serial == "" {
			continue
		}
		served, err := waitServed(ctx, Probe{Names: c.Names, Port: cfg.VerifyPort, Roots: s.Roots(), Resolvers: cfg.Resolvers, Addrs: c.Addrs}, cs.Cert, o.VerifyTimeout)
		cs.Served = nil
		for _, sv := range served {
			cs.Served = append(cs.Served, sv.String())
			say("%s: served %s", c.Name, sv)
		}
		if err != nil {
			state.OK = false
			if cs.Result != ResultFailed {
				cs.Result = ResultFailed
				cs.Detail = err.Error()
			}
			say("%s: FAILED: %v", c.Name, err)
		}
	}
	state.Finished = o.Now().UTC()
	if err := writeState(cfg.stateFile(), state); err != nil {
		say("FAILED: %v", err)
		return state, err
	}
	if !state.OK {
		return state, ErrRenewFailed
	}
	return state, nil
}

func (c RenewConfig) settings(o RenewOptions) (Settings, *Account, error) {
	s := Settings{
		DirectoryURL:  c.Directory,
		Email:         c.Email,
		KeyType:       c.KeyType,
		Resolvers:     c.Resolvers,
		CloudflareURL: c.CloudflareURL,
		Logger:        o.Log,
		Now:           o.Now,
	}
	if c.RenewBefore != "" {
		s.RenewBefore, _ = time.ParseDuration(c.RenewBefore)
	}
	if c.CABundle != "" {
		b, err := os.ReadFile(c.CABundle)
		if err != nil {
			return s, nil, fmt.Errorf("renew: CA bundle: %w", err)
		}
		s.CABundle = b
	}
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return s, nil, fmt.Errorf("renew: %w", err)
	}
	key, err := readSecretFile(c.AccountKey)
	if err != nil {
		return s, nil, fmt.Errorf("renew: account key: %w", err)
	}
	acct, err := LoadAccount(key, c.AccountURI, c.Email)
	if err != nil {
		return s, nil, fmt.Errorf("renew: %s: %w", c.AccountKey, err)
	}
	return s, acct, nil
}

func renewOne(ctx context.Context, s Settings, acct *Account, c RenewCertificate, tokens map[string]inventory.Secret, verify func(string) error, oldChain []byte, haveOld bool) (Bundle, error) {
	o := Order{Names: c.Names, ZoneOf: func(n string) string { return c.Zones[n] }, Tokens: map[string]inventory.Secret{}}
	for _, n := range c.Names {
		z := c.Zones[n]
		if err := verify(z); err != nil {
			return Bundle{}, err
		}
		o.Tokens[z] = tokens[z]
	}
	if haveOld {
		if _, leaf, err := Inspect(oldChain); err == nil {
			o.Replaces = leaf
		}
	}
	return Obtain(ctx, s, acct, o)
}

// writeLive writes a certificate into its live directory: the key first
// (mode 0600), then the chain, each replaced atomically.
func writeLive(dir string, b Bundle) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "privkey.pem"), b.Key.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "fullchain.pem"), b.Chain, 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	return nil
}

// waitServed checks what every address serves until it is want (nginx's
// workers switch certificates shortly after a reload) or timeout passes.
func waitServed(ctx context.Context, p Probe, want Info, timeout time.Duration) ([]Served, error) {
	deadline := time.Now().Add(timeout)
	for {
		served := CheckServed(ctx, p)
		var bad []string
		for _, sv := range served {
			switch {
			case sv.Err != nil:
				bad = append(bad, sv.String())
			case sv.Cert.Serial != want.Serial || !sv.Cert.NotAfter.Equal(want.NotAfter):
				bad = append(bad, fmt.Sprintf("%s on %s serves serial %s (until %s), not the deployed %s (until %s)",
					sv.Name, sv.Addr, sv.Cert.Serial, sv.Cert.NotAfter.Format(time.RFC3339), want.Serial, want.NotAfter.Format(time.RFC3339)))
			}
		}
		if len(bad) == 0 {
			return served, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return served, fmt.Errorf("served certificate check: %s", strings.Join(bad, "; "))
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// lockFile takes an exclusive lock so that two renewals (the timer and a
// manual run) never interleave.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another renewal is running (%s is locked)", path)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func readState(path string) State {
	var st State
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

func writeState(path string, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write renewal state: %w", err)
	}
	if err := writeFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write renewal state: %w", err)
	}
	return nil
}

func (st State) lastRenewed(name string) time.Time {
	for _, c := range st.Certificates {
		if c.Name == name {
			return c.LastRenewed
		}
	}
	return time.Time{}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
