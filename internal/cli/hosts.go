package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lghs/lghsctl/certs"
	"github.com/lghs/lghsctl/hostsetup"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

// hostConns holds one SSH connection per host for all of up's host
// phases: dialed by the first phase that needs the host, closed at the end.
type hostConns struct {
	g        *Globals
	s        *cloudSession
	st       *UpState
	mu       sync.Mutex
	conns    map[string]*remote.Client
	failures map[string]error
}

func (st *UpState) conns(s *cloudSession) *hostConns {
	if st.hosts == nil {
		st.hosts = &hostConns{g: s.g, s: s, st: st, conns: map[string]*remote.Client{}, failures: map[string]error{}}
	}
	return st.hosts
}

func (hc *hostConns) closeAll() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	for _, c := range hc.conns {
		c.Close()
	}
	hc.conns = map[string]*remote.Client{}
}

// address is where lghsctl reaches a host: the inventory's ssh.address or
// ssh_config alias, else the address the cloud phase reported (IPv4
// first). "" when the host does not exist yet (check mode before the
// server is created).
func (hc *hostConns) address(h *inventory.Host) (addr string, created bool) {
	if h.SSH.Address != "" {
		return h.SSH.Address, false
	}
	for _, o := range hc.st.Cloud.Hosts {
		if o.Host == h.Name {
			if a := o.Address(); a.IsValid() {
				return a.String(), o.Created
			}
		}
	}
	if h.SSH.ConfigHost != "" {
		return "", false // the alias's HostName applies
	}
	return "", false
}

// remoteConfig is how up reaches a host; trust on first use only for a
// server this run created, or when the operator said so.
func (hc *hostConns) remoteConfig(h *inventory.Host) (remote.Config, error) {
	addr, created := hc.address(h)
	if addr == "" && h.SSH.ConfigHost == "" {
		return remote.Config{}, fmt.Errorf("%s has no address yet (its server does not exist)", h.Name)
	}
	cfg := hc.g.sshConfig(h, addr)
	cfg.TrustNew = created || slices.Contains(hc.g.TrustNewHosts, h.Name)
	cfg.Log = hc.s.logf.Logger.With("host", h.Name)
	return cfg, nil
}

// connect returns the host's connection, dialing it the first time.
func (hc *hostConns) connect(ctx context.Context, h *inventory.Host) (*remote.Client, error) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if c, ok := hc.conns[h.Name]; ok {
		return c, nil
	}
	if err, ok := hc.failures[h.Name]; ok {
		return nil, err
	}
	cfg, err := hc.remoteConfig(h)
	if err == nil {
		var c *remote.Client
		if c, err = dialRetry(ctx, cfg, 90*time.Second); err == nil {
			hc.conns[h.Name] = c
			return c, nil
		}
	}
	var unknown *remote.UnknownHostError
	if errors.As(err, &unknown) {
		err = fmt.Errorf("%w\nif this is the server lghsctl created for %s, run up once with --trust-new-host %s", err, h.Name, h.Name)
	}
	hc.failures[h.Name] = err
	return nil, err
}

// dialRetry dials until the host answers SSH (a server that just reached
// "running" may still be starting sshd), failing at once on trust and
// authentication errors.
func dialRetry(ctx context.Context, cfg remote.Config, within time.Duration) (*remote.Client, error) {
	deadline := time.Now().Add(within)
	for {
		c, err := remote.Dial(ctx, cfg)
		if err == nil {
			return c, nil
		}
		var changed *remote.HostKeyChangedError
		var unknown *remote.UnknownHostError
		var auth *remote.AuthError
		if errors.As(err, &changed) || errors.As(err, &unknown) || errors.As(err, &auth) || ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// verifyLogin opens a second, new connection to the host and runs a
// command: the proof host setup needs before keeping an sshd change. sshd
// restarts its listener on reload, so it retries for a few seconds.
func (hc *hostConns) verifyLogin(h *inventory.Host) func(ctx context.Context, user string) error {
	return func(ctx context.Context, user string) error {
		cfg, err := hc.remoteConfig(h)
		if err != nil {
			return err
		}
		cfg.TrustNew = false // pinned by the first connection
		cfg.User = user
		cfg.Sudo = user != "root"
		var lastErr error
		for range 20 {
			c, err := remote.Dial(ctx, cfg)
			if err == nil {
				_, err = c.Run(ctx, "true", nil)
				c.Close()
				if err == nil {
					return nil
				}
			}
			var changed *remote.HostKeyChangedError
			if errors.As(err, &changed) {
				return err
			}
			lastErr = err
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
		return lastErr
	}
}

// hostsInScope are the inventory's hosts, --limit applied.
func (g *Globals) hostsInScope(f *inventory.File) []*inventory.Host {
	var out []*inventory.Host
	for i := range f.Hosts {
		if len(g.Limit) == 0 || slices.Contains(g.Limit, f.Hosts[i].Name) {
			out = append(out, &f.Hosts[i])
		}
	}
	return out
}

// reachable filters the hosts a host phase can act on: in check mode, a
// server the cloud phase has not created yet is reported as skipped.
func (hc *hostConns) reachable(hosts []*inventory.Host, phase string) []*inventory.Host {
	var out []*inventory.Host
	for _, h := range hosts {
		if addr, _ := hc.address(h); addr == "" && h.SSH.ConfigHost == "" {
			hc.s.tally.Task(report.TaskResult{Host: h.Name, Task: phase, Status: report.Skipped, Message: "the server does not exist yet"})
			continue
		}
		out = append(out, h)
	}
	return out
}

func (s *cloudSession) runner() *task.Runner {
	return &task.Runner{Check: s.g.Check, Diff: s.g.Diff, Reporter: s.tally, Log: s.logf.Logger}
}

// pending reports whether a phase reported changes since the count was
// taken.
func (s *cloudSession) changedCount() int {
	n := 0
	for _, r := range s.tally.Recaps() {
		n += r.Changed
	}
	return n
}

func runPhaseTargets(ctx context.Context, s *cloudSession, st *UpState, targets []task.Target) error {
	if len(targets) == 0 {
		return nil
	}
	before := s.changedCount()
	err := s.runner().Run(ctx, targets)
	if s.changedCount() > before {
		st.Pending = true
	}
	if errors.Is(err, task.ErrFailed) {
		return silentError{ExitFailure, err}
	}
	return err
}

// runCertsPhase obtains and deploys each host's certificates (before
// host setup, which then renders nginx with them at once).
func runCertsPhase(ctx context.Context, s *cloudSession, st *UpState) error {
	if s.f.ACME == nil {
		return nil
	}
	hc := st.conns(s)
	var targets []task.Target
	for _, h := range hc.reachable(s.g.hostsInScope(s.f), "certificates") {
		cfg, err := s.g.certsPhaseConfig(s.f, h, s.red, s.logf.Logger)
		if err != nil {
			return err
		}
		cfg.HostAddrs = hc.publicAddrs(h)
		p, err := certs.NewPhase(cfg)
		if err != nil {
			return err
		}
		if len(p.Steps()) == 0 {
			continue
		}
		targets = append(targets, p.Target(func(ctx context.Context) error {
			c, err := hc.connect(ctx, h)
			if err != nil {
				return err
			}
			p.Attach(c)
			return nil
		}, nil))
	}
	if len(targets) > 0 {
		s.tally.Play("certificates")
	}
	return runPhaseTargets(ctx, s, st, targets)
}

// runHostsPhase configures each host over SSH.
func runHostsPhase(ctx context.Context, s *cloudSession, st *UpState) error {
	hc := st.conns(s)
	home := s.g.Getenv("HOME")
	keys := map[string]string{}
	for _, k := range s.f.SSHKeys {
		line, err := k.AuthorizedKey(home)
		if err != nil {
			return err
		}
		keys[k.Name] = line
	}
	var targets []task.Target
	for _, h := range hc.reachable(s.g.hostsInScope(s.f), "host setup") {
		r := hostsetup.NewRun(hostsetup.Config{
			Inventory:      s.f,
			Host:           h,
			AuthorizedKeys: keys,
			VerifyLogin:    hc.verifyLogin(h),
			Secret: func(ref inventory.SecretRef) (string, error) {
				v, err := ref.Resolve(s.g.Getenv)
				if err != nil {
					return "", err
				}
				s.red.Add(v.Reveal())
				return v.Reveal(), nil
			},
		})
		targets = append(targets, r.Target(func(ctx context.Context) error {
			c, err := hc.connect(ctx, h)
			if err != nil {
				return err
			}
			r.Attach(c)
			return nil
		}, nil))
	}
	s.tally.Play("hosts")
	return runPhaseTargets(ctx, s, st, targets)
}

// runVerifyPhase ends up: each ACME site answers HTTPS with a chain valid
// for the CA, through DNS, and the exposure audit passes. Not in check
// mode (nothing was changed to verify).
func runVerifyPhase(ctx context.Context, s *cloudSession, st *UpState) error {
	if s.g.Check {
		return nil
	}
	hc := st.conns(s)
	var targets []task.Target
	for _, h := range hc.reachable(s.g.hostsInScope(s.f), "verify") {
		var steps []task.Step
		if s.f.ACME != nil {
			cfg, err := s.g.certsPhaseConfig(s.f, h, s.red, s.logf.Logger)
			if err != nil {
				return err
			}
			cfg.HostAddrs = hc.publicAddrs(h)
			p, err := certs.NewPhase(cfg)
			if err != nil {
				return err
			}
			if len(p.Steps()) > 0 {
				steps = append(steps, p.Verify())
			}
		}
		steps = append(steps, auditStep(s, hc, h))
		targets = append(targets, task.Target{Name: h.Name, Steps: steps})
	}
	s.tally.Play("verify")
	return runPhaseTargets(ctx, s, st, targets)
}

// publicAddrs are the host's public addresses, as the cloud reports them.
func (hc *hostConns) publicAddrs(h *inventory.Host) []netip.Addr {
	var out []netip.Addr
	t := hc.auditTarget(h)
	for _, a := range []netip.Addr{t.IPv4, t.IPv6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// auditTarget says where a host is reachable from outside and what its
// security group allows.
func (hc *hostConns) auditTarget(h *inventory.Host) hostsetup.AuditTarget {
	t := hostsetup.AuditTarget{Name: h.Name}
	for _, o := range hc.st.Cloud.Hosts {
		if o.Host == h.Name {
			t.IPv4, t.IPv6 = o.IPv4, o.IPv6
		}
	}
	if !t.IPv4.IsValid() && !t.IPv6.IsValid() {
		if a, err := netip.ParseAddr(h.SSH.Address); err == nil {
			if a.Is4() {
				t.IPv4 = a
			} else {
				t.IPv6 = a
			}
		}
	}
	for i := range hc.s.f.SecurityGroups {
		if hc.s.f.SecurityGroups[i].Name == h.SecurityGroup {
			t.Allowed = &hc.s.f.SecurityGroups[i]
		}
	}
	return t
}

// auditStep runs the exposure audit as a task: failed when a container
// port is reachable from outside or published on every address.
func auditStep(s *cloudSession, hc *hostConns, h *inventory.Host) task.Step {
	return task.Step{Name: "exposure audit", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		c, err := hc.connect(ctx, h)
		if err != nil {
			return task.Result{}, err
		}
		var d net.Dialer
		a, err := hostsetup.RunAudit(ctx, c, hc.auditTarget(h), d.DialContext)
		if err != nil {
			return task.Result{}, err
		}
		var fails []string
		open := 0
		for _, f := range a.Findings {
			switch f.Severity {
			case "fail":
				fails = append(fails, f.What+"; fix: "+f.Fix)
			case "ok":
				open++
			}
		}
		if len(fails) > 0 {
			return task.Result{}, fmt.Errorf("exposed: %s", joinLines(fails))
		}
		return task.Result{Message: fmt.Sprintf("%d probes, nothing exposed beyond what the inventory allows", open)}, nil
	}}
}

func joinLines(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += "\n  "
		}
		out += s
	}
	return out
}
