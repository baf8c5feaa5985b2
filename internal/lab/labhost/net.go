package labhost

import (
	"context"
	"fmt"
	"strings"
)

// nftTable is the lab's nftables table in its router namespace.
const nftTable = "lab"

// routerNftBase is the router's table: the forward chain sends each
// packet through the cut set, the per-link loss chains, then the firewall
// chains of the host it comes from and of the host it goes to. Links are
// looked up in verdict maps, so adding or removing a host never rewrites
// the chain.
const routerNftBase = `table inet lab {
	set cut { type ifname; }
	map shape { type ifname : verdict; }
	map fw_out { type ifname : verdict; }
	map fw_in { type ifname : verdict; }
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname @cut drop
		oifname @cut drop
		iifname vmap @shape
		oifname vmap @shape
		iifname vmap @fw_out
		oifname vmap @fw_in
	}
}
`

// netnsSysctls are set in every lab namespace from outside, before anything
// runs in it: forwarding (the router routes; hosts need it for Docker, which
// cannot set it itself because /proc/sys is read-only in the container) and
// no duplicate address detection (addresses are usable at once).
func netnsSysctls() []string {
	return []string{
		"net.ipv4.ip_forward=1",
		"net.ipv6.conf.all.forwarding=1",
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.all.accept_ra=0",
		"net.ipv6.conf.default.accept_ra=0",
	}
}

// ipBatch runs ip commands (one per line) in netns ns ("" = the box's).
func ipBatch(ctx context.Context, run runner, ns string, lines ...string) error {
	args := []string{"ip"}
	if ns != "" {
		args = append(args, "-n", ns)
	}
	args = append(args, "-batch", "-")
	_, err := run.run(ctx, strings.NewReader(strings.Join(lines, "\n")+"\n"), args...)
	return err
}

func nftApply(ctx context.Context, run runner, ns, script string) error {
	_, err := run.run(ctx, strings.NewReader(script), "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

func newNetns(ctx context.Context, run runner, ns string) error {
	if _, err := run.run(ctx, nil, "ip", "netns", "add", ns); err != nil {
		return err
	}
	_, err := run.run(ctx, nil, append([]string{"ip", "netns", "exec", ns, "sysctl", "-q", "-w"}, netnsSysctls()...)...)
	return err
}

// setupRouter creates the lab's router namespace, its link to the box and
// its nftables table.
func (l *Lab) setupRouter(ctx context.Context) error {
	r, p := l.routerNS(), l.plan
	box := l.name + "-box"
	if err := newNetns(ctx, l.run, r); err != nil {
		return fmt.Errorf("create router of lab %s: %w", l.name, err)
	}
	if err := ipBatch(ctx, l.run, "",
		fmt.Sprintf("link add %s type veth peer name box netns %s", box, r),
		fmt.Sprintf("addr add %s/30 dev %s", p.box4(), box),
		fmt.Sprintf("addr add %s/64 dev %s nodad", p.box6(), box),
		fmt.Sprintf("link set %s up", box),
	); err != nil {
		return fmt.Errorf("link box to router of lab %s: %w", l.name, err)
	}
	if err := ipBatch(ctx, l.run, r,
		"link set lo up",
		fmt.Sprintf("addr add %s/30 dev box", p.router4()),
		fmt.Sprintf("addr add %s/64 dev box nodad", p.router6()),
		"link set box up",
	); err != nil {
		return fmt.Errorf("link box to router of lab %s: %w", l.name, err)
	}
	if err := nftApply(ctx, l.run, r, routerNftBase); err != nil {
		return fmt.Errorf("set up firewall of lab %s: %w", l.name, err)
	}
	return nil
}

func (l *Lab) routerNS() string { return l.name + "-r" }

// hostNftSetup creates a host's chains (firewall and loss) and hooks them
// into the router's maps; idempotent.
func hostNftSetup(link string) string {
	c := chainsFor(link)
	var b strings.Builder
	for _, ch := range []string{c.in, c.inReply, c.out, c.outReply, link + "_shape"} {
		fmt.Fprintf(&b, "add chain inet %s %s\n", nftTable, ch)
	}
	fmt.Fprintf(&b, "add element inet %s fw_in { %q : jump %s }\n", nftTable, link, c.in)
	fmt.Fprintf(&b, "add element inet %s fw_out { %q : jump %s }\n", nftTable, link, c.out)
	fmt.Fprintf(&b, "add element inet %s shape { %q : jump %s_shape }\n", nftTable, link, link)
	return b.String()
}

// hostNftTeardown undoes hostNftSetup.
func hostNftTeardown(link string) string {
	c := chainsFor(link)
	var b strings.Builder
	for _, m := range []string{"fw_in", "fw_out", "shape"} {
		fmt.Fprintf(&b, "delete element inet %s %s { %q }\n", nftTable, m, link)
	}
	chains := []string{c.in, c.inReply, c.out, c.outReply, link + "_shape"}
	for _, ch := range chains {
		fmt.Fprintf(&b, "flush chain inet %s %s\n", nftTable, ch)
	}
	for _, ch := range chains {
		fmt.Fprintf(&b, "delete chain inet %s %s\n", nftTable, ch)
	}
	return b.String()
}

// setupHostNet creates the host's namespace and its link to the router,
// addresses and routes on all three sides, and re-applies the link's
// shaping. The firewall lives in the router and survives host reboots.
func (l *Lab) setupHostNet(ctx context.Context, h *Host) error {
	r := l.routerNS()
	if err := newNetns(ctx, l.run, h.netns); err != nil {
		return fmt.Errorf("create network of host %s: %w", h.name, err)
	}
	gwMAC := nextMAC(h.mac)
	if err := ipBatch(ctx, l.run, r,
		fmt.Sprintf("link add %s address %s type veth peer name eth0 address %s netns %s", h.link, gwMAC, h.mac, h.netns),
		fmt.Sprintf("addr add %s/32 dev %s", l.plan.gw4(), h.link),
		fmt.Sprintf("link set %s up", h.link),
		fmt.Sprintf("route add %s/32 dev %s", h.v4, h.link),
		fmt.Sprintf("route add %s dev %s", h.prefix6, h.link),
	); err != nil {
		return fmt.Errorf("link host %s to router: %w", h.name, err)
	}
	if err := ipBatch(ctx, l.run, h.netns,
		"link set lo up",
		"link set eth0 up",
		fmt.Sprintf("addr add %s/32 dev eth0", h.v4),
		fmt.Sprintf("route add %s dev eth0 scope link", l.plan.gw4()),
		fmt.Sprintf("route add default via %s dev eth0", l.plan.gw4()),
		fmt.Sprintf("addr add %s/64 dev eth0 nodad", h.v6),
		fmt.Sprintf("route add default via %s dev eth0", linkLocal(gwMAC)),
	); err != nil {
		return fmt.Errorf("configure network of host %s: %w", h.name, err)
	}
	if err := ipBatch(ctx, l.run, "",
		fmt.Sprintf("route add %s/32 via %s dev %s", h.v4, l.plan.router4(), l.name+"-box"),
		fmt.Sprintf("route add %s via %s dev %s", h.prefix6, l.plan.router6(), l.name+"-box"),
	); err != nil {
		return fmt.Errorf("route box to host %s (is %s or %s used by another lab?): %w", h.name, h.v4, h.prefix6, err)
	}
	return nil
}

// teardownHostNet deletes the host's link and namespace and the box's
// routes to it. Deleting the link explicitly matters: a namespace can
// outlive its name when some other mount namespace still references it.
func (l *Lab) teardownHostNet(ctx context.Context, h *Host) error {
	var errs []string
	_ = ipBatch(ctx, l.run, "",
		fmt.Sprintf("route del %s/32 via %s dev %s", h.v4, l.plan.router4(), l.name+"-box"),
	)
	_ = ipBatch(ctx, l.run, "",
		fmt.Sprintf("route del %s via %s dev %s", h.prefix6, l.plan.router6(), l.name+"-box"),
	)
	_ = l.clearIfb(ctx, h)
	if _, err := l.run.run(ctx, nil, "ip", "-n", l.routerNS(), "link", "del", h.link); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err.Error())
	}
	if _, err := l.run.run(ctx, nil, "ip", "netns", "del", h.netns); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove network of host %s: %s", h.name, strings.Join(errs, "; "))
	}
	return nil
}
