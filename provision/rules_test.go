package provision

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/lghs/lghsctl/inventory"
)

func rule(dir, proto string, from, to int, cidr string) Rule {
	return Rule{Direction: dir, Action: "accept", Protocol: proto, PortFrom: from, PortTo: to, IPRange: netip.MustParsePrefix(cidr), Editable: true}
}

func TestExpandRuleMakesOneRulePerRangeAsTheAPIEchoesIt(t *testing.T) {
	got := expandRule(inventory.Rule{Direction: "inbound", Action: "accept", Protocol: "TCP",
		Ports: inventory.PortRange{From: 22, To: 22}, IPRanges: []string{"0.0.0.0/0", "::/0", "192.0.2.7", "2001:db8::1/128", "198.51.100.9/24"}})
	want := []string{
		"inbound accept TCP 22 0.0.0.0/0", "inbound accept TCP 22 ::/0", "inbound accept TCP 22 192.0.2.7/32",
		"inbound accept TCP 22 2001:db8::1/128", "inbound accept TCP 22 198.51.100.0/24",
	}
	var s []string
	for _, r := range got {
		s = append(s, r.String())
	}
	if !slices.Equal(s, want) {
		t.Errorf("expanded to %q, want %q", s, want)
	}
	icmp := expandRule(inventory.Rule{Direction: "inbound", Action: "accept", Protocol: "ICMP", IPRanges: []string{"::/0"}})
	if len(icmp) != 1 || icmp[0].String() != "inbound accept ICMP ::/0" {
		t.Errorf("ICMP over IPv6 (ICMPv6) is one ICMP rule on ::/0, got %v", icmp)
	}
}

func TestRuleDiffComparesByContent(t *testing.T) {
	wanted := []Rule{rule("inbound", "TCP", 22, 22, "0.0.0.0/0"), rule("inbound", "TCP", 22, 22, "::/0"), rule("inbound", "ICMP", 0, 0, "::/0")}
	smtp := Rule{Direction: "outbound", Action: "drop", Protocol: "TCP", PortFrom: 25, PortTo: 25, IPRange: netip.MustParsePrefix("0.0.0.0/0")}
	extra := rule("inbound", "TCP", 8080, 8080, "0.0.0.0/0")
	for _, c := range []struct {
		name       string
		actual     []Rule
		keep       bool
		wantSet    bool
		missing    int
		unknown    int
		setLen     int
		unknownKey string
	}{
		{name: "same rules, the API's shapes (single port as from only, ICMP ports null)", actual: []Rule{
			{Direction: "inbound", Action: "accept", Protocol: "TCP", PortFrom: 22, IPRange: netip.MustParsePrefix("0.0.0.0/0"), Editable: true},
			rule("inbound", "TCP", 22, 22, "::/0"),
			{Direction: "inbound", Action: "accept", Protocol: "ICMP", PortFrom: 0, IPRange: netip.MustParsePrefix("::/0"), Editable: true},
			smtp}},
		{name: "a rule missing", actual: wanted[:2], wantSet: true, missing: 1, setLen: 3},
		{name: "a rule added by hand is removed", actual: append(slices.Clone(wanted), extra), wantSet: true, unknown: 1, setLen: 3},
		{name: "a rule added by hand is kept", actual: append(slices.Clone(wanted), extra), keep: true, unknown: 1},
		{name: "kept rules go last", actual: []Rule{extra, wanted[0], wanted[1], wanted[2]}, keep: true, wantSet: true, unknown: 1, setLen: 4},
		{name: "a duplicate is an unknown rule", actual: append(slices.Clone(wanted), wanted[0]), wantSet: true, unknown: 1, setLen: 3},
		{name: "order differs", actual: []Rule{wanted[2], wanted[0], wanted[1]}, wantSet: true, setLen: 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			set, missing, unknown := ruleDiff(c.actual, wanted, c.keep)
			if (set != nil) != c.wantSet || len(missing) != c.missing || len(unknown) != c.unknown || (c.wantSet && len(set) != c.setLen) {
				t.Errorf("set %v (want set: %v, %d rules), missing %v (want %d), unknown %v (want %d)", set, c.wantSet, c.setLen, missing, c.missing, unknown, c.unknown)
			}
		})
	}
}

func TestNormaliseKeyIgnoresComments(t *testing.T) {
	a := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl william@lghs"
	b := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	if normaliseKey(a) != normaliseKey(b) {
		t.Errorf("%q != %q", normaliseKey(a), normaliseKey(b))
	}
}

func TestRecordOwnerParsesOnlyLghsctlComments(t *testing.T) {
	for _, c := range []struct {
		comment   string
		inv, host string
		ok        bool
	}{
		{RecordComment("lghs", "lghs-chat"), "lghs", "lghs-chat", true},
		{"managed by lghsctl: lghs", "", "", false},
		{"hand made", "", "", false},
		{"", "", "", false},
	} {
		inv, host, ok := recordOwner(c.comment)
		if inv != c.inv || host != c.host || ok != c.ok {
			t.Errorf("recordOwner(%q) = %q %q %v", c.comment, inv, host, ok)
		}
	}
}
