package cfsim

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// RateLimit injects 429 answers, deterministically, for tests.
type RateLimit struct {
	// Next is how many upcoming requests are answered 429 (before
	// authentication, like Cloudflare's edge limiter).
	Next int
	// RetryAfter is sent as Retry-After, rounded up to whole seconds
	// (default 1 s).
	RetryAfter time.Duration
	// WritesOnly restricts the injection to POST, PUT, PATCH and DELETE;
	// reads pass and do not consume Next.
	WritesOnly bool
}

// InjectRateLimit replaces any pending injection with rl.
func (s *Server) InjectRateLimit(rl RateLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject = rl
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

func rateLimited(retryAfter time.Duration) *apiError {
	e := errRateLimited()
	secs := int(math.Ceil(retryAfter.Seconds()))
	if secs < 1 {
		secs = 1
	}
	e.header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	return e
}

func (s *Server) injected(method string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inject.Next <= 0 || (s.inject.WritesOnly && !isWrite(method)) {
		return nil
	}
	s.inject.Next--
	return rateLimited(s.inject.RetryAfter)
}

type quotaWindow struct {
	start time.Time
	used  int
}

// spend charges the request to its token's quota window and sets the
// Ratelimit headers Cloudflare sends on every answer.
func (s *Server) spend(rq *request) *apiError {
	now := s.now()
	s.mu.Lock()
	w := s.windows[rq.token.ID]
	if w == nil || now.Sub(w.start) >= s.window {
		w = &quotaWindow{start: now}
		s.windows[rq.token.ID] = w
	}
	reset := w.start.Add(s.window).Sub(now)
	quota := s.quota
	over := quota >= 0 && w.used >= quota
	if !over {
		w.used++
	}
	remaining := quota - w.used
	s.mu.Unlock()
	if quota < 0 {
		quota, remaining = 1200, 1200
	}
	secs := int(math.Ceil(reset.Seconds()))
	rq.header.Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, max(remaining, 0), secs))
	rq.header.Set("Ratelimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, quota, int(s.window.Seconds())))
	if over {
		return rateLimited(reset)
	}
	return nil
}

// maxLoggedRequests bounds the request log (the counters are not bounded).
const maxLoggedRequests = 20000

// Request is one entry of the request log.
type Request struct {
	Time   time.Time
	Method string
	// Path is below /client/v4 (e.g. "/zones/<id>/dns_records"); Query is
	// the raw query string.
	Path, Query string
	// TokenID is empty when the request was refused before authentication.
	TokenID string
	Status  int
	// Write is true for POST, PUT, PATCH and DELETE, whatever the outcome.
	Write bool
	// Codes are the error codes of a refused request.
	Codes []int
}

// Counters summarise the request log.
type Counters struct {
	Requests int
	Reads    int
	Writes   int
	// WritesApplied counts writes answered 200.
	WritesApplied int
	Failed        int
	RateLimited   int
}

func (s *Server) logRequest(rq *request, start time.Time) {
	e := Request{
		Time: start, Method: rq.r.Method, Path: rq.path, Query: rq.r.URL.RawQuery,
		Status: rq.status, Write: isWrite(rq.r.Method), Codes: rq.codes,
	}
	if rq.path == "" {
		e.Path = rq.r.URL.Path
	}
	if rq.token != nil {
		e.TokenID = rq.token.ID
	}
	s.mu.Lock()
	if len(s.requests) >= maxLoggedRequests {
		// A long-running lab daemon keeps the most recent requests only.
		s.requests = append(s.requests[:0], s.requests[len(s.requests)-maxLoggedRequests/2:]...)
	}
	s.requests = append(s.requests, e)
	c := &s.counters
	c.Requests++
	if e.Write {
		c.Writes++
		if e.Status == http.StatusOK {
			c.WritesApplied++
		}
	} else {
		c.Reads++
	}
	if e.Status >= 400 {
		c.Failed++
	}
	if e.Status == http.StatusTooManyRequests {
		c.RateLimited++
	}
	s.mu.Unlock()
	s.log.Debug("cloudflare api request", slog.String("method", e.Method), slog.String("path", e.Path),
		slog.String("query", e.Query), slog.Int("status", e.Status), slog.Any("codes", e.Codes),
		slog.Duration("took", s.now().Sub(start)))
}

// Requests returns a copy of the request log (the most recent requests
// when more than 20000 were made since the last ResetRequests).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.requests)
	for i := range out {
		out[i].Codes = slices.Clone(out[i].Codes)
	}
	return out
}

// Counters returns the counters since the last ResetRequests.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}

// ResetRequests clears the request log and the counters (not the quota).
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.counters = nil, Counters{}
}
