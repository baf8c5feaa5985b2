package cfsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRecordValidationFollowsTheRealAPI(t *testing.T) {
	free := newLab(t, Options{}, Zone{Name: "free.test"})
	ent := newLab(t, Options{}, Zone{Name: "ent.test", Plan: PlanEnterprise})
	free.create(t, map[string]any{"type": "A", "name": "host", "content": "192.0.2.1"})
	free.create(t, map[string]any{"type": "CNAME", "name": "alias", "content": "host.free.test"})
	cases := []struct {
		name   string
		l      *lab
		body   any
		status int
		codes  string // top-level codes, then chain codes after "/"
	}{
		{"A with an IPv6 address", free, map[string]any{"type": "A", "name": "x", "content": "2001:db8::1"}, 400, "9005"},
		{"A with a name", free, map[string]any{"type": "A", "name": "x", "content": "host.free.test"}, 400, "9005"},
		{"AAAA with an IPv4 address", free, map[string]any{"type": "AAAA", "name": "x", "content": "192.0.2.1"}, 400, "9006"},
		{"TTL below 60 on free", free, map[string]any{"type": "A", "name": "x", "content": "192.0.2.1", "ttl": 30}, 400, "1004/9021"},
		{"TTL above a day", free, map[string]any{"type": "A", "name": "x", "content": "192.0.2.1", "ttl": 86401}, 400, "1004/9021"},
		{"TTL as a string", free, map[string]any{"type": "A", "name": "x", "content": "192.0.2.1", "ttl": "300"}, 400, "9022"},
		{"TTL 30 on enterprise", ent, map[string]any{"type": "A", "name": "x", "content": "192.0.2.1", "ttl": 30}, 200, ""},
		{"TTL 2 (neither auto nor ≥ 30)", ent, map[string]any{"type": "A", "name": "y", "content": "192.0.2.1", "ttl": 2}, 400, "1004/9021"},
		{"proxied TXT", free, map[string]any{"type": "TXT", "name": "x", "content": `"v"`, "proxied": true}, 400, "1004/9004"},
		{"proxied to a private address", free, map[string]any{"type": "A", "name": "x", "content": "10.0.0.1", "proxied": true}, 400, "9003"},
		{"tags on a free zone", free, map[string]any{"type": "A", "name": "x", "content": "192.0.2.1", "tags": []string{"a:b"}}, 400, "1004/9300"},
		{"CNAME over an A", free, map[string]any{"type": "CNAME", "name": "host", "content": "elsewhere.test"}, 400, "81053"},
		{"TXT next to a CNAME", free, map[string]any{"type": "TXT", "name": "alias", "content": `"v"`}, 400, "81054"},
		{"CNAME to itself", free, map[string]any{"type": "CNAME", "name": "self", "content": "self.free.test"}, 400, "1004/9007"},
		{"CAA with an unknown tag", free, map[string]any{"type": "CAA", "name": "@", "data": map[string]any{"flags": 0, "tag": "issuer", "value": "x"}}, 400, "1004/9009"},
		{"CAA flags out of range", free, map[string]any{"type": "CAA", "name": "@", "data": map[string]any{"flags": 256, "tag": "issue", "value": "x"}}, 400, "1004/9009"},
		{"CAA without data", free, map[string]any{"type": "CAA", "name": "@", "content": `0 issue "x"`}, 400, "9207"},
		{"missing type", free, map[string]any{"name": "x", "content": "192.0.2.1"}, 400, "9207"},
		{"bad name", free, map[string]any{"type": "A", "name": "a..b", "content": "192.0.2.1"}, 400, "1004/9000"},
		{"not JSON", free, "{not json", 400, "9207"},
		{"type the stand-in does not model", free, map[string]any{"type": "SRV", "name": "_x._tcp", "content": "1 1 1 x"}, 400, "1004/9100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.l.call(t, "POST", "/zones/"+c.l.zone.ID+"/dns_records", c.l.token.Value, c.body)
			if a.status != c.status || chainCodes(a) != c.codes {
				t.Errorf("%d %s, want %d codes %q", a.status, a.raw, c.status, c.codes)
			}
		})
	}
}

// chainCodes renders "top[,top]/chain[,chain]".
func chainCodes(a answer) string {
	var top, chain []string
	errs, _ := a.body["errors"].([]any)
	for _, e := range errs {
		m := e.(map[string]any)
		top = append(top, fmt.Sprint(m["code"]))
		ch, _ := m["error_chain"].([]any)
		for _, c := range ch {
			chain = append(chain, fmt.Sprint(c.(map[string]any)["code"]))
		}
	}
	s := strings.Join(top, ",")
	if len(chain) > 0 {
		s += "/" + strings.Join(chain, ",")
	}
	return s
}

func TestRecordNamesAreNormalisedIntoTheZone(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "example.test"})
	cases := map[string]string{
		"@": "example.test", "www": "www.example.test", "WWW2.Example.Test.": "www2.example.test",
		"_acme-challenge.chat": "_acme-challenge.chat.example.test", "mail.other.test": "mail.other.test.example.test",
		"*.wild": "*.wild.example.test", "bücher": "xn--bcher-kva.example.test",
	}
	for in, want := range cases {
		a := l.create(t, map[string]any{"type": "TXT", "name": in, "content": `"x"`})
		if got := a.result(t)["name"]; got != want {
			t.Errorf("name %q stored as %v, want %s", in, got, want)
		}
	}
}

func TestRecordContentIsStoredLikeTheAPI(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "example.test", Plan: PlanPro})
	cases := []struct {
		body      map[string]any
		content   string
		proxiable bool
	}{
		{map[string]any{"type": "AAAA", "name": "v6", "content": "2001:0db8:0000::0001"}, "2001:db8::1", true},
		{map[string]any{"type": "A", "name": "lan", "content": "10.1.2.3"}, "10.1.2.3", false},
		{map[string]any{"type": "CNAME", "name": "c", "content": "Target.Example.Net."}, "target.example.net", true},
		{map[string]any{"type": "TXT", "name": "t", "content": `"quoted"`}, `"quoted"`, false},
		{map[string]any{"type": "TXT", "name": "u", "content": "unquoted as sent"}, "unquoted as sent", false},
		{map[string]any{"type": "CAA", "name": "@", "data": map[string]any{"flags": 128, "tag": "iodef", "value": "mailto:sec@example.test"}}, `128 iodef "mailto:sec@example.test"`, false},
		{map[string]any{"type": "MX", "name": "@", "content": "mail.example.test", "priority": 10}, "mail.example.test", false},
	}
	for _, c := range cases {
		r := l.create(t, c.body).result(t)
		if r["content"] != c.content || r["proxiable"] != c.proxiable {
			t.Errorf("%v: content %v proxiable %v, want %q %v", c.body, r["content"], r["proxiable"], c.content, c.proxiable)
		}
	}
}

func TestPatchMergesPutOverwrites(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "example.test", Plan: PlanPro})
	id := l.create(t, map[string]any{"type": "A", "name": "www", "content": "192.0.2.1", "ttl": 300,
		"comment": "keep me", "tags": []string{"owner:lab"}}).result(t)["id"].(string)
	path := "/zones/" + l.zone.ID + "/dns_records/" + id

	a := l.call(t, "PATCH", path, l.token.Value, map[string]any{"content": "192.0.2.2"})
	r := a.result(t)
	if r["content"] != "192.0.2.2" || r["comment"] != "keep me" || r["ttl"] != 300.0 || fmt.Sprint(r["tags"]) != "[owner:lab]" {
		t.Errorf("PATCH: %s", a.raw)
	}
	a = l.call(t, "PUT", path, l.token.Value, map[string]any{"type": "A", "name": "www", "content": "192.0.2.3"})
	r = a.result(t)
	if r["content"] != "192.0.2.3" || r["comment"] != nil || r["ttl"] != 1.0 || fmt.Sprint(r["tags"]) != "[]" || r["id"] != id {
		t.Errorf("PUT: %s", a.raw)
	}
	if _, ok := r["comment_modified_on"]; ok {
		t.Errorf("PUT cleared the comment but comment_modified_on remains: %s", a.raw)
	}
	a = l.call(t, "PUT", path, l.token.Value, map[string]any{"content": "192.0.2.4"})
	if a.status != 400 || chainCodes(a) != "9207" {
		t.Errorf("PUT without type and name: %d %s", a.status, a.raw)
	}
	a = l.call(t, "PATCH", path, l.token.Value, map[string]any{"comment": nil})
	if a.status != 200 {
		t.Errorf("PATCH comment null: %d %s", a.status, a.raw)
	}
	// A PATCH into a duplicate of another record is refused.
	l.create(t, map[string]any{"type": "A", "name": "www", "content": "192.0.2.9"})
	a = l.call(t, "PATCH", path, l.token.Value, map[string]any{"content": "192.0.2.9"})
	if a.status != 400 || chainCodes(a) != "81058" {
		t.Errorf("PATCH into a duplicate: %d %s", a.status, a.raw)
	}
}

func TestRequestsAreRefusedLikeTheRealAPI(t *testing.T) {
	l := newLab(t, Options{}, Zone{})
	base := "/zones/" + l.zone.ID + "/dns_records"
	req := func(method, path, ctype, auth, body string) answer {
		r, _ := http.NewRequest(method, l.http.BaseURL+path, strings.NewReader(body))
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return doRaw(t, r)
	}
	bearer := "Bearer " + l.token.Value
	cases := []struct {
		name   string
		a      answer
		status int
		codes  string
	}{
		{"form content type", req("POST", base, "application/x-www-form-urlencoded", bearer, `{}`), 400, "6003/6105"},
		{"basic auth", req("GET", base, "", "Basic dXNlcjpwYXNz", ""), 400, "6003/6111"},
		{"unknown bearer token", req("GET", base, "", "Bearer no-such-token", ""), 403, "9109"},
		{"unknown path", req("GET", "/zones/"+l.zone.ID+"/nope", "", bearer, ""), 400, "7000"},
		{"malformed zone id", req("GET", "/zones/example.test/dns_records", "", bearer, ""), 400, "7003,7000"},
		{"malformed record id", req("GET", base+"/42", "", bearer, ""), 400, "7003,7000"},
		{"method not allowed", req("DELETE", base, "", bearer, ""), 405, "7001"},
		{"outside /client/v4", req("GET", "/../zones", "", bearer, ""), 400, "7000"},
	}
	for _, c := range cases {
		if c.a.status != c.status || chainCodes(c.a) != c.codes {
			t.Errorf("%s: %d %s, want %d %s", c.name, c.a.status, c.a.raw, c.status, c.codes)
		}
	}
}

func TestListFiltersFollowTheDocumentedOperators(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "example.test", Plan: PlanPro})
	for _, b := range []map[string]any{
		{"type": "A", "name": "www", "content": "192.0.2.1", "comment": "Web front", "tags": []string{"owner:web", "env:prod"}},
		{"type": "A", "name": "api", "content": "192.0.2.2", "proxied": true, "tags": []string{"owner:api"}},
		{"type": "AAAA", "name": "www", "content": "2001:db8::1"},
		{"type": "TXT", "name": "www", "content": `"hello world"`, "comment": "greeting"},
		{"type": "CNAME", "name": "docs", "content": "www.example.test"},
	} {
		l.create(t, b)
	}
	cases := map[string]string{
		"type=A":                                    "A api, A www",
		"name=www.example.test":                     "A www, AAAA www, TXT www",
		"name.exact=WWW.example.test.":              "A www, AAAA www, TXT www",
		"name.startswith=ap":                        "A api",
		"name.endswith=s.example.test":              "CNAME docs",
		"name.contains=w":                           "A www, AAAA www, TXT www",
		"name=@":                                    "",
		"content=192.0.2.2":                         "A api",
		"content.contains=HELLO":                    "TXT www",
		"proxied=true":                              "A api",
		"comment=web%20front":                       "A www",
		"comment.present=1":                         "A www, TXT www",
		"comment.absent=1&type=A":                   "A api",
		"comment.startswith=gr":                     "TXT www",
		"tag=owner:web":                             "A www",
		"tag.present=owner":                         "A api, A www",
		"tag.absent=owner&type=A":                   "",
		"tag.exact=owner:API":                       "A api",
		"tag.contains=owner:p":                      "A api",
		"tag=owner:web&tag=owner:api&tag_match=any": "A api, A www",
		"tag=owner:web&tag=owner:api":               "",
		"type=CNAME&content=192.0.2.2&match=any":    "A api, CNAME docs",
		"type=A&name=api.example.test":              "A api",
		"search=greet":                              "TXT www",
		"type=A&order=content&direction=desc":       "A api, A www",
	}
	for q, want := range cases {
		a := l.call(t, "GET", "/zones/"+l.zone.ID+"/dns_records?"+q, l.token.Value, nil)
		var got []string
		for _, r := range a.body["result"].([]any) {
			m := r.(map[string]any)
			got = append(got, m["type"].(string)+" "+strings.TrimSuffix(m["name"].(string), ".example.test"))
		}
		if !strings.Contains(q, "order=") {
			slices.Sort(got)
		}
		if strings.Join(got, ", ") != want {
			t.Errorf("?%s: got %q, want %q", q, strings.Join(got, ", "), want)
		}
	}
}

func TestZoneListFiltersAndPaginates(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "a.test"})
	for _, n := range []string{"b.test", "c.example", "d.test", "e.test", "f.test", "g.test"} {
		if _, err := l.srv.AddZone(Zone{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(q string) (string, any) {
		a := l.call(t, "GET", "/zones?"+q, l.token.Value, nil)
		var out []string
		for _, z := range a.body["result"].([]any) {
			out = append(out, z.(map[string]any)["name"].(string))
		}
		return strings.Join(out, ","), a.body["result_info"]
	}
	for q, want := range map[string]string{
		"name=c.example":                         "c.example",
		"name=C.Example.":                        "c.example",
		"name=ends_with:.test&per_page=5":        "a.test,b.test,d.test,e.test,f.test",
		"name=ends_with:.test&per_page=5&page=2": "g.test",
		"name=contains:xam":                      "c.example",
		"name=starts_with:z":                     "",
		"direction=desc&per_page=5":              "g.test,f.test,e.test,d.test,c.example",
		"name=not_equal:a.test&per_page=50":      "b.test,c.example,d.test,e.test,f.test,g.test",
	} {
		if got, info := names(q); got != want {
			t.Errorf("?%s: %q (%v), want %q", q, got, info, want)
		}
	}
	_, info := names("per_page=5&page=2")
	if fmt.Sprint(info) != "map[count:2 page:2 per_page:5 total_count:7 total_pages:2]" {
		t.Errorf("result_info %v", info)
	}
	a := l.call(t, "GET", "/zones/"+l.zone.ID, l.token.Value, nil)
	if a.status != 200 || a.result(t)["name"] != "a.test" {
		t.Errorf("GET /zones/{id}: %d %s", a.status, a.raw)
	}
}

func TestBatchIsAllOrNothing(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "example.test"})
	keep := l.create(t, map[string]any{"type": "A", "name": "keep", "content": "192.0.2.1"}).result(t)["id"].(string)
	drop := l.create(t, map[string]any{"type": "A", "name": "drop", "content": "192.0.2.2"}).result(t)["id"].(string)
	path := "/zones/" + l.zone.ID + "/dns_records/batch"

	bad := l.call(t, "POST", path, l.token.Value, map[string]any{
		"deletes": []any{map[string]any{"id": drop}},
		"posts":   []any{map[string]any{"type": "A", "name": "new", "content": "not-an-ip"}},
	})
	if bad.status != 400 || chainCodes(bad) != "9005" || len(mustRecords(t, l.srv, l.zone.ID)) != 2 {
		t.Errorf("failing batch: %d %s, records %d (want both kept)", bad.status, bad.raw, len(mustRecords(t, l.srv, l.zone.ID)))
	}
	var changes []Change
	cancel := l.srv.Subscribe(func(c Change) { changes = append(changes, c) })
	defer cancel()
	ok := l.call(t, "POST", path, l.token.Value, map[string]any{
		"deletes": []any{map[string]any{"id": drop}},
		"patches": []any{map[string]any{"id": keep, "content": "192.0.2.10"}},
		"posts":   []any{map[string]any{"type": "A", "name": "new", "content": "192.0.2.3"}},
	})
	res := ok.result(t)
	if ok.status != 200 || len(res["deletes"].([]any)) != 1 || len(res["patches"].([]any)) != 1 || len(res["posts"].([]any)) != 1 {
		t.Fatalf("batch: %d %s", ok.status, ok.raw)
	}
	if len(changes) != 3 || changes[0].Serial != changes[2].Serial {
		t.Errorf("batch changes %+v, want 3 sharing one serial", changes)
	}
}

func TestSubscribersSeeEveryChangeInOrder(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "example.test"})
	var got []string
	cancel := l.srv.Subscribe(func(c Change) {
		name := ""
		if c.Record != nil {
			name = c.Record.Name + " " + c.Record.Content
		} else {
			name = c.Previous.Name
		}
		got = append(got, fmt.Sprintf("%s %s", c.Kind, name))
		// Subscribers may read the state (and must see the change).
		if _, err := l.srv.Records(c.ZoneID); err != nil {
			t.Error(err)
		}
	})
	id := l.create(t, map[string]any{"type": "A", "name": "a", "content": "192.0.2.1"}).result(t)["id"].(string)
	l.call(t, "PATCH", "/zones/"+l.zone.ID+"/dns_records/"+id, l.token.Value, map[string]any{"content": "192.0.2.2"})
	l.call(t, "DELETE", "/zones/"+l.zone.ID+"/dns_records/"+id, l.token.Value, nil)
	cancel()
	l.create(t, map[string]any{"type": "A", "name": "b", "content": "192.0.2.3"})
	want := "created a.example.test 192.0.2.1|updated a.example.test 192.0.2.2|deleted a.example.test"
	if strings.Join(got, "|") != want {
		t.Errorf("changes %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestStatePersistsAcrossRestarts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cf.json")
	l := newLab(t, Options{StateFile: file}, Zone{Name: "example.test"})
	l.create(t, map[string]any{"type": "TXT", "name": "persist", "content": `"me"`})
	snap := l.srv.Snapshot()

	s2, err := New(Options{StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	snap2 := s2.Snapshot()
	j1, _ := json.Marshal(snap)
	j2, _ := json.Marshal(snap2)
	if string(j1) != string(j2) {
		t.Errorf("state after restart differs:\n%s\n%s", j1, j2)
	}
	hs, err := s2.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	l2 := &lab{srv: s2, http: hs, zone: l.zone, token: l.token}
	a := l2.call(t, "GET", "/zones/"+l.zone.ID+"/dns_records?name=persist.example.test", l.token.Value, nil)
	if a.status != 200 || len(a.body["result"].([]any)) != 1 {
		t.Errorf("token/record after restart: %d %s", a.status, a.raw)
	}
}

func TestQuotaAnswers429WithRateLimitHeaders(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := newLab(t, Options{Quota: 3, QuotaWindow: time.Minute, Now: clock}, Zone{})
	path := "/zones/" + l.zone.ID + "/dns_records"
	for i := range 3 {
		a := l.call(t, "GET", path, l.token.Value, nil)
		if a.status != 200 || a.header.Get("Ratelimit") != fmt.Sprintf(`"default";r=%d;t=60`, 2-i) ||
			a.header.Get("Ratelimit-Policy") != `"default";q=3;w=60` {
			t.Errorf("request %d: %d Ratelimit=%q Policy=%q", i, a.status, a.header.Get("Ratelimit"), a.header.Get("Ratelimit-Policy"))
		}
	}
	now = now.Add(20 * time.Second)
	a := l.call(t, "GET", path, l.token.Value, nil)
	if a.status != 429 || a.header.Get("Retry-After") != "40" || chainCodes(a) != "971" {
		t.Errorf("over quota: %d Retry-After=%q %s", a.status, a.header.Get("Retry-After"), a.raw)
	}
	now = now.Add(41 * time.Second)
	if a := l.call(t, "GET", path, l.token.Value, nil); a.status != 200 {
		t.Errorf("after the window: %d", a.status)
	}
}

func TestCountersTellReadsFromWrites(t *testing.T) {
	l := newLab(t, Options{}, Zone{})
	l.srv.ResetRequests()
	l.create(t, map[string]any{"type": "A", "name": "a", "content": "192.0.2.1"})
	l.call(t, "POST", "/zones/"+l.zone.ID+"/dns_records", l.token.Value, map[string]any{"type": "A", "name": "a", "content": "192.0.2.1"})
	l.call(t, "GET", "/zones/"+l.zone.ID+"/dns_records", l.token.Value, nil)
	want := Counters{Requests: 3, Reads: 1, Writes: 2, WritesApplied: 1, Failed: 1}
	if got := l.srv.Counters(); got != want {
		t.Errorf("counters %+v, want %+v", got, want)
	}
	reqs := l.srv.Requests()
	if len(reqs) != 3 || !reqs[1].Write || fmt.Sprint(reqs[1].Codes) != "[81058]" || reqs[1].TokenID != l.token.ID {
		t.Errorf("log %+v", reqs)
	}
}

func TestHTTPServerStopsWithItsContext(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs, err := s.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(3 * time.Second)
	for {
		ln, err := net.Listen("tcp", hs.Addr)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still listening after cancel", hs.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := hs.Close(); err != nil {
		t.Errorf("close after cancel: %v", err)
	}
}

func TestAdminAPIRefusesBadConfiguration(t *testing.T) {
	s, _ := New(Options{})
	if _, err := s.AddZone(Zone{Name: "bad..name"}); err == nil {
		t.Error("bad zone name accepted")
	}
	z, err := s.AddZone(Zone{Name: "Example.TEST."})
	if err != nil || z.Name != "example.test" || z.Plan != PlanFree || len(z.ID) != 32 {
		t.Fatalf("zone defaults: %+v %v", z, err)
	}
	if _, err := s.AddZone(Zone{Name: "example.test"}); err == nil {
		t.Error("duplicate zone accepted")
	}
	if _, err := s.AddToken(Token{ZoneIDs: []string{"0123456789abcdef0123456789abcdef"}}); err == nil {
		t.Error("token for an unknown zone accepted")
	}
	if _, err := s.AddToken(Token{Value: "has space"}); err == nil {
		t.Error("token value with a space accepted")
	}
	if _, err := s.AddRecord(z.ID, Record{Type: "A", Name: "x", Content: "nope"}); err == nil ||
		!strings.Contains(err.Error(), "9005") {
		t.Errorf("AddRecord validation: %v", err)
	}
	if _, err := s.AddRecord(z.ID, Record{Type: "A", Name: "x", Content: "192.0.2.1"}); err != nil {
		t.Errorf("AddRecord: %v", err)
	}
	if tok, err := s.AddToken(Token{}); err != nil || len(tok.Value) != 40 {
		t.Errorf("generated token %+v %v", tok, err)
	}
}

// TestZonePermissionsAreTheToken: a zone's permissions field lists what
// the requesting token may do there, which is how lghsctl tells a
// read-only token at plan time.
func TestZonePermissionsAreTheToken(t *testing.T) {
	l := newLab(t, Options{}, Zone{Name: "a.test"})
	ro, err := l.srv.AddToken(Token{Permissions: []Permission{ZoneRead, DNSRead}})
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{
		l.token.Value: "[#dns_records:edit #dns_records:read #zone:read]",
		ro.Value:      "[#dns_records:read #zone:read]",
	} {
		a := l.call(t, "GET", "/zones/"+l.zone.ID, tok, nil)
		if got := fmt.Sprint(a.result(t)["permissions"]); got != want {
			t.Errorf("permissions %s, want %s", got, want)
		}
	}
}
