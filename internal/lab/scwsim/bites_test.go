package scwsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// standInAnswer sends one request to a fresh stand-in and decodes the answer.
func standInAnswer(t *testing.T, sim *Sim, method, path, body string) any {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("X-Auth-Token", testSecretKey)
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	v, err := decodeJSON(b)
	if err != nil {
		t.Fatalf("%s %s: %v (%s)", method, path, err, b)
	}
	return v
}

// clone deep-copies a decoded JSON value.
func clone(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestShapeComparerReportsEachMutationOfAStandInAnswer(t *testing.T) {
	c := loadCassette(t, filepath.Join(fixturesDir(t),
		"terraform-provider-scaleway__internal__services__instance__testdata__ip-routed-ipv6.cassette.yaml"))
	recorded, err := decodeJSON([]byte(c.Interactions[0].Response.Body))
	if err != nil {
		t.Fatal(err)
	}
	project := "105bdce1-64c0-48ab-899d-868455867ecf"
	sim, err := New(Config{SecretKeys: []string{testSecretKey}, Projects: []Project{{ID: project}}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	answer := standInAnswer(t, sim, http.MethodPost, "/instance/v1/zones/fr-par-1/ips",
		`{"project":"`+project+`","type":"routed_ipv6"}`)

	baseline := newShapeComparer()
	baseline.compare("", "", recorded, answer)
	if len(baseline.diffs) != 0 {
		t.Fatalf("the unmodified stand-in answer differs from the recording: %v", baseline.diffs)
	}

	ip := func(v any) map[string]any { return v.(map[string]any)["ip"].(map[string]any) }
	tests := []struct {
		name   string
		mutate func(ip map[string]any)
		want   string // substring of one reported difference
	}{
		{"renamed field", func(m map[string]any) { m["prefixes"] = m["prefix"]; delete(m, "prefix") }, "ip.prefix: missing"},
		{"extra field", func(m map[string]any) { m["name"] = "lghs" }, "ip.name: not in the recorded answer"},
		{"changed type", func(m map[string]any) { m["tags"] = "" }, "ip.tags: type string, recorded array"},
		{"null became a value", func(m map[string]any) { m["address"] = "2001:db8::1" }, "ip.address: type string, recorded null"},
		{"changed enum", func(m map[string]any) { m["state"] = "attached" }, `ip.state: value "attached", recorded "detached"`},
		{"changed ip type", func(m map[string]any) { m["type"] = "routed_ipv4" }, `ip.type: value "routed_ipv4"`},
		{"id not consistent", func(m map[string]any) { m["ipam_id"] = "00000000-0000-4000-8000-000000000001" }, "ip.ipam_id: id"},
		{"not an id", func(m map[string]any) { m["id"] = "ip-1" }, `ip.id: value "ip-1", recorded the id`},
		{"bool for string", func(m map[string]any) { m["zone"] = true }, "ip.zone: type boolean, recorded string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mutated := clone(t, answer)
			tt.mutate(ip(mutated))
			cmp := newShapeComparer()
			cmp.compare("", "", recorded, mutated)
			found := false
			for _, d := range cmp.diffs {
				found = found || strings.Contains(d, tt.want)
			}
			if !found {
				t.Errorf("mutation not reported: want a difference containing %q, got %v", tt.want, cmp.diffs)
			}
		})
	}
}

func TestShapeComparerChecksTimestampFormatsAndNumbers(t *testing.T) {
	rec, _ := decodeJSON([]byte(`{"created_at":"2026-07-30T12:55:26.162018Z","creation_date":"2026-07-30T12:53:13.860322+00:00","size":15000000000}`))
	for act, want := range map[string]string{
		`{"created_at":"2026-07-30T12:55:26.162018+00:00","creation_date":"2026-07-30T12:53:13.860322+00:00","size":15000000000}`: "created_at: timestamp",
		`{"created_at":"2026-07-30T12:55:26.162018Z","creation_date":"2026-07-30T12:53:13Z","size":15000000000}`:                  "creation_date: timestamp",
		`{"created_at":"2026-07-30T12:55:26.162018Z","creation_date":"2026-07-30T12:53:13.860322+00:00","size":1.5e10}`:           "",
		`{"created_at":"2026-07-30T12:55:26.162018Z","creation_date":"2026-07-30T12:53:13.860322+00:00","size":10000000000}`:      "size: value 10000000000, recorded 15000000000",
	} {
		a, _ := decodeJSON([]byte(act))
		cmp := newShapeComparer()
		cmp.compare("", "", rec, a)
		switch {
		case want == "" && len(cmp.diffs) != 0:
			t.Errorf("%s: differences %v, want none (same number)", act, cmp.diffs)
		case want != "" && (len(cmp.diffs) != 1 || !strings.Contains(cmp.diffs[0], want)):
			t.Errorf("%s: differences %v, want one containing %q", act, cmp.diffs, want)
		}
	}
}

func TestFidelityReplayReportsAStandInThatRenamesAField(t *testing.T) {
	path := filepath.Join(fixturesDir(t), "terraform-provider-scaleway__internal__services__instance__testdata__action-server-backup.cassette.yaml")
	renameHostname := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := strings.ReplaceAll(rec.Body.String(), `"hostname":`, `"host_name":`)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			_, _ = io.WriteString(w, body)
		})
	}
	res := replayThrough(t, path, renameHostname)
	reported := 0
	for _, d := range res.diffs {
		if strings.Contains(d, "server.hostname: missing") {
			reported++
		}
	}
	if reported == 0 {
		t.Fatalf("a stand-in renaming hostname went unnoticed; differences: %v", res.diffs)
	}
}
