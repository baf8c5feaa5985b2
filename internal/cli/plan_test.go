package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/provision"
)

// call sends a JSON request to one of the stand-ins' APIs, as someone
// working in the console would.
func (l *cloudLab) call(method, url, authHeader, auth string, body any) map[string]any {
	l.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set(authHeader, auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		l.t.Fatalf("%s %s: %d %v", method, url, resp.StatusCode, out)
	}
	return out
}

// addRuleByHand adds a rule the way the console does (one POST).
func (l *cloudLab) addRuleByHand(groupID string, port int) {
	l.call(http.MethodPost, fmt.Sprintf("%s/instance/v1/zones/fr-par-1/security_groups/%s/rules", l.scwURL, groupID),
		"X-Auth-Token", labSecretKey, map[string]any{"protocol": "TCP", "direction": "inbound", "action": "accept",
			"ip_range": "0.0.0.0/0", "dest_port_from": port})
}

// editRecordByHand changes a record's content through the DNS API.
func (l *cloudLab) editRecordByHand(r cfsim.Record, content string) {
	l.call(http.MethodPatch, fmt.Sprintf("%s/zones/%s/dns_records/%s", l.cfURL, r.ZoneID, r.ID),
		"Authorization", "Bearer "+l.token.Value, map[string]any{"content": content})
}

func findRecord(t *testing.T, w world, typ, name string) cfsim.Record {
	t.Helper()
	for _, r := range w.records {
		if r.Type == typ && r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s %s in %+v", typ, name, w.records)
	return cfsim.Record{}
}

func TestManualChangesAreShownByPlanAndFixedByUp(t *testing.T) {
	l := newCloudLab(t, labInventory)
	l.mustRun(0, "up")
	w := l.checkConverged()

	// By hand: a rule in the console, an AAAA edited, the IPv4 deleted.
	l.addRuleByHand(w.groups[0].ID, 8080)
	l.editRecordByHand(findRecord(t, w, "AAAA", "chat.lghs-be.test"), "2001:db8::bad")
	var v4 provision.IP
	for _, ip := range w.ips {
		if ip.Family == provision.IPv4 {
			v4 = ip
		}
	}
	if err := l.api().DeleteIP(context.Background(), "fr-par-1", v4.ID); err != nil {
		t.Fatal(err)
	}

	l.resetCalls()
	plan := l.mustRun(ExitChanges, "plan", "--detailed-exitcode")
	for _, want := range []string{
		"-   rule hardened-conf (inbound accept TCP 8080 0.0.0.0/0)",
		"not in the inventory (added outside lghsctl?)",
		"+   ip lghs-chat (routed IPv4 flexible IP, fr-par-1)",
		"~   AAAA chat.lghs-be.test",
		`content: "2001:db8::bad" → "2001:bc8:`,
		"~   A chat.lghs-be.test",
		`→ "(known after apply)"`,
	} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan.stdout)
		}
	}
	if s, c := l.writes(); s+c != 0 {
		t.Errorf("plan wrote: %d Scaleway, %d Cloudflare", s, c)
	}

	l.mustRun(0, "up")
	w2 := l.checkConverged()
	if w2.ips[0].ID == v4.ID && w2.ips[1].ID == v4.ID {
		t.Error("the deleted IPv4 came back?")
	}
	l.mustRun(0, "plan", "--detailed-exitcode")
}

func TestKeepUnknownRulesKeepsAndShowsAManualRule(t *testing.T) {
	inv := strings.Replace(labInventory, "    allow_smtp: true\n", "    allow_smtp: true\n    keep_unknown_rules: true\n", 1)
	l := newCloudLab(t, inv)
	l.mustRun(0, "up")
	w := l.world()
	l.addRuleByHand(w.groups[0].ID, 9000)

	plan := l.mustRun(0, "plan", "--detailed-exitcode")
	if !strings.Contains(plan.stdout, `warning: security group hardened-conf: rule "inbound accept TCP 9000 0.0.0.0/0" is not in the inventory (added outside lghsctl); kept because keep_unknown_rules is set`) {
		t.Errorf("the kept rule is not shown:\n%s", plan.stdout)
	}
	l.resetCalls()
	l.mustRun(0, "up")
	if s, _ := l.writes(); s != 0 {
		t.Errorf("up with a kept rule made %d writes", s)
	}
	rules, err := l.api().Rules(context.Background(), "fr-par-1", w.groups[0].ID)
	if err != nil || len(rules) != 13 {
		t.Errorf("%d rules (%v), want the 12 of the inventory and the kept one", len(rules), err)
	}
}

func TestPlanJSONListsTheChanges(t *testing.T) {
	l := newCloudLab(t, labInventory)
	r := l.mustRun(0, "plan", "--json")
	var plan struct {
		Type    string `json:"type"`
		Changes []struct {
			Action, Kind, Name string
		} `json:"changes"`
		Add int `json:"add"`
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev struct{ Type string }
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if ev.Type == "plan" {
			_ = json.Unmarshal([]byte(line), &plan)
		}
	}
	if plan.Add != 9 || len(plan.Changes) != 9 || plan.Changes[4].Kind != "server" || plan.Changes[4].Action != "create" {
		t.Errorf("plan event %+v", plan)
	}
}

func TestBadInputIsReportedBeforeAnyChange(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(string) string
		env     map[string]string
		code    int
		message string
	}{
		{
			name: "zone the API does not serve",
			edit: func(s string) string {
				return strings.Replace(s, "  zone: fr-par-1\n", "  zone: fr-par-3\n", 1)
			},
			code: ExitUsage, message: "inventory.yaml:4:9: scaleway.zone: zone fr-par-3 is not served by the Scaleway API",
		},
		{
			name: "unknown commercial type",
			edit: func(s string) string { return strings.Replace(s, "type: DEV1-M", "type: GP1-M", 1) },
			code: ExitUsage, message: "inventory.yaml:28:11: hosts[0].type: commercial type GP1-M does not exist in fr-par-1",
		},
		{
			name: "unknown image label",
			edit: func(s string) string { return strings.Replace(s, "image: debian_trixie", "image: debian_bullseye", 1) },
			code: ExitUsage, message: `inventory.yaml:29:12: hosts[0].image: the marketplace has no image "debian_bullseye" for DEV1-M in fr-par-1`,
		},
		{
			name: "DNS name outside the declared zones",
			edit: func(s string) string { return strings.Replace(s, "chat.lghs-be.test", "chat.example.org", 1) },
			code: ExitUsage, message: "hosts[0].dns[1].name: chat.example.org is in none of the declared zones (lghs-space.test, lghs-be.test)",
		},
		{
			name: "declared zone the token cannot see",
			edit: func(s string) string {
				return strings.Replace(s, "    - name: lghs-be.test\n", "    - name: lghs-be.test\n    - name: other.test\n", 1)
			},
			code: ExitUsage, message: "inventory.yaml:11:13: dns.zones[2].name: zone other.test is not in the DNS account, or the token (environment variable CLOUDFLARE_API_TOKEN) cannot read it",
		},
		{
			name: "bad DNS token",
			env:  map[string]string{"CLOUDFLARE_API_TOKEN": "not-a-token-of-this-account"},
			code: ExitFailure, message: "check the DNS token (environment variable CLOUDFLARE_API_TOKEN): cloudflare API: 401 the token was refused: Invalid API Token (1000)",
		},
		{
			name: "missing DNS token",
			env:  map[string]string{"CLOUDFLARE_API_TOKEN": ""},
			code: ExitFailure, message: "dns.token: environment variable CLOUDFLARE_API_TOKEN is not set",
		},
		{
			name: "bad Scaleway key",
			env:  map[string]string{"SCW_SECRET_KEY": "99999999-1111-4111-8111-111111111111"},
			code: ExitFailure, message: "401",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv := labInventory
			if c.edit != nil {
				inv = c.edit(inv)
			}
			l := newCloudLab(t, inv)
			for k, v := range c.env {
				l.env[k] = v
			}
			for _, cmd := range []string{"plan", "up"} {
				r := l.run(cmd)
				if r.code != c.code || !strings.Contains(r.stderr+r.stdout, c.message) {
					t.Errorf("%s: want exit %d with %q, got %s", cmd, c.code, c.message, r)
				}
				if strings.Contains(r.stdout+r.stderr, l.token.Value) || strings.Contains(r.stdout+r.stderr, labSecretKey) {
					t.Errorf("%s printed a secret:\n%s", cmd, r)
				}
			}
			if s, cf := l.writes(); s+cf != 0 {
				t.Errorf("%d Scaleway and %d Cloudflare writes before the error", s, cf)
			}
		})
	}
}

func TestConflictingRecordNotOwnedBlocksThePlan(t *testing.T) {
	l := newCloudLab(t, labInventory)
	if _, err := l.cf.AddRecord(l.zones["lghs-be.test"].ID, cfsim.Record{Name: "chat.lghs-be.test", Type: "A", Content: "192.0.2.7", TTL: 300}); err != nil {
		t.Fatal(err)
	}
	r := l.mustRun(ExitFailure, "plan")
	for _, want := range []string{
		"!   A chat.lghs-be.test",
		"A chat.lghs-be.test (192.0.2.7) exists and is not managed by lghsctl",
		"1 blocked (see notes)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r)
		}
	}
	up := l.mustRun(ExitFailure, "up")
	if !strings.Contains(up.stdout, "nothing was changed") {
		t.Errorf("up:\n%s", up)
	}
	if s, c := l.writes(); s+c != 0 {
		t.Errorf("up wrote despite the blocked plan: %d Scaleway, %d Cloudflare", s, c)
	}
}

func TestDriftThatNeedsAStopIsBlockedNotDone(t *testing.T) {
	l := newCloudLab(t, labInventory)
	l.mustRun(0, "up")
	l.write("inventory.yaml", strings.Replace(labInventory, "type: DEV1-M", "type: DEV1-L", 1))
	l.resetCalls()
	r := l.mustRun(ExitFailure, "plan")
	for _, want := range []string{"!   server lghs-chat", `commercial_type: "DEV1-M" → "DEV1-L"`, "lghsctl never does by itself", "lghsctl snapshot create lghs-chat"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	up := l.mustRun(ExitFailure, "up", "--json")
	for _, line := range strings.Split(strings.TrimSpace(up.stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("up --json wrote a non-JSON line %q", line)
		}
	}
	if !strings.Contains(up.stdout, `"action":"blocked"`) || !strings.Contains(up.stdout, `"type":"summary"`) {
		t.Errorf("up --json:\n%s", up.stdout)
	}
	if s, c := l.writes(); s+c != 0 {
		t.Errorf("a blocked up wrote: %d Scaleway, %d Cloudflare", s, c)
	}
	if l.serverOf("lghs-chat").CommercialType != "DEV1-M" {
		t.Error("the type was changed")
	}
}
