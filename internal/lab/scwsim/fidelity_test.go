package scwsim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// cassette is a go-vcr v2 recording.
type cassette struct {
	Interactions []struct {
		ID      int `yaml:"id"`
		Request struct {
			Body    string              `yaml:"body"`
			Headers map[string][]string `yaml:"headers"`
			URL     string              `yaml:"url"`
			Method  string              `yaml:"method"`
		} `yaml:"request"`
		Response struct {
			Body    string              `yaml:"body"`
			Headers map[string][]string `yaml:"headers"`
			Code    int                 `yaml:"code"`
		} `yaml:"response"`
	} `yaml:"interactions"`
}

// fixturesDir finds shared/fixtures/scaleway next to the module root, or
// skips (fails under CI=true) when it is absent.
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
			t.Fatal("module root (go.mod) not found above the test directory")
		}
		dir = parent
	}
	fx := filepath.Join(dir, "..", "shared", "fixtures", "scaleway")
	_, err = os.Stat(fx)
	labPrereq(t, err == nil, "recorded Scaleway traffic not found at "+fx)
	return fx
}

func loadCassette(t *testing.T, path string) *cassette {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read cassette %s: %v", path, err)
	}
	var c cassette
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("parse cassette %s: %v", path, err)
	}
	return &c
}

// knownDrift are differences between older recordings (2025) and the 2026
// API the stand-in follows: per cassette file prefix, regexps matching
// diff lines that are expected there.
var knownDrift = map[string][]*regexp.Regexp{
	// 2025-11: actions answered real task ids, descriptions and a Location.
	"scaleway-cli__": {
		regexp.MustCompile(`^task\.description: value "fake task", recorded "server_`),
		regexp.MustCompile(`^header Location: .*recorded ".*/tasks/`),
		// Server types had no scratch storage fields yet.
		regexp.MustCompile(`^servers\.[A-Z0-9-]+\.scratch_storage_max_`),
		// Servers had no dns field yet.
		regexp.MustCompile(`^server\.dns: not in the recorded answer`),
	},
}

var projectRE = regexp.MustCompile(`"?project(?:_id)?"?[:=]"?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

// replayResult is what replaying one cassette found.
type replayResult struct {
	diffs    []string
	drift    []string
	compared int
	// waited is the virtual time the replay let pass for states to move.
	waited time.Duration
}

// replay runs a cassette against a fresh stand-in (fake machines, manual
// clock) and compares every answer with the recorded one.
//
// Ids in requests are rewritten with the ids the stand-in answered earlier
// in the same cassette. Time only moves when a GET needs it: every
// transient resource is frozen (a StuckFault on everything) except the ones
// the request names, and the clock advances in one-second steps until the
// stand-in's state-like values (state, state_detail, status, HTTP status)
// equal the recorded ones, so unrelated resources keep their recorded
// states whatever order real Scaleway finished them in.
func replay(t *testing.T, path string) replayResult {
	return replayThrough(t, path, nil)
}

// replayThrough is replay with the stand-in wrapped by wrap (nil: as is).
func replayThrough(t *testing.T, path string, wrap func(http.Handler) http.Handler) replayResult {
	t.Helper()
	c := loadCassette(t, path)
	projects := map[string]bool{}
	for _, it := range c.Interactions {
		for _, m := range projectRE.FindAllStringSubmatch(it.Request.Body+" "+it.Request.URL, -1) {
			projects[m[1]] = true
		}
	}
	cfg := Config{SecretKeys: []string{testSecretKey}, Clock: NewManualClock(time.Date(2026, 7, 30, 12, 0, 0, 0, time.UTC)),
		Timings: RealisticTimings(), Seed: 7, Machines: NewFakeMachines()}
	for p := range projects {
		cfg.Projects = append(cfg.Projects, Project{ID: p})
	}
	if len(cfg.Projects) == 0 {
		cfg.Projects = []Project{{ID: testProject}}
	}
	slices.SortFunc(cfg.Projects, func(a, b Project) int { return strings.Compare(a.ID, b.ID) })
	clock := cfg.Clock.(*ManualClock)
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = sim.Close(ctx)
	}()

	freeze := func(except []string) FaultConfig {
		var f FaultConfig
		for _, r := range []string{"server", "snapshot", "security_group"} {
			f.Stuck = append(f.Stuck, StuckFault{Resource: r, Except: except})
		}
		return f
	}
	sim.SetFaults(freeze(nil))

	cmp := newShapeComparer()
	var res replayResult
	var drift []*regexp.Regexp
	for prefix, d := range knownDrift {
		if strings.HasPrefix(filepath.Base(path), prefix) {
			drift = d
		}
	}
	rewrite := func(s string) string {
		return uuidAny.ReplaceAllStringFunc(s, func(id string) string {
			if v, found := cmp.ids[id]; found {
				return v
			}
			return id
		})
	}
	do := func(method, u, body string) (int, http.Header, []byte) {
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Auth-Token", testSecretKey)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}

	for _, it := range c.Interactions {
		rec := it.Response
		recURL, err := url.Parse(it.Request.URL)
		if err != nil {
			t.Fatal(err)
		}
		reqPath := rewrite(recURL.Path)
		u := srv.URL + reqPath
		if recURL.RawQuery != "" {
			u += "?" + rewrite(recURL.RawQuery)
		}
		body := rewrite(it.Request.Body)
		var recBody any
		if rec.Body != "" {
			if recBody, err = decodeJSON([]byte(rec.Body)); err != nil {
				t.Fatalf("#%d recorded body: %v", it.ID, err)
			}
		}
		code, hdr, got := do(it.Request.Method, u, body)
		if it.Request.Method == http.MethodGet && recBody != nil {
			want := stateSignature(rec.Code, recBody)
			sim.SetFaults(freeze(uuidAny.FindAllString(reqPath, -1)))
			for step := 0; step < 1800; step++ {
				gotBody, _ := decodeJSON(got)
				if stateSignature(code, gotBody) == want {
					break
				}
				clock.Advance(time.Second)
				res.waited += time.Second
				if err := sim.WaitIdle(t.Context()); err != nil {
					t.Fatal(err)
				}
				code, hdr, got = do(it.Request.Method, u, body)
			}
			sim.SetFaults(freeze(nil))
		}
		res.compared++
		label := fmt.Sprintf("#%d %s %s", it.ID, it.Request.Method, recURL.Path)
		before := len(cmp.diffs)
		compareExchange(cmp, reqPath, rec.Code, rec.Headers, recBody, code, hdr, got, sim)
		for _, d := range cmp.diffs[before:] {
			if slices.ContainsFunc(drift, func(re *regexp.Regexp) bool { return re.MatchString(d) }) {
				res.drift = append(res.drift, label+": "+d)
			} else {
				res.diffs = append(res.diffs, label+": "+d)
			}
		}
	}
	return res
}

// compareExchange compares one answer: status, headers, body.
func compareExchange(cmp *shapeComparer, path string, recCode int, recHdr map[string][]string, recBody any,
	code int, hdr http.Header, got []byte, sim *Sim) {
	products := strings.HasSuffix(path, "/products/servers")
	if code != recCode {
		cmp.addf("status", "%d, recorded %d (stand-in body %s)", code, recCode, brief(string(got)))
		return
	}
	first := func(h map[string][]string, k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if strings.HasPrefix(first(recHdr, "Content-Type"), "application/json") && !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		cmp.addf("header Content-Type", "%q, recorded application/json", hdr.Get("Content-Type"))
	}
	for _, k := range []string{"Location", "X-Total-Count", "Link"} {
		rv, av := first(recHdr, k), hdr.Get(k)
		switch {
		case (rv == "") != (av == ""):
			cmp.addf("header "+k, "%q, recorded %q", av, rv)
		case rv == "" || products && k != "Location":
			// The stand-in serves a subset of the real catalogue: its
			// counts and pages differ by design.
		case k == "Location":
			ru, _ := url.Parse(rv)
			au, _ := url.Parse(av)
			cmp.compareString("header Location", k, ru.Path, au.Path)
		default:
			cmp.compareString("header "+k, k, rv, av)
		}
	}
	if recBody == nil {
		if len(got) != 0 {
			cmp.addf("body", "%s, recorded an empty body", brief(string(got)))
		}
		return
	}
	gotBody, err := decodeJSON(got)
	if err != nil {
		cmp.addf("body", "not JSON: %v (%s)", err, brief(string(got)))
		return
	}
	if products {
		// Compare each recorded commercial type with the stand-in's
		// catalogue, whatever page either side put it on.
		gotBody = map[string]any{"servers": allProducts(sim)}
		cmp.dynamic = func(p string) bool { return p == "servers" }
		defer func() { cmp.dynamic = func(string) bool { return false } }()
	}
	cmp.compare("", "", recBody, gotBody)
}

func allProducts(sim *Sim) map[string]any {
	req := httptest.NewRequest(http.MethodGet, "/instance/v1/zones/fr-par-1/products/servers?per_page=100", nil)
	req.Header.Set("X-Auth-Token", testSecretKey)
	w := httptest.NewRecorder()
	sim.ServeHTTP(w, req)
	v, _ := decodeJSON(w.Body.Bytes())
	return v.(map[string]any)["servers"].(map[string]any)
}

func TestFidelityReplaysRecordedScalewayTraffic(t *testing.T) {
	dir := fixturesDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.cassette.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cassette in %s (%v)", dir, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".cassette.yaml")
		t.Run(name, func(t *testing.T) {
			res := replay(t, f)
			for _, d := range res.drift {
				t.Logf("known drift of an older recording: %s", d)
			}
			for _, d := range res.diffs {
				t.Error(d)
			}
			t.Logf("%d interactions compared, %d differences, %d known drifts, %v of virtual time waited for states",
				res.compared, len(res.diffs), len(res.drift), res.waited)
		})
	}
}
