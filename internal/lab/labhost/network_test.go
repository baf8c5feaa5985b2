package labhost_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// serveHTTP starts python3's HTTP server on port in the host (dual stack)
// and waits until it answers.
func serveHTTP(t *testing.T, ctx context.Context, h *labhost.Host, port int) {
	t.Helper()
	if _, err := h.Output(ctx, "systemd-run", "--unit=labtest-http-"+strconv.Itoa(port), "--working-directory=/usr/share",
		"python3", "-m", "http.server", "--bind", "::", strconv.Itoa(port)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Output(ctx, "bash", "-c", fmt.Sprintf("for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null && exit 0; sleep 0.1; done; exit 1", port)); err != nil {
		t.Fatalf("http server on %s: %v", h.Name(), err)
	}
}

// reach says whether a TCP connection from the box to addr:port opens and
// gets the server's first answer within a second.
func reach(addr netip.Addr, port int, send string) bool {
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if send != "" {
		if _, err := c.Write([]byte(send)); err != nil {
			return false
		}
	}
	buf := make([]byte, 4)
	_, err = c.Read(buf)
	return err == nil
}

// reachFrom says whether host from opens a TCP connection to addr:port
// within a second.
func reachFrom(ctx context.Context, from *labhost.Host, addr netip.Addr, port int) bool {
	_, err := from.Output(ctx, "timeout", "1", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr, port))
	return err == nil
}

const httpGet = "GET / HTTP/1.0\r\n\r\n"

// TestSecurityGroupIsEnforcedOutsideTheHostAndChangesApplyAtOnce checks the
// firewall against Scaleway's semantics: default drop with an SSH rule over
// IPv4 and IPv6 (so neighbour discovery works under drop), outbound
// replies under stateful, a rule for one peer only, established connections
// cut when their rule goes, and stateless policies needing explicit reply
// rules.
func TestSecurityGroupIsEnforcedOutsideTheHostAndChangesApplyAtOnce(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	sshOnly := labhost.Policy{
		InboundDefault: labhost.Drop, OutboundDefault: labhost.Accept, Stateful: true,
		Rules: []labhost.Rule{
			{Direction: labhost.Inbound, Action: labhost.Accept, Protocol: labhost.TCP, IPRange: netip.MustParsePrefix("0.0.0.0/0"), PortFrom: 22},
			{Direction: labhost.Inbound, Action: labhost.Accept, Protocol: labhost.TCP, IPRange: netip.MustParsePrefix("::/0"), PortFrom: 22},
		},
	}
	a := labtest.Host(t, l, labhost.Spec{Name: "fw-a", Firewall: sshOnly})
	b := labtest.Host(t, l, labhost.Spec{Name: "fw-b"})
	serveHTTP(t, ctx, a, 8080)

	for _, addr := range []netip.Addr{a.Addr4(), a.Addr6()} {
		if !reach(addr, 22, "") {
			t.Errorf("SSH to %s blocked by a policy that allows it", addr)
		}
		if reach(addr, 8080, httpGet) {
			t.Errorf("port 8080 on %s reachable under inbound drop", addr)
		}
	}
	if reachFrom(ctx, b, a.Addr4(), 8080) {
		t.Error("host b reaches a:8080 under a's inbound drop")
	}
	if !reachFrom(ctx, a, b.Addr4(), 22) {
		t.Error("a cannot open connections out (outbound accept, stateful replies)")
	}

	// Let b (only) in on 8080: immediate.
	withB := sshOnly
	withB.Rules = append(append([]labhost.Rule(nil), sshOnly.Rules...), labhost.Rule{
		Direction: labhost.Inbound, Action: labhost.Accept, Protocol: labhost.TCP,
		IPRange: netip.PrefixFrom(b.Addr4(), 32), PortFrom: 8080})
	if err := a.SetFirewall(ctx, withB); err != nil {
		t.Fatal(err)
	}
	if !reachFrom(ctx, b, a.Addr4(), 8080) {
		t.Error("b cannot reach a:8080 after its rule was added")
	}
	if reach(a.Addr4(), 8080, httpGet) {
		t.Error("the box reaches a:8080 though only b was let in")
	}

	// An established connection dies with its rule.
	if err := a.SetFirewall(ctx, labhost.Policy{}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a.Addr4(), 8080).String(), time.Second)
	if err != nil {
		t.Fatalf("a:8080 under accept-all: %v", err)
	}
	defer c.Close()
	if err := a.SetFirewall(ctx, sshOnly); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(1500 * time.Millisecond))
	c.Write([]byte(httpGet))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Errorf("established connection still answered (%d bytes) after its rule was removed", n)
	}

	// Outbound drop, stateful: the host cannot open connections, but
	// replies to allowed inbound ones still pass.
	noOut := sshOnly
	noOut.OutboundDefault = labhost.Drop
	if err := a.SetFirewall(ctx, noOut); err != nil {
		t.Fatal(err)
	}
	if reachFrom(ctx, a, b.Addr4(), 22) {
		t.Error("a opens connections under outbound drop")
	}
	if !reach(a.Addr4(), 22, "") {
		t.Error("stateful: replies to allowed inbound SSH dropped by outbound drop")
	}

	// Stateless: replies are packets like any other.
	stateless := noOut
	stateless.Stateful = false
	if err := a.SetFirewall(ctx, stateless); err != nil {
		t.Fatal(err)
	}
	if reach(a.Addr4(), 22, "") {
		t.Error("stateless with outbound drop: SSH replies got out")
	}
	stateless.Rules = append(append([]labhost.Rule(nil), stateless.Rules...), labhost.Rule{
		Direction: labhost.Outbound, Action: labhost.Accept, Protocol: labhost.TCP, IPRange: netip.PrefixFrom(l.BoxAddr4(), 32)})
	if err := a.SetFirewall(ctx, stateless); err != nil {
		t.Fatal(err)
	}
	if !reach(a.Addr4(), 22, "") {
		t.Error("stateless with an outbound rule to the box: SSH replies blocked")
	}
	if got := a.Firewall(); len(got.Rules) != len(stateless.Rules) || got.Stateful {
		t.Errorf("Firewall() = %+v", got)
	}
}

// TestCutDropsSilentlyOrTakesTheLinkDownAndRestoreReconnects checks both
// cut modes from the box and from another host.
func TestCutDropsSilentlyOrTakesTheLinkDownAndRestoreReconnects(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	a := labtest.Host(t, l, labhost.Spec{Name: "cut-a"})
	b := labtest.Host(t, l, labhost.Spec{Name: "cut-b"})

	if err := a.Cut(ctx, labhost.CutDrop); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if reach(a.Addr4(), 22, "") || reach(a.Addr6(), 22, "") {
		t.Error("box reaches a cut host")
	}
	if time.Since(t0) < 900*time.Millisecond {
		t.Errorf("CutDrop answered in %v; it should drop silently (timeouts)", time.Since(t0))
	}
	if reachFrom(ctx, b, a.Addr4(), 22) || reachFrom(ctx, a, b.Addr4(), 22) {
		t.Error("hosts reach each other across a cut")
	}
	if err := a.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if !reach(a.Addr4(), 22, "") || !reachFrom(ctx, b, a.Addr6(), 22) {
		t.Fatal("not reachable after Restore")
	}

	if err := a.Cut(ctx, labhost.CutLinkDown); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	_, err := net.DialTimeout("tcp", a.SSHAddr(), 3*time.Second)
	if err == nil {
		t.Fatal("box connects to a host whose link is down")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("link down: dial timed out (%v); the router should answer unreachable", err)
	}
	t.Logf("link down: dial failed in %v: %v", time.Since(t0).Round(time.Millisecond), err)
	if out, _ := a.Output(ctx, "cat", "/sys/class/net/eth0/carrier"); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("host sees carrier %q with its link down", out)
	}
	if err := a.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !reach(a.Addr4(), 22, "") || !reach(a.Addr6(), 22, "") {
		if time.Now().After(deadline) {
			t.Fatal("not reachable over IPv4 and IPv6 after the link came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLossDropsTheConfiguredShareOfPackets sends UDP datagrams from the box
// to a host with 30% loss and counts what arrives.
func TestLossDropsTheConfiguredShareOfPackets(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	a := labtest.Host(t, l, labhost.Spec{Name: "loss"})
	if err := a.Shape(ctx, labhost.Shape{Loss: 0.3}); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	counter := `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("0.0.0.0",9999)); s.settimeout(3)
print("ready",flush=True); c=0
try:
    while True: s.recv(64); c+=1
except socket.timeout: pass
print(c)`
	done := make(chan string, 1)
	go func() {
		out, err := a.Output(ctx, "python3", "-c", counter)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		done <- string(out)
	}()
	time.Sleep(1500 * time.Millisecond) // python's start
	conn, err := net.Dial("udp", netip.AddrPortFrom(a.Addr4(), 9999).String())
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		conn.Write([]byte("x"))
		time.Sleep(200 * time.Microsecond)
	}
	conn.Close()
	out := <-done
	fields := strings.Fields(out)
	got, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil {
		t.Fatalf("counter: %q", out)
	}
	t.Logf("%d of %d datagrams arrived at 30%% loss", got, n)
	if got < n*60/100 || got > n*80/100 {
		t.Errorf("%d of %d arrived, want about 70%%", got, n)
	}
	if err := a.Shape(ctx, labhost.Shape{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	if reach(a.Addr4(), 22, "") {
		t.Error("100% loss lets SSH through")
	}
	if err := a.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if !reach(a.Addr4(), 22, "") {
		t.Error("unreachable after Restore")
	}
}

// TestCallerChosenAddressesMACResolversAndFilesAreWhatTheHostGets boots a
// host with Scaleway-like addresses chosen by the caller.
func TestCallerChosenAddressesMACResolversAndFilesAreWhatTheHostGets(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	mac, _ := net.ParseMAC("de:00:01:27:16:ab")
	slot, err := strconv.Atoi(strings.TrimPrefix(l.Name(), "lgl"))
	if err != nil {
		t.Fatal(err)
	}
	spec := labhost.Spec{
		Name:     "chosen",
		Hostname: "chat.lghs.test",
		// Outside the lab's own ranges, and per slot so that concurrent runs
		// of this test do not collide on the box's routes.
		IPv4:       netip.MustParseAddr(fmt.Sprintf("10.77.%d.5", slot)),
		IPv6Prefix: netip.MustParsePrefix(fmt.Sprintf("fdaa:bc8:711:40%02x::/64", slot)),
		MAC:        mac,
		Resolvers:  []netip.Addr{l.BoxAddr4()},
		Files:      []labhost.File{{Path: "/etc/lab/note", Mode: 0o600, Data: []byte("hello\n")}},
	}
	h := labtest.Host(t, l, spec)
	if want := eui(spec.IPv6Prefix, "dc00:1ff:fe27:16ab"); h.Addr6() != want {
		t.Errorf("IPv6 %v, want the EUI-64 address %v", h.Addr6(), want)
	}
	var out []byte
	out, err = h.Output(ctx, "bash", "-c", "ip -br addr show eth0; ip route; ip -6 route show default; cat /sys/class/net/eth0/address; hostname; cat /etc/resolv.conf; stat -c %a /etc/lab/note; cat /etc/lab/note")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{spec.IPv4.String() + "/32", h.Addr6().String() + "/64", "default via 10.200.", "default via fe80::dc00:1ff:fe27:16ac dev eth0",
		"de:00:01:27:16:ab", "chat.lghs.test", "nameserver " + l.BoxAddr4().String(), "600\nhello"} {
		want = strings.Replace(want, "10.200.", fmt.Sprintf("%s.", strings.Join(strings.Split(l.BoxAddr4().String(), ".")[:2], ".")), 1)
		if !strings.Contains(string(out), want) {
			t.Errorf("host lacks %q:\n%s", want, out)
		}
	}
	if !reach(h.Addr4(), 22, "") || !reach(h.Addr6(), 22, "") {
		t.Error("box cannot reach the caller-chosen addresses")
	}
	dup := spec
	dup.Name = "dup"
	if _, err := l.Start(ctx, dup); err == nil || !strings.Contains(err.Error(), "used by host chosen") {
		t.Errorf("second host with the same addresses: %v", err)
	}
}

// eui is the address with interface identifier iid (the last four groups)
// in the /64 p.
func eui(p netip.Prefix, iid string) netip.Addr {
	a := netip.MustParseAddr("::" + iid).As16()
	b := p.Addr().As16()
	copy(b[8:], a[8:])
	return netip.AddrFrom16(b)
}
