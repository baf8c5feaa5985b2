package cfsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// recordBody is a decoded POST/PUT/PATCH body: which fields were present and
// their values.
type recordBody struct {
	has      map[string]bool
	Type     string
	Name     string
	Content  string
	CAA      *CAAData
	TTL      int
	Proxied  bool
	Comment  *string
	Tags     []string
	Settings map[string]any
	Priority *int
}

// parseRecordBody decodes a record body the way the API does: unknown fields
// are ignored, JSON null means "absent" (except comment, where it clears),
// and wrongly typed fields refuse the request.
func parseRecordBody(raw []byte) (recordBody, *apiError) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return recordBody{}, errInvalidBody()
	}
	return recordBodyFromMap(m)
}

func recordBodyFromMap(m map[string]json.RawMessage) (recordBody, *apiError) {
	b := recordBody{has: map[string]bool{}}
	isNull := func(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
	str := func(v json.RawMessage, dst *string) bool { return json.Unmarshal(v, dst) == nil }
	for k, v := range m {
		switch k {
		case "type", "name", "content":
			if isNull(v) {
				continue
			}
			var s string
			if !str(v, &s) {
				return b, errInvalidBody()
			}
			switch k {
			case "type":
				b.Type = strings.ToUpper(s)
			case "name":
				b.Name = s
			case "content":
				b.Content = s
			}
		case "data":
			if isNull(v) {
				continue
			}
			var d struct {
				Flags *json.Number `json:"flags"`
				Tag   *string      `json:"tag"`
				Value *string      `json:"value"`
			}
			if json.Unmarshal(v, &d) != nil {
				return b, errInvalidBody()
			}
			c := CAAData{Flags: -1}
			if d.Flags != nil {
				f, err := d.Flags.Int64()
				if err != nil {
					return b, errBadCAA("flags must be an integer between 0 and 255")
				}
				c.Flags = int(f)
			}
			if d.Tag != nil {
				c.Tag = *d.Tag
			}
			if d.Value != nil {
				c.Value = *d.Value
			}
			b.CAA = &c
		case "ttl":
			if isNull(v) {
				continue
			}
			if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '"' {
				return b, errTTLType()
			}
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				return b, errInvalidBody()
			}
			f, err := n.Float64()
			if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
				return b, errTTL(60)
			}
			b.TTL = int(f)
		case "proxied":
			if isNull(v) {
				continue
			}
			if json.Unmarshal(v, &b.Proxied) != nil {
				return b, errInvalidBody()
			}
		case "comment":
			if isNull(v) {
				b.Comment = nil
				break
			}
			var s string
			if !str(v, &s) {
				return b, errInvalidBody()
			}
			b.Comment = &s
		case "tags":
			if isNull(v) {
				b.Tags = []string{}
				break
			}
			if json.Unmarshal(v, &b.Tags) != nil {
				return b, errInvalidBody()
			}
		case "settings":
			if isNull(v) {
				b.Settings = map[string]any{}
				break
			}
			if json.Unmarshal(v, &b.Settings) != nil || b.Settings == nil {
				return b, errInvalidBody()
			}
		case "priority":
			if isNull(v) {
				continue
			}
			var n json.Number
			if json.Unmarshal(v, &n) != nil {
				return b, errInvalidBody()
			}
			p, err := n.Int64()
			if err != nil || p < 0 || p > 65535 {
				return b, errBadContent("MX", "priority must be between 0 and 65535")
			}
			pi := int(p)
			b.Priority = &pi
		default:
			continue
		}
		b.has[k] = true
	}
	return b, nil
}

// apply copies the present fields of b onto r.
func (b recordBody) apply(r *Record) {
	if b.has["type"] {
		r.Type = b.Type
	}
	if b.has["name"] {
		r.Name = b.Name
	}
	if b.has["content"] {
		r.Content = b.Content
	}
	if b.has["data"] {
		r.CAA = b.CAA
	}
	if b.has["ttl"] {
		r.TTL = b.TTL
	}
	if b.has["proxied"] {
		r.Proxied = b.Proxied
	}
	if b.has["comment"] {
		r.Comment = b.Comment
	}
	if b.has["tags"] {
		r.Tags = b.Tags
	}
	if b.has["settings"] {
		r.Settings = b.Settings
	}
	if b.has["priority"] {
		r.Priority = b.Priority
	}
}

// newRecordDefaults is a record before the body is applied: what the API
// assumes for omitted optional fields (also what PUT resets them to).
func newRecordDefaults() *Record {
	return &Record{TTL: 1, Tags: []string{}, Settings: map[string]any{}}
}

// supportedTypes are the record types the stand-in models.
var supportedTypes = []string{"A", "AAAA", "CAA", "CNAME", "MX", "TXT"}

// cloudflareTypes are the types the real API accepts (OpenAPI enum).
var cloudflareTypes = []string{"A", "AAAA", "CAA", "CERT", "CNAME", "DNSKEY", "DS", "HTTPS", "LOC", "MX",
	"NAPTR", "NS", "OPENPGPKEY", "PTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI"}

// normalizeName turns a record name as sent into the stored full name:
// "@" is the apex, names not ending in the zone are relative to it (as the
// API does), IDNs become punycode, case is folded.
func normalizeName(zone, name string) (string, *apiError) {
	n := strings.TrimSuffix(strings.TrimSpace(name), ".")
	if n == "" {
		return "", errBadName()
	}
	if n == "@" {
		return zone, nil
	}
	if !isASCII(n) {
		a, err := idna.Lookup.ToASCII(n)
		if err != nil {
			return "", errBadName()
		}
		n = a
	}
	n = strings.ToLower(n)
	if n != zone && !strings.HasSuffix(n, "."+zone) {
		n += "." + zone
	}
	if !validHostname(n, true) {
		return "", errBadName()
	}
	return n, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validHostname checks label syntax; wildcard allows "*" as the first label.
// Underscores are allowed (_acme-challenge, SRV-style names).
func validHostname(n string, wildcard bool) bool {
	if len(n) == 0 || len(n) > 253 {
		return false
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if l == "*" && wildcard && i == 0 {
			continue
		}
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// nonRoutable are the prefixes Cloudflare refuses to proxy to (and reports
// as not proxiable).
var nonRoutable = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

func routable(content string) bool {
	a, err := netip.ParseAddr(content)
	if err != nil {
		return true
	}
	a = a.Unmap()
	for _, p := range nonRoutable {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// proxiable is the API's "proxiable" field.
func proxiable(r *Record) bool {
	switch r.Type {
	case "A", "AAAA":
		return routable(r.Content)
	case "CNAME":
		return true
	}
	return false
}

func tagQuota(plan string) int {
	if plan == PlanFree {
		return 0
	}
	// Lab choice: paid plans have a quota no lab test reaches.
	return 100
}

// caaContent is the presentation form the API derives from CAA data.
func caaContent(d CAAData) string {
	return fmt.Sprintf("%d %s %s", d.Flags, d.Tag, strconv.Quote(d.Value))
}

// normalizeRecord validates r (name already relative or absolute) for zone
// z and rewrites it into its stored form. It does not check conflicts.
func normalizeRecord(z *zoneState, r *Record) *apiError {
	if r.Type == "" {
		return errInvalidBody()
	}
	if !slices.Contains(supportedTypes, r.Type) {
		if slices.Contains(cloudflareTypes, r.Type) {
			return errUnsupportedType(r.Type)
		}
		return errBadContent(r.Type, "unknown record type")
	}
	name, aerr := normalizeName(z.Zone.Name, r.Name)
	if aerr != nil {
		return aerr
	}
	r.Name = name
	switch r.Type {
	case "A", "AAAA":
		a, err := netip.ParseAddr(strings.TrimSpace(r.Content))
		if r.Type == "A" && (err != nil || !a.Is4()) {
			return errBadIPv4()
		}
		if r.Type == "AAAA" && (err != nil || !a.Is6() || a.Zone() != "") {
			return errBadIPv6()
		}
		r.Content = a.String()
		r.CAA, r.Priority = nil, nil
	case "CNAME", "MX":
		t := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(r.Content), "."))
		if !validHostname(t, false) || (r.Type == "CNAME" && t == r.Name) {
			if r.Type == "CNAME" {
				return errBadCNAME()
			}
			return errBadContent("MX", "a valid host name is required")
		}
		r.Content, r.CAA = t, nil
		if r.Type == "MX" {
			if r.Priority == nil {
				return errBadContent("MX", "priority is required")
			}
		} else {
			r.Priority = nil
		}
	case "TXT":
		if r.Content == "" {
			return errBadContent("TXT", "content is required")
		}
		if len(r.Content) > 8192 {
			return errBadContent("TXT", "content is longer than 8192 characters")
		}
		r.CAA, r.Priority = nil, nil
	case "CAA":
		d := r.CAA
		if d == nil {
			return errInvalidBody()
		}
		if d.Flags < 0 || d.Flags > 255 {
			return errBadCAA("flags must be an integer between 0 and 255")
		}
		switch d.Tag {
		case "issue", "issuewild":
		case "iodef":
			if !strings.HasPrefix(d.Value, "mailto:") && !strings.HasPrefix(d.Value, "https://") && !strings.HasPrefix(d.Value, "http://") {
				return errBadCAA("iodef value must be a mailto: or http(s):// URL")
			}
		default:
			return errBadCAA("tag must be one of issue, issuewild, iodef")
		}
		r.Content = caaContent(*d)
		r.Priority = nil
	}
	if r.Proxied {
		if !slices.Contains([]string{"A", "AAAA", "CNAME"}, r.Type) {
			return errNotProxiable()
		}
		if !routable(r.Content) {
			return errProxyTarget(r.Content)
		}
		// Proxied records are always "automatic".
		r.TTL = 1
	}
	minTTL := 60
	if z.Zone.Plan == PlanEnterprise {
		minTTL = 30
	}
	if r.TTL != 1 && (r.TTL < minTTL || r.TTL > 86400) {
		return errTTL(minTTL)
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	if q := tagQuota(z.Zone.Plan); len(r.Tags) > q {
		return errTagQuota(len(r.Tags), q)
	}
	for _, t := range r.Tags {
		if strings.TrimSpace(t) == "" {
			return errInvalidBody()
		}
	}
	if r.Settings == nil {
		r.Settings = map[string]any{}
	}
	return nil
}

// conflict checks r against the other records of the zone (records is the
// zone's list; r.ID, if set, is excluded).
func conflict(records []*Record, r *Record) *apiError {
	for _, o := range records {
		if o.ID == r.ID || o.Name != r.Name {
			continue
		}
		if o.Type == r.Type && identicalContent(o, r) {
			return errIdenticalRecord()
		}
	}
	for _, o := range records {
		if o.ID == r.ID || o.Name != r.Name {
			continue
		}
		if r.Type == "CNAME" {
			return errHostExists()
		}
		if o.Type == "CNAME" {
			return errCNAMEExists()
		}
	}
	return nil
}

func identicalContent(a, b *Record) bool {
	if a.Type == "TXT" {
		return a.Content == b.Content
	}
	if !strings.EqualFold(a.Content, b.Content) {
		return false
	}
	if a.Type == "MX" {
		return a.Priority != nil && b.Priority != nil && *a.Priority == *b.Priority
	}
	return true
}

// stamp sets the timestamps of a record that replaces prev (nil: created).
func stamp(r, prev *Record, now time.Time) {
	now = now.UTC()
	if prev == nil {
		r.CreatedOn = now
		if r.Comment != nil {
			r.CommentModifiedOn = now
		}
		if len(r.Tags) > 0 {
			r.TagsModifiedOn = now
		}
	} else {
		r.CreatedOn = prev.CreatedOn
		r.CommentModifiedOn, r.TagsModifiedOn = prev.CommentModifiedOn, prev.TagsModifiedOn
		if !equalStringPtr(prev.Comment, r.Comment) {
			r.CommentModifiedOn = now
		}
		if !slices.Equal(prev.Tags, r.Tags) {
			r.TagsModifiedOn = now
		}
	}
	if r.Comment == nil {
		r.CommentModifiedOn = time.Time{}
	}
	if len(r.Tags) == 0 {
		r.TagsModifiedOn = time.Time{}
	}
	r.ModifiedOn = now
}

func equalStringPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// recordJSON is a record as the API returns it.
type recordJSON struct {
	ID                string         `json:"id"`
	Name              string         `json:"name"`
	Type              string         `json:"type"`
	Content           string         `json:"content"`
	Data              *CAAData       `json:"data,omitempty"`
	Priority          *int           `json:"priority,omitempty"`
	Proxiable         bool           `json:"proxiable"`
	Proxied           bool           `json:"proxied"`
	TTL               int            `json:"ttl"`
	Settings          map[string]any `json:"settings"`
	Meta              recordMeta     `json:"meta"`
	Comment           *string        `json:"comment"`
	Tags              []string       `json:"tags"`
	CreatedOn         string         `json:"created_on"`
	ModifiedOn        string         `json:"modified_on"`
	CommentModifiedOn string         `json:"comment_modified_on,omitempty"`
	TagsModifiedOn    string         `json:"tags_modified_on,omitempty"`
}

type recordMeta struct {
	AutoAdded bool   `json:"auto_added"`
	Source    string `json:"source"`
}

// apiTime is the API's timestamp format (RFC 3339, microseconds, UTC).
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

func (r *Record) view() recordJSON {
	v := recordJSON{
		ID: r.ID, Name: r.Name, Type: r.Type, Content: r.Content, Data: r.CAA, Priority: r.Priority,
		Proxiable: proxiable(r), Proxied: r.Proxied, TTL: r.TTL, Settings: r.Settings,
		Meta: recordMeta{AutoAdded: false, Source: "primary"}, Comment: r.Comment, Tags: r.Tags,
		CreatedOn: apiTime(r.CreatedOn), ModifiedOn: apiTime(r.ModifiedOn),
		CommentModifiedOn: apiTime(r.CommentModifiedOn), TagsModifiedOn: apiTime(r.TagsModifiedOn),
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if v.Settings == nil {
		v.Settings = map[string]any{}
	}
	return v
}
