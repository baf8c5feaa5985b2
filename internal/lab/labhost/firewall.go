package labhost

import (
	"fmt"
	"net/netip"
	"strings"
)

// Policy is a Scaleway security group enforced on a host's link, outside
// the host (in the lab's router namespace): nothing the host's root does,
// including an nftables.service that flushes its own ruleset, can change it.
// The zero Policy accepts everything.
//
// Semantics, as on Scaleway:
//   - Rules are evaluated in order; the first rule that matches a packet
//     decides. Packets no rule matches get their direction's default.
//   - Inbound rules match the source address, outbound rules the
//     destination; ports are destination ports.
//   - Stateful: a packet that belongs to a connection the other side
//     accepted as new (a reply) is judged by the rules of the direction that
//     opened the connection, mirrored. Replies therefore pass as long as the
//     rule that let the connection in (or out) is still there; removing it
//     cuts established connections too, so a policy change takes effect at
//     once for every packet. ICMP errors related to a connection pass.
//   - Not stateful: every packet is judged by the rules of its own
//     direction; replies need their own rules.
//   - It applies to everything the host exchanges with the box and with
//     other hosts (host-to-host traffic passes both hosts' policies).
//     Neighbour discovery and ARP never cross it: they are link-local
//     between the host and its gateway.
type Policy struct {
	// InboundDefault and OutboundDefault decide packets no rule matches;
	// "" means Accept.
	InboundDefault  Action
	OutboundDefault Action
	Stateful        bool
	Rules           []Rule
}

// Action is a security group decision.
type Action string

// Security group decisions.
const (
	Accept Action = "accept"
	Drop   Action = "drop"
)

// Direction is the side of a rule, as Scaleway names it.
type Direction string

// Rule directions.
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Protocol is what a rule matches, as Scaleway names it.
type Protocol string

// Rule protocols. ICMP matches ICMP and ICMPv6.
const (
	TCP         Protocol = "TCP"
	UDP         Protocol = "UDP"
	ICMP        Protocol = "ICMP"
	AnyProtocol Protocol = "ANY"
)

// Rule is one security group rule.
type Rule struct {
	Direction Direction
	Action    Action
	Protocol  Protocol
	// IPRange is the remote side: an IPv4 range matches only IPv4 packets,
	// an IPv6 range only IPv6 ones (0.0.0.0/0 is "every IPv4 address", as
	// on Scaleway). The zero Prefix matches both families.
	IPRange netip.Prefix
	// PortFrom and PortTo are the destination port range for TCP and UDP
	// (PortTo 0 means PortFrom alone; both 0 means every port). Ignored for
	// ICMP and ANY.
	PortFrom, PortTo uint16
}

// Validate reports a policy that cannot be enforced.
func (p Policy) Validate() error {
	for _, a := range []Action{p.InboundDefault, p.OutboundDefault} {
		if a != "" && a != Accept && a != Drop {
			return fmt.Errorf("policy: unknown default action %q", a)
		}
	}
	for i, r := range p.Rules {
		if r.Direction != Inbound && r.Direction != Outbound {
			return fmt.Errorf("policy rule %d: unknown direction %q", i+1, r.Direction)
		}
		if r.Action != Accept && r.Action != Drop {
			return fmt.Errorf("policy rule %d: unknown action %q", i+1, r.Action)
		}
		switch r.Protocol {
		case TCP, UDP, ICMP, AnyProtocol:
		default:
			return fmt.Errorf("policy rule %d: unknown protocol %q", i+1, r.Protocol)
		}
		if r.IPRange.IsValid() && r.IPRange.Masked() != r.IPRange {
			return fmt.Errorf("policy rule %d: IP range %v has host bits set", i+1, r.IPRange)
		}
		if r.PortTo != 0 && r.PortTo < r.PortFrom {
			return fmt.Errorf("policy rule %d: port range %d-%d is reversed", i+1, r.PortFrom, r.PortTo)
		}
		if r.PortFrom == 0 && r.PortTo != 0 {
			return fmt.Errorf("policy rule %d: port range with no start", i+1)
		}
	}
	return nil
}

// fwChains names a host's firewall chains in the router's lab table.
type fwChains struct{ in, inReply, out, outReply string }

func chainsFor(link string) fwChains {
	return fwChains{in: link + "_in", inReply: link + "_in_reply", out: link + "_out", outReply: link + "_out_reply"}
}

// renderPolicy renders the nftables commands that replace the policy of the
// host whose router-side link is link. The commands are applied as one
// transaction, so a change is atomic; they assume the host's chains exist
// (hostNftSetup).
//
// The router's forward chain jumps to <link>_out for packets from the host
// and to <link>_in for packets to it. Accept verdicts are "return": the
// packet must still pass the policy of the other end when it is a host.
func renderPolicy(link string, p Policy) string {
	c := chainsFor(link)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	for _, ch := range []string{c.in, c.inReply, c.out, c.outReply} {
		w("flush chain inet %s %s", nftTable, ch)
	}
	section := func(chain, replyChain string, dir Direction, def Action) {
		w("add rule inet %s %s icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } return", nftTable, chain)
		if p.Stateful {
			w("add rule inet %s %s ct state related return", nftTable, chain)
			w("add rule inet %s %s ct direction reply goto %s", nftTable, chain, replyChain)
		}
		for _, r := range p.Rules {
			if r.Direction == dir {
				w("add rule inet %s %s %s", nftTable, chain, ruleExpr(r, dir, false))
			}
		}
		if def == Drop {
			w("add rule inet %s %s drop", nftTable, chain)
		}
	}
	// Replies to connections the host opened come in: the outbound rules,
	// mirrored, decide; and the other way round.
	reply := func(chain string, opener Direction, def Action) {
		if !p.Stateful {
			return
		}
		for _, r := range p.Rules {
			if r.Direction == opener {
				w("add rule inet %s %s %s", nftTable, chain, ruleExpr(r, opener, true))
			}
		}
		if def == Drop {
			w("add rule inet %s %s drop", nftTable, chain)
		}
	}
	section(c.in, c.inReply, Inbound, p.InboundDefault)
	reply(c.inReply, Outbound, p.OutboundDefault)
	section(c.out, c.outReply, Outbound, p.OutboundDefault)
	reply(c.outReply, Inbound, p.InboundDefault)
	return b.String()
}

// ruleExpr is one rule as an nftables rule body. Mirrored, it matches the
// replies of the connections the rule matches: the remote address is then
// the other one of the pair, and the port the source port.
func ruleExpr(r Rule, dir Direction, mirrored bool) string {
	var parts []string
	remoteIsSource := dir == Inbound
	if mirrored {
		remoteIsSource = !remoteIsSource
	}
	if r.IPRange.IsValid() {
		fam, side := "ip", "daddr"
		if r.IPRange.Addr().Is6() {
			fam = "ip6"
		}
		if remoteIsSource {
			side = "saddr"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", fam, side, r.IPRange))
	}
	switch r.Protocol {
	case TCP, UDP:
		parts = append(parts, "meta l4proto "+strings.ToLower(string(r.Protocol)))
		if r.PortFrom != 0 {
			port := "dport"
			if mirrored {
				port = "sport"
			}
			ports := fmt.Sprint(r.PortFrom)
			if r.PortTo != 0 && r.PortTo != r.PortFrom {
				ports = fmt.Sprintf("%d-%d", r.PortFrom, r.PortTo)
			}
			parts = append(parts, fmt.Sprintf("th %s %s", port, ports))
		}
	case ICMP:
		parts = append(parts, "meta l4proto { icmp, ipv6-icmp }")
	}
	verdict := "return"
	if r.Action == Drop {
		verdict = "drop"
	}
	return strings.Join(append(parts, verdict), " ")
}
