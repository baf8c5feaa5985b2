// Package httpretry is the HTTP transport both cloud adapters use: it
// retries what is safe to retry, with exponential backoff and full jitter,
// bounded in attempts and in time, and writes every API call to the debug
// log (method, path, status, duration, attempt; never a header, so never a
// token).
//
// What is retried:
//   - 429 Too Many Requests, for every method: the request was not
//     processed, so even a POST is safe to send again. Retry-After (seconds
//     or an HTTP date) and Retry-After-Ms are honoured.
//   - 5xx answers and transport errors (connection refused or reset, a
//     timeout) for the idempotent methods GET, HEAD, PUT, PATCH and DELETE.
//
// A POST that fails with a 5xx or a transport error is NOT retried here: it
// may have been processed (a server created, the answer lost). The caller
// decides, typically by looking the resource up before creating it again.
package httpretry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Policy bounds the retries.
type Policy struct {
	// MaxAttempts is the number of tries of one request, first included
	// (default 8).
	MaxAttempts int
	// BaseDelay is the first backoff (default 250ms); each retry doubles
	// it, up to MaxDelay (default 10s). The actual wait is drawn uniformly
	// in [0, delay] (full jitter) unless the server said how long to wait.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxElapsed bounds the time spent on one request, retries included
	// (default 2 minutes): no retry starts after it.
	MaxElapsed time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 250 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 2 * time.Minute
	}
	return p
}

// Transport is an http.RoundTripper that retries and logs. It is safe for
// concurrent use.
type Transport struct {
	// Base does the requests (default http.DefaultTransport).
	Base http.RoundTripper
	// Policy bounds the retries.
	Policy Policy
	// Log receives one debug line per attempt; nil discards.
	Log *slog.Logger
	// API names the service in log lines ("scaleway", "cloudflare").
	API string
	// sleep waits; replaced in tests.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

// New returns a Transport over base (nil means http.DefaultTransport).
func New(api string, base http.RoundTripper, policy Policy, log *slog.Logger) *Transport {
	return &Transport{Base: base, Policy: policy, Log: log, API: api}
}

// Client returns an *http.Client using t, with no overall timeout (each
// request is bounded by its context and the policy).
func (t *Transport) Client() *http.Client { return &http.Client{Transport: t} }

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// RoundTrip sends req, retrying as the package doc says.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	log := t.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sleep, now := t.sleep, t.now
	if sleep == nil {
		sleep = sleepCtx
	}
	if now == nil {
		now = time.Now
	}
	p := t.Policy.withDefaults()

	// A body must be replayable to be retried.
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}

	start := now()
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		try := req
		if attempt > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("rewind request body: %w", err)
			}
			try = req.Clone(ctx)
			try.Body = body
		}
		t0 := now()
		resp, err := base.RoundTrip(try)
		took := now().Sub(t0)
		attrs := []any{
			slog.String("api", t.API), slog.String("method", req.Method), slog.String("path", req.URL.Path),
			slog.Int("attempt", attempt), slog.Duration("took", took),
		}
		var wait time.Duration
		retry := false
		switch {
		case err != nil:
			log.Debug("api call", append(attrs, slog.String("err", err.Error()))...)
			retry = idempotent(req.Method) && ctx.Err() == nil
		case resp.StatusCode == http.StatusTooManyRequests:
			log.Debug("api call", append(attrs, slog.Int("status", resp.StatusCode))...)
			retry, wait = true, retryAfter(resp.Header, now())
		case resp.StatusCode >= 500:
			log.Debug("api call", append(attrs, slog.Int("status", resp.StatusCode))...)
			retry = idempotent(req.Method)
		default:
			log.Debug("api call", append(attrs, slog.Int("status", resp.StatusCode))...)
			return resp, nil
		}
		if !retry || attempt >= p.MaxAttempts {
			return resp, err
		}
		if wait <= 0 {
			d := p.BaseDelay << (attempt - 1)
			if d > p.MaxDelay || d <= 0 {
				d = p.MaxDelay
			}
			wait = time.Duration(rand.Int64N(int64(d) + 1))
		}
		if now().Add(wait).Sub(start) > p.MaxElapsed {
			return resp, err
		}
		if resp != nil {
			// Drain so the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if serr := sleep(ctx, wait); serr != nil {
			return nil, serr
		}
	}
}

// retryAfter reads Retry-After-Ms, then Retry-After (seconds or a date).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return at.Sub(now)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
