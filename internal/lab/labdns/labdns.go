// Package labdns is the lab's authoritative DNS server: it answers, over
// UDP and TCP on one address, for the zones a Source supplies, reading the
// Source on every query so that record changes are visible at once.
//
// It behaves like an authoritative server on the Internet would: AA set,
// SOA and NS at the apex (the name servers' own addresses are answered when
// they lie in a served zone), NXDOMAIN versus NODATA with the SOA in the
// authority section, CNAME chasing inside served zones, wildcards, REFUSED
// outside the served zones, EDNS0 (BADVERS for unknown versions, DO bit
// echoed), truncation on UDP so that clients retry over TCP, RFC 8482
// answers to ANY. It does not do DNSSEC, zone transfers or delegations.
//
// The Source is a small consumer-side interface so the server knows nothing
// of where records come from; the lab wires the Cloudflare stand-in into it
// (internal/lab/cfsim/cfdns).
package labdns

import (
	"strings"
)

// Source supplies the zones to serve. Zones is called once per query (no
// caching), so it must be cheap and safe for concurrent use; the slices it
// returns are not modified by the server.
type Source interface {
	Zones() []Zone
}

// SourceFunc adapts a function to Source.
type SourceFunc func() []Zone

// Zones calls f.
func (f SourceFunc) Zones() []Zone { return f() }

// Zone is one zone as the server answers for it.
type Zone struct {
	// Name is the apex ("example.test", case and trailing dot irrelevant).
	Name string
	// NameServers are the host names answered as NS at the apex. When one
	// lies inside a served zone and has no address record there, the
	// server answers it with its own address(es) (Config.SelfAddrs).
	NameServers []string
	// Serial is the SOA serial; the Source must increase it whenever the
	// zone's records change.
	Serial uint32
	// Records are the zone's records (outside names are ignored).
	Records []Record
}

// Record is one resource record in zone-file presentation form.
type Record struct {
	// Name is the owner, fully qualified ("www.example.test", trailing dot
	// optional; "*.example.test" is a wildcard).
	Name string
	// Type is "A", "AAAA", "CNAME", "TXT", "CAA", "MX", …
	Type string
	// TTL in seconds.
	TTL uint32
	// Content is the RDATA in presentation form: an address, a host name,
	// `0 issue "letsencrypt.org"`, `10 mail.example.test`. For TXT it is one
	// or more quoted strings (`"v=spf1 -all"`), or bare text, which is
	// served as one string split in 255-byte pieces.
	Content string
}

// canonical lower-cases a name and makes it fully qualified.
func canonical(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}
