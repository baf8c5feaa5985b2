package labhost

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// maxInstances is how many labs can run on one box at a time; each gets one
// IPv4 /16 and one IPv6 /48 from the ranges below.
const maxInstances = 32

// netPlan is a lab instance's address plan.
//
//	IPv4: 10.(200+N).0.0/16. The box link is 10.(200+N).0.0/30 (box .1,
//	      router .2); hosts' gateway is 10.(200+N).0.254; hosts get /32s
//	      ("routed IPv4", as on Scaleway) from 10.(200+N).1.1 upwards.
//	IPv6: fd6c:6768:73NN::/48 (NN = N in hex). The box link is its first
//	      /64 (box ::1, router ::2); hosts get routed /64s from
//	      fd6c:6768:73NN:1::/64 upwards and their address in it is the
//	      EUI-64 of their MAC address (SLAAC, as on Scaleway); hosts' gateway
//	      is the link-local address of the router's end of their link, whose
//	      MAC is theirs + 1 (as on Scaleway).
type netPlan struct {
	n int
}

func (p netPlan) v4(c, d byte) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(200 + p.n), c, d})
}

func (p netPlan) v6(subnet uint16, iid uint64) netip.Addr {
	var b [16]byte
	copy(b[:], []byte{0xfd, 0x6c, 0x67, 0x68, 0x73, byte(p.n), byte(subnet >> 8), byte(subnet)})
	for i := 0; i < 8; i++ {
		b[15-i] = byte(iid >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

func (p netPlan) box4() netip.Addr    { return p.v4(0, 1) }
func (p netPlan) router4() netip.Addr { return p.v4(0, 2) }
func (p netPlan) gw4() netip.Addr     { return p.v4(0, 254) }
func (p netPlan) box6() netip.Addr    { return p.v6(0, 1) }
func (p netPlan) router6() netip.Addr { return p.v6(0, 2) }

// hostPrefix6 is the i-th host /64 (i ≥ 1).
func (p netPlan) hostPrefix6(i uint16) netip.Prefix {
	return netip.PrefixFrom(p.v6(i, 0), 64)
}

// checkHostAddrs says whether a host may use these addresses: private
// ranges only (10.0.0.0/8, fc00::/7 with a /64), never a lab's box link or
// gateway subnet.
func checkHostAddrs(v4 netip.Addr, prefix6 netip.Prefix, v6 netip.Addr) error {
	if !v4.Is4() || !netip.MustParsePrefix("10.0.0.0/8").Contains(v4) {
		return fmt.Errorf("IPv4 %v: want an address in 10.0.0.0/8", v4)
	}
	if b := v4.As4(); b[1] >= 200 && int(b[1]) < 200+maxInstances && b[2] == 0 {
		return fmt.Errorf("IPv4 %v: reserved for the labs' own links (10.200-231.0.0/24)", v4)
	}
	if v4 == netip.AddrFrom4([4]byte{v4.As4()[0], v4.As4()[1], v4.As4()[2], 0}) || v4.As4()[3] == 255 {
		return fmt.Errorf("IPv4 %v: not a usable host address", v4)
	}
	if !prefix6.IsValid() || prefix6.Bits() != 64 || !prefix6.Addr().Is6() || prefix6.Masked() != prefix6 {
		return fmt.Errorf("IPv6 prefix %v: want a /64", prefix6)
	}
	if !netip.MustParsePrefix("fc00::/7").Contains(prefix6.Addr()) {
		return fmt.Errorf("IPv6 prefix %v: want a ULA prefix (fc00::/7)", prefix6)
	}
	if a := prefix6.Addr().As16(); a[0] == 0xfd && a[1] == 0x6c && a[2] == 0x67 && a[3] == 0x68 && a[4] == 0x73 && a[6] == 0 && a[7] == 0 {
		return fmt.Errorf("IPv6 prefix %v: reserved for the labs' own links", prefix6)
	}
	if !prefix6.Contains(v6) {
		return fmt.Errorf("IPv6 %v: not in the host's prefix %v", v6, prefix6)
	}
	return nil
}

// eui64 is the SLAAC address of mac in the /64 prefix.
func eui64(prefix netip.Prefix, mac net.HardwareAddr) netip.Addr {
	b := prefix.Masked().Addr().As16()
	b[8] = mac[0] ^ 0x02
	b[9], b[10], b[11], b[12] = mac[1], mac[2], 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// linkLocal is the EUI-64 link-local address of mac.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	return eui64(netip.MustParsePrefix("fe80::/64"), mac)
}

// newMAC returns a random unicast, locally administered address in the
// de:00:00 block Scaleway uses.
func newMAC() net.HardwareAddr {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return net.HardwareAddr{0xde, 0x00, 0x00, b[0], b[1], b[2]}
}

// nextMAC is mac + 1 in its last three bytes (the router's end of a host's
// link, like Scaleway's gateway).
func nextMAC(mac net.HardwareAddr) net.HardwareAddr {
	out := append(net.HardwareAddr(nil), mac...)
	for i := len(out) - 1; i >= 3; i-- {
		out[i]++
		if out[i] != 0 {
			break
		}
	}
	return out
}

func checkMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("MAC %v: want 6 bytes", mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("MAC %v: multicast", mac)
	}
	return nil
}

// addrPool hands out a lab's host addresses. Not safe for concurrent use;
// the Lab guards it.
type addrPool struct {
	plan  netPlan
	used4 map[netip.Addr]bool
	used6 map[netip.Prefix]bool
}

func newAddrPool(plan netPlan) *addrPool {
	return &addrPool{plan: plan, used4: map[netip.Addr]bool{}, used6: map[netip.Prefix]bool{}}
}

var errPoolExhausted = errors.New("address pool exhausted")

func (p *addrPool) alloc4() (netip.Addr, error) {
	for c := 1; c <= 255; c++ {
		for d := 1; d <= 254; d++ {
			a := p.plan.v4(byte(c), byte(d))
			if !p.used4[a] {
				p.used4[a] = true
				return a, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("allocate IPv4: %w", errPoolExhausted)
}

func (p *addrPool) alloc6() (netip.Prefix, error) {
	for i := 1; i <= 0xffff; i++ {
		pr := p.plan.hostPrefix6(uint16(i))
		if !p.used6[pr] {
			p.used6[pr] = true
			return pr, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("allocate IPv6 prefix: %w", errPoolExhausted)
}

// claim marks caller-chosen addresses used; it is not an error to claim
// what was allocated before (the caller got it from alloc).
func (p *addrPool) claim(v4 netip.Addr, v6 netip.Prefix) {
	p.used4[v4] = true
	p.used6[v6] = true
}

// release gives back a /32, a /128 (ignored: IPv6 is handed out by /64) or
// a /64.
func (p *addrPool) release(pr netip.Prefix) {
	switch {
	case pr.Addr().Is4():
		delete(p.used4, pr.Addr())
	case pr.Bits() == 64:
		delete(p.used6, pr.Masked())
	}
}
