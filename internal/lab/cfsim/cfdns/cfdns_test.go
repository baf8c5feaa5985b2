package cfdns_test

import (
	"context"
	"strings"
	"testing"
	"time"

	cfdnsapi "github.com/cloudflare/cloudflare-go/v7/dns"
	"github.com/cloudflare/cloudflare-go/v7/option"
	"github.com/cloudflare/cloudflare-go/v7/zones"
	"github.com/miekg/dns"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
)

type stack struct {
	cf    *cfsim.Server
	api   *cfsim.HTTPServer
	dns   *labdns.Server
	token cfsim.Token
	recs  *cfdnsapi.RecordService
	zones *zones.ZoneService
}

func startStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	cf, err := cfsim.New(cfsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cf.AddZone(cfsim.Zone{Name: "example.test", NameServers: []string{"ns1.example.test", "ns2.example.test"}}); err != nil {
		t.Fatal(err)
	}
	tok, err := cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := cf.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	srv, err := labdns.Start(ctx, labdns.Config{Addr: "127.0.0.1:0", Source: cfdns.Source(cf)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	opts := []option.RequestOption{option.WithBaseURL(api.BaseURL + "/"), option.WithAPIToken(tok.Value), option.WithMaxRetries(0)}
	return &stack{cf: cf, api: api, dns: srv, token: tok, recs: cfdnsapi.NewRecordService(opts...), zones: zones.NewZoneService(opts...)}
}

func (s *stack) dig(t *testing.T, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.dns.Addr())
	if err != nil {
		t.Fatalf("dig %s: %v", name, err)
	}
	return r
}

func (s *stack) serial(t *testing.T) uint32 {
	t.Helper()
	r := s.dig(t, "example.test", dns.TypeSOA)
	return r.Answer[0].(*dns.SOA).Serial
}

// answers renders the answer section as "TTL TYPE RDATA" lines.
func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		f := strings.SplitN(rr.String(), "\t", 5)
		out = append(out, f[1]+" "+f[3]+" "+f[4])
	}
	return out
}

func want(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

// Field setters for cloudflare-go's param.Field (its F helper lives in the
// SDK's root package, which the project does not import).
func aParam(name, content string, ttl float64) cfdnsapi.ARecordParam {
	var p cfdnsapi.ARecordParam
	p.Name.Value, p.Name.Present = name, true
	p.Type.Value, p.Type.Present = cfdnsapi.ARecordTypeA, true
	p.Content.Value, p.Content.Present = content, true
	p.TTL.Value, p.TTL.Present = cfdnsapi.TTL(ttl), true
	return p
}

func aaaaParam(name, content string) cfdnsapi.AAAARecordParam {
	var p cfdnsapi.AAAARecordParam
	p.Name.Value, p.Name.Present = name, true
	p.Type.Value, p.Type.Present = cfdnsapi.AAAARecordTypeAAAA, true
	p.Content.Value, p.Content.Present = content, true
	p.TTL.Value, p.TTL.Present = cfdnsapi.TTL1, true
	return p
}

func caaParam(name, tag, value string) cfdnsapi.CAARecordParam {
	var d cfdnsapi.CAARecordDataParam
	d.Flags.Value, d.Flags.Present = 0, true
	d.Tag.Value, d.Tag.Present = tag, true
	d.Value.Value, d.Value.Present = value, true
	var p cfdnsapi.CAARecordParam
	p.Name.Value, p.Name.Present = name, true
	p.Type.Value, p.Type.Present = cfdnsapi.CAARecordTypeCAA, true
	p.TTL.Value, p.TTL.Present = 3600, true
	p.Data.Value, p.Data.Present = d, true
	return p
}

func txtParam(name, content string) cfdnsapi.TXTRecordParam {
	var p cfdnsapi.TXTRecordParam
	p.Name.Value, p.Name.Present = name, true
	p.Type.Value, p.Type.Present = cfdnsapi.TXTRecordTypeTXT, true
	p.Content.Value, p.Content.Present = content, true
	p.TTL.Value, p.TTL.Present = 120, true
	return p
}

// Every change made through cloudflare-go v7 is answered by the lab DNS on
// the very next query, with a new SOA serial.
func TestSDKChangesAreServedAtOnce(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()

	var zl zones.ZoneListParams
	zl.Name.Value, zl.Name.Present = "example.test", true
	page, err := s.zones.List(ctx, zl)
	if err != nil || len(page.Result) != 1 {
		t.Fatalf("zone lookup: %v %v", err, page)
	}
	zid := page.Result[0].ID

	type step struct {
		name, qname string
		qtype       uint16
		body        cfdnsapi.RecordNewParamsBodyUnion
		created     []string
		edit        cfdnsapi.RecordEditParamsBodyUnion
		edited      []string
	}
	steps := []step{
		{"A", "chat.example.test", dns.TypeA, aParam("chat", "192.0.2.10", 1), []string{"300 A 192.0.2.10"},
			func() cfdnsapi.RecordEditParamsBodyUnion {
				var p cfdnsapi.ARecordParam
				p.Content.Value, p.Content.Present = "192.0.2.11", true
				p.TTL.Value, p.TTL.Present = 120, true
				return p
			}(), []string{"120 A 192.0.2.11"}},
		{"AAAA", "chat.example.test", dns.TypeAAAA, aaaaParam("chat.example.test", "2001:db8::10"), []string{"300 AAAA 2001:db8::10"},
			func() cfdnsapi.RecordEditParamsBodyUnion {
				var p cfdnsapi.AAAARecordParam
				p.Content.Value, p.Content.Present = "2001:db8::11", true
				return p
			}(), []string{"300 AAAA 2001:db8::11"}},
		{"CAA", "example.test", dns.TypeCAA, caaParam("@", "issue", "letsencrypt.org"), []string{`3600 CAA 0 issue "letsencrypt.org"`},
			caaParam("example.test", "issuewild", ";"), []string{`3600 CAA 0 issuewild ";"`}},
		{"TXT", "_acme-challenge.example.test", dns.TypeTXT, txtParam("_acme-challenge", `"first-value"`), []string{`120 TXT "first-value"`},
			txtParam("_acme-challenge.example.test", `"second-value"`), []string{`120 TXT "second-value"`}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := s.serial(t)
			var np cfdnsapi.RecordNewParams
			np.ZoneID.Value, np.ZoneID.Present = zid, true
			np.Body = st.body
			rec, err := s.recs.New(ctx, np)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			want(t, "after create", answers(s.dig(t, st.qname, st.qtype)), st.created...)
			if s.serial(t) <= before {
				t.Errorf("serial did not grow on create")
			}

			var lp cfdnsapi.RecordListParams
			lp.ZoneID.Value, lp.ZoneID.Present = zid, true
			lp.Type.Value, lp.Type.Present = cfdnsapi.RecordListParamsType(st.name), true
			lp.Name.Value, lp.Name.Present = cfdnsapi.RecordListParamsName{}, true
			lp.Name.Value.Exact.Value, lp.Name.Value.Exact.Present = st.qname, true
			list, err := s.recs.List(ctx, lp)
			if err != nil || len(list.Result) != 1 || list.Result[0].ID != rec.ID {
				t.Fatalf("list by type and name.exact: %v %+v", err, list)
			}

			serial := s.serial(t)
			var ep cfdnsapi.RecordEditParams
			ep.ZoneID.Value, ep.ZoneID.Present = zid, true
			ep.Body = st.edit
			if _, err := s.recs.Edit(ctx, rec.ID, ep); err != nil {
				t.Fatalf("patch: %v", err)
			}
			want(t, "after patch", answers(s.dig(t, st.qname, st.qtype)), st.edited...)
			if s.serial(t) <= serial {
				t.Errorf("serial did not grow on patch")
			}

			var dp cfdnsapi.RecordDeleteParams
			dp.ZoneID.Value, dp.ZoneID.Present = zid, true
			if _, err := s.recs.Delete(ctx, rec.ID, dp); err != nil {
				t.Fatalf("delete: %v", err)
			}
			r := s.dig(t, st.qname, st.qtype)
			if len(r.Answer) != 0 || len(r.Ns) != 1 {
				t.Errorf("after delete: answer %v authority %v, want none and the SOA", r.Answer, r.Ns)
			}
		})
	}
}

func TestRecordConversion(t *testing.T) {
	prio := 10
	cases := []struct {
		in   cfsim.Record
		want labdns.Record
	}{
		{cfsim.Record{Name: "a.example.test", Type: "A", TTL: 1, Content: "192.0.2.1"},
			labdns.Record{Name: "a.example.test", Type: "A", TTL: cfdns.AutoTTL, Content: "192.0.2.1"}},
		{cfsim.Record{Name: "a.example.test", Type: "TXT", TTL: 120, Content: `"v"`},
			labdns.Record{Name: "a.example.test", Type: "TXT", TTL: 120, Content: `"v"`}},
		{cfsim.Record{Name: "example.test", Type: "MX", TTL: 300, Content: "mail.example.test", Priority: &prio},
			labdns.Record{Name: "example.test", Type: "MX", TTL: 300, Content: "10 mail.example.test"}},
	}
	for _, c := range cases {
		if got := cfdns.Record(c.in); got != c.want {
			t.Errorf("Record(%+v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestOnlyActiveZonesAreServed(t *testing.T) {
	cf, err := cfsim.New(cfsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []cfsim.Zone{{Name: "live.test"}, {Name: "pending.test", Status: "pending"}} {
		if _, err := cf.AddZone(z); err != nil {
			t.Fatal(err)
		}
	}
	got := cfdns.Source(cf).Zones()
	if len(got) != 1 || got[0].Name != "live.test" {
		t.Errorf("zones served: %+v", got)
	}
}
