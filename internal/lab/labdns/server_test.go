package labdns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// memSource is a Source the test changes between queries.
type memSource struct {
	mu    sync.Mutex
	zones []Zone
}

func (m *memSource) Zones() []Zone {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Zone, len(m.zones))
	for i, z := range m.zones {
		z.Records = append([]Record(nil), z.Records...)
		out[i] = z
	}
	return out
}

func (m *memSource) add(zone string, r Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.zones {
		if m.zones[i].Name == zone {
			m.zones[i].Records = append(m.zones[i].Records, r)
			m.zones[i].Serial++
		}
	}
}

func testZones() *memSource {
	return &memSource{zones: []Zone{
		{Name: "example.test", NameServers: []string{"ns1.example.test", "ns2.example.test"}, Serial: 100, Records: []Record{
			{Name: "example.test", Type: "A", TTL: 300, Content: "192.0.2.1"},
			{Name: "example.test", Type: "CAA", TTL: 3600, Content: `0 issue "letsencrypt.org"`},
			{Name: "example.test", Type: "MX", TTL: 300, Content: "10 mail.example.test"},
			{Name: "mail.example.test", Type: "A", TTL: 300, Content: "192.0.2.25"},
			{Name: "www.example.test", Type: "AAAA", TTL: 300, Content: "2001:db8::1"},
			{Name: "www.example.test", Type: "A", TTL: 300, Content: "192.0.2.2"},
			{Name: "chat.example.test", Type: "CNAME", TTL: 300, Content: "www.example.test"},
			{Name: "far.example.test", Type: "CNAME", TTL: 300, Content: "host.other.test"},
			{Name: "away.example.test", Type: "CNAME", TTL: 300, Content: "elsewhere.invalid"},
			{Name: "dangling.example.test", Type: "CNAME", TTL: 300, Content: "nothing.example.test"},
			{Name: "loop1.example.test", Type: "CNAME", TTL: 300, Content: "loop2.example.test"},
			{Name: "loop2.example.test", Type: "CNAME", TTL: 300, Content: "loop1.example.test"},
			{Name: "_acme-challenge.deep.sub.example.test", Type: "TXT", TTL: 120, Content: `"token-value"`},
			{Name: "*.wild.example.test", Type: "A", TTL: 300, Content: "192.0.2.99"},
			{Name: "raw.example.test", Type: "TXT", TTL: 300, Content: "unquoted text"},
		}},
		{Name: "other.test", NameServers: []string{"ns1.example.test"}, Serial: 7, Records: []Record{
			{Name: "host.other.test", Type: "A", TTL: 60, Content: "198.51.100.7"},
		}},
	}}
}

func startServer(t *testing.T, src Source) *Server {
	t.Helper()
	s, err := Start(context.Background(), Config{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// dig sends one query like `dig @server name type` (+norec, over net).
func dig(t *testing.T, s *Server, netw, name string, qtype uint16, edit ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	for _, e := range edit {
		e(m)
	}
	c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("dig %s %s over %s: %v", name, dns.TypeToString[qtype], netw, err)
	}
	return r
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

func expectRRs(t *testing.T, what string, got []dns.RR, want ...string) {
	t.Helper()
	g := rrStrings(got)
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, g, want)
	}
}

func TestPositiveAnswersAreAuthoritativeAndExact(t *testing.T) {
	s := startServer(t, testZones())
	cases := []struct {
		name  string
		qtype uint16
		want  []string
	}{
		{"example.test.", dns.TypeA, []string{"example.test. 300 IN A 192.0.2.1"}},
		{"www.example.test.", dns.TypeAAAA, []string{"www.example.test. 300 IN AAAA 2001:db8::1"}},
		{"example.test.", dns.TypeCAA, []string{`example.test. 3600 IN CAA 0 issue "letsencrypt.org"`}},
		{"_acme-challenge.deep.sub.example.test.", dns.TypeTXT, []string{`_acme-challenge.deep.sub.example.test. 120 IN TXT "token-value"`}},
		{"raw.example.test.", dns.TypeTXT, []string{`raw.example.test. 300 IN TXT "unquoted text"`}},
		{"example.test.", dns.TypeSOA, []string{"example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 100 10000 2400 604800 60"}},
		{"example.test.", dns.TypeNS, []string{"example.test. 3600 IN NS ns1.example.test.", "example.test. 3600 IN NS ns2.example.test."}},
	}
	for _, c := range cases {
		for _, netw := range []string{"udp", "tcp"} {
			r := dig(t, s, netw, c.name, c.qtype)
			if !r.Authoritative || r.Rcode != dns.RcodeSuccess || r.RecursionAvailable {
				t.Errorf("%s %s/%s: aa=%v ra=%v rcode=%s", netw, c.name, dns.TypeToString[c.qtype], r.Authoritative,
					r.RecursionAvailable, dns.RcodeToString[r.Rcode])
			}
			expectRRs(t, netw+" "+c.name+" "+dns.TypeToString[c.qtype], r.Answer, c.want...)
		}
	}
}

func TestNameServersResolveToTheServerWithGlue(t *testing.T) {
	s := startServer(t, testZones())
	r := dig(t, s, "udp", "example.test.", dns.TypeNS)
	expectRRs(t, "glue", r.Extra, "ns1.example.test. 300 IN A 127.0.0.1", "ns2.example.test. 300 IN A 127.0.0.1")
	r = dig(t, s, "udp", "ns2.example.test.", dns.TypeA)
	expectRRs(t, "ns2 A", r.Answer, "ns2.example.test. 300 IN A 127.0.0.1")
	// A zone whose name server lives in another served zone gets its glue too.
	r = dig(t, s, "udp", "other.test.", dns.TypeNS)
	expectRRs(t, "other.test glue", r.Extra, "ns1.example.test. 300 IN A 127.0.0.1")
	r = dig(t, s, "udp", "example.test.", dns.TypeMX)
	expectRRs(t, "MX glue", r.Extra, "mail.example.test. 300 IN A 192.0.2.25")
}

func TestNegativeAnswersDistinguishNXDOMAINFromNODATA(t *testing.T) {
	s := startServer(t, testZones())
	soa := "example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. 100 10000 2400 604800 60"
	cases := []struct {
		what  string
		name  string
		qtype uint16
		rcode int
	}{
		{"absent name", "nope.example.test.", dns.TypeA, dns.RcodeNameError},
		{"absent type", "www.example.test.", dns.TypeTXT, dns.RcodeSuccess},
		{"empty non-terminal", "sub.example.test.", dns.TypeA, dns.RcodeSuccess},
		{"empty non-terminal, deeper", "deep.sub.example.test.", dns.TypeTXT, dns.RcodeSuccess},
		{"below an existing name", "x.www.example.test.", dns.TypeA, dns.RcodeNameError},
		{"lego's SOA walk below the apex", "_acme-challenge.chat.example.test.", dns.TypeSOA, dns.RcodeNameError},
	}
	for _, c := range cases {
		r := dig(t, s, "udp", c.name, c.qtype)
		if r.Rcode != c.rcode || !r.Authoritative || len(r.Answer) != 0 {
			t.Errorf("%s: rcode=%s aa=%v answers=%v", c.what, dns.RcodeToString[r.Rcode], r.Authoritative, r.Answer)
		}
		expectRRs(t, c.what+" authority", r.Ns, soa)
	}
}

func TestNamesOutsideServedZonesAreRefused(t *testing.T) {
	s := startServer(t, testZones())
	for _, n := range []string{"example.com.", "test.", "."} {
		r := dig(t, s, "udp", n, dns.TypeA)
		if r.Rcode != dns.RcodeRefused || r.Authoritative || len(r.Answer)+len(r.Ns) != 0 {
			t.Errorf("%s: rcode=%s aa=%v", n, dns.RcodeToString[r.Rcode], r.Authoritative)
		}
	}
	if got := s.Stats().Refused; got != 3 {
		t.Errorf("refused counter = %d, want 3", got)
	}
}

func TestNamesMatchCaseInsensitivelyAndKeepTheAskedCase(t *testing.T) {
	s := startServer(t, testZones())
	r := dig(t, s, "udp", "wWw.ExAmPlE.tEsT.", dns.TypeA)
	expectRRs(t, "0x20", r.Answer, "wWw.ExAmPlE.tEsT. 300 IN A 192.0.2.2")
}

func TestCNAMEsAreChasedInsideServedZones(t *testing.T) {
	s := startServer(t, testZones())
	r := dig(t, s, "udp", "chat.example.test.", dns.TypeA)
	expectRRs(t, "same zone", r.Answer, "chat.example.test. 300 IN CNAME www.example.test.", "www.example.test. 300 IN A 192.0.2.2")
	r = dig(t, s, "udp", "far.example.test.", dns.TypeA)
	expectRRs(t, "other served zone", r.Answer, "far.example.test. 300 IN CNAME host.other.test.", "host.other.test. 60 IN A 198.51.100.7")
	r = dig(t, s, "udp", "away.example.test.", dns.TypeA)
	expectRRs(t, "outside", r.Answer, "away.example.test. 300 IN CNAME elsewhere.invalid.")
	r = dig(t, s, "udp", "chat.example.test.", dns.TypeCNAME)
	expectRRs(t, "CNAME query", r.Answer, "chat.example.test. 300 IN CNAME www.example.test.")
	r = dig(t, s, "udp", "dangling.example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Errorf("dangling CNAME: rcode=%s answer=%v, want NXDOMAIN after the CNAME (RFC 6604)", dns.RcodeToString[r.Rcode], r.Answer)
	}
	r = dig(t, s, "udp", "loop1.example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Errorf("CNAME loop: rcode=%s answer=%v, want the two CNAMEs and a stop", dns.RcodeToString[r.Rcode], r.Answer)
	}
}

func TestWildcardsSynthesiseOnlyForAbsentNames(t *testing.T) {
	s := startServer(t, testZones())
	r := dig(t, s, "udp", "anything.wild.example.test.", dns.TypeA)
	expectRRs(t, "wildcard", r.Answer, "anything.wild.example.test. 300 IN A 192.0.2.99")
	r = dig(t, s, "udp", "a.b.wild.example.test.", dns.TypeA)
	expectRRs(t, "wildcard, two labels", r.Answer, "a.b.wild.example.test. 300 IN A 192.0.2.99")
	r = dig(t, s, "udp", "wild.example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("wildcard parent (empty non-terminal): rcode=%s answer=%v", dns.RcodeToString[r.Rcode], r.Answer)
	}
}

func TestEDNS0IsAnsweredAndUnknownVersionsGetBADVERS(t *testing.T) {
	s := startServer(t, testZones())
	r := dig(t, s, "udp", "www.example.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, true) })
	opt := r.IsEdns0()
	if opt == nil || opt.UDPSize() != 1232 || !opt.Do() {
		t.Errorf("EDNS0 answer: opt=%v", opt)
	}
	r = dig(t, s, "udp", "www.example.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) })
	if r.Rcode != dns.RcodeBadVers || len(r.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode=%s, want BADVERS", dns.RcodeToString[r.Rcode])
	}
	r = dig(t, s, "udp", "www.example.test.", dns.TypeA)
	if r.IsEdns0() != nil {
		t.Error("answer to a query without EDNS0 carries an OPT record")
	}
}

func TestBigTXTSetsTruncateOnUDPAndComeWholeOverTCP(t *testing.T) {
	src := testZones()
	for i := range 30 {
		src.add("example.test", Record{Name: "big.example.test", Type: "TXT", TTL: 300, Content: fmt.Sprintf(`"%02d-%s"`, i, strings.Repeat("x", 60))})
	}
	s := startServer(t, src)
	r := dig(t, s, "udp", "big.example.test.", dns.TypeTXT)
	if !r.Truncated || len(r.Answer) >= 30 {
		t.Errorf("UDP without EDNS0: tc=%v answers=%d, want TC and fewer than 30", r.Truncated, len(r.Answer))
	}
	r = dig(t, s, "udp", "big.example.test.", dns.TypeTXT, func(m *dns.Msg) { m.SetEdns0(4096, false) })
	if !r.Truncated {
		t.Errorf("UDP with EDNS0 (1232 bytes max): tc=%v answers=%d, want TC (30×~70 bytes)", r.Truncated, len(r.Answer))
	}
	r = dig(t, s, "tcp", "big.example.test.", dns.TypeTXT)
	if r.Truncated || len(r.Answer) != 30 {
		t.Errorf("TCP: tc=%v answers=%d, want all 30", r.Truncated, len(r.Answer))
	}
	if s.Stats().Truncated != 2 {
		t.Errorf("truncated counter = %d, want 2", s.Stats().Truncated)
	}
	// A 2-kB single TXT value is split in 255-byte strings.
	src.add("example.test", Record{Name: "long.example.test", Type: "TXT", TTL: 300, Content: strings.Repeat("y", 600)})
	r = dig(t, s, "tcp", "long.example.test.", dns.TypeTXT)
	if len(r.Answer) != 1 || len(r.Answer[0].(*dns.TXT).Txt) != 3 {
		t.Errorf("long TXT: %v", r.Answer)
	}
}

func TestChangesAreVisibleAtOnceWithANewSerial(t *testing.T) {
	src := testZones()
	s := startServer(t, src)
	r := dig(t, s, "udp", "new.example.test.", dns.TypeA)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("before: %s", dns.RcodeToString[r.Rcode])
	}
	src.add("example.test", Record{Name: "new.example.test", Type: "A", TTL: 300, Content: "192.0.2.50"})
	r = dig(t, s, "udp", "new.example.test.", dns.TypeA)
	expectRRs(t, "after", r.Answer, "new.example.test. 300 IN A 192.0.2.50")
	r = dig(t, s, "tcp", "example.test.", dns.TypeSOA)
	if got := r.Answer[0].(*dns.SOA).Serial; got != 101 {
		t.Errorf("serial %d, want 101", got)
	}
}

func TestUnusualQueriesGetStandardRcodes(t *testing.T) {
	s := startServer(t, testZones())
	r := dig(t, s, "udp", "example.test.", dns.TypeANY)
	expectRRs(t, "ANY", r.Answer, `example.test. 3789 IN HINFO "RFC8482" ""`)
	r = dig(t, s, "tcp", "example.test.", dns.TypeAXFR)
	if r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR: %s", dns.RcodeToString[r.Rcode])
	}
	r = dig(t, s, "udp", "example.test.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus })
	if r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("STATUS opcode: %s", dns.RcodeToString[r.Rcode])
	}
	r = dig(t, s, "udp", "version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })
	if r.Rcode != dns.RcodeRefused {
		t.Errorf("CH class: %s", dns.RcodeToString[r.Rcode])
	}
}

func TestSelfAddressesCanBeGiven(t *testing.T) {
	s, err := Start(context.Background(), Config{Addr: "127.0.0.1:0", Source: testZones(),
		SelfAddrs: []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("fd99::1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := dig(t, s, "udp", "ns1.example.test.", dns.TypeAAAA)
	expectRRs(t, "ns1 AAAA", r.Answer, "ns1.example.test. 300 IN AAAA fd99::1")
}

func TestCloseFreesBothPorts(t *testing.T) {
	s, err := Start(context.Background(), Config{Addr: "127.0.0.1:0", Source: testZones()})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("udp %s still taken: %v", addr, err)
	}
	pc.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("tcp %s still taken: %v", addr, err)
	}
	ln.Close()
}

func TestCancellingTheContextStopsTheServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Config{Addr: "127.0.0.1:0", Source: testZones()})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(3 * time.Second)
	for {
		ln, err := net.Listen("tcp", s.Addr())
		if err == nil {
			ln.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcp %s still taken after cancel: %v", s.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
