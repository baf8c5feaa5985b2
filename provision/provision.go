package provision

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
)

// Config is everything a Provisioner needs, passed explicitly (the CLI
// builds it; provision reads no environment).
type Config struct {
	Inventory *inventory.File
	Scaleway  Scaleway
	// DNS is the DNS provider; nil is allowed when no host has a DNS name.
	DNS DNS
	// Home expands "~/" in ssh_keys[].public_key_file.
	Home string
	// Limit restricts the run to these hosts (empty: every host).
	Limit []string
	// Reporter shows progress lines and notes; nil discards.
	Reporter report.Reporter
	// Log is the run's debug log; nil discards.
	Log *slog.Logger
	// PollMin and PollMax bound the interval between two looks at a
	// server or snapshot that is changing state (defaults 250ms and 5s:
	// quick first looks, then slower).
	PollMin, PollMax time.Duration
	// WaitTimeout bounds one wait for a state (default 20 minutes).
	WaitTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Provisioner plans and applies the cloud side of an inventory.
type Provisioner struct {
	cfg Config
	inv *inventory.File
	sc  Scaleway
	dns DNS
	rep report.Reporter
	log *slog.Logger
	now func() time.Time
}

// New returns a Provisioner.
func New(cfg Config) *Provisioner {
	if cfg.PollMin <= 0 {
		cfg.PollMin = 250 * time.Millisecond
	}
	if cfg.PollMax <= 0 {
		cfg.PollMax = 5 * time.Second
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 20 * time.Minute
	}
	p := &Provisioner{cfg: cfg, inv: cfg.Inventory, sc: cfg.Scaleway, dns: cfg.DNS, rep: cfg.Reporter, log: cfg.Log, now: cfg.Now}
	if p.rep == nil {
		p.rep = discard{}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// HostOutput is what the cloud phase hands to the next phases for one host.
type HostOutput struct {
	Host     string `json:"host"`
	ServerID string `json:"server_id"`
	Zone     string `json:"zone"`
	// IPv4 is the routed IPv4 address (invalid when the host has none).
	IPv4 netip.Addr `json:"ipv4,omitzero"`
	// IPv6 is the server's address in its routed /64 (what AAAA records
	// point at), IPv6Prefix the prefix itself.
	IPv6       netip.Addr   `json:"ipv6,omitzero"`
	IPv6Prefix netip.Prefix `json:"ipv6_prefix,omitzero"`
	// Created is set when this run created the server: its SSH host key
	// cannot be known yet, so host setup may trust it on first use.
	Created bool `json:"created"`
	// DNSNames are the host's names, technical and public.
	DNSNames []string `json:"dns_names,omitempty"`
	// State is the server's state at the end of the phase.
	State string `json:"state"`
}

// Address is the address to reach the host at: IPv4 when it has one,
// else IPv6.
func (h HostOutput) Address() netip.Addr {
	if h.IPv4.IsValid() {
		return h.IPv4
	}
	return h.IPv6
}

// Outputs are the cloud phase's results, in inventory order.
type Outputs struct {
	Hosts []HostOutput `json:"hosts"`
}

// Host returns the output of one host.
func (o Outputs) Host(name string) (HostOutput, bool) {
	for _, h := range o.Hosts {
		if h.Host == name {
			return h, true
		}
	}
	return HostOutput{}, false
}

// inScope reports whether a host is selected by the limit.
func (p *Provisioner) inScope(name string) bool {
	return len(p.cfg.Limit) == 0 || slices.Contains(p.cfg.Limit, name)
}

// CheckLimit returns a usage problem when --limit names a host the
// inventory does not have.
func (p *Provisioner) CheckLimit() error {
	for _, l := range p.cfg.Limit {
		if !slices.ContainsFunc(p.inv.Hosts, func(h inventory.Host) bool { return h.Name == l }) {
			var names []string
			for _, h := range p.inv.Hosts {
				names = append(names, h.Name)
			}
			return fmt.Errorf("--limit %s: no such host in %s (hosts: %s)", l, p.inv.Path, strings.Join(names, ", "))
		}
	}
	return nil
}

// publicKey reads an inventory SSH key.
func (p *Provisioner) publicKey(k inventory.SSHKey) (string, error) {
	return k.AuthorizedKey(p.cfg.Home)
}

// discard is a Reporter that shows nothing.
type discard struct{}

func (discard) Play(string)                  {}
func (discard) Task(report.TaskResult)       {}
func (discard) Plan(string, []report.Change) {}
func (discard) Progress(string, string)      {}
func (discard) Message(report.Level, string) {}
func (discard) Summary(report.Summary)       {}

// wait polls check until it says done, with an interval growing from
// PollMin to PollMax, bounded by WaitTimeout and ctx; progress is told
// what is being waited for every poll.
func (p *Provisioner) wait(ctx context.Context, host, what string, check func() (bool, string, error)) error {
	start := p.now()
	interval := p.cfg.PollMin
	for {
		done, state, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		elapsed := p.now().Sub(start)
		if elapsed > p.cfg.WaitTimeout {
			return fmt.Errorf("%s: still %s after %s", what, state, elapsed.Round(time.Second))
		}
		p.rep.Progress(host, fmt.Sprintf("%s: %s (%s)", what, state, elapsed.Round(time.Second)))
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		interval = min(interval*3/2, p.cfg.PollMax)
	}
}

// createOnce runs a create that may fail ambiguously (5xx, no answer): it
// then looks the resource up before trying again, so that it is never made
// twice. lookup reports whether the resource is there.
func createOnce[T any](ctx context.Context, p *Provisioner, what string, create func() (T, error), lookup func() (T, bool, error)) (T, error) {
	var zero T
	delay := p.cfg.PollMin
	for attempt := 1; ; attempt++ {
		v, err := create()
		if err == nil {
			return v, nil
		}
		if !Ambiguous(err) || attempt >= 5 {
			return zero, fmt.Errorf("create %s: %w", what, err)
		}
		p.log.Warn("create failed ambiguously; looking the resource up", "what", what, "attempt", attempt, "err", err)
		found, ok, lerr := lookup()
		if lerr != nil {
			return zero, fmt.Errorf("create %s: %w (and looking it up failed: %v)", what, err, lerr)
		}
		if ok {
			p.log.Info("the failed create happened after all", "what", what)
			return found, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, ctx.Err()
		case <-t.C:
		}
		delay *= 2
	}
}
