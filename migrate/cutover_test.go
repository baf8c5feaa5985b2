package migrate

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cfdnsapi "github.com/cloudflare/cloudflare-go/v7/dns"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/zones"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
)

// cloudflareDNS implements DNS with cloudflare-go v7 (dns, zones and
// option only), the way provision's Cloudflare adapter will; here it
// talks to the lab's Cloudflare stand-in.
type cloudflareDNS struct {
	recs  *cfdnsapi.RecordService
	zones *zones.ZoneService
	zone  string

	mu     sync.Mutex
	zoneID string
}

func (c *cloudflareDNS) id(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.zoneID != "" {
		return c.zoneID, nil
	}
	var p zones.ZoneListParams
	p.Name.Value, p.Name.Present = c.zone, true
	page, err := c.zones.List(ctx, p)
	if err != nil {
		return "", err
	}
	if len(page.Result) != 1 {
		return "", fmt.Errorf("zone %s not found", c.zone)
	}
	c.zoneID = page.Result[0].ID
	return c.zoneID, nil
}

type cfRecord struct {
	id string
	DNSRecord
}

func (c *cloudflareDNS) list(ctx context.Context, name string) (string, []cfRecord, error) {
	zid, err := c.id(ctx)
	if err != nil {
		return "", nil, err
	}
	var out []cfRecord
	for _, typ := range []string{"A", "AAAA"} {
		var lp cfdnsapi.RecordListParams
		lp.ZoneID.Value, lp.ZoneID.Present = zid, true
		lp.Type.Value, lp.Type.Present = cfdnsapi.RecordListParamsType(typ), true
		lp.Name.Value, lp.Name.Present = cfdnsapi.RecordListParamsName{}, true
		lp.Name.Value.Exact.Value, lp.Name.Value.Exact.Present = name, true
		page, err := c.recs.List(ctx, lp)
		if err != nil {
			return "", nil, err
		}
		for _, r := range page.Result {
			a, err := netip.ParseAddr(r.Content)
			if err != nil {
				return "", nil, err
			}
			out = append(out, cfRecord{r.ID, DNSRecord{Type: typ, Addr: a, TTL: int(r.TTL)}})
		}
	}
	return zid, out, nil
}

func (c *cloudflareDNS) Records(ctx context.Context, name string) ([]DNSRecord, error) {
	_, recs, err := c.list(ctx, name)
	var out []DNSRecord
	for _, r := range recs {
		out = append(out, r.DNSRecord)
	}
	return out, err
}

func editBody(a netip.Addr, ttl int) cfdnsapi.RecordEditParamsBodyUnion {
	if a.Is4() {
		var p cfdnsapi.ARecordParam
		p.Type.Value, p.Type.Present = cfdnsapi.ARecordTypeA, true
		p.Content.Value, p.Content.Present = a.String(), true
		p.TTL.Value, p.TTL.Present = cfdnsapi.TTL(ttl), true
		return p
	}
	var p cfdnsapi.AAAARecordParam
	p.Type.Value, p.Type.Present = cfdnsapi.AAAARecordTypeAAAA, true
	p.Content.Value, p.Content.Present = a.String(), true
	p.TTL.Value, p.TTL.Present = cfdnsapi.TTL(ttl), true
	return p
}

func (c *cloudflareDNS) SetTTL(ctx context.Context, name string, ttl int) error {
	zid, recs, err := c.list(ctx, name)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.TTL == ttl {
			continue
		}
		var ep cfdnsapi.RecordEditParams
		ep.ZoneID.Value, ep.ZoneID.Present = zid, true
		ep.Body = editBody(r.Addr, ttl)
		if _, err := c.recs.Edit(ctx, r.id, ep); err != nil {
			return err
		}
	}
	return nil
}

func (c *cloudflareDNS) Point(ctx context.Context, name string, addrs []netip.Addr, ttl int) error {
	zid, recs, err := c.list(ctx, name)
	if err != nil {
		return err
	}
	left := slices.Clone(addrs)
	for _, r := range recs {
		if i := slices.Index(left, r.Addr); i >= 0 {
			left = slices.Delete(left, i, i+1)
			if r.TTL != ttl {
				var ep cfdnsapi.RecordEditParams
				ep.ZoneID.Value, ep.ZoneID.Present = zid, true
				ep.Body = editBody(r.Addr, ttl)
				if _, err := c.recs.Edit(ctx, r.id, ep); err != nil {
					return err
				}
			}
			continue
		}
		// Reuse a record of the same family for a new address, else delete.
		if j := slices.IndexFunc(left, func(a netip.Addr) bool { return a.Is4() == r.Addr.Is4() }); j >= 0 {
			var ep cfdnsapi.RecordEditParams
			ep.ZoneID.Value, ep.ZoneID.Present = zid, true
			ep.Body = editBody(left[j], ttl)
			if _, err := c.recs.Edit(ctx, r.id, ep); err != nil {
				return err
			}
			left = slices.Delete(left, j, j+1)
			continue
		}
		var dp cfdnsapi.RecordDeleteParams
		dp.ZoneID.Value, dp.ZoneID.Present = zid, true
		if _, err := c.recs.Delete(ctx, r.id, dp); err != nil {
			return err
		}
	}
	for _, a := range left {
		var np cfdnsapi.RecordNewParams
		np.ZoneID.Value, np.ZoneID.Present = zid, true
		if a.Is4() {
			var p cfdnsapi.ARecordParam
			p.Name.Value, p.Name.Present = name, true
			p.Type.Value, p.Type.Present = cfdnsapi.ARecordTypeA, true
			p.Content.Value, p.Content.Present = a.String(), true
			p.TTL.Value, p.TTL.Present = cfdnsapi.TTL(ttl), true
			np.Body = p
		} else {
			var p cfdnsapi.AAAARecordParam
			p.Name.Value, p.Name.Present = name, true
			p.Type.Value, p.Type.Present = cfdnsapi.AAAARecordTypeAAAA, true
			p.Content.Value, p.Content.Present = a.String(), true
			p.TTL.Value, p.TTL.Present = cfdnsapi.TTL(ttl), true
			np.Body = p
		}
		if _, err := c.recs.New(ctx, np); err != nil {
			return err
		}
	}
	return nil
}

// cutoverLab is the Cloudflare stand-in with lghs.be holding the old
// server's records, and the lab DNS serving it.
func cutoverLab(t *testing.T) (*cloudflareDNS, *labdns.Server, *cfsim.Server) {
	t.Helper()
	ctx := context.Background()
	cf, err := cfsim.New(cfsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	z, err := cf.AddZone(cfsim.Zone{Name: "lghs.be", NameServers: []string{"ns1.lghs.be", "ns2.lghs.be"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: []string{z.ID}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := cf.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	srv, err := labdns.Start(ctx, labdns.Config{Addr: "127.0.0.1:0", Source: cfdns.Source(cf)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	opts := []option.RequestOption{option.WithBaseURL(api.BaseURL + "/"), option.WithAPIToken(tok.Value), option.WithMaxRetries(0)}
	d := &cloudflareDNS{recs: cfdnsapi.NewRecordService(opts...), zones: zones.NewZoneService(opts...), zone: "lghs.be"}
	// The old server: escandalo, IPv4 only, TTL one hour.
	if err := d.Point(ctx, "chat.lghs.be", []netip.Addr{netip.MustParseAddr("185.217.152.58")}, 3600); err != nil {
		t.Fatal(err)
	}
	return d, srv, cf
}

// TestCutoverLowersTTLThenPointsAtTheNewHostAndRestoresIt is the cutover
// acceptance item: --prepare lowers the TTL to 60 s (the lab DNS answers
// it) and remembers 3600 on the target; a cutover before the old TTL has
// expired refuses; the cutover points chat.lghs.be at the new host's IPv4
// and IPv6 addresses, waits for the authoritative answer, and restores
// the TTL to 3600; running it again changes nothing.
func TestCutoverLowersTTLThenPointsAtTheNewHostAndRestoresIt(t *testing.T) {
	ctx := testCtx(t)
	d, srv, cf := cutoverLab(t)
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	newAddrs := []netip.Addr{netip.MustParseAddr("2001:bc8:600:1b1e::1"), netip.MustParseAddr("163.172.177.119")}
	c := &Cutover{Name: "chat.lghs.be", Zone: "lghs.be", Addrs: newAddrs, DNS: d,
		Resolver: &AuthResolver{Servers: []string{srv.Addr()}}, Host: Local("new"), StateDir: t.TempDir(),
		Poll: 50 * time.Millisecond, Wait: 10 * time.Second, now: func() time.Time { return now }}
	auth := func() ([]netip.Addr, uint32) {
		var all []netip.Addr
		var ttl uint32
		for _, qt := range []uint16{1, 28} {
			as, tt, err := c.Resolver.Authoritative(ctx, "lghs.be", "chat.lghs.be", qt)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, as...)
			if len(as) > 0 {
				ttl = tt
			}
		}
		return all, ttl
	}

	old, ready, changed, err := c.Prepare(ctx)
	if err != nil || old != 3600 || !changed || !ready.Equal(now.Add(time.Hour)) {
		t.Fatalf("prepare: old %d ready %v changed %v err %v", old, ready, changed, err)
	}
	if addrs, ttl := auth(); ttl != 60 || addrs[0].String() != "185.217.152.58" {
		t.Fatalf("after prepare the DNS answers %v ttl %d", addrs, ttl)
	}
	// Preparing again keeps the TTL it remembered (not 60).
	if old, _, changed, err := c.Prepare(ctx); err != nil || old != 3600 || changed {
		t.Fatalf("prepare again: %d %v %v", old, changed, err)
	}

	now = now.Add(30 * time.Minute)
	if _, err := c.Run(ctx); !errors.Is(err, ErrTooEarly) || !strings.Contains(err.Error(), "until 2026-11-01T11:00:00Z") {
		t.Fatalf("early cutover: %v", err)
	}
	now = now.Add(31 * time.Minute)
	var ttls []string
	cf.Subscribe(func(ch cfsim.Change) { ttls = append(ttls, fmt.Sprint(ch)) })
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.TTL != 3600 || len(res.OldAddrs) != 1 {
		t.Errorf("result %+v", res)
	}
	addrs, ttl := auth()
	if ttl != 3600 || len(addrs) != 2 || addrs[0] != newAddrs[1] || addrs[1] != newAddrs[0] {
		t.Fatalf("after cutover the DNS answers %v ttl %d", addrs, ttl)
	}
	if len(ttls) == 0 {
		t.Error("no change reached the Cloudflare stand-in")
	}
	res, err = c.Run(ctx)
	if err != nil || res.Changed {
		t.Fatalf("second cutover: %+v %v", res, err)
	}
}
