package cfsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// skipOrFail skips a test whose prerequisite is missing, except under
// CI=true where the missing prerequisite is a failure.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing (CI=true): %s", reason)
	}
	t.Skip(reason)
}

// fixturesDir is ../shared/fixtures/cloudflare relative to the module root
// (the recorded third-party data is read in place, never copied).
func fixturesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root not found")
		}
		dir = parent
	}
	fx := filepath.Join(dir, "..", "shared", "fixtures", "cloudflare")
	if _, err := os.Stat(filepath.Join(fx, "SOURCES.md")); err != nil {
		skipOrFail(t, "Cloudflare fixtures not found at "+fx)
	}
	return fx
}

func readFixture(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return v
}

func readFixtureBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixturesDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lab is a started stand-in with one zone and an all-powerful token.
type lab struct {
	srv   *Server
	http  *HTTPServer
	zone  Zone
	token Token
}

func newLab(t *testing.T, opts Options, zone Zone) *lab {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if zone.Name == "" {
		zone.Name = "example.test"
	}
	z, err := s.AddZone(zone)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.AddToken(Token{Permissions: []Permission{ZoneRead, DNSEdit}})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := s.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hs.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &lab{srv: s, http: hs, zone: z, token: tok}
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// call sends a request; token "" sends no Authorization header. A non-nil
// body is sent as JSON (strings and []byte verbatim).
func (l *lab) call(t *testing.T, method, path, token string, body any) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, l.http.BaseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
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
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, raw)
	}
	return a
}

func (a answer) result(t *testing.T) map[string]any {
	t.Helper()
	r, ok := a.body["result"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no object result: %s", a.raw)
	}
	return r
}

// codes returns the top-level error codes of an answer.
func (a answer) codes() []int {
	var out []int
	errs, _ := a.body["errors"].([]any)
	for _, e := range errs {
		if m, ok := e.(map[string]any); ok {
			if c, ok := m["code"].(float64); ok {
				out = append(out, int(c))
			}
		}
	}
	return out
}
