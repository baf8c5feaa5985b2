package certs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/cloudflare-go/v7/dns"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/zones"

	"github.com/lghs/lghsctl/inventory"
)

// CAA is one CAA record's data (RFC 8659).
type CAA struct {
	Flags uint8
	Tag   string
	Value string
}

// String is the record's presentation form: 0 issue "letsencrypt.org".
func (c CAA) String() string { return fmt.Sprintf("%d %s %s", c.Flags, c.Tag, strconv.Quote(c.Value)) }

// CAARecords are the records pinning issuance for a name to one CA
// (identity, e.g. letsencrypt.org), one ACME account (RFC 8657 accounturi)
// and DNS-01 (validationmethods), and forbidding wildcard certificates.
func CAARecords(identity, accountURI string) []CAA {
	return []CAA{
		{Tag: "issue", Value: fmt.Sprintf("%s; accounturi=%s; validationmethods=dns-01", identity, accountURI)},
		{Tag: "issuewild", Value: ";"},
	}
}

// CAAPublisher publishes CAA records. provision's DNS code implements it
// once it manages CAA; CloudflareCAA does until then.
//
// Contract: EnsureCAA makes the CAA records at name (exactly that owner
// name: RFC 8659 looks up the name, then its parents, so publishing at each
// certificate name pins them all) that the publisher owns equal records:
// it adds the missing ones and removes the ones it owns that are not
// wanted; records it does not own are left alone and reported in changes
// as kept. With check set it changes nothing and reports what it would
// do. It returns one line per change, nothing when the records were
// already as wanted. It is idempotent.
type CAAPublisher interface {
	EnsureCAA(ctx context.Context, name string, records []CAA, check bool) (changes []string, err error)
}

// CAAComment is the comment of the CAA records lghsctl owns for an
// inventory. It is not provision's "managed by lghsctl: <inv>/<host>"
// mark, so provision's record reconciliation leaves CAA records alone.
func CAAComment(inv string) string { return "managed by lghsctl certs: " + inv }

// CloudflareCAA publishes CAA records through the Cloudflare API
// (cloudflare-go v7), marking those it owns with Comment.
type CloudflareCAA struct {
	// BaseURL of the API (DefaultCloudflareURL in production).
	BaseURL string
	// Token returns the token that edits a zone's records.
	Token func(zone string) inventory.Secret
	// ZoneOf returns the zone a name is in.
	ZoneOf func(name string) string
	// Comment marks the records this publisher owns (CAAComment).
	Comment string
	// HTTPClient; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// TTL of the records (1 is automatic, the default).
	TTL int
}

type caaRecord struct {
	id      string
	caa     CAA
	comment string
}

func (c *CloudflareCAA) services(zone string) (*zones.ZoneService, *dns.RecordService) {
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	opts := []option.RequestOption{
		option.WithBaseURL(strings.TrimSuffix(c.BaseURL, "/") + "/"),
		option.WithAPIToken(c.Token(zone).Reveal()),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(2),
	}
	return zones.NewZoneService(opts...), dns.NewRecordService(opts...)
}

// EnsureCAA implements CAAPublisher.
func (c *CloudflareCAA) EnsureCAA(ctx context.Context, name string, want []CAA, check bool) ([]string, error) {
	zone := c.ZoneOf(name)
	if zone == "" {
		return nil, fmt.Errorf("CAA for %s: the name is in no declared zone", name)
	}
	zs, rs := c.services(zone)
	var zl zones.ZoneListParams
	zl.Name.Value, zl.Name.Present = zone, true
	page, err := zs.List(ctx, zl)
	if err != nil {
		return nil, fmt.Errorf("CAA for %s: find zone %s: %w", name, zone, err)
	}
	if len(page.Result) != 1 {
		return nil, fmt.Errorf("CAA for %s: zone %s: %d zones found", name, zone, len(page.Result))
	}
	zoneID := page.Result[0].ID
	var lp dns.RecordListParams
	lp.ZoneID.Value, lp.ZoneID.Present = zoneID, true
	lp.Type.Value, lp.Type.Present = dns.RecordListParamsTypeCAA, true
	var nm dns.RecordListParamsName
	nm.Exact.Value, nm.Exact.Present = name, true
	lp.Name.Value, lp.Name.Present = nm, true
	var have []caaRecord
	iter := rs.ListAutoPaging(ctx, lp)
	for iter.Next() {
		r := iter.Current()
		if r.Type != "CAA" || !strings.EqualFold(r.Name, name) {
			continue
		}
		var raw struct {
			Data struct {
				Flags float64 `json:"flags"`
				Tag   string  `json:"tag"`
				Value string  `json:"value"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(r.JSON.RawJSON()), &raw); err != nil {
			return nil, fmt.Errorf("CAA for %s: record %s: %w", name, r.ID, err)
		}
		d := raw.Data
		have = append(have, caaRecord{id: r.ID, caa: CAA{Flags: uint8(d.Flags), Tag: d.Tag, Value: d.Value}, comment: r.Comment})
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("CAA for %s: list records: %w", name, err)
	}

	var changes []string
	present := func(x CAA) bool {
		return slices.ContainsFunc(have, func(h caaRecord) bool { return h.caa == x })
	}
	for _, h := range have {
		switch {
		case slices.Contains(want, h.caa):
		case h.comment == c.Comment:
			changes = append(changes, fmt.Sprintf("remove CAA %s %s", name, h.caa))
			if !check {
				var dp dns.RecordDeleteParams
				dp.ZoneID.Value, dp.ZoneID.Present = zoneID, true
				if _, err := rs.Delete(ctx, h.id, dp); err != nil {
					return changes, fmt.Errorf("CAA for %s: delete %s: %w", name, h.caa, err)
				}
			}
		default:
			changes = append(changes, fmt.Sprintf("keep CAA %s %s (not made by lghsctl)", name, h.caa))
		}
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = 1
	}
	for _, w := range want {
		if present(w) {
			continue
		}
		changes = append(changes, fmt.Sprintf("add CAA %s %s", name, w))
		if check {
			continue
		}
		var body dns.CAARecordParam
		body.Name.Value, body.Name.Present = name, true
		body.Type.Value, body.Type.Present = dns.CAARecordTypeCAA, true
		body.TTL.Value, body.TTL.Present = dns.TTL(ttl), true
		body.Comment.Value, body.Comment.Present = c.Comment, true
		var data dns.CAARecordDataParam
		data.Flags.Value, data.Flags.Present = float64(w.Flags), true
		data.Tag.Value, data.Tag.Present = w.Tag, true
		data.Value.Value, data.Value.Present = w.Value, true
		body.Data.Value, body.Data.Present = data, true
		var np dns.RecordNewParams
		np.ZoneID.Value, np.ZoneID.Present = zoneID, true
		np.Body = body
		if _, err := rs.New(ctx, np); err != nil {
			return changes, fmt.Errorf("CAA for %s: add %s: %w", name, w, err)
		}
	}
	// Only "keep" lines: nothing changed.
	if !slices.ContainsFunc(changes, func(s string) bool { return !strings.HasPrefix(s, "keep ") }) {
		return nil, nil
	}
	return changes, nil
}
