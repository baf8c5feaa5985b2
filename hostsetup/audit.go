package hostsetup

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lghs/lghsctl/inventory"
)

// Listener is a socket listening on the host.
type Listener struct {
	Proto   string // tcp or udp
	Addr    netip.Addr
	Port    int
	Process string
}

// Loopback reports whether only the host itself can reach the socket.
func (l Listener) Loopback() bool { return l.Addr.IsLoopback() }

// Publish is a container port Docker publishes on the host.
type Publish struct {
	Container string
	HostAddr  string // as docker shows it: 0.0.0.0, ::, 127.0.0.1, ...
	HostPort  int
	Proto     string
}

// Wildcard reports whether the port is published on every address.
func (p Publish) Wildcard() bool {
	return p.HostAddr == "0.0.0.0" || p.HostAddr == "::" || p.HostAddr == "[::]" || p.HostAddr == ""
}

// Finding is one audit result line.
type Finding struct {
	// Severity is "fail" or "ok" (or "info" for what cannot be probed).
	Severity string `json:"severity"`
	Family   string `json:"family,omitempty"` // ipv4, ipv6
	Port     int    `json:"port,omitempty"`
	Proto    string `json:"proto,omitempty"`
	What     string `json:"what"`
	Fix      string `json:"fix,omitempty"`
}

// Audit is the exposure audit of one host.
type Audit struct {
	Host      string     `json:"host"`
	Listeners []Listener `json:"-"`
	Publishes []Publish  `json:"-"`
	Findings  []Finding  `json:"findings"`
}

// Failed reports whether anything is exposed that should not be.
func (a *Audit) Failed() bool {
	for _, f := range a.Findings {
		if f.Severity == "fail" {
			return true
		}
	}
	return false
}

// Dialer connects from outside the host (the operator's machine).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// AuditTarget says where a host is reachable from outside.
type AuditTarget struct {
	Name string
	IPv4 netip.Addr // zero when the host has none
	IPv6 netip.Addr
	// Allowed is the inventory's inbound TCP/UDP policy for the host (its
	// security group); nil means the host has no cloud firewall and only
	// 22, 80 and 443 are expected to answer.
	Allowed *inventory.SecurityGroup
}

const auditScript = `LC_ALL=C; export LC_ALL
ss -H -ltnu 2>/dev/null | awk '{print "sock\t" $1 "\t" $5}'
ss -H -ltnup 2>/dev/null | awk '{print "proc\t" $1 "\t" $5 "\t" $7}'
if command -v docker >/dev/null 2>&1; then docker ps --format 'pub\t{{.Names}}\t{{.Ports}}' 2>/dev/null; fi
exit 0
`

// RunAudit lists what listens on the host and what Docker publishes (one
// remote command), then probes from outside, over IPv4 and IPv6
// separately, every TCP port found, and compares with what the inventory
// allows. A container port reachable from outside, or published on all
// addresses, fails the audit with the container's name and the fix.
func RunAudit(ctx context.Context, h Host, t AuditTarget, dial Dialer) (*Audit, error) {
	out, err := h.Run(ctx, auditScript, nil)
	if err != nil {
		return nil, fmt.Errorf("list listeners on %s: %w", t.Name, err)
	}
	a := &Audit{Host: t.Name}
	a.Listeners, a.Publishes = parseAudit(string(out))

	containerOf := map[int]string{}
	for _, p := range a.Publishes {
		if p.Proto == "tcp" {
			containerOf[p.HostPort] = p.Container
		}
		if p.Wildcard() {
			a.Findings = append(a.Findings, Finding{
				Severity: "fail", Port: p.HostPort, Proto: p.Proto,
				What: fmt.Sprintf("container %s publishes %d/%s on %s (all addresses): Docker's rules bypass the host firewall", p.Container, p.HostPort, p.Proto, displayAddr(p.HostAddr)),
				Fix:  fmt.Sprintf("publish it on loopback only (\"127.0.0.1:%d:%d\") and reach it through nginx or an SSH tunnel", p.HostPort, p.HostPort),
			})
		}
	}

	// Probe each TCP port that listens on a non-loopback address.
	ports := map[int]bool{}
	for _, l := range a.Listeners {
		if l.Proto == "tcp" && !l.Loopback() {
			ports[l.Port] = true
		}
	}
	for port := range containerOf {
		ports[port] = true
	}
	type probe struct {
		family string
		addr   netip.Addr
		port   int
	}
	var probes []probe
	for port := range ports {
		if t.IPv4.IsValid() {
			probes = append(probes, probe{"ipv4", t.IPv4, port})
		}
		if t.IPv6.IsValid() {
			probes = append(probes, probe{"ipv6", t.IPv6, port})
		}
	}
	sort.Slice(probes, func(i, j int) bool {
		if probes[i].port != probes[j].port {
			return probes[i].port < probes[j].port
		}
		return probes[i].family < probes[j].family
	})
	reachable := make([]bool, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			c, err := dial(pctx, "tcp", netip.AddrPortFrom(p.addr, uint16(p.port)).String())
			if err == nil {
				c.Close()
				reachable[i] = true
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, p := range probes {
		allowed := allowedInbound(t.Allowed, "TCP", p.port, p.family)
		container := containerOf[p.port]
		switch {
		case reachable[i] && container != "":
			a.Findings = append(a.Findings, Finding{Severity: "fail", Family: p.family, Port: p.port, Proto: "tcp",
				What: fmt.Sprintf("container %s's port %d/tcp answers from outside over %s (%s)", container, p.port, p.family, p.addr),
				Fix:  fmt.Sprintf("publish it on 127.0.0.1 only, and keep %d closed in the security group", p.port)})
		case reachable[i] && !allowed:
			a.Findings = append(a.Findings, Finding{Severity: "fail", Family: p.family, Port: p.port, Proto: "tcp",
				What: fmt.Sprintf("port %d/tcp (%s) answers from outside over %s, but the inventory does not allow it", p.port, processOn(a.Listeners, p.port), p.family),
				Fix:  "stop the service, bind it to loopback, or allow the port in the security group if it is meant to be public"})
		case reachable[i]:
			a.Findings = append(a.Findings, Finding{Severity: "ok", Family: p.family, Port: p.port, Proto: "tcp",
				What: fmt.Sprintf("port %d/tcp (%s) is public over %s, as the inventory allows", p.port, processOn(a.Listeners, p.port), p.family)})
		default:
			a.Findings = append(a.Findings, Finding{Severity: "ok", Family: p.family, Port: p.port, Proto: "tcp",
				What: fmt.Sprintf("port %d/tcp (%s) listens but is not reachable from outside over %s", p.port, processOn(a.Listeners, p.port), p.family)})
		}
	}
	for _, l := range a.Listeners {
		if l.Proto == "udp" && !l.Loopback() && !allowedInbound(t.Allowed, "UDP", l.Port, familyOf(l.Addr)) {
			a.Findings = append(a.Findings, Finding{Severity: "info", Port: l.Port, Proto: "udp",
				What: fmt.Sprintf("udp %s:%d (%s) listens; UDP cannot be probed reliably and the inventory does not allow it", l.Addr, l.Port, l.Process)})
		}
	}
	return a, nil
}

func familyOf(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "ipv4"
	}
	return "ipv6"
}

func displayAddr(a string) string {
	if a == "" || a == "::" || a == "[::]" {
		return "[::]"
	}
	return a
}

func processOn(ls []Listener, port int) string {
	for _, l := range ls {
		if l.Proto == "tcp" && l.Port == port && l.Process != "" {
			return l.Process
		}
	}
	return "unknown process"
}

// allowedInbound evaluates a security group's inbound policy for a port,
// as Scaleway does: rules in order, first match wins, then the default.
// Without a group, 22, 80 and 443 are the expected public ports.
func allowedInbound(sg *inventory.SecurityGroup, proto string, port int, family string) bool {
	if sg == nil {
		return proto == "TCP" && (port == 22 || port == 80 || port == 443)
	}
	for _, r := range sg.Rules {
		if r.Direction != "inbound" || (r.Protocol != proto && r.Protocol != "ANY") {
			continue
		}
		if !r.Ports.IsZero() && (port < r.Ports.From || port > r.Ports.To) {
			continue
		}
		covers := false
		for _, cidr := range r.IPRanges {
			pfx, err := netip.ParsePrefix(cidr)
			if err != nil {
				if a, err2 := netip.ParseAddr(cidr); err2 == nil {
					pfx = netip.PrefixFrom(a, a.BitLen())
				}
			}
			// "Reachable from outside" means from anywhere: only rules
			// open to the whole family count as making a port public.
			if pfx.IsValid() && pfx.Bits() == 0 && (pfx.Addr().Is4() == (family == "ipv4")) {
				covers = true
			}
		}
		if covers {
			return r.Action == "accept"
		}
	}
	return sg.InboundDefault == "accept"
}

// parseAudit reads the audit script's output.
func parseAudit(out string) ([]Listener, []Publish) {
	procs := map[string]string{}
	var ls []Listener
	var pubs []Publish
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "proc" && len(f) >= 4:
			procs[f[1]+" "+f[2]] = procName(f[3])
		case f[0] == "sock" && len(f) == 3:
			addr, port, ok := splitSSAddr(f[2])
			if ok {
				ls = append(ls, Listener{Proto: f[1], Addr: addr, Port: port})
			}
		case f[0] == "pub" && len(f) == 3:
			pubs = append(pubs, parsePorts(f[1], f[2])...)
		}
	}
	for i := range ls {
		key := ls[i].Proto + " " + ssAddr(ls[i].Addr, ls[i].Port)
		ls[i].Process = procs[key]
	}
	return ls, pubs
}

func ssAddr(a netip.Addr, port int) string {
	if a.Is6() {
		return fmt.Sprintf("[%s]:%d", a, port)
	}
	return fmt.Sprintf("%s:%d", a, port)
}

// splitSSAddr reads ss's local address column: 0.0.0.0:22, [::]:22,
// *:22, 127.0.0.53%lo:53, [fe80::1]%eth0:546.
func splitSSAddr(s string) (netip.Addr, int, bool) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return netip.Addr{}, 0, false
	}
	host, portStr := s[:i], s[i+1:]
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	if j := strings.Index(host, "%"); j >= 0 {
		host = host[:j]
	}
	host = strings.Trim(host, "[]")
	if host == "*" {
		host = "::"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	return a, port, true
}

// procName extracts the program from ss -p's users:(("nginx",pid=1,fd=6)).
func procName(s string) string {
	if i := strings.Index(s, `(("`); i >= 0 {
		rest := s[i+3:]
		if j := strings.Index(rest, `"`); j >= 0 {
			return rest[:j]
		}
	}
	return ""
}

// parsePorts reads docker ps's Ports column, e.g.
// "0.0.0.0:27017->27017/tcp, :::27017->27017/tcp, 3000/tcp".
func parsePorts(container, ports string) []Publish {
	var out []Publish
	for _, p := range strings.Split(ports, ",") {
		p = strings.TrimSpace(p)
		host, target, ok := strings.Cut(p, "->")
		if !ok {
			continue // exposed but not published
		}
		_, proto, _ := strings.Cut(target, "/")
		i := strings.LastIndex(host, ":")
		if i < 0 {
			continue
		}
		addr, portStr := host[:i], host[i+1:]
		if strings.Contains(portStr, "-") {
			portStr, _, _ = strings.Cut(portStr, "-")
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			continue
		}
		out = append(out, Publish{Container: container, HostAddr: addr, HostPort: port, Proto: proto})
	}
	return out
}
