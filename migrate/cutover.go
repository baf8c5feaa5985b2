package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSRecord is one address record of a name.
type DNSRecord struct {
	Type string // A or AAAA
	Addr netip.Addr
	TTL  int
}

// DNS is the public name's DNS provider, as the cutover needs it.
// provision's Cloudflare code implements it.
//
// Contract: Records returns the name's A and AAAA records (none: an empty
// slice). SetTTL changes the TTL of every A and AAAA record of the name
// and nothing else. Point makes the name's A and AAAA records exactly
// addrs (creating, changing or deleting records) with ttl. Each is
// idempotent.
type DNS interface {
	Records(ctx context.Context, name string) ([]DNSRecord, error)
	SetTTL(ctx context.Context, name string, ttl int) error
	Point(ctx context.Context, name string, addrs []netip.Addr, ttl int) error
}

// Resolver asks a zone's authoritative servers.
type Resolver interface {
	// Authoritative returns the addresses and the TTL every authoritative
	// server answers for name and type (A or AAAA); servers that disagree
	// are an error.
	Authoritative(ctx context.Context, zone, name string, qtype uint16) ([]netip.Addr, uint32, error)
}

// AuthResolver queries the zone's authoritative servers directly
// (recursion off): Servers (host:port) when given, else the zone's NS
// records found through the system resolver.
type AuthResolver struct {
	Servers []string
	Timeout time.Duration
}

func (r *AuthResolver) servers(ctx context.Context, zone string) ([]string, error) {
	if len(r.Servers) > 0 {
		return r.Servers, nil
	}
	nss, err := net.DefaultResolver.LookupNS(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("name servers of %s: %w", zone, err)
	}
	var out []string
	for _, ns := range nss {
		out = append(out, net.JoinHostPort(strings.TrimSuffix(ns.Host, "."), "53"))
	}
	return out, nil
}

func (r *AuthResolver) Authoritative(ctx context.Context, zone, name string, qtype uint16) ([]netip.Addr, uint32, error) {
	servers, err := r.servers(ctx, zone)
	if err != nil {
		return nil, 0, err
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	var first []netip.Addr
	var firstTTL uint32
	for i, srv := range servers {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		m.RecursionDesired = false
		c := &dns.Client{Timeout: timeout}
		resp, _, err := c.ExchangeContext(ctx, m, srv)
		if err == nil && resp.Truncated {
			c.Net = "tcp"
			resp, _, err = c.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("ask %s for %s: %w", srv, name, err)
		}
		if !resp.Authoritative {
			return nil, 0, fmt.Errorf("%s is not authoritative for %s", srv, name)
		}
		var addrs []netip.Addr
		var ttl uint32
		for _, rr := range resp.Answer {
			switch v := rr.(type) {
			case *dns.A:
				a, _ := netip.AddrFromSlice(v.A.To4())
				addrs = append(addrs, a)
				ttl = v.Hdr.Ttl
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(v.AAAA)
				addrs = append(addrs, a)
				ttl = v.Hdr.Ttl
			}
		}
		slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		if i == 0 {
			first, firstTTL = addrs, ttl
		} else if !slices.Equal(addrs, first) || ttl != firstTTL {
			return nil, 0, fmt.Errorf("the authoritative servers disagree about %s: %s answers %v ttl %d, %s answers %v ttl %d", name, servers[0], first, firstTTL, srv, addrs, ttl)
		}
	}
	return first, firstTTL, nil
}

// CutoverState is what --prepare remembers on the target (cutover.json).
type CutoverState struct {
	Name     string    `json:"name"`
	OldTTL   int       `json:"old_ttl"`
	LowTTL   int       `json:"low_ttl"`
	Prepared time.Time `json:"prepared"`
	// Done is set once the name points at the new host with its TTL back.
	Done bool `json:"done,omitempty"`
}

// Cutover moves the public name to the new host: days before, Prepare
// lowers the name's TTL (remembering the old one on the target); Run
// points the name at the new host's addresses, waits until the zone's
// authoritative servers answer them, and restores the TTL.
type Cutover struct {
	// Name is the public name (chat.lghs.be), Zone its zone (lghs.be).
	Name, Zone string
	// Addrs are the new host's addresses (A and AAAA).
	Addrs []netip.Addr
	// LowTTL during the switch (default 60 s, Cloudflare's minimum on
	// non-enterprise zones).
	LowTTL   int
	DNS      DNS
	Resolver Resolver
	// Host keeps the state (the target).
	Host     Host
	StateDir string
	// Force runs the cutover before the old TTL has expired since Prepare
	// (or without Prepare).
	Force bool
	// Wait bounds the wait for the authoritative answer (default 5 min),
	// polling every Poll (default 2 s).
	Wait, Poll time.Duration
	Log        *slog.Logger
	now        func() time.Time
}

// ErrTooEarly is returned when resolvers may still cache the old TTL.
var ErrTooEarly = errors.New("too early for the cutover")

func (c *Cutover) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Cutover) low() int {
	if c.LowTTL > 0 {
		return c.LowTTL
	}
	return 60
}

func (c *Cutover) statePath() string { return newStateStore(c.Host, c.StateDir).path("cutover.json") }

func (c *Cutover) load(ctx context.Context) (*CutoverState, bool, error) {
	st := &CutoverState{}
	ok, err := c.Host.readJSON(ctx, c.statePath(), st)
	if ok && st.Name != c.Name {
		return nil, false, fmt.Errorf("%s on %s is about %s, not %s", c.statePath(), c.Host.Name, st.Name, c.Name)
	}
	return st, ok, err
}

func currentTTL(recs []DNSRecord) int {
	ttl := 0
	for _, r := range recs {
		ttl = max(ttl, r.TTL)
	}
	return ttl
}

// Prepare lowers the TTL. Run again, it keeps the TTL remembered the
// first time. It returns the old TTL and when the cutover may run.
func (c *Cutover) Prepare(ctx context.Context) (oldTTL int, ready time.Time, changed bool, err error) {
	recs, err := c.DNS.Records(ctx, c.Name)
	if err != nil {
		return 0, time.Time{}, false, fmt.Errorf("records of %s: %w", c.Name, err)
	}
	if len(recs) == 0 {
		return 0, time.Time{}, false, fmt.Errorf("%s has no A or AAAA record to prepare", c.Name)
	}
	st, ok, err := c.load(ctx)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	cur := currentTTL(recs)
	if !ok || st.Done {
		st = &CutoverState{Name: c.Name, OldTTL: cur, LowTTL: c.low(), Prepared: c.clock().UTC()}
		if cur <= c.low() {
			return cur, c.clock(), false, fmt.Errorf("the TTL of %s is already %d s: nothing to lower (its normal TTL is unknown); set it back first", c.Name, cur)
		}
		if err := c.Host.writeJSON(ctx, c.statePath(), st); err != nil {
			return 0, time.Time{}, false, err
		}
	}
	ready = st.Prepared.Add(time.Duration(st.OldTTL) * time.Second)
	if cur == st.LowTTL {
		return st.OldTTL, ready, false, nil
	}
	if err := c.DNS.SetTTL(ctx, c.Name, st.LowTTL); err != nil {
		return 0, time.Time{}, false, fmt.Errorf("lower the TTL of %s: %w", c.Name, err)
	}
	if err := c.waitAnswer(ctx, nil, uint32(st.LowTTL)); err != nil {
		return 0, time.Time{}, false, err
	}
	return st.OldTTL, ready, true, nil
}

// CutoverResult says what Run did.
type CutoverResult struct {
	OldAddrs []netip.Addr
	TTL      int
	Changed  bool
}

// Run points the name at the new host and restores its TTL.
func (c *Cutover) Run(ctx context.Context) (*CutoverResult, error) {
	log := logOrDiscard(c.Log)
	if len(c.Addrs) == 0 {
		return nil, fmt.Errorf("no address for the new host")
	}
	recs, err := c.DNS.Records(ctx, c.Name)
	if err != nil {
		return nil, fmt.Errorf("records of %s: %w", c.Name, err)
	}
	st, ok, err := c.load(ctx)
	if err != nil {
		return nil, err
	}
	want := slices.Clone(c.Addrs)
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	var have []netip.Addr
	for _, r := range recs {
		have = append(have, r.Addr)
	}
	slices.SortFunc(have, func(a, b netip.Addr) int { return a.Compare(b) })
	res := &CutoverResult{OldAddrs: have}
	if ok && st.Done && slices.Equal(have, want) && currentTTL(recs) == st.OldTTL {
		res.TTL = st.OldTTL
		return res, nil // already done
	}
	if !ok {
		if !c.Force {
			return nil, fmt.Errorf("%w: run migrate cutover --prepare first (resolvers may cache %s for %d s), or give --force", ErrTooEarly, c.Name, currentTTL(recs))
		}
		st = &CutoverState{Name: c.Name, OldTTL: currentTTL(recs), LowTTL: c.low(), Prepared: c.clock().UTC()}
		if st.OldTTL == 0 {
			st.OldTTL = 3600
		}
	}
	if ready := st.Prepared.Add(time.Duration(st.OldTTL) * time.Second); c.clock().Before(ready) && !c.Force && !st.Done {
		return nil, fmt.Errorf("%w: the TTL of %s was lowered at %s; resolvers may cache the old answer (TTL %d s) until %s; wait, or give --force", ErrTooEarly, c.Name, st.Prepared.Format(time.RFC3339), st.OldTTL, ready.Format(time.RFC3339))
	}
	if err := c.DNS.Point(ctx, c.Name, want, st.LowTTL); err != nil {
		return nil, fmt.Errorf("point %s at %v: %w", c.Name, want, err)
	}
	log.Info("cutover: pointed", slog.String("name", c.Name), slog.Any("addrs", want))
	if err := c.waitAnswer(ctx, want, 0); err != nil {
		return nil, err
	}
	if err := c.DNS.SetTTL(ctx, c.Name, st.OldTTL); err != nil {
		return nil, fmt.Errorf("restore the TTL of %s: %w", c.Name, err)
	}
	if err := c.waitAnswer(ctx, want, uint32(st.OldTTL)); err != nil {
		return nil, err
	}
	st.Done = true
	if err := c.Host.writeJSON(ctx, c.statePath(), st); err != nil {
		return nil, err
	}
	res.TTL, res.Changed = st.OldTTL, true
	return res, nil
}

// waitAnswer waits until the authoritative servers answer addrs (nil:
// any) with ttl (0: any), for A and AAAA together.
func (c *Cutover) waitAnswer(ctx context.Context, addrs []netip.Addr, ttl uint32) error {
	wait, poll := c.Wait, c.Poll
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	if poll <= 0 {
		poll = 2 * time.Second
	}
	deadline := c.clock().Add(wait)
	var last string
	for {
		var got []netip.Addr
		okTTL := true
		var err error
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			var as []netip.Addr
			var t uint32
			as, t, err = c.Resolver.Authoritative(ctx, c.Zone, c.Name, qt)
			if err != nil {
				break
			}
			if len(as) > 0 && ttl != 0 && t != ttl {
				okTTL = false
			}
			got = append(got, as...)
		}
		sort.Slice(got, func(i, j int) bool { return got[i].Less(got[j]) })
		if err == nil && okTTL && (addrs == nil || slices.Equal(got, addrs)) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("answer %v", got)
		}
		if c.clock().After(deadline) {
			return fmt.Errorf("the authoritative servers of %s do not answer %v (ttl %d) after %s: %s", c.Zone, addrs, ttl, wait, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
