package provision

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/inventory"
)

func testProvisioner() *Provisioner {
	return New(Config{Inventory: &inventory.File{Inventory: &inventory.Inventory{Name: "lghs"}}})
}

func TestRecordOpsPerRecordState(t *testing.T) {
	p := testProvisioner()
	mine := RecordComment("lghs", "lghs-chat")
	v4, v6 := netip.MustParseAddr("51.158.0.10"), netip.MustParseAddr("2001:bc8:710:1::1")
	h := hostSpec{Name: "lghs-chat", IPv4: true, IPv6: true, DNS: []nameSpec{{Name: "chat.lghs.be", Zone: "lghs.be", TTL: 300}}}
	a := Record{ID: "a", Name: "chat.lghs.be", Type: "A", Content: "51.158.0.10", TTL: 300, Comment: mine}
	aaaa := Record{ID: "b", Name: "chat.lghs.be", Type: "AAAA", Content: "2001:bc8:710:1:0:0:0:1", TTL: 300, Comment: mine}
	for _, c := range []struct {
		name    string
		records []Record
		v4, v6  netip.Addr
		spec    func(hostSpec) hostSpec
		want    []string // "action kind name"
		blocked string
		note    string
	}{
		{name: "converged (AAAA compared as addresses)", records: []Record{a, aaaa}, v4: v4, v6: v6},
		{name: "empty zone", v4: v4, v6: v6, want: []string{"create A chat.lghs.be", "create AAAA chat.lghs.be"}},
		{name: "content changed by hand", records: []Record{a, {ID: "b", Name: "chat.lghs.be", Type: "AAAA", Content: "2001:db8::1", TTL: 300, Comment: mine}},
			v4: v4, v6: v6, want: []string{"update AAAA chat.lghs.be"}},
		{name: "TTL changed", records: []Record{{ID: "a", Name: "chat.lghs.be", Type: "A", Content: "51.158.0.10", TTL: 1, Comment: mine}, aaaa},
			v4: v4, v6: v6, want: []string{"update A chat.lghs.be"}},
		{name: "unknown addresses", records: []Record{a, aaaa}, want: []string{"update A chat.lghs.be", "update AAAA chat.lghs.be"}},
		{name: "IPv6 turned off", records: []Record{a, aaaa}, v4: v4, spec: func(h hostSpec) hostSpec { h.IPv6 = false; return h },
			want: []string{"delete AAAA chat.lghs.be"}},
		{name: "a duplicate of ours", records: []Record{a, aaaa, {ID: "c", Name: "chat.lghs.be", Type: "A", Content: "51.158.0.11", TTL: 300, Comment: mine}},
			v4: v4, v6: v6, want: []string{"delete A chat.lghs.be"}},
		{name: "a name no longer in the inventory", records: []Record{a, aaaa, {ID: "d", Name: "old.lghs.be", Type: "A", Content: "51.158.0.10", TTL: 300, Comment: mine}},
			v4: v4, v6: v6, want: []string{"delete A old.lghs.be"}},
		{name: "someone else's A", records: []Record{{ID: "e", Name: "chat.lghs.be", Type: "A", Content: "192.0.2.1", TTL: 300}, aaaa},
			v4: v4, v6: v6, blocked: "A chat.lghs.be (192.0.2.1) exists and is not managed by lghsctl"},
		{name: "another host's record", records: []Record{{ID: "e", Name: "chat.lghs.be", Type: "A", Content: "192.0.2.1", TTL: 300, Comment: RecordComment("lghs", "old-chat")}, aaaa},
			v4: v4, v6: v6, blocked: "is managed by lghsctl for lghs/old-chat"},
		{name: "a CNAME at the name", records: []Record{{ID: "f", Name: "chat.lghs.be", Type: "CNAME", Content: "elsewhere.example"}},
			v4: v4, v6: v6, blocked: "a CNAME chat.lghs.be → elsewhere.example exists"},
		{name: "other types at the name are fine", records: []Record{a, aaaa, {ID: "g", Name: "chat.lghs.be", Type: "TXT", Content: `"x"`}}, v4: v4, v6: v6},
		{name: "before migrate cutover the old server's A stays, and no AAAA is added",
			records: []Record{{ID: "h", Name: "chat.lghs.be", Type: "A", Content: "185.217.152.58", TTL: 3600}}, v4: v4, v6: v6,
			spec: func(h hostSpec) hostSpec { h.DNS[0].AwaitsCutover = true; return h },
			note: "chat.lghs.be points at the old server (A 185.217.152.58, not managed by lghsctl): left as it is, A and AAAA, until lghsctl migrate cutover"},
		{name: "awaiting cutover with no old record: created", v4: v4, v6: v6,
			spec: func(h hostSpec) hostSpec { h.DNS[0].AwaitsCutover = true; return h },
			want: []string{"create A chat.lghs.be", "create AAAA chat.lghs.be"}},
		{name: "awaiting cutover, another lghsctl host's record still blocks",
			records: []Record{{ID: "e", Name: "chat.lghs.be", Type: "A", Content: "192.0.2.1", TTL: 300, Comment: RecordComment("lghs", "old-chat")}}, v4: v4, v6: v6,
			spec:    func(h hostSpec) hostSpec { h.DNS[0].AwaitsCutover = true; return h },
			want:    []string{"create AAAA chat.lghs.be"},
			blocked: "is managed by lghsctl for lghs/old-chat"},
		{name: "after cutover the records are ours: converged", records: []Record{a, aaaa}, v4: v4, v6: v6,
			spec: func(h hostSpec) hostSpec { h.DNS[0].AwaitsCutover = true; return h }},
		{name: "proxied means automatic TTL", records: []Record{a, aaaa}, v4: v4, v6: v6,
			spec: func(h hostSpec) hostSpec {
				h.DNS = []nameSpec{{Name: "chat.lghs.be", Zone: "lghs.be", TTL: 300, Proxied: true}}
				return h
			},
			want: []string{"update A chat.lghs.be", "update AAAA chat.lghs.be"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := h
			spec.DNS = append([]nameSpec(nil), h.DNS...)
			if c.spec != nil {
				spec = c.spec(spec)
			}
			zones := map[string]*zoneState{"lghs.be": {Zone: Zone{ID: "z", Name: "lghs.be"}, records: c.records}}
			ops, blocked, notes := p.recordOps(zones, spec, c.v4, c.v6)
			if got := strings.Join(notes, "|"); (c.note == "") != (got == "") || !strings.Contains(got, c.note) {
				t.Errorf("notes %q, want %q", got, c.note)
			}
			var got []string
			for _, op := range ops {
				ch := op.change()
				got = append(got, string(ch.Action)+" "+ch.Kind+" "+ch.Name)
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("ops %q, want %q", got, c.want)
			}
			switch {
			case c.blocked == "" && len(blocked) > 0:
				t.Errorf("unexpected block: %+v", blocked)
			case c.blocked != "" && (len(blocked) == 0 || blocked[0].Action != report.Blocked || !strings.Contains(blocked[0].Note, c.blocked)):
				t.Errorf("blocked %+v, want a note with %q", blocked, c.blocked)
			}
		})
	}
}

func TestHumanSizeAndAge(t *testing.T) {
	if HumanSize(40e9) != "40.0 GB" || HumanSize(1.5e12) != "1.5 TB" || HumanSize(12) != "12 B" {
		t.Error(HumanSize(40e9), HumanSize(1.5e12), HumanSize(12))
	}
	if HumanAge(72*3600e9) != "3d" || HumanAge(5*3600e9) != "5h" || HumanAge(90e9) != "1m" {
		t.Error(HumanAge(72*3600e9), HumanAge(5*3600e9), HumanAge(90e9))
	}
}

// zoneOnlyDNS answers zone lookups with fixed permissions.
type zoneOnlyDNS struct {
	DNS
	perms []string
}

func (d zoneOnlyDNS) Zone(_ context.Context, name string) (Zone, error) {
	return Zone{ID: "z", Name: name, Permissions: d.perms}, nil
}
func (zoneOnlyDNS) Records(context.Context, string) ([]Record, error) { return nil, nil }

func TestReadOnlyTokenIsAPlanTimeError(t *testing.T) {
	for _, c := range []struct {
		perms []string
		fails bool
	}{
		{[]string{"#zone:read", "#dns_records:read"}, true},
		{[]string{"#zone:read", "#dns_records:read", "#dns_records:edit"}, false},
		{[]string{"#worker:read"}, false}, // says nothing of DNS: not a reason to refuse
		{nil, false},
	} {
		p := testProvisioner()
		p.inv.DNS.Token = inventory.SecretRef{Env: "CLOUDFLARE_API_TOKEN"}
		p.dns = zoneOnlyDNS{perms: c.perms}
		_, err := p.readZones(context.Background(), []string{"lghs.be"}, &Plan{zones: map[string]*zoneState{}})
		if (err != nil) != c.fails || (err != nil && !strings.Contains(err.Error(), "cannot edit records in zone lghs.be")) {
			t.Errorf("permissions %v: %v", c.perms, err)
		}
	}
}
