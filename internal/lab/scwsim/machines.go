package scwsim

import (
	"context"
	"net/netip"
)

// Machines is what the stand-in needs from the lab to make powered-on
// servers real hosts. The stand-in calls it from background goroutines (never
// while answering an HTTP request), one operation at a time per server and one
// at a time for all layer operations, so an implementation only has to be safe
// for concurrent calls that concern different machines or a machine and a
// layer.
//
// Contract, per method:
//   - AllocateIPv4 returns a routable address nobody else holds; AllocateIPv6Prefix
//     a /64 nobody else holds. The stand-in reports exactly what they return
//     (flexible IPs) and hands them back in MachineSpec, so what the API says is
//     what the host has. ReleaseAddress gives one back (a /32, /128 or /64).
//   - CreateLayer makes the persistent disk layer id: empty on top of the base
//     root filesystem of src.Image, or a copy of the layer src.From (which
//     stays untouched; it may belong to a running machine, a crash-consistent
//     copy is fine). DeleteLayer removes a layer; deleting an unknown layer is
//     not an error.
//   - Start boots the machine spec.ID on its layers (creating it when it does not
//     exist, restarting it when it was stopped) and returns once the host is
//     ready (sshd answers). Starting a running machine is not an error.
//   - Stop halts a machine and keeps its layers; Remove stops it if needed and
//     forgets everything about it but its layers. Both are no-ops for unknown
//     machines.
//   - SetFirewall replaces the machine's filtering with fw; it is only called
//     for machines that were started and not removed.
type Machines interface {
	AllocateIPv4(ctx context.Context) (netip.Addr, error)
	AllocateIPv6Prefix(ctx context.Context) (netip.Prefix, error)
	ReleaseAddress(ctx context.Context, p netip.Prefix) error

	CreateLayer(ctx context.Context, id string, src LayerSource) error
	DeleteLayer(ctx context.Context, id string) error

	Start(ctx context.Context, spec MachineSpec) error
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	SetFirewall(ctx context.Context, id string, fw Firewall) error
}

// LayerSource says what a new disk layer starts from: exactly one of Image (a
// marketplace label such as "debian_trixie": a fresh layer over that base
// root filesystem) or From (the id of an existing layer to copy).
type LayerSource struct {
	Image string
	From  string
}

// MachineSpec describes the host behind one powered-on server.
type MachineSpec struct {
	// ID is the server id; machines are named after it.
	ID string
	// Hostname is the server's hostname as the API reports it.
	Hostname string
	// Image is the marketplace label the root layer descends from, e.g.
	// "debian_trixie" or "debian_bookworm".
	Image string
	// Layers are the disk layer ids of the server's volumes in volume order;
	// Layers[0] is the root file system.
	Layers []string
	// IPv4 is the first routed IPv4 address (invalid when the server has none).
	IPv4 netip.Addr
	// IPv6 is the address the server has in IPv6Prefix (SLAAC/EUI-64 from the
	// MAC address, as on Scaleway); both invalid when the server has no IPv6.
	IPv6       netip.Addr
	IPv6Prefix netip.Prefix
	// MAC is the server's mac_address.
	MAC string
	// AuthorizedKeys are root's keys: the project's enabled IAM SSH keys at
	// boot time, one "type base64 name" line each.
	AuthorizedKeys []string
	// Firewall is the policy of the server's security group at boot time;
	// later changes arrive through SetFirewall.
	Firewall Firewall
}

// Firewall is a security group as a packet filter on the machine's link.
// Rules are evaluated in order; the first match decides, and packets no rule
// matches get the default policy of their direction. With Stateful, replies to
// allowed connections are allowed both ways whatever the rules say.
type Firewall struct {
	InboundDefault  Action
	OutboundDefault Action
	Stateful        bool
	Rules           []FirewallRule
}

// Action is a security group decision.
type Action string

// Security group actions.
const (
	Accept Action = "accept"
	Drop   Action = "drop"
)

// FirewallRule is one security group rule. For inbound rules IPRange matches
// the source address, for outbound rules the destination. PortFrom/PortTo
// are destination ports (0, 0 = every port; always 0 for ICMP and ANY).
// Protocol is "TCP", "UDP", "ICMP" (ICMP and ICMPv6) or "ANY".
type FirewallRule struct {
	Direction string
	Action    Action
	Protocol  string
	IPRange   netip.Prefix
	PortFrom  uint16
	PortTo    uint16
}
