package cfsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// apiPrefix is where the API lives, as on api.cloudflare.com.
const apiPrefix = "/client/v4"

type envelope struct {
	Success    bool         `json:"success"`
	Errors     []apiMessage `json:"errors"`
	Messages   []any        `json:"messages"`
	Result     any          `json:"result"`
	ResultInfo *resultInfo  `json:"result_info,omitempty"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

// typedMessage is a "messages" entry with the (null) type field the token
// verification answer carries.
type typedMessage struct {
	Code    int     `json:"code"`
	Message string  `json:"message"`
	Type    *string `json:"type"`
}

// Handler returns the HTTP API (paths under /client/v4).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// request is the per-request context the handlers share.
type request struct {
	w     http.ResponseWriter
	r     *http.Request
	path  string // below apiPrefix
	token *Token
	// status and codes are recorded for the request log.
	status int
	codes  []int
	header http.Header
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rq := &request{w: w, r: r, header: http.Header{}}
	start := s.now()
	defer func() { s.logRequest(rq, start) }()

	if !strings.HasPrefix(r.URL.Path, apiPrefix+"/") {
		s.fail(rq, errUnknownRoute())
		return
	}
	rq.path = strings.TrimPrefix(r.URL.Path, apiPrefix)
	if err := s.injected(r.Method); err != nil {
		s.fail(rq, err)
		return
	}
	h, err := s.route(rq)
	if err != nil {
		s.fail(rq, err)
		return
	}
	if err := s.authenticate(rq); err != nil {
		s.fail(rq, err)
		return
	}
	if err := s.spend(rq); err != nil {
		s.fail(rq, err)
		return
	}
	h()
}

var (
	zonePathRE   = regexp.MustCompile(`^/zones/([^/]+)$`)
	recordsRE    = regexp.MustCompile(`^/zones/([^/]+)/dns_records$`)
	batchRE      = regexp.MustCompile(`^/zones/([^/]+)/dns_records/batch$`)
	recordPathRE = regexp.MustCompile(`^/zones/([^/]+)/dns_records/([^/]+)$`)
)

// route finds the handler for the path and method; malformed identifiers
// are refused with 7003 like the real router does.
func (s *Server) route(rq *request) (func(), *apiError) {
	p, m := rq.path, rq.r.Method
	only := func(methods ...string) *apiError {
		for _, x := range methods {
			if m == x {
				return nil
			}
		}
		return errMethodNotAllowed()
	}
	switch {
	case p == "/user/tokens/verify":
		return func() { s.verifyToken(rq) }, only(http.MethodGet)
	case p == "/zones":
		return func() { s.listZones(rq) }, only(http.MethodGet)
	case zonePathRE.MatchString(p):
		zid := zonePathRE.FindStringSubmatch(p)[1]
		if !isHexID(zid) {
			return nil, errNoRoute(p)
		}
		return func() { s.getZone(rq, zid) }, only(http.MethodGet)
	case batchRE.MatchString(p):
		zid := batchRE.FindStringSubmatch(p)[1]
		if !isHexID(zid) {
			return nil, errNoRoute(p)
		}
		return func() { s.batchRecords(rq, zid) }, only(http.MethodPost)
	case recordsRE.MatchString(p):
		zid := recordsRE.FindStringSubmatch(p)[1]
		if !isHexID(zid) {
			return nil, errNoRoute(p)
		}
		switch m {
		case http.MethodGet:
			return func() { s.listRecords(rq, zid) }, nil
		case http.MethodPost:
			return func() { s.createRecord(rq, zid) }, nil
		}
		return nil, errMethodNotAllowed()
	case recordPathRE.MatchString(p):
		sm := recordPathRE.FindStringSubmatch(p)
		zid, rid := sm[1], sm[2]
		if !isHexID(zid) || !isHexID(rid) {
			return nil, errNoRoute(p)
		}
		switch m {
		case http.MethodGet:
			return func() { s.getRecord(rq, zid, rid) }, nil
		case http.MethodPatch:
			return func() { s.updateRecord(rq, zid, rid, false) }, nil
		case http.MethodPut:
			return func() { s.updateRecord(rq, zid, rid, true) }, nil
		case http.MethodDelete:
			return func() { s.deleteRecord(rq, zid, rid) }, nil
		}
		return nil, errMethodNotAllowed()
	}
	return nil, errUnknownRoute()
}

var authKeyRE = regexp.MustCompile(`^[0-9a-f]{37}$`)

// authenticate finds the request's token. On /user/tokens/verify an
// unknown token is 401/1000 and a known one of any status is accepted (the
// handler reports the status); elsewhere only usable tokens pass.
func (s *Server) authenticate(rq *request) *apiError {
	h := rq.r.Header
	auth := h.Get("Authorization")
	verify := rq.path == "/user/tokens/verify"
	if auth == "" {
		if key := h.Get("X-Auth-Key"); key != "" {
			if !authKeyRE.MatchString(key) {
				return errBadAuthKeyHeader()
			}
			return errUnknownAuthKey()
		}
		return errMissingAuth()
	}
	scheme, value, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !validTokenValue(value) {
		return errBadAuthorizationHeader()
	}
	s.mu.Lock()
	t := s.tokenByValueLocked(value)
	var tc Token
	if t != nil {
		tc = *t
	}
	s.mu.Unlock()
	if t == nil {
		if verify {
			return errInvalidAPIToken()
		}
		return errInvalidToken()
	}
	if !verify && !tc.usable(s.now()) {
		return errInvalidToken()
	}
	rq.token = &tc
	return nil
}

func (s *Server) verifyToken(rq *request) {
	t := rq.token
	now := s.now()
	res := map[string]any{"id": t.ID, "status": t.status(now)}
	if !t.NotBefore.IsZero() {
		res["not_before"] = t.NotBefore.UTC().Format(time.RFC3339)
	}
	if !t.ExpiresOn.IsZero() {
		res["expires_on"] = t.ExpiresOn.UTC().Format(time.RFC3339)
	}
	msgs := []any{}
	if t.usable(now) {
		msgs = append(msgs, typedMessage{Code: 10000, Message: "This API Token is valid and active"})
	}
	s.ok(rq, envelope{Result: res, Messages: msgs})
}

// zoneFor resolves a zone id in a path for the request's token: unknown →
// 7003, not covered or missing permission → 10000.
func (s *Server) zoneFor(rq *request, zid string, need Permission) (*zoneState, *apiError) {
	s.mu.Lock()
	var z *zoneState
	for _, x := range s.zones {
		if x.Zone.ID == zid {
			z = x
		}
	}
	s.mu.Unlock()
	if z == nil {
		return nil, errNoRoute(rq.path)
	}
	if !rq.token.Covers(zid) || !rq.token.Has(need) {
		return nil, errAuthentication()
	}
	return z, nil
}

func (s *Server) getZone(rq *request, zid string) {
	if !rq.token.Has(ZoneRead) {
		s.fail(rq, errUnauthorized())
		return
	}
	z, err := s.zoneFor(rq, zid, ZoneRead)
	if err != nil {
		s.fail(rq, err)
		return
	}
	s.mu.Lock()
	v := zoneView(z.Zone, *rq.token)
	s.mu.Unlock()
	s.ok(rq, envelope{Result: v})
}

// readBody reads a JSON request body, enforcing the content type.
func readBody(rq *request) ([]byte, *apiError) {
	ct := rq.r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, errBadContentType()
	}
	b, err := io.ReadAll(io.LimitReader(rq.r.Body, 1<<20))
	if err != nil {
		return nil, errInvalidBody()
	}
	return b, nil
}

func (s *Server) getRecord(rq *request, zid, rid string) {
	if _, err := s.zoneFor(rq, zid, DNSRead); err != nil {
		s.fail(rq, err)
		return
	}
	s.mu.Lock()
	var v *recordJSON
	if z := s.zoneLocked(zid); z != nil {
		for _, r := range z.Records {
			if r.ID == rid {
				x := r.view()
				v = &x
			}
		}
	}
	s.mu.Unlock()
	if v == nil {
		s.fail(rq, errRecordNotFound())
		return
	}
	s.ok(rq, envelope{Result: v})
}

func (s *Server) createRecord(rq *request, zid string) {
	if _, err := s.zoneFor(rq, zid, DNSEdit); err != nil {
		s.fail(rq, err)
		return
	}
	raw, aerr := readBody(rq)
	if aerr != nil {
		s.fail(rq, aerr)
		return
	}
	b, aerr := parseRecordBody(raw)
	if aerr != nil {
		s.fail(rq, aerr)
		return
	}
	var v recordJSON
	if err := s.mutate(zid, func(t *txn) *apiError {
		r, err := t.create(b)
		if err != nil {
			return err
		}
		v = r.view()
		return nil
	}); err != nil {
		s.fail(rq, err)
		return
	}
	s.ok(rq, envelope{Result: v})
}

func (s *Server) updateRecord(rq *request, zid, rid string, overwrite bool) {
	if _, err := s.zoneFor(rq, zid, DNSEdit); err != nil {
		s.fail(rq, err)
		return
	}
	raw, aerr := readBody(rq)
	if aerr != nil {
		s.fail(rq, aerr)
		return
	}
	b, aerr := parseRecordBody(raw)
	if aerr != nil {
		s.fail(rq, aerr)
		return
	}
	var v recordJSON
	if err := s.mutate(zid, func(t *txn) *apiError {
		r, err := t.update(rid, b, overwrite)
		if err != nil {
			return err
		}
		v = r.view()
		return nil
	}); err != nil {
		s.fail(rq, err)
		return
	}
	s.ok(rq, envelope{Result: v})
}

func (s *Server) deleteRecord(rq *request, zid, rid string) {
	if _, err := s.zoneFor(rq, zid, DNSEdit); err != nil {
		s.fail(rq, err)
		return
	}
	if err := s.mutate(zid, func(t *txn) *apiError {
		_, err := t.delete(rid)
		return err
	}); err != nil {
		s.fail(rq, err)
		return
	}
	s.ok(rq, envelope{Result: map[string]string{"id": rid}})
}

// batchRecords is POST /zones/{id}/dns_records/batch: deletes, then
// patches, then puts, then posts, all or nothing.
func (s *Server) batchRecords(rq *request, zid string) {
	if _, err := s.zoneFor(rq, zid, DNSEdit); err != nil {
		s.fail(rq, err)
		return
	}
	raw, aerr := readBody(rq)
	if aerr != nil {
		s.fail(rq, aerr)
		return
	}
	var in struct {
		Deletes []struct {
			ID string `json:"id"`
		} `json:"deletes"`
		Patches []map[string]json.RawMessage `json:"patches"`
		Puts    []map[string]json.RawMessage `json:"puts"`
		Posts   []map[string]json.RawMessage `json:"posts"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		s.fail(rq, errInvalidBody())
		return
	}
	out := map[string][]recordJSON{"deletes": {}, "patches": {}, "puts": {}, "posts": {}}
	err := s.mutate(zid, func(t *txn) *apiError {
		for _, d := range in.Deletes {
			r, err := t.delete(d.ID)
			if err != nil {
				return err
			}
			out["deletes"] = append(out["deletes"], r.view())
		}
		for _, step := range []struct {
			key       string
			list      []map[string]json.RawMessage
			overwrite bool
		}{{"patches", in.Patches, false}, {"puts", in.Puts, true}} {
			for _, m := range step.list {
				var id string
				if json.Unmarshal(m["id"], &id) != nil || id == "" {
					return errInvalidBody()
				}
				b, err := recordBodyFromMap(m)
				if err != nil {
					return err
				}
				r, err := t.update(id, b, step.overwrite)
				if err != nil {
					return err
				}
				out[step.key] = append(out[step.key], r.view())
			}
		}
		for _, m := range in.Posts {
			b, err := recordBodyFromMap(m)
			if err != nil {
				return err
			}
			r, err := t.create(b)
			if err != nil {
				return err
			}
			out["posts"] = append(out["posts"], r.view())
		}
		return nil
	})
	if err != nil {
		s.fail(rq, err)
		return
	}
	s.ok(rq, envelope{Result: out})
}

func (s *Server) ok(rq *request, env envelope) {
	env.Success = true
	if env.Errors == nil {
		env.Errors = []apiMessage{}
	}
	if env.Messages == nil {
		env.Messages = []any{}
	}
	s.write(rq, http.StatusOK, env)
}

func (s *Server) fail(rq *request, e *apiError) {
	for k, v := range e.header {
		rq.header[k] = v
	}
	rq.codes = e.Codes()
	s.write(rq, e.Status, envelope{Errors: e.Errors, Messages: []any{}})
}

func (s *Server) write(rq *request, status int, env envelope) {
	b, err := json.Marshal(env)
	if err != nil {
		s.log.Error("encode cloudflare stand-in answer", slog.Any("err", err))
		status, b = http.StatusInternalServerError, []byte(`{"success":false,"errors":[{"code":10001,"message":"Internal error"}],"messages":[],"result":null}`)
	}
	h := rq.w.Header()
	for k, v := range rq.header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cf-Ray", randomHex(8)+"-LAB")
	rq.status = status
	rq.w.WriteHeader(status)
	_, _ = rq.w.Write(b)
}

// HTTPServer is the API served on a listener by Start.
type HTTPServer struct {
	// Addr is the address listened on (with the chosen port).
	Addr string
	// URL is "http://<Addr>"; BaseURL is URL + "/client/v4", what clients
	// are given (lego's Config.BaseURL, cloudflare-go's option.WithBaseURL).
	URL, BaseURL string

	srv      *http.Server
	stopped  chan struct{}
	serveErr error
	unwatch  func() bool
}

// Start serves the API on addr (e.g. "127.0.0.1:0", "10.99.0.1:8080")
// until Close is called or ctx is done.
func (s *Server) Start(ctx context.Context, addr string) (*HTTPServer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen cloudflare stand-in on %s: %w", addr, err)
	}
	hs := &HTTPServer{
		Addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           s.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		},
		stopped: make(chan struct{}),
	}
	hs.URL = "http://" + hs.Addr
	hs.BaseURL = hs.URL + apiPrefix
	go func() {
		defer close(hs.stopped)
		if err := hs.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			hs.serveErr = err
		}
	}()
	hs.unwatch = context.AfterFunc(ctx, func() { _ = hs.Close() })
	s.log.Info("cloudflare stand-in listening", slog.String("base_url", hs.BaseURL))
	return hs, nil
}

// Close stops the server, waiting up to 5 s for requests in flight, and
// returns once the listener is closed. It is safe to call more than once.
func (h *HTTPServer) Close() error {
	h.unwatch()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := h.srv.Shutdown(ctx)
	if err != nil {
		_ = h.srv.Close()
	}
	<-h.stopped
	if err != nil {
		return fmt.Errorf("stop cloudflare stand-in on %s: %w", h.Addr, err)
	}
	if h.serveErr != nil {
		return fmt.Errorf("serve cloudflare stand-in on %s: %w", h.Addr, h.serveErr)
	}
	return nil
}
