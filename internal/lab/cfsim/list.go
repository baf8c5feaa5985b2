package cfsim

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// zoneJSON is a zone as GET /zones returns it (the union of the fields in
// the recorded answers; null where a real full-setup zone has null).
type zoneJSON struct {
	ID                  string         `json:"id"`
	Name                string         `json:"name"`
	Status              string         `json:"status"`
	Paused              bool           `json:"paused"`
	Type                string         `json:"type"`
	DevelopmentMode     int            `json:"development_mode"`
	NameServers         []string       `json:"name_servers"`
	OriginalNameServers []string       `json:"original_name_servers"`
	OriginalRegistrar   *string        `json:"original_registrar"`
	OriginalDnshost     *string        `json:"original_dnshost"`
	VanityNameServers   []string       `json:"vanity_name_servers"`
	CreatedOn           string         `json:"created_on"`
	ModifiedOn          string         `json:"modified_on"`
	ActivatedOn         *string        `json:"activated_on"`
	Meta                zoneMeta       `json:"meta"`
	Owner               zoneOwner      `json:"owner"`
	Account             idName         `json:"account"`
	Tenant              nullableIDName `json:"tenant"`
	TenantUnit          struct {
		ID *string `json:"id"`
	} `json:"tenant_unit"`
	Permissions []string `json:"permissions"`
	Plan        zonePlan `json:"plan"`
}

type zoneMeta struct {
	Step                   int  `json:"step"`
	CustomCertificateQuota int  `json:"custom_certificate_quota"`
	PageRuleQuota          int  `json:"page_rule_quota"`
	PhishingDetected       bool `json:"phishing_detected"`
	CDNOnly                bool `json:"cdn_only"`
	DNSOnly                bool `json:"dns_only"`
	FoundationDNS          bool `json:"foundation_dns"`
}

type zoneOwner struct {
	ID   *string `json:"id"`
	Name *string `json:"name"`
	Type string  `json:"type"`
}

type idName struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type nullableIDName struct {
	ID   *string `json:"id"`
	Name *string `json:"name"`
}

type zonePlan struct {
	ID                string  `json:"id"`
	Name              string  `json:"name"`
	Price             float64 `json:"price"`
	Currency          string  `json:"currency"`
	Frequency         string  `json:"frequency"`
	IsSubscribed      bool    `json:"is_subscribed"`
	CanSubscribe      bool    `json:"can_subscribe"`
	LegacyID          string  `json:"legacy_id"`
	LegacyDiscount    bool    `json:"legacy_discount"`
	ExternallyManaged bool    `json:"externally_managed"`
}

func planName(plan string) string {
	switch plan {
	case PlanPro:
		return "Pro Website"
	case PlanBusiness:
		return "Business Website"
	case PlanEnterprise:
		return "Enterprise Website"
	}
	return "Free Website"
}

// zoneView is a zone as the API shows it to a token: its permissions
// field lists what that token may do in the zone (legacy membership
// permissions; DNS edit implies DNS read).
func zoneView(z Zone, t Token) zoneJSON {
	created := apiTime(z.CreatedOn)
	v := zoneJSON{
		ID: z.ID, Name: z.Name, Status: z.Status, Type: "full",
		NameServers: slices.Clone(z.NameServers), VanityNameServers: []string{},
		CreatedOn: created, ModifiedOn: created,
		Meta:        zoneMeta{Step: 2, PageRuleQuota: 3},
		Owner:       zoneOwner{Type: "user"},
		Account:     idName{ID: z.AccountID, Name: z.AccountName},
		Permissions: tokenPermissions(t),
		Plan: zonePlan{
			ID: stableID(z.Plan), Name: planName(z.Plan), Currency: "USD", LegacyID: z.Plan,
			CanSubscribe: false, IsSubscribed: z.Plan != PlanFree,
		},
	}
	if z.Status == "active" {
		v.ActivatedOn = &created
	}
	return v
}

// stableID is a stable 32-hex-digit id for a name (plan ids are fixed
// per plan on Cloudflare).
func stableID(s string) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 32)
	h := uint32(2166136261)
	for i := range b {
		for j := 0; j < len(s); j++ {
			h = (h ^ uint32(s[j])) * 16777619
		}
		h = (h ^ uint32(i)) * 16777619
		b[i] = digits[h%16]
	}
	return string(b)
}

func intParam(q url.Values, key string, def, lo, hi int) int {
	v, err := strconv.Atoi(q.Get(key))
	if err != nil {
		return def
	}
	return max(lo, min(hi, v))
}

// page cuts one page out of n items and fills result_info; a page past the
// end is empty (cloudflare-go v7's auto-pager stops on an empty page).
func page(n, pageNo, perPage int) (lo, hi int, info *resultInfo) {
	lo = min((pageNo-1)*perPage, n)
	hi = min(lo+perPage, n)
	pages := (n + perPage - 1) / perPage
	return lo, hi, &resultInfo{Page: pageNo, PerPage: perPage, Count: hi - lo, TotalCount: n, TotalPages: pages}
}

// matchOp applies a Cloudflare string filter operator, case-insensitively
// unless the operator says otherwise.
func matchOp(op, have, want string) bool {
	if !strings.HasSuffix(op, "_case_sensitive") {
		have, want = strings.ToLower(have), strings.ToLower(want)
	}
	switch strings.TrimSuffix(op, "_case_sensitive") {
	case "", "exact", "equal":
		return have == want
	case "not_equal":
		return have != want
	case "contains":
		return strings.Contains(have, want)
	case "startswith", "starts_with":
		return strings.HasPrefix(have, want)
	case "endswith", "ends_with":
		return strings.HasSuffix(have, want)
	}
	return false
}

// listZones is GET /zones: only the zones the token covers, and only for
// tokens with Zone:Read.
func (s *Server) listZones(rq *request) {
	if !rq.token.Has(ZoneRead) {
		s.fail(rq, errUnauthorized())
		return
	}
	q := rq.r.URL.Query()
	var preds []func(Zone) bool
	if v, ok := q["name"]; ok {
		op, want := "equal", v[0]
		for _, o := range []string{"not_equal", "starts_with_case_sensitive", "ends_with_case_sensitive",
			"contains_case_sensitive", "starts_with", "ends_with", "contains", "equal"} {
			if rest, found := strings.CutPrefix(v[0], o+":"); found {
				op, want = o, rest
				break
			}
		}
		want = strings.TrimSuffix(want, ".")
		preds = append(preds, func(z Zone) bool { return matchOp(op, z.Name, want) })
	}
	if v := q.Get("status"); v != "" {
		preds = append(preds, func(z Zone) bool { return z.Status == v })
	}
	if v := q.Get("account.id"); v != "" {
		preds = append(preds, func(z Zone) bool { return z.AccountID == v })
	}
	if v := q.Get("account.name"); v != "" {
		preds = append(preds, func(z Zone) bool { return matchOp("contains", z.AccountName, v) })
	}
	anyMatch := q.Get("match") == "any"
	s.mu.Lock()
	var zs []Zone
	for _, z := range s.zones {
		if rq.token.Covers(z.Zone.ID) && combine(anyMatch, len(preds), func(i int) bool { return preds[i](z.Zone) }) {
			zs = append(zs, z.Zone)
		}
	}
	s.mu.Unlock()
	key := map[string]func(Zone) string{
		"name": func(z Zone) string { return z.Name }, "status": func(z Zone) string { return z.Status },
		"account.id": func(z Zone) string { return z.AccountID }, "account.name": func(z Zone) string { return z.AccountName },
	}[q.Get("order")]
	if key == nil {
		key = func(z Zone) string { return z.Name }
	}
	desc := q.Get("direction") == "desc"
	slices.SortStableFunc(zs, func(a, b Zone) int {
		c := cmp.Compare(key(a), key(b))
		if desc {
			c = -c
		}
		return c
	})
	lo, hi, info := page(len(zs), intParam(q, "page", 1, 1, 1<<30), intParam(q, "per_page", 20, 5, 50))
	out := make([]zoneJSON, 0, hi-lo)
	for _, z := range zs[lo:hi] {
		out = append(out, zoneView(z, *rq.token))
	}
	s.ok(rq, envelope{Result: out, ResultInfo: info})
}

// combine folds n predicates with AND (match=all, and true when n is 0) or
// OR (match=any).
func combine(anyOf bool, n int, pred func(int) bool) bool {
	if n == 0 {
		return true
	}
	for i := range n {
		if pred(i) == anyOf {
			return anyOf
		}
	}
	return !anyOf
}

// listRecords is GET /zones/{id}/dns_records with the documented filters.
func (s *Server) listRecords(rq *request, zid string) {
	z, aerr := s.zoneFor(rq, zid, DNSRead)
	if aerr != nil {
		s.fail(rq, aerr)
		return
	}
	q := rq.r.URL.Query()
	zone := z.Zone.Name
	normName := func(v string) string {
		v = strings.ToLower(strings.TrimSuffix(v, "."))
		if v == "@" {
			return zone
		}
		return v
	}
	var preds, tagPreds []func(*Record) bool
	for key, vals := range q {
		for _, v := range vals {
			field, op, _ := strings.Cut(key, ".")
			switch field {
			case "type":
				t := strings.ToUpper(v)
				preds = append(preds, func(r *Record) bool { return r.Type == t })
			case "name":
				want := v
				if op == "" || op == "exact" {
					want = normName(v)
				}
				preds = append(preds, func(r *Record) bool { return matchOp(op, r.Name, want) })
			case "content":
				preds = append(preds, func(r *Record) bool { return matchOp(op, r.Content, v) })
			case "proxied":
				want := v == "true"
				preds = append(preds, func(r *Record) bool { return r.Proxied == want })
			case "comment":
				switch op {
				case "present":
					preds = append(preds, func(r *Record) bool { return r.Comment != nil })
				case "absent":
					preds = append(preds, func(r *Record) bool { return r.Comment == nil })
				default:
					preds = append(preds, func(r *Record) bool { return r.Comment != nil && matchOp(op, *r.Comment, v) })
				}
			case "tag":
				tagPreds = append(tagPreds, tagPredicate(op, v))
			}
		}
	}
	search := strings.ToLower(q.Get("search"))
	anyMatch := q.Get("match") == "any"
	anyTag := q.Get("tag_match") == "any" || q.Get("tag-match") == "any"

	s.mu.Lock()
	var recs []recordJSON
	var raw []*Record
	for _, r := range z.Records {
		ok := combine(anyMatch, len(preds)+min(len(tagPreds), 1), func(i int) bool {
			if i < len(preds) {
				return preds[i](r)
			}
			return combine(anyTag, len(tagPreds), func(j int) bool { return tagPreds[j](r) })
		})
		if ok && search != "" {
			c := ""
			if r.Comment != nil {
				c = *r.Comment
			}
			ok = strings.Contains(strings.ToLower(r.Name+" "+r.Content+" "+c), search)
		}
		if ok {
			raw = append(raw, r)
		}
	}
	order := q.Get("order")
	desc := q.Get("direction") == "desc"
	slices.SortStableFunc(raw, func(a, b *Record) int {
		var c int
		switch order {
		case "name":
			c = cmp.Compare(a.Name, b.Name)
		case "content":
			c = cmp.Compare(a.Content, b.Content)
		case "ttl":
			c = cmp.Compare(a.TTL, b.TTL)
		case "proxied":
			c = cmp.Compare(boolInt(a.Proxied), boolInt(b.Proxied))
		default:
			c = cmp.Compare(a.Type, b.Type)
		}
		if c == 0 {
			c = cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Type, b.Type), a.CreatedOn.Compare(b.CreatedOn))
		}
		if desc {
			c = -c
		}
		return c
	})
	lo, hi, info := page(len(raw), intParam(q, "page", 1, 1, 1<<30), intParam(q, "per_page", 100, 1, 5000000))
	recs = make([]recordJSON, 0, hi-lo)
	for _, r := range raw[lo:hi] {
		recs = append(recs, r.view())
	}
	s.mu.Unlock()
	s.ok(rq, envelope{Result: recs, ResultInfo: info})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tagPredicate implements tag filters: "tag=name:value" / "tag.exact=…"
// compare values, "tag=name" and "tag.present=name" test presence,
// "tag.absent=name" absence; names and values are case-insensitive.
func tagPredicate(op, v string) func(*Record) bool {
	name, value, hasValue := strings.Cut(v, ":")
	name = strings.ToLower(name)
	return func(r *Record) bool {
		found := false
		for _, t := range r.Tags {
			tn, tv, _ := strings.Cut(t, ":")
			if strings.ToLower(tn) != name {
				continue
			}
			switch op {
			case "", "exact":
				if !hasValue || strings.EqualFold(tv, value) {
					found = true
				}
			case "present", "absent":
				found = true
			default:
				if matchOp(op, tv, value) {
					found = true
				}
			}
		}
		if op == "absent" {
			return !found
		}
		return found
	}
}

func tokenPermissions(t Token) []string {
	perms := []string{}
	if t.Has(DNSEdit) {
		perms = append(perms, string(DNSEdit))
	}
	if t.Has(DNSRead) {
		perms = append(perms, string(DNSRead))
	}
	if t.Has(ZoneRead) {
		perms = append(perms, string(ZoneRead))
	}
	return perms
}
