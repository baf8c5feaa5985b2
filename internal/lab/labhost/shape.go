package labhost

import (
	"context"
	"fmt"
	"math"
	"strings"
)

// Shape degrades a host's link, outside the host (in the lab's router
// namespace), for benchmarks and fault tests. This kernel has no netem, so
// each knob is built from what exists; what each one really does:
//
//   - Rate: a token bucket (tc tbf) on each direction of the host's link:
//     on the router's end for traffic to the host, and on an ifb device fed
//     by that end's ingress for traffic from the host. Excess packets queue
//     up to 100 ms, then are dropped, so TCP settles at about Rate; the
//     bucket allows bursts of 1/100 s of Rate (at least 16 KiB).
//   - Loss: nftables drops each packet crossing the link, in either
//     direction, with probability Loss (granularity 1/10000), whatever its
//     protocol. Loss is independent per packet (no bursts, no correlation).
//
// There is no latency knob: without netem the kernel cannot delay packets.
// Use DelayProxy for added latency on a TCP path.
type Shape struct {
	// Rate limits each direction, in bits per second; 0 is unlimited.
	Rate uint64
	// Loss is the fraction of packets dropped in each direction, 0..1.
	Loss float64
}

// CutMode is how Cut takes a host off the network.
type CutMode int

// Cut modes.
const (
	// CutDrop silently drops everything to and from the host (a partition:
	// peers see timeouts). The host's link stays up.
	CutDrop CutMode = iota
	// CutLinkDown takes the router's end of the link down: the host sees
	// no carrier and the router answers "unreachable" to peers at once.
	CutLinkDown
)

func (s Shape) validate() error {
	if s.Loss < 0 || s.Loss > 1 || math.IsNaN(s.Loss) {
		return fmt.Errorf("shape: loss %v not in 0..1", s.Loss)
	}
	if s.Rate != 0 && s.Rate < 8000 {
		return fmt.Errorf("shape: rate %d bit/s below 8 kbit/s", s.Rate)
	}
	return nil
}

// tbfArgs is the qdisc for rate bits per second.
func tbfArgs(rate uint64) []string {
	burst := max(rate/8/100, 16*1024)
	return []string{"tbf", "rate", fmt.Sprintf("%dbit", rate), "burst", fmt.Sprint(burst), "latency", "100ms"}
}

// lossRules is the nftables script that sets the link's loss chain.
func lossRules(link string, loss float64) string {
	s := fmt.Sprintf("flush chain inet %s %s_shape\n", nftTable, link)
	switch n := int(math.Round(loss * 10000)); {
	case n >= 10000:
		s += fmt.Sprintf("add rule inet %s %s_shape drop\n", nftTable, link)
	case n > 0:
		s += fmt.Sprintf("add rule inet %s %s_shape numgen random mod 10000 < %d drop\n", nftTable, link, n)
	}
	return s
}

// applyShape makes the link's shaping match h.shape (rate and loss); the
// caller holds h.mu or owns h exclusively.
func (l *Lab) applyShape(ctx context.Context, h *Host, s Shape) error {
	r := l.routerNS()
	tc := func(args ...string) error {
		_, err := l.run.run(ctx, nil, append([]string{"tc", "-n", r}, args...)...)
		return err
	}
	_ = tc("qdisc", "del", "dev", h.link, "root")
	if err := l.clearIfb(ctx, h); err != nil {
		return err
	}
	if s.Rate > 0 {
		if err := tc(append([]string{"qdisc", "add", "dev", h.link, "root"}, tbfArgs(s.Rate)...)...); err != nil {
			return fmt.Errorf("shape link of %s: %w", h.name, err)
		}
		if err := ipBatch(ctx, l.run, r,
			fmt.Sprintf("link add %s type ifb", h.ifb),
			fmt.Sprintf("link set %s up", h.ifb),
		); err != nil {
			return fmt.Errorf("shape link of %s: %w", h.name, err)
		}
		for _, args := range [][]string{
			{"qdisc", "add", "dev", h.link, "handle", "ffff:", "ingress"},
			{"filter", "add", "dev", h.link, "parent", "ffff:", "protocol", "all", "u32", "match", "u32", "0", "0",
				"action", "mirred", "egress", "redirect", "dev", h.ifb},
			append([]string{"qdisc", "add", "dev", h.ifb, "root"}, tbfArgs(s.Rate)...),
		} {
			if err := tc(args...); err != nil {
				return fmt.Errorf("shape link of %s: %w", h.name, err)
			}
		}
	}
	if err := nftApply(ctx, l.run, r, lossRules(h.link, s.Loss)); err != nil {
		return fmt.Errorf("set loss on link of %s: %w", h.name, err)
	}
	return nil
}

// clearIfb removes the link's ingress redirection and its ifb device.
func (l *Lab) clearIfb(ctx context.Context, h *Host) error {
	r := l.routerNS()
	_, _ = l.run.run(ctx, nil, "tc", "-n", r, "qdisc", "del", "dev", h.link, "ingress")
	if _, err := l.run.run(ctx, nil, "ip", "-n", r, "link", "del", h.ifb); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		return fmt.Errorf("unshape link of %s: %w", h.name, err)
	}
	return nil
}

// applyCut cuts (or, with cut false, reconnects) the host's link.
func (l *Lab) applyCut(ctx context.Context, h *Host, mode CutMode, cut bool) error {
	r := l.routerNS()
	var err error
	switch {
	case mode == CutLinkDown:
		state := "up"
		if cut {
			state = "down"
		}
		err = ipBatch(ctx, l.run, r, fmt.Sprintf("link set %s %s", h.link, state))
		if err == nil && !cut {
			// Routes through a link are dropped when it goes down.
			err = ipBatch(ctx, l.run, r,
				fmt.Sprintf("route replace %s/32 dev %s", h.v4, h.link),
				fmt.Sprintf("route replace %s dev %s", h.prefix6, h.link))
		}
	case cut:
		err = nftApply(ctx, l.run, r, fmt.Sprintf("add element inet %s cut { %q }\n", nftTable, h.link))
	default:
		err = nftApply(ctx, l.run, r, fmt.Sprintf("delete element inet %s cut { %q }\n", nftTable, h.link))
	}
	if err != nil {
		return fmt.Errorf("cut link of %s: %w", h.name, err)
	}
	return nil
}
