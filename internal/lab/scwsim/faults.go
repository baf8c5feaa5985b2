package scwsim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"
)

// FaultConfig is the misbehaviour the stand-in injects; change it at run
// time with SetFaults or PUT /_scwsim/faults (same JSON).
type FaultConfig struct {
	// RateLimit answers the next Count matching calls with Scaleway's 429:
	// empty body, no Content-Type, X-Envoy-Ratelimited: true. Count goes
	// down as the burst is served.
	RateLimit RateLimitFault `json:"rate_limit"`
	// Errors answers a Fraction (0..1) of matching calls with a 5xx JSON
	// error. Draws come from a generator seeded with Seed (or Config.Seed when
	// 0) when the faults are set, so a given call sequence fails the same way
	// every run. With AfterEffect the call is executed first and its answer
	// replaced by the error (the create happened, the client does not know).
	Errors ErrorFault `json:"errors"`
	// Latency delays every matching call.
	Latency LatencyFault `json:"latency"`
	// Stuck keeps matching resources in a transient state forever.
	Stuck []StuckFault `json:"stuck"`
}

// Match selects calls; the zero Match selects every call.
type Match struct {
	// Method, when set, is the HTTP method (GET, POST, ...).
	Method string `json:"method,omitempty"`
	// PathContains, when set, must be a substring of the URL path.
	PathContains string `json:"path_contains,omitempty"`
	// WritesOnly selects POST, PUT, PATCH and DELETE calls.
	WritesOnly bool `json:"writes_only,omitempty"`
}

// RateLimitFault is a burst of 429 answers.
type RateLimitFault struct {
	Count int   `json:"count"`
	Match Match `json:"match"`
}

// ErrorFault is a fraction of 5xx answers.
type ErrorFault struct {
	Fraction    float64 `json:"fraction"`
	Status      int     `json:"status,omitempty"` // default 500
	Seed        uint64  `json:"seed,omitempty"`
	AfterEffect bool    `json:"after_effect,omitempty"`
	Match       Match   `json:"match"`
}

// LatencyFault delays calls.
type LatencyFault struct {
	Delay Duration `json:"delay"`
	Match Match    `json:"match"`
}

// StuckFault freezes matching resources in their transient state: their
// timers stop (a server stays "starting", a snapshot "snapshotting") and
// resume where they were once the fault is lifted. Resource is "server"
// (states "starting", "stopping"), "snapshot" (Instance "snapshotting",
// Block "creating") or "security_group" ("syncing"). Name matches the
// resource's id or name, empty matches all; State empty matches every
// transient state; Except lists ids or names left alone. A server is also
// known by its volume ids, a snapshot by its volume's id, so freezing or
// sparing a volume affects the server or backup behind its state.
type StuckFault struct {
	Resource string   `json:"resource"`
	Name     string   `json:"name,omitempty"`
	State    string   `json:"state,omitempty"`
	Except   []string `json:"except,omitempty"`
}

// Duration is a time.Duration written as "250ms" in JSON.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "250ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("parse duration %q: %w", s, err)
		}
		d.Duration = v
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("parse duration %s: %w", b, err)
	}
	d.Duration = time.Duration(n)
	return nil
}

func (m Match) matches(r *http.Request) bool {
	if m.Method != "" && !strings.EqualFold(m.Method, r.Method) {
		return false
	}
	if m.PathContains != "" && !strings.Contains(r.URL.Path, m.PathContains) {
		return false
	}
	return !m.WritesOnly || isWrite(r.Method)
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// SetFaults replaces the injected faults. Transitions due under the old
// faults happen first, so frozen timers resume exactly where they stopped.
func (s *Sim) SetFaults(f FaultConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = f
	s.faults.Stuck = slices.Clone(f.Stuck)
	seed := f.Errors.Seed
	if seed == 0 {
		seed = s.cfg.Seed
	}
	s.frng = rand.New(rand.NewPCG(seed, 0xfa17))
}

// Faults returns the faults in force (RateLimit.Count is what is left).
func (s *Sim) Faults() FaultConfig {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.faults
	f.Stuck = slices.Clone(s.faults.Stuck)
	return f
}

// stuck reports whether a fault freezes the resource known by names (id,
// name, related ids) in state.
func (s *Sim) stuck(resource string, names []string, state string) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	for _, f := range s.faults.Stuck {
		if f.Resource != resource || (f.State != "" && f.State != state) ||
			(f.Name != "" && !slices.Contains(names, f.Name)) ||
			slices.ContainsFunc(f.Except, func(e string) bool { return slices.Contains(names, e) }) {
			continue
		}
		return true
	}
	return false
}

// Call is one API call as the stand-in saw it.
type Call struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	// Route is the matched route, e.g. "GET /instance/v1/zones/{zone}/servers/{id}".
	Route  string `json:"route"`
	Status int    `json:"status"`
	// Write is true for POST, PUT, PATCH and DELETE.
	Write bool `json:"write"`
	// Fault is "rate_limit" or "error" when the answer was injected.
	Fault string `json:"fault,omitempty"`
}

// maxCalls bounds the call log of a long-running stand-in (oldest dropped).
const maxCalls = 100_000

// Calls returns the calls served so far (admin calls excluded), oldest
// first.
func (s *Sim) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return slices.Clone(s.calls)
}

// WriteCalls returns the calls that were writes (POST, PUT, PATCH, DELETE),
// whatever their outcome.
func (s *Sim) WriteCalls() []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Write {
			out = append(out, c)
		}
	}
	return out
}

// CallCounts counts calls per route.
func (s *Sim) CallCounts() map[string]int {
	out := map[string]int{}
	for _, c := range s.Calls() {
		out[c.Route]++
	}
	return out
}

// ResetCalls forgets the calls served so far.
func (s *Sim) ResetCalls() {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.calls = nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP serves the API: admin endpoints, then latency, 429 bursts, 5xx,
// authentication and the API itself, logging every non-admin call.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_scwsim/") {
		s.serveAdmin(w, r)
		return
	}
	_, route := s.mux.Handler(r)
	rec := &statusRecorder{ResponseWriter: w}
	fault := s.serveFaulty(rec, r)
	s.callMu.Lock()
	if len(s.calls) >= maxCalls {
		s.calls = slices.Delete(s.calls, 0, len(s.calls)-maxCalls+1)
	}
	s.calls = append(s.calls, Call{
		Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Route: route,
		Status: rec.status, Write: isWrite(r.Method), Fault: fault,
	})
	s.callMu.Unlock()
}

func (s *Sim) serveFaulty(w http.ResponseWriter, r *http.Request) string {
	s.faultMu.Lock()
	f := s.faults
	delay := time.Duration(0)
	if f.Latency.Delay.Duration > 0 && f.Latency.Match.matches(r) {
		delay = f.Latency.Delay.Duration
	}
	limited := false
	if f.RateLimit.Count > 0 && f.RateLimit.Match.matches(r) {
		s.faults.RateLimit.Count--
		limited = true
	}
	failed := !limited && f.Errors.Fraction > 0 && f.Errors.Match.matches(r) && s.frng.Float64() < f.Errors.Fraction
	s.faultMu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return "latency"
		}
	}
	if limited {
		w.Header().Set("X-Envoy-Ratelimited", "true")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		return "rate_limit"
	}
	if failed {
		if f.Errors.AfterEffect {
			s.serveAPI(httptest.NewRecorder(), r)
		}
		status := f.Errors.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		writeError(w, &apiError{status: status, body: map[string]any{
			"message": "internal error", "type": "internal_error",
		}})
		return "error"
	}
	s.serveAPI(w, r)
	return ""
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metadata" {
		tok := r.Header.Get("X-Auth-Token")
		if !slices.ContainsFunc(s.cfg.SecretKeys, func(k string) bool {
			return subtle.ConstantTimeCompare([]byte(k), []byte(tok)) == 1
		}) {
			writeError(w, deniedAuthentication())
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// serveAdmin serves /_scwsim/: faults (GET, PUT), calls (GET, DELETE).
func (s *Sim) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AdminToken != "" &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Scwsim-Admin-Token")), []byte(s.cfg.AdminToken)) != 1 {
		writeError(w, deniedAuthentication())
		return
	}
	send := func(v any) {
		b, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /_scwsim/faults":
		send(s.Faults())
	case "PUT /_scwsim/faults":
		var f FaultConfig
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			writeError(w, invalidArguments(argDetail{"body", "syntax", err.Error()}))
			return
		}
		s.SetFaults(f)
		send(s.Faults())
	case "GET /_scwsim/calls":
		send(s.Calls())
	case "DELETE /_scwsim/calls":
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, notImplemented(r))
	}
}

func notImplemented(r *http.Request) error {
	return &apiError{status: http.StatusNotImplemented, body: map[string]any{
		"message": "scwsim does not implement " + r.Method + " " + r.URL.Path, "type": "not_implemented",
	}}
}
