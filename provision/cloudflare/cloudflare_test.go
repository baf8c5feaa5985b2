package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/provision"
)

func newSim(t *testing.T, perms ...cfsim.Permission) (*cfsim.Server, *cfsim.HTTPServer, cfsim.Zone, cfsim.Token) {
	t.Helper()
	s, err := cfsim.New(cfsim.Options{Quota: -1})
	if err != nil {
		t.Fatal(err)
	}
	z, err := s.AddZone(cfsim.Zone{Name: "lghs.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(perms) == 0 {
		perms = []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}
	}
	tok, err := s.AddToken(cfsim.Token{Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := s.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	return s, hs, z, tok
}

func TestVerifyRefusesUnknownAndDisabledTokens(t *testing.T) {
	s, hs, _, tok := newSim(t)
	ctx := context.Background()
	c, _ := New(Config{BaseURL: hs.BaseURL, Token: tok.Value})
	if err := c.Verify(ctx); err != nil {
		t.Errorf("a good token: %v", err)
	}
	bad, _ := New(Config{BaseURL: hs.BaseURL, Token: "not-a-known-token"})
	if err := bad.Verify(ctx); provision.Status(err) != 401 || !strings.Contains(err.Error(), "Invalid API Token") {
		t.Errorf("unknown token: %v", err)
	}
	if err := s.SetTokenStatus(tok.ID, cfsim.TokenDisabled); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(ctx); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("disabled token: %v", err)
	}
}

func TestRecordsCreateListUpdateDelete(t *testing.T) {
	_, hs, z, tok := newSim(t)
	ctx := context.Background()
	c, _ := New(Config{BaseURL: hs.BaseURL, Token: tok.Value})
	zone, err := c.Zone(ctx, "lghs.test")
	if err != nil || zone.ID != z.ID {
		t.Fatalf("zone %+v %v", zone, err)
	}
	if _, err := c.Zone(ctx, "other.test"); !errors.Is(err, provision.ErrNotFound) {
		t.Errorf("unknown zone: %v", err)
	}
	for i := range 5 {
		if _, err := c.CreateRecord(ctx, z.ID, provision.Record{Name: fmt.Sprintf("h%d.lghs.test", i), Type: "AAAA", Content: "2001:db8::1", TTL: 300, Comment: "mine"}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.CreateRecord(ctx, z.ID, provision.Record{Name: "chat.lghs.test", Type: "A", Content: "192.0.2.1", TTL: 1, Proxied: true, Comment: "managed by lghsctl: x/y"})
	if err != nil || r.ID == "" || r.Comment != "managed by lghsctl: x/y" || !r.Proxied {
		t.Fatalf("create: %+v %v", r, err)
	}
	all, err := c.Records(ctx, z.ID)
	if err != nil || len(all) != 6 {
		t.Fatalf("%d records, %v", len(all), err)
	}
	u, err := c.UpdateRecord(ctx, z.ID, r.ID, provision.Record{Name: "chat.lghs.test", Type: "A", Content: "192.0.2.2", TTL: 300, Comment: r.Comment})
	if err != nil || u.Content != "192.0.2.2" || u.Proxied || u.TTL != 300 {
		t.Errorf("update: %+v %v", u, err)
	}
	if err := c.DeleteRecord(ctx, z.ID, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRecord(ctx, z.ID, r.ID); err != nil {
		t.Errorf("deleting a record already gone: %v", err)
	}
}

func TestReadOnlyTokenCannotWrite(t *testing.T) {
	_, hs, z, tok := newSim(t, cfsim.ZoneRead, cfsim.DNSRead)
	c, _ := New(Config{BaseURL: hs.BaseURL, Token: tok.Value})
	_, err := c.CreateRecord(context.Background(), z.ID, provision.Record{Name: "x.lghs.test", Type: "A", Content: "192.0.2.1", TTL: 300})
	if provision.Status(err) != 403 || provision.Ambiguous(err) {
		t.Errorf("create with a read-only token: %v", err)
	}
}

func TestCAARecordsAreSentAsData(t *testing.T) {
	_, hs, z, tok := newSim(t)
	ctx := context.Background()
	c, _ := New(Config{BaseURL: hs.BaseURL, Token: tok.Value})
	r, err := c.CreateRecord(ctx, z.ID, provision.Record{Name: "lghs.test", Type: "CAA", Content: `0 issue "letsencrypt.org;validationmethods=dns-01"`, TTL: 1, Comment: "managed by lghsctl"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Content != `0 issue "letsencrypt.org;validationmethods=dns-01"` || r.Type != "CAA" {
		t.Errorf("CAA answered %+v", r)
	}
	if _, err := c.CreateRecord(ctx, z.ID, provision.Record{Name: "lghs.test", Type: "CAA", Content: "nonsense", TTL: 1}); err == nil {
		t.Error("a malformed CAA content is an error")
	}
}
