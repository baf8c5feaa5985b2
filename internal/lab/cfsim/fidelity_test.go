package cfsim

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Reasons shared by several fixtures.
const (
	whyTimestamps  = "current API (v6/v7 mark created_on/modified_on/meta required); the lego fixture is trimmed"
	whyChangeStamp = "documented in cloudflare-go v7 RecordResponse (present when a comment/tags exist)"
	whyLegacyData  = "v0-era answers carried data:{} on every record; the current API has data only for structured types (CAA)"
	whyNewFields   = "current API: settings/comment/tags are returned on every record (openapi and lego fixtures)"
)

// fidelityLab is a stand-in shaped like the fixtures' account: zone
// example.com on a paid plan (the fixtures carry tags), and a token with
// every permission.
func fidelityLab(t *testing.T) *lab {
	return newLab(t, Options{}, Zone{Name: "example.com", Plan: PlanPro, AccountName: "Example Account Name"})
}

func (l *lab) create(t *testing.T, body any) answer {
	t.Helper()
	a := l.call(t, "POST", "/zones/"+l.zone.ID+"/dns_records", l.token.Value, body)
	if a.status != http.StatusOK {
		if b, ok := body.([]byte); ok {
			body = string(b)
		}
		t.Fatalf("create %v: %d %s", body, a.status, a.raw)
	}
	return a
}

func asAny(t *testing.T, a answer) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(a.raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func expectSameShape(t *testing.T, fixture string, got answer, rules shapeRules) {
	t.Helper()
	for _, d := range diffShape(readFixture(t, fixture), asAny(t, got), rules) {
		t.Errorf("%s: %s", fixture, d)
	}
}

func TestFidelityZonesListMatchesRecordedShapes(t *testing.T) {
	l := fidelityLab(t)
	nullable := map[string]string{
		"result[].original_registrar":    "null on zones that were not moved from a registrar",
		"result[].original_dnshost":      "null on zones that were not moved from a DNS host",
		"result[].original_name_servers": "null on zones that were not moved",
		"result[].tenant.id":             "null outside tenant accounts",
		"result[].tenant.name":           "null outside tenant accounts",
		"result[].tenant_unit.id":        "null outside tenant accounts",
		"result[].owner.id":              "null on account-owned zones",
		"result[].owner.name":            "null on account-owned zones",
	}
	// lego asks exactly this (providers/dns/cloudflare/internal).
	a := l.call(t, "GET", "/zones?name=example.com&per_page=50", l.token.Value, nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET /zones: %d %s", a.status, a.raw)
	}
	fromOpenAPI := "present in openapi-zones-list-response.json"
	expectSameShape(t, "lego-zones-list.json", a, shapeRules{
		absentOK: map[string]string{"result[].cname_suffix": "only on partial (CNAME-setup) zones"},
		extraOK: map[string]string{
			"result[].status": "zones-get schema field (cloudflare-go v7 Zone.Status)", "result[].development_mode": fromOpenAPI,
			"result[].name_servers": fromOpenAPI, "result[].original_name_servers": fromOpenAPI,
			"result[].original_registrar": fromOpenAPI, "result[].original_dnshost": fromOpenAPI,
			"result[].created_on": fromOpenAPI, "result[].modified_on": fromOpenAPI, "result[].activated_on": fromOpenAPI,
		},
		nullable: nullable,
		values: []string{"success", "result[].name", "result[].type", "result[].account.name",
			"result_info.page", "result_info.count", "result_info.total_count", "result_info.total_pages"},
	})
	// cloudflare-go v7 sends only name=.
	a = l.call(t, "GET", "/zones?name=example.com", l.token.Value, nil)
	fromLego := "present in lego-zones-list.json"
	expectSameShape(t, "openapi-zones-list-response.json", a, shapeRules{
		extraOK: map[string]string{
			"result[].status": "zones-get schema field (cloudflare-go v7 Zone.Status)", "result[].paused": fromLego,
			"result[].type": fromLego, "result[].plan": fromLego, "result[].permissions": fromLego,
			"result[].tenant": fromLego, "result[].tenant_unit": fromLego,
			"result_info.total_pages": "the schema example omits it but real answers and cloudflare-go v0 pagination need it",
		},
		nullable: nullable,
		values:   []string{"success", "result[].name", "result[].account.name", "result_info.page", "result_info.count"},
	})
}

func TestFidelityRecordAnswersMatchRecordedShapes(t *testing.T) {
	l := fidelityLab(t)

	t.Run("A record as lego's fixture", func(t *testing.T) {
		a := l.create(t, map[string]any{
			"name": "example.com", "type": "A", "content": "198.51.100.4", "ttl": 3600, "proxied": true,
			"comment": "Domain verification record", "tags": []string{"owner:dns-team"},
			"settings": map[string]any{"ipv4_only": true, "ipv6_only": true},
		})
		expectSameShape(t, "lego-dns-record-create-response.json", a, shapeRules{
			extraOK: map[string]string{
				"result.created_on": whyTimestamps, "result.modified_on": whyTimestamps, "result.meta": whyTimestamps,
				"result.comment_modified_on": whyChangeStamp, "result.tags_modified_on": whyChangeStamp,
			},
			values: []string{"success", "result.name", "result.type", "result.content", "result.proxied",
				"result.proxiable", "result.comment", "result.tags", "result.settings"},
		})
		// Proxied records are always "automatic" whatever TTL is sent.
		if ttl := a.result(t)["ttl"]; ttl != 1.0 {
			t.Errorf("proxied record ttl = %v, want 1", ttl)
		}
	})

	t.Run("A record as cloudflare-go v0's fixture", func(t *testing.T) {
		a := l.create(t, map[string]any{"type": "A", "name": "xn--138h.example.com", "content": "198.51.100.4", "ttl": 120, "proxied": false})
		expectSameShape(t, "cfgo-v0-dns-record-create-a-response.json", a, shapeRules{
			absentOK: map[string]string{"result.data": whyLegacyData},
			extraOK:  map[string]string{"result.settings": whyNewFields, "result.comment": whyNewFields, "result.tags": whyNewFields},
			values: []string{"success", "result.type", "result.name", "result.content", "result.proxiable",
				"result.proxied", "result.ttl", "result.meta.source"},
		})
	})

	t.Run("CAA record from the OpenAPI request", func(t *testing.T) {
		a := l.create(t, readFixtureBytes(t, "openapi-dns-record-create-caa-request.json"))
		expectSameShape(t, "openapi-dns-record-caa-response.json", a, shapeRules{
			extraOK: map[string]string{"result.comment_modified_on": whyChangeStamp, "result.tags_modified_on": whyChangeStamp},
			values: []string{"success", "result.name", "result.type", "result.content", "result.data", "result.proxiable",
				"result.proxied", "result.ttl", "result.comment", "result.tags", "result.settings"},
		})
	})

	t.Run("list after the OpenAPI A request", func(t *testing.T) {
		l.create(t, map[string]any{"name": "www.example.com", "type": "A", "content": "198.51.100.4", "ttl": 3600,
			"comment": "Domain verification record", "tags": []string{"owner:dns-team"}})
		a := l.call(t, "GET", "/zones/"+l.zone.ID+"/dns_records?type=A&name.exact=www.example.com", l.token.Value, nil)
		expectSameShape(t, "openapi-dns-records-list-response.json", a, shapeRules{
			extraOK: map[string]string{
				"result[].settings":            whyNewFields,
				"result[].comment_modified_on": whyChangeStamp, "result[].tags_modified_on": whyChangeStamp,
				"result_info.total_pages": "the schema example omits it; cloudflare-go v0 pagination needs it",
			},
			values: []string{"success", "result[].type", "result[].content", "result[].comment", "result[].tags",
				"result[].ttl", "result[].proxied", "result[].proxiable", "result_info.count", "result_info.page"},
		})
	})

	t.Run("delete answers", func(t *testing.T) {
		c := l.create(t, map[string]any{"type": "A", "name": "gone.example.com", "content": "198.51.100.9"})
		id := c.result(t)["id"].(string)
		a := l.call(t, "DELETE", "/zones/"+l.zone.ID+"/dns_records/"+id, l.token.Value, nil)
		expectSameShape(t, "cfgo-v0-dns-record-delete-response.json", a, shapeRules{values: []string{"success"}})
		expectSameShape(t, "lego-dns-record-delete-response.json", a, shapeRules{extraOK: map[string]string{
			"success": "lego's fixture keeps only what lego reads", "errors": "idem", "messages": "idem"}})
		if got := a.result(t)["id"]; got != id {
			t.Errorf("delete result id = %v, want %s", got, id)
		}
	})
}

func TestFidelityPaginationMatchesCloudflareGoV0Pages(t *testing.T) {
	l := fidelityLab(t)
	for i, n := range []string{"example.com", "sub1.example.com", "sub2.example.com", "sub3.example.com", "sub4.example.com"} {
		l.create(t, map[string]any{"type": "A", "name": n, "content": "198.51.100." + string(rune('4'+i)),
			"ttl": 120, "proxied": i == 0 || i == 2, "tags": []string{"tag1", "tag2extended"}})
	}
	rules := shapeRules{
		absentOK: map[string]string{"result[].data": whyLegacyData},
		extraOK: map[string]string{"result[].settings": whyNewFields, "result[].comment": whyNewFields,
			"result[].tags_modified_on": whyChangeStamp},
		values: []string{"success", "result[].name", "result[].content", "result[].proxied", "result[].proxiable",
			// Not ttl: the fixture's proxied records have ttl 120, which the real
			// API never returns (proxied records are always 1, "automatic").
			"result[].tags", "result_info.page", "result_info.per_page", "result_info.count",
			"result_info.total_count", "result_info.total_pages"},
	}
	for page, fx := range map[string]string{"1": "cfgo-v0-dns-records-list-page1.json", "2": "cfgo-v0-dns-records-list-page2.json"} {
		a := l.call(t, "GET", "/zones/"+l.zone.ID+"/dns_records?type=A&per_page=3&page="+page, l.token.Value, nil)
		expectSameShape(t, fx, a, rules)
	}
	// Past the end: an empty page (cloudflare-go v7's auto-pager stops there).
	a := l.call(t, "GET", "/zones/"+l.zone.ID+"/dns_records?type=A&per_page=3&page=3", l.token.Value, nil)
	if res, _ := a.body["result"].([]any); a.status != 200 || res == nil || len(res) != 0 {
		t.Errorf("page past the end: %d %s, want 200 and result []", a.status, a.raw)
	}
}

func TestFidelityTokenVerifyMatchesRecordedAnswers(t *testing.T) {
	l := fidelityLab(t)
	a := l.call(t, "GET", "/user/tokens/verify", l.token.Value, nil)
	expectSameShape(t, "observed-user-tokens-verify-response.json", a, shapeRules{
		values: []string{"success", "result.status", "messages[].code", "messages[].message", "messages[].type"},
	})
	dated, err := l.srv.AddToken(Token{Permissions: []Permission{DNSRead},
		NotBefore: time.Now().Add(-time.Hour), ExpiresOn: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	a = l.call(t, "GET", "/user/tokens/verify", dated.Value, nil)
	expectSameShape(t, "cfgo-v0-user-tokens-verify-response.json", a, shapeRules{values: []string{"success", "result.status"}})
}

// The request bodies recorded from real clients and the API schema are all
// accepted, and what they set is what the answer shows.
func TestFidelityRecordedRequestBodiesAreAccepted(t *testing.T) {
	l := fidelityLab(t)
	for _, fx := range []string{
		"lego-dns-record-create-txt-request.json", "openapi-dns-record-create-a-request.json",
		"openapi-dns-record-create-aaaa-request.json", "openapi-dns-record-create-caa-request.json",
		"openapi-dns-record-create-txt-request.json",
	} {
		t.Run(fx, func(t *testing.T) {
			l := fidelityLab(t) // lego's and the schema's TXT bodies are identical records
			req := readFixture(t, fx).(map[string]any)
			res := l.create(t, readFixtureBytes(t, fx)).result(t)
			for k, v := range req {
				got := res[k]
				if k == "ttl" && req["proxied"] == true {
					v = 1.0 // proxied records are "automatic"
				}
				if !reflect.DeepEqual(got, v) {
					t.Errorf("%s: sent %v, answer shows %v", k, v, got)
				}
			}
		})
	}
	// The PATCH body of the schema applies to an existing record.
	id := l.create(t, map[string]any{"type": "A", "name": "www", "content": "198.51.100.4"}).result(t)["id"].(string)
	a := l.call(t, "PATCH", "/zones/"+l.zone.ID+"/dns_records/"+id, l.token.Value, readFixtureBytes(t, "openapi-dns-record-patch-request.json"))
	if a.status != 200 || a.result(t)["content"] != "198.51.100.5" || a.result(t)["comment"] != "edited" || a.result(t)["proxied"] != true {
		t.Errorf("PATCH with the schema body: %d %s", a.status, a.raw)
	}
}

// Error answers are deterministic: the whole body must equal the recorded
// one, with the recorded HTTP status.
func TestFidelityErrorAnswersEqualRecordedBodies(t *testing.T) {
	l := fidelityLab(t)
	zonesOnly, err := l.srv.AddToken(Token{Permissions: []Permission{DNSEdit}})
	if err != nil {
		t.Fatal(err)
	}
	l.create(t, map[string]any{"type": "A", "name": "dup.example.com", "content": "198.51.100.4"})
	records := "/zones/" + l.zone.ID + "/dns_records"
	cases := []struct {
		name    string
		fixture string
		status  int
		send    func() answer
	}{
		{"identical record", "observed-error-identical-record-81058.json", 400, func() answer {
			return l.call(t, "POST", records, l.token.Value, map[string]any{"type": "A", "name": "dup", "content": "198.51.100.4"})
		}},
		{"unknown record", "observed-error-record-not-found-81044.json", 404, func() answer {
			return l.call(t, "GET", records+"/372e67954025e0ba6aaa6d586b9e0b59", l.token.Value, nil)
		}},
		{"unknown zone", "observed-error-bad-zone-id-7003.json", 400, func() answer {
			return l.call(t, "GET", "/zones/023e105f4ecef8ad9ca31a8372d0c353/dns_records", l.token.Value, nil)
		}},
		{"no credentials", "observed-error-missing-auth-9106.json", 400, func() answer {
			return l.call(t, "GET", records, "", nil)
		}},
		{"zone listing without Zone:Read", "observed-error-unauthorized-9109.json", 403, func() answer {
			return l.call(t, "GET", "/zones?name=example.com", zonesOnly.Value, nil)
		}},
		{"malformed X-Auth-Key", "lego-error-invalid-request-headers.json", 400, func() answer {
			req, _ := http.NewRequest("GET", l.http.BaseURL+records, nil)
			req.Header.Set("X-Auth-Email", "foo@example.com")
			req.Header.Set("X-Auth-Key", "not-a-key")
			return doRaw(t, req)
		}},
		{"rate limited", "observed-error-rate-limited-429.json", 429, func() answer {
			l.srv.InjectRateLimit(RateLimit{Next: 1, RetryAfter: 2 * time.Second})
			a := l.call(t, "GET", records, l.token.Value, nil)
			if got := a.header.Get("Retry-After"); got != "2" {
				t.Errorf("Retry-After = %q, want 2", got)
			}
			return a
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.send()
			if a.status != c.status {
				t.Errorf("status %d, want %d", a.status, c.status)
			}
			if want := readFixture(t, c.fixture); !reflect.DeepEqual(asAny(t, a), want) {
				t.Errorf("body\n got %s\nwant %s", a.raw, strings.Join(strings.Fields(string(readFixtureBytes(t, c.fixture))), " "))
			}
		})
	}
}

func doRaw(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(a.raw, &a.body); err != nil {
		t.Fatalf("answer is not JSON: %s", a.raw)
	}
	return a
}

// The comparison must bite: a matching answer, mutated in each way a
// stand-in could drift from the real API, is reported every time.
func TestShapeComparisonDetectsMutatedAnswers(t *testing.T) {
	l := fidelityLab(t)
	a := l.create(t, readFixtureBytes(t, "openapi-dns-record-create-caa-request.json"))
	fixture := readFixture(t, "openapi-dns-record-caa-response.json")
	rules := shapeRules{
		extraOK: map[string]string{"result.comment_modified_on": whyChangeStamp, "result.tags_modified_on": whyChangeStamp},
		values:  []string{"success", "result.type", "result.content", "result.data", "result.proxiable"},
	}
	if d := diffShape(fixture, asAny(t, a), rules); len(d) != 0 {
		t.Fatalf("baseline differs: %v", d)
	}
	mutations := map[string]func(m map[string]any){
		"field removed":       func(m map[string]any) { delete(res(m), "ttl") },
		"field renamed":       func(m map[string]any) { r := res(m); r["proxy"] = r["proxied"]; delete(r, "proxied") },
		"number as string":    func(m map[string]any) { res(m)["ttl"] = "3600" },
		"nested type changed": func(m map[string]any) { res(m)["data"].(map[string]any)["flags"] = "0" },
		"enum value changed":  func(m map[string]any) { res(m)["type"] = "caa" },
		"extra field":         func(m map[string]any) { res(m)["zone_id"] = "x" },
		"derived content":     func(m map[string]any) { res(m)["content"] = "0 issue letsencrypt.org" },
		"null for a string":   func(m map[string]any) { res(m)["created_on"] = nil },
		"array for an object": func(m map[string]any) { res(m)["settings"] = []any{} },
		"envelope flag":       func(m map[string]any) { m["success"] = false },
		"envelope field gone": func(m map[string]any) { delete(m, "messages") },
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			m := asAny(t, a).(map[string]any) // a fresh copy each time
			mutate(m)
			if d := diffShape(fixture, m, rules); len(d) == 0 {
				t.Errorf("mutation %q not detected", name)
			}
		})
	}
}

func res(m map[string]any) map[string]any { return m["result"].(map[string]any) }
