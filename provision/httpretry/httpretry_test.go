package httpretry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted answers each request with the next status of a list.
func scripted(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32, *[]string) {
	t.Helper()
	var n atomic.Int32
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		st := http.StatusOK
		if i < len(statuses) {
			st = statuses[i]
		}
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	return srv, &n, &bodies
}

func fastTransport() (*Transport, *[]time.Duration) {
	var waits []time.Duration
	tr := New("test", nil, Policy{MaxAttempts: 4, BaseDelay: time.Millisecond}, nil)
	tr.sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return tr, &waits
}

func TestRetriesIdempotentCallsOn5xxAndGivesTheLastAnswer(t *testing.T) {
	srv, n, bodies := scripted(t, 500, 503, 200)
	tr, _ := fastTransport()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/rules", strings.NewReader(`{"rules":[]}`))
	resp, err := tr.Client().Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", resp, err)
	}
	if n.Load() != 3 {
		t.Errorf("%d attempts, want 3", n.Load())
	}
	for i, b := range *bodies {
		if b != `{"rules":[]}` {
			t.Errorf("attempt %d sent body %q: the body must be replayed", i+1, b)
		}
	}

	srv, n, _ = scripted(t, 500, 500, 500, 500, 500)
	resp, err = tr.Client().Get(srv.URL)
	if err != nil || resp.StatusCode != 500 || n.Load() != 4 {
		t.Errorf("exhausted: status %v err %v after %d attempts, want the last 500 after 4", resp.StatusCode, err, n.Load())
	}
}

func TestPostIsRetriedOnlyOn429(t *testing.T) {
	srv, n, _ := scripted(t, 500, 200)
	tr, _ := fastTransport()
	resp, err := tr.Client().Post(srv.URL+"/servers", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != 500 || n.Load() != 1 {
		t.Errorf("POST 500: status %d after %d attempts; a create that may have happened must not be resent", resp.StatusCode, n.Load())
	}

	srv, n, _ = scripted(t, 429, 429, 201)
	tr, waits := fastTransport()
	resp, err = tr.Client().Post(srv.URL+"/servers", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != 201 || n.Load() != 3 {
		t.Errorf("POST 429: status %v err %v after %d attempts, want 201 after 3", resp, err, n.Load())
	}
	for _, w := range *waits {
		if w != time.Second {
			t.Errorf("waited %v, want the server's Retry-After of 1s", w)
		}
	}
}

func TestTransportErrorsAreRetriedForReads(t *testing.T) {
	calls := 0
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls < 3 {
			return nil, errors.New("connection reset by peer")
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody, Header: http.Header{}}, nil
	})
	tr, _ := fastTransport()
	tr.Base = base
	resp, err := tr.Client().Get("http://api.invalid/x")
	if err != nil || resp.StatusCode != 200 || calls != 3 {
		t.Errorf("GET: %v %v after %d calls", resp, err, calls)
	}
	calls = 0
	_, err = tr.Client().Post("http://api.invalid/x", "application/json", strings.NewReader("{}"))
	if err == nil || calls != 1 {
		t.Errorf("POST with a transport error: err %v after %d calls, want the error after 1", err, calls)
	}
}

func TestElapsedBoundStopsRetrying(t *testing.T) {
	statuses := make([]int, 40)
	for i := range statuses {
		statuses[i] = 500
	}
	srv, n, _ := scripted(t, statuses...)
	start := time.Unix(0, 0)
	clock := start
	tr := New("test", nil, Policy{MaxAttempts: 100, BaseDelay: time.Second, MaxDelay: time.Second, MaxElapsed: 1500 * time.Millisecond}, nil)
	tr.now = func() time.Time { return clock }
	tr.sleep = func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
	resp, _ := tr.Client().Get(srv.URL)
	if resp.StatusCode != 500 || n.Load() < 2 || n.Load() >= 40 {
		t.Errorf("%d attempts, want a few then the last 500", n.Load())
	}
	if spent := clock.Sub(start); spent > 1500*time.Millisecond {
		t.Errorf("spent %v waiting, beyond the 1.5s budget", spent)
	}
}

func TestCancelledContextStopsWaiting(t *testing.T) {
	srv, _, _ := scripted(t, 503, 503, 503)
	tr := New("test", nil, Policy{BaseDelay: time.Hour, MaxDelay: time.Hour, MaxElapsed: 2 * time.Hour}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	start := time.Now()
	_, err := tr.Client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %v, want the context's error at once", err, time.Since(start))
	}
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{http.Header{"Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond},
		{http.Header{"Retry-After": {now.Add(2 * time.Second).Format(http.TimeFormat)}}, 2 * time.Second},
		{http.Header{"X-Envoy-Ratelimited": {"true"}}, 0},
	} {
		if got := retryAfter(c.h, now); got != c.want {
			t.Errorf("retryAfter(%v) = %v, want %v", c.h, got, c.want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
