package cfsim

import (
	"slices"
	"time"
)

// Permission is an API-token permission, named like Cloudflare's permission
// groups' scopes.
type Permission string

// The permissions the DNS workflow needs. DNSEdit implies DNSRead, as on
// Cloudflare ("Zone / DNS / Edit" can read records too).
const (
	ZoneRead Permission = "#zone:read"
	DNSRead  Permission = "#dns_records:read"
	DNSEdit  Permission = "#dns_records:edit"
)

// TokenStatus is what /user/tokens/verify reports.
type TokenStatus string

// Token statuses. Only an active token (and within NotBefore/ExpiresOn) is
// accepted by the other endpoints.
const (
	TokenActive   TokenStatus = "active"
	TokenDisabled TokenStatus = "disabled"
	TokenExpired  TokenStatus = "expired"
)

// Token is an API token the stand-in accepts as "Authorization: Bearer <Value>".
type Token struct {
	// ID is the token's identifier (32 hex digits); generated when empty.
	ID string `json:"id"`
	// Value is the secret sent by clients; generated (40 characters) when empty.
	Value string `json:"value"`
	// Status defaults to TokenActive.
	Status      TokenStatus  `json:"status"`
	Permissions []Permission `json:"permissions"`
	// ZoneIDs limits the token to these zones; empty means every zone.
	ZoneIDs []string `json:"zone_ids,omitempty"`
	// NotBefore and ExpiresOn bound the token's validity when non-zero.
	NotBefore time.Time `json:"not_before,omitzero"`
	ExpiresOn time.Time `json:"expires_on,omitzero"`
}

// Has reports whether the token grants p (DNSEdit implies DNSRead).
func (t Token) Has(p Permission) bool {
	if slices.Contains(t.Permissions, p) {
		return true
	}
	return p == DNSRead && slices.Contains(t.Permissions, DNSEdit)
}

// Covers reports whether the token may act on the zone.
func (t Token) Covers(zoneID string) bool {
	return len(t.ZoneIDs) == 0 || slices.Contains(t.ZoneIDs, zoneID)
}

// status is the token's effective status at now.
func (t Token) status(now time.Time) TokenStatus {
	if t.Status != "" && t.Status != TokenActive {
		return t.Status
	}
	if !t.ExpiresOn.IsZero() && !now.Before(t.ExpiresOn) {
		return TokenExpired
	}
	return TokenActive
}

// usable reports whether API endpoints accept the token at now.
func (t Token) usable(now time.Time) bool {
	if t.status(now) != TokenActive {
		return false
	}
	return t.NotBefore.IsZero() || !now.Before(t.NotBefore)
}

// Plan names accepted for Zone.Plan. The plan changes what the API accepts:
// the minimum TTL (30 on enterprise, 60 otherwise) and the tags quota.
const (
	PlanFree       = "free"
	PlanPro        = "pro"
	PlanBusiness   = "business"
	PlanEnterprise = "enterprise"
)

// Zone is a DNS zone as configured by the lab.
type Zone struct {
	// ID is 32 hex digits; generated when empty.
	ID string `json:"id"`
	// Name is the apex, e.g. "example.test" (stored lower case, no trailing dot).
	Name        string `json:"name"`
	AccountID   string `json:"account_id"`
	AccountName string `json:"account_name"`
	// NameServers are the host names of the zone's name servers; the lab
	// sets them to names its DNS server answers for. Default: two
	// Cloudflare-style names.
	NameServers []string `json:"name_servers"`
	// Plan is one of the Plan* constants; default PlanFree.
	Plan string `json:"plan"`
	// Status is "active" unless set ("initializing", "pending", "moved").
	Status    string    `json:"status"`
	CreatedOn time.Time `json:"created_on"`
}

// CAAData is the structured content of a CAA record.
type CAAData struct {
	Flags int    `json:"flags"`
	Tag   string `json:"tag"`
	Value string `json:"value"`
}

// Record is a DNS record as the API stores it.
type Record struct {
	ID     string `json:"id"`
	ZoneID string `json:"zone_id"`
	// Name is the full name, lower case, no trailing dot.
	Name string `json:"name"`
	Type string `json:"type"`
	// Content is what the API shows: an address, a host name, TXT text as
	// sent (usually quoted), or the CAA presentation derived from CAA.
	Content string   `json:"content"`
	CAA     *CAAData `json:"caa,omitempty"`
	// Priority is set for MX records.
	Priority *int `json:"priority,omitempty"`
	Proxied  bool `json:"proxied"`
	// TTL is 1 for "automatic" (what proxied records always have).
	TTL      int            `json:"ttl"`
	Comment  *string        `json:"comment,omitempty"`
	Tags     []string       `json:"tags"`
	Settings map[string]any `json:"settings"`

	CreatedOn         time.Time `json:"created_on"`
	ModifiedOn        time.Time `json:"modified_on"`
	CommentModifiedOn time.Time `json:"comment_modified_on,omitzero"`
	TagsModifiedOn    time.Time `json:"tags_modified_on,omitzero"`
}

func (r *Record) clone() *Record {
	c := *r
	if r.CAA != nil {
		d := *r.CAA
		c.CAA = &d
	}
	if r.Priority != nil {
		p := *r.Priority
		c.Priority = &p
	}
	if r.Comment != nil {
		s := *r.Comment
		c.Comment = &s
	}
	c.Tags = slices.Clone(r.Tags)
	if r.Settings != nil {
		c.Settings = make(map[string]any, len(r.Settings))
		for k, v := range r.Settings {
			c.Settings[k] = v
		}
	}
	return &c
}

// ChangeKind says what happened to a record.
type ChangeKind string

// Change kinds.
const (
	RecordCreated ChangeKind = "created"
	RecordUpdated ChangeKind = "updated"
	RecordDeleted ChangeKind = "deleted"
)

// Change is one committed record change, delivered to subscribers.
type Change struct {
	Kind     ChangeKind
	ZoneID   string
	ZoneName string
	// Serial is the zone's serial after the change.
	Serial uint32
	// Record is the record after the change (nil when deleted); Previous
	// is the record before it (nil when created). Both are copies.
	Record   *Record
	Previous *Record
}

// ZoneSnapshot is a zone and its records at one instant, for the DNS side.
type ZoneSnapshot struct {
	Zone Zone
	// Serial increases with every committed change to the zone's records.
	Serial  uint32
	Records []Record
}
