package cfsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cfdns "github.com/cloudflare/cloudflare-go/v7/dns"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/zones"
)

// These tests drive the stand-in with cloudflare-go v7 (slim: dns, zones,
// option), the SDK lghsctl uses, and check what the SDK sees.

func (l *lab) sdk(token string, extra ...option.RequestOption) (*cfdns.RecordService, *zones.ZoneService) {
	opts := append([]option.RequestOption{option.WithBaseURL(l.http.BaseURL + "/"), option.WithAPIToken(token)}, extra...)
	return cfdns.NewRecordService(opts...), zones.NewZoneService(opts...)
}

func txtNew(zoneID, name, content string) cfdns.RecordNewParams {
	var b cfdns.TXTRecordParam
	b.Name.Value, b.Name.Present = name, true
	b.Type.Value, b.Type.Present = cfdns.TXTRecordTypeTXT, true
	b.Content.Value, b.Content.Present = content, true
	b.TTL.Value, b.TTL.Present = cfdns.TTL1, true
	var p cfdns.RecordNewParams
	p.ZoneID.Value, p.ZoneID.Present = zoneID, true
	p.Body = b
	return p
}

func listParams(zoneID string) cfdns.RecordListParams {
	var p cfdns.RecordListParams
	p.ZoneID.Value, p.ZoneID.Present = zoneID, true
	return p
}

// apiErr unwraps the SDK's error and returns status and codes.
func apiErr(t *testing.T, err error) (int, []int64, string) {
	t.Helper()
	var e *cfdns.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a cloudflare API error", err, err)
	}
	var codes []int64
	var msgs []string
	for _, d := range e.Errors {
		codes = append(codes, d.Code)
		msgs = append(msgs, d.Message)
	}
	return e.StatusCode, codes, strings.Join(msgs, "; ")
}

func TestZoneScopedTokenIsRefusedOnOtherZones(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "mine.test"})
	other, err := l.srv.AddZone(Zone{Name: "other.test"})
	if err != nil {
		t.Fatal(err)
	}
	scoped, err := l.srv.AddToken(Token{Permissions: []Permission{ZoneRead, DNSEdit}, ZoneIDs: []string{l.zone.ID}})
	if err != nil {
		t.Fatal(err)
	}
	recs, zs := l.sdk(scoped.Value, option.WithMaxRetries(0))
	ctx := context.Background()

	if _, err := recs.New(ctx, txtNew(l.zone.ID, "ok", `"allowed"`)); err != nil {
		t.Fatalf("own zone: %v", err)
	}
	_, err = recs.New(ctx, txtNew(other.ID, "nope", `"refused"`))
	if st, codes, msg := apiErr(t, err); st != 403 || len(codes) != 1 || codes[0] != 10000 || msg != "Authentication error" {
		t.Errorf("create on another zone: %d %v %q, want 403 [10000] Authentication error", st, codes, msg)
	}
	_, err = recs.List(ctx, listParams(other.ID))
	if st, codes, _ := apiErr(t, err); st != 403 || codes[0] != 10000 {
		t.Errorf("list on another zone: %d %v, want 403 [10000]", st, codes)
	}
	// Zone lookups only see the covered zone: lego then says "zone could not be found".
	var zl zones.ZoneListParams
	zl.Name.Value, zl.Name.Present = "other.test", true
	page, err := zs.List(ctx, zl)
	if err != nil || len(page.Result) != 0 {
		t.Errorf("zone lookup of another zone: %v, %d zones, want none", err, len(page.Result))
	}
	if n := len(mustRecords(t, l.srv, other.ID)); n != 0 {
		t.Errorf("the other zone has %d records", n)
	}
}

func TestTokensWithoutThePermissionAreRefused(t *testing.T) {
	l := newLab(t, Options{}, Zone{})
	readOnly, _ := l.srv.AddToken(Token{Permissions: []Permission{ZoneRead, DNSRead}})
	noZoneRead, _ := l.srv.AddToken(Token{Permissions: []Permission{DNSEdit}})
	disabled, _ := l.srv.AddToken(Token{Permissions: []Permission{ZoneRead, DNSEdit}, Status: TokenDisabled})
	expired, _ := l.srv.AddToken(Token{Permissions: []Permission{ZoneRead, DNSEdit}, ExpiresOn: time.Now().Add(-time.Minute)})
	ctx := context.Background()

	recs, _ := l.sdk(readOnly.Value, option.WithMaxRetries(0))
	if _, err := recs.List(ctx, listParams(l.zone.ID)); err != nil {
		t.Errorf("DNS read lists: %v", err)
	}
	_, err := recs.New(ctx, txtNew(l.zone.ID, "x", `"y"`))
	if st, codes, _ := apiErr(t, err); st != 403 || codes[0] != 10000 {
		t.Errorf("write with DNS read: %d %v", st, codes)
	}
	_, zs := l.sdk(noZoneRead.Value, option.WithMaxRetries(0))
	_, err = zs.List(ctx, zones.ZoneListParams{})
	if st, codes, msg := apiErr(t, err); st != 403 || codes[0] != 9109 || msg != "Unauthorized to access requested resource" {
		t.Errorf("zone list without Zone:Read: %d %v %q", st, codes, msg)
	}
	for name, tok := range map[string]Token{"disabled": disabled, "expired": expired} {
		recs, _ := l.sdk(tok.Value, option.WithMaxRetries(0))
		_, err := recs.List(ctx, listParams(l.zone.ID))
		if st, codes, msg := apiErr(t, err); st != 403 || codes[0] != 9109 || msg != "Invalid access token" {
			t.Errorf("%s token: %d %v %q", name, st, codes, msg)
		}
		a := l.call(t, "GET", "/user/tokens/verify", tok.Value, nil)
		if a.status != 200 || a.result(t)["status"] != name {
			t.Errorf("verify %s token: %d %s", name, a.status, a.raw)
		}
	}
	a := l.call(t, "GET", "/user/tokens/verify", "unknown-token-value", nil)
	if a.status != 401 || fmt.Sprint(a.codes()) != "[1000]" {
		t.Errorf("verify unknown token: %d %s", a.status, a.raw)
	}
}

func TestInjectedRateLimitReachesTheSDKAndRetriesRecover(t *testing.T) {
	l := newLab(t, Options{}, Zone{})
	ctx := context.Background()

	noRetry, _ := l.sdk(l.token.Value, option.WithMaxRetries(0))
	l.srv.InjectRateLimit(RateLimit{Next: 1, RetryAfter: time.Second})
	_, err := noRetry.New(ctx, txtNew(l.zone.ID, "rl", `"v"`))
	if st, codes, _ := apiErr(t, err); st != http.StatusTooManyRequests || codes[0] != 971 {
		t.Errorf("without retries: %d %v, want 429 [971]", st, codes)
	}

	if testing.Short() {
		t.Skip("the retry half waits for Retry-After")
	}
	// cloudflare-go retries 429 (2 retries by default) honouring Retry-After.
	withRetry, _ := l.sdk(l.token.Value)
	l.srv.ResetRequests()
	l.srv.InjectRateLimit(RateLimit{Next: 2, RetryAfter: time.Second, WritesOnly: true})
	start := time.Now()
	if _, err := withRetry.New(ctx, txtNew(l.zone.ID, "rl", `"v"`)); err != nil {
		t.Fatalf("with retries: %v", err)
	}
	took := time.Since(start)
	c := l.srv.Counters()
	if c.RateLimited != 2 || c.WritesApplied != 1 || c.Writes != 3 {
		t.Errorf("counters %+v, want 2 rate-limited then 1 applied write", c)
	}
	if took < 2*time.Second {
		t.Errorf("retries took %v, want ≥ 2 s (Retry-After: 1 twice)", took)
	}
	t.Logf("two 429s then success in %v", took.Round(time.Millisecond))
}

func TestAutoPagingWalksEveryPageAndStopsOnTheEmptyOne(t *testing.T) {
	l := newLab(t, Options{}, Zone{})
	recs, _ := l.sdk(l.token.Value, option.WithMaxRetries(0))
	ctx := context.Background()
	for i := range 7 {
		if _, err := recs.New(ctx, txtNew(l.zone.ID, fmt.Sprintf("r%d", i), fmt.Sprintf(`"%d"`, i))); err != nil {
			t.Fatal(err)
		}
	}
	l.srv.ResetRequests()
	p := listParams(l.zone.ID)
	p.PerPage.Value, p.PerPage.Present = 3, true
	it := recs.ListAutoPaging(ctx, p)
	n := 0
	for it.Next() {
		n++
	}
	if err := it.Err(); err != nil || n != 7 {
		t.Errorf("auto-paging: %d records, err %v, want 7", n, err)
	}
	var pages []string
	for _, r := range l.srv.Requests() {
		pages = append(pages, r.Query)
	}
	if c := l.srv.Counters(); c.Reads != 4 || c.Writes != 0 {
		t.Errorf("requests %v (%+v), want pages 1-4, the 4th empty", pages, c)
	}
}

func TestSDKSeesValidationErrors(t *testing.T) {
	l := newLab(t, Options{}, Zone{})
	recs, _ := l.sdk(l.token.Value, option.WithMaxRetries(0))
	ctx := context.Background()
	if _, err := recs.New(ctx, txtNew(l.zone.ID, "dup", `"same"`)); err != nil {
		t.Fatal(err)
	}
	_, err := recs.New(ctx, txtNew(l.zone.ID, "dup.example.test", `"same"`))
	if st, codes, _ := apiErr(t, err); st != 400 || codes[0] != 81058 {
		t.Errorf("duplicate: %d %v", st, codes)
	}
	var a cfdns.ARecordParam
	a.Name.Value, a.Name.Present = "bad", true
	a.Type.Value, a.Type.Present = cfdns.ARecordTypeA, true
	a.Content.Value, a.Content.Present = "2001:db8::1", true
	a.TTL.Value, a.TTL.Present = 1, true
	var p cfdns.RecordNewParams
	p.ZoneID.Value, p.ZoneID.Present = l.zone.ID, true
	p.Body = a
	_, err = recs.New(ctx, p)
	if st, codes, _ := apiErr(t, err); st != 400 || codes[0] != 9005 {
		t.Errorf("IPv6 in an A record: %d %v", st, codes)
	}
	var gp cfdns.RecordGetParams
	gp.ZoneID.Value, gp.ZoneID.Present = l.zone.ID, true
	_, err = recs.Get(ctx, "0123456789abcdef0123456789abcdef", gp)
	if st, codes, _ := apiErr(t, err); st != 404 || codes[0] != 81044 {
		t.Errorf("unknown record: %d %v", st, codes)
	}
}

func mustRecords(t *testing.T, s *Server, zoneID string) []Record {
	t.Helper()
	r, err := s.Records(zoneID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
