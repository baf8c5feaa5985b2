package labdns

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Fixed SOA timers (Cloudflare's values); the minimum is Config.NegativeTTL.
const (
	soaRefresh = 10000
	soaRetry   = 2400
	soaExpire  = 604800
	soaTTL     = 3600
	nsTTL      = 3600
	glueTTL    = 300
	maxChase   = 8
)

// zoneView is a zone parsed for answering: its records by lower-case owner.
type zoneView struct {
	apex   string // canonical
	soa    *dns.SOA
	ns     []dns.RR
	names  map[string][]dns.RR
	negTTL uint32
}

// view builds the answering view of every zone the source has now.
func (s *Server) views() []*zoneView {
	zones := s.cfg.Source.Zones()
	views := make([]*zoneView, 0, len(zones))
	for _, z := range zones {
		views = append(views, s.buildView(z))
	}
	// Glue: name servers inside served zones without an address of their own
	// are answered with the server's own addresses.
	for _, v := range views {
		for _, rr := range v.ns {
			host := rr.(*dns.NS).Ns
			hz := closestZone(views, host)
			if hz == nil || hasAddress(hz.names[host]) {
				continue
			}
			for _, a := range s.cfg.SelfAddrs {
				if a.Is4() {
					hz.names[host] = append(hz.names[host], &dns.A{
						Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: glueTTL}, A: a.AsSlice()})
				} else {
					hz.names[host] = append(hz.names[host], &dns.AAAA{
						Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: glueTTL}, AAAA: a.AsSlice()})
				}
			}
		}
	}
	return views
}

func hasAddress(rrs []dns.RR) bool {
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
			return true
		}
	}
	return false
}

func (s *Server) buildView(z Zone) *zoneView {
	apex := canonical(z.Name)
	v := &zoneView{apex: apex, names: map[string][]dns.RR{}, negTTL: s.cfg.NegativeTTL}
	for _, n := range z.NameServers {
		v.ns = append(v.ns, &dns.NS{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: nsTTL},
			Ns: canonical(n)})
	}
	mname := "ns." + apex
	if len(v.ns) > 0 {
		mname = v.ns[0].(*dns.NS).Ns
	}
	v.soa = &dns.SOA{
		Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: soaTTL},
		Ns:  mname, Mbox: "hostmaster." + apex, Serial: z.Serial,
		Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: s.cfg.NegativeTTL,
	}
	v.names[apex] = append(v.names[apex], v.soa)
	v.names[apex] = append(v.names[apex], v.ns...)
	for _, r := range z.Records {
		owner := canonical(r.Name)
		if owner != apex && !strings.HasSuffix(owner, "."+apex) {
			continue
		}
		if owner == apex && (strings.EqualFold(r.Type, "SOA") || strings.EqualFold(r.Type, "NS")) {
			continue // the apex SOA and NS come from the zone itself
		}
		rr, err := parseRecord(owner, r)
		if err != nil {
			s.log.Warn("lab dns: record skipped", slog.String("name", r.Name), slog.String("type", r.Type), slog.Any("err", err))
			continue
		}
		v.names[owner] = append(v.names[owner], rr)
	}
	return v
}

// parseRecord turns a Record into an RR; TXT content that is not quoted is
// one string, cut in 255-byte pieces as DNS requires.
func parseRecord(owner string, r Record) (dns.RR, error) {
	typ := strings.ToUpper(r.Type)
	content := strings.TrimSpace(r.Content)
	if typ == "TXT" && !strings.HasPrefix(content, `"`) {
		txt := &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: r.TTL}}
		raw := r.Content
		for len(raw) > 255 {
			txt.Txt = append(txt.Txt, raw[:255])
			raw = raw[255:]
		}
		txt.Txt = append(txt.Txt, raw)
		return txt, nil
	}
	if (typ == "CNAME" || typ == "MX" || typ == "NS") && !strings.HasSuffix(content, ".") {
		content += "."
	}
	rr, err := dns.NewRR(owner + " " + strconv.FormatUint(uint64(r.TTL), 10) + " IN " + typ + " " + content)
	if err != nil {
		return nil, fmt.Errorf("parse %s %s %q: %w", owner, typ, r.Content, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("parse %s %s %q: empty record", owner, typ, r.Content)
	}
	return rr, nil
}

// closestZone is the served zone whose apex is the longest suffix of name.
func closestZone(views []*zoneView, name string) *zoneView {
	var best *zoneView
	for _, v := range views {
		if name == v.apex || strings.HasSuffix(name, "."+v.apex) {
			if best == nil || len(v.apex) > len(best.apex) {
				best = v
			}
		}
	}
	return best
}

// exists reports whether name owns records or is an empty non-terminal.
func (v *zoneView) exists(name string) bool {
	if len(v.names[name]) > 0 {
		return true
	}
	for n := range v.names {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

// lookup returns the RRs at name, synthesising from a wildcard when name
// does not exist (RFC 4592); found is false for a name that does not exist.
func (v *zoneView) lookup(name string) (rrs []dns.RR, found bool) {
	if v.exists(name) {
		return v.names[name], true
	}
	// Closest encloser: the longest existing ancestor.
	ce := name
	for ce != v.apex {
		_, rest, ok := strings.Cut(ce, ".")
		if !ok {
			break
		}
		ce = rest
		if v.exists(ce) {
			break
		}
	}
	wild := v.names["*."+ce]
	if len(wild) == 0 {
		return nil, false
	}
	out := make([]dns.RR, 0, len(wild))
	for _, rr := range wild {
		c := dns.Copy(rr)
		c.Header().Name = name
		out = append(out, c)
	}
	return out, true
}

func (v *zoneView) negativeSOA() dns.RR {
	soa := dns.Copy(v.soa).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, v.negTTL)
	return soa
}

// answer builds the reply to req.
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = false
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(s.cfg.MaxUDPSize, opt.Do())
		if opt.Version() != 0 {
			resp.Rcode = dns.RcodeBadVers
			return resp
		}
	}
	if req.Opcode != dns.OpcodeQuery {
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	views := s.views()
	name := canonical(q.Name)
	zone := closestZone(views, name)
	if zone == nil {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	resp.Authoritative = true
	owner := q.Name // answers keep the case the client asked with
	seen := map[string]bool{}
	for range maxChase {
		seen[name] = true
		rrs, found := zone.lookup(name)
		if !found {
			resp.Rcode = dns.RcodeNameError
			resp.Ns = append(resp.Ns, zone.negativeSOA())
			return resp
		}
		if q.Qtype != dns.TypeCNAME {
			if cname := firstOfType(rrs, dns.TypeCNAME); cname != nil {
				c := dns.Copy(cname)
				c.Header().Name = owner
				resp.Answer = append(resp.Answer, c)
				target := canonical(cname.(*dns.CNAME).Target)
				next := closestZone(views, target)
				if next == nil || seen[target] {
					return resp // out of our zones (or a loop): the client goes on
				}
				zone, name, owner = next, target, cname.(*dns.CNAME).Target
				continue
			}
		}
		matched := s.match(rrs, q.Qtype)
		if len(matched) == 0 {
			resp.Ns = append(resp.Ns, zone.negativeSOA())
			return resp
		}
		for _, rr := range matched {
			c := dns.Copy(rr)
			c.Header().Name = owner
			resp.Answer = append(resp.Answer, c)
		}
		if q.Qtype == dns.TypeNS || q.Qtype == dns.TypeMX {
			resp.Extra = append(resp.Extra, glue(views, matched)...)
		}
		return resp
	}
	return resp
}

// match selects the RRs answering qtype; ANY gets RFC 8482's HINFO.
func (s *Server) match(rrs []dns.RR, qtype uint16) []dns.RR {
	if qtype == dns.TypeANY {
		if len(rrs) == 0 {
			return nil
		}
		return []dns.RR{&dns.HINFO{Hdr: dns.RR_Header{Name: rrs[0].Header().Name, Rrtype: dns.TypeHINFO,
			Class: dns.ClassINET, Ttl: 3789}, Cpu: "RFC8482"}}
	}
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}

func firstOfType(rrs []dns.RR, t uint16) dns.RR {
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			return rr
		}
	}
	return nil
}

// glue returns the addresses of the hosts named by NS/MX records when they
// are in served zones.
func glue(views []*zoneView, rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		var host string
		switch x := rr.(type) {
		case *dns.NS:
			host = canonical(x.Ns)
		case *dns.MX:
			host = canonical(x.Mx)
		default:
			continue
		}
		if z := closestZone(views, host); z != nil {
			for _, a := range z.names[host] {
				if t := a.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
					out = append(out, a)
				}
			}
		}
	}
	return out
}
