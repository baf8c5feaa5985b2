package scwsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sim is the Scaleway API stand-in: an http.Handler serving the Instance,
// Marketplace, IAM and Block APIs and GET /metadata, plus admin endpoints
// under /_scwsim/ (see faults.go). Build it with New; it is safe for
// concurrent use.
type Sim struct {
	cfg      Config
	machines Machines
	cat      *catalogue
	mux      *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc

	mu  sync.Mutex // guards st, rng
	st  *state
	rng *rand.Rand

	faultMu sync.Mutex
	faults  FaultConfig
	frng    *rand.Rand
	rlLeft  int // 429s left in the current burst

	callMu sync.Mutex
	calls  []Call

	work workers
}

// New builds a stand-in from cfg, loading cfg.StateFile when it exists.
// Call Close when done.
func New(cfg Config) (*Sim, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s := &Sim{
		cfg:      cfg,
		machines: cfg.Machines,
		cat:      newCatalogue(cfg.Zones),
		st:       newState(),
		rng:      rand.New(rand.NewPCG(seed, seed^0x5ca1e)),
		frng:     rand.New(rand.NewPCG(seed, 0xfa17)),
	}
	if s.machines == nil {
		s.machines = newAddressOnlyMachines()
	}
	s.work.init()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.StateFile != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	for _, p := range cfg.Projects {
		for _, z := range cfg.Zones {
			s.defaultSG(p, z)
		}
	}
	s.resumeLocked()
	s.mu.Unlock()
	s.routes()
	return s, nil
}

// Close waits (bounded by ctx) for pending machine work, stops background
// work and saves the state. Machines stay as they are: see Teardown.
func (s *Sim) Close(ctx context.Context) error {
	err := s.WaitIdle(ctx)
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if perr := s.persistLocked(); perr != nil {
		err = errors.Join(err, perr)
	}
	return err
}

// Teardown removes every machine and deletes every disk layer the stand-in
// knows of, and releases its addresses: test cleanup, or a lab reset.
func (s *Sim) Teardown(ctx context.Context) error {
	if err := s.WaitIdle(ctx); err != nil {
		return fmt.Errorf("teardown scwsim: %w", err)
	}
	s.mu.Lock()
	var servers, layers []string
	var addrs []string
	for id := range s.st.Servers {
		servers = append(servers, id)
	}
	for id := range s.st.Volumes {
		layers = append(layers, id)
	}
	for id := range s.st.Snapshots {
		layers = append(layers, id)
	}
	for id := range s.st.BlockVolumes {
		layers = append(layers, id)
	}
	for id := range s.st.BlockSnapshots {
		layers = append(layers, id)
	}
	for _, ip := range s.st.IPs {
		addrs = append(addrs, ipPrefix(ip).String())
	}
	for _, sv := range s.st.Servers {
		if sv.DynamicIP.IsValid() {
			addrs = append(addrs, sv.DynamicIP.String()+"/32")
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, id := range servers {
		if err := s.machines.Remove(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range layers {
		if err := s.machines.DeleteLayer(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range addrs {
		if p, err := parsePrefix(a); err == nil {
			if err := s.machines.ReleaseAddress(ctx, p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Serve answers on ln until ctx ends, then shuts the HTTP server down
// (gracefully, within 5 s). It does not Close the Sim.
func (s *Sim) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve scwsim on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down scwsim on %s: %w", ln.Addr(), err)
	}
	return nil
}

func (s *Sim) now() time.Time { return s.cfg.Clock.Now() }

// newID returns a random (seeded) version 4 UUID.
func (s *Sim) newID() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := s.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Sim) newMAC() string {
	s.st.MACCounter++
	c := s.st.MACCounter + 0x01271600
	return formatMAC([6]byte{0xde, 0x00, byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
}

func (s *Sim) project(id string) (Project, bool) {
	i := slices.IndexFunc(s.cfg.Projects, func(p Project) bool { return p.ID == id })
	if i < 0 {
		return Project{}, false
	}
	return s.cfg.Projects[i], true
}

// ownerFor resolves the project of a create call: project wins, else the
// organization's first project (the SDK always sends one of them).
func (s *Sim) ownerFor(project, org *string, resource string) (owner, error) {
	switch {
	case project != nil && *project != "":
		p, ok := s.project(*project)
		if !ok {
			return owner{}, permissionsDenied("write", resource)
		}
		return owner{Project: p.ID, Organization: p.OrganizationID}, nil
	case org != nil && *org != "":
		for _, p := range s.cfg.Projects {
			if p.OrganizationID == *org {
				return owner{Project: p.ID, Organization: p.OrganizationID}, nil
			}
		}
		return owner{}, permissionsDenied("write", resource)
	}
	return owner{}, invalidArguments(argDetail{"project", "required", "one of project or organization is required"})
}

// ---- HTTP plumbing ----

// reply is a successful answer; body nil means no body (204).
type reply struct {
	status int
	body   any
	header http.Header
}

type handler func(r *http.Request) (*reply, error)

func ok(body any) (*reply, error)      { return &reply{status: http.StatusOK, body: body}, nil }
func created(body any) (*reply, error) { return &reply{status: http.StatusCreated, body: body}, nil }
func noContent() (*reply, error)       { return &reply{status: http.StatusNoContent}, nil }

// handle registers h for pattern; h runs with the state locked, after every
// time-driven transition due has happened.
func (s *Sim) handle(pattern string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.advanceLocked()
		rep, err := h(r)
		if err == nil && r.Method != http.MethodGet {
			if perr := s.persistLocked(); perr != nil {
				s.cfg.Log.Error("persist scwsim state", "err", perr)
			}
		}
		s.mu.Unlock()
		if err != nil {
			writeError(w, err)
			return
		}
		writeReply(w, rep)
	})
}

func writeReply(w http.ResponseWriter, rep *reply) {
	if raw, isRaw := rep.body.(rawBody); isRaw {
		for k, v := range rep.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
		w.WriteHeader(rep.status)
		_, _ = w.Write([]byte(raw))
		return
	}
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	b, err := json.Marshal(rep.body)
	if err != nil {
		writeError(w, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(rep.status)
	_, _ = w.Write(b)
}

// rawBody is a non-JSON answer (user data); the handler sets Content-Type.
type rawBody string

func readAll(r *http.Request, b *strings.Builder) (int64, error) {
	return io.Copy(b, io.LimitReader(r.Body, 1<<20))
}

// decode reads a JSON request body into v.
func decode(r *http.Request, v any) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return legacyInvalid("cannot read request body")
	}
	if buf.Len() == 0 {
		return nil
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return invalidArguments(argDetail{"body", "syntax", err.Error()})
	}
	return nil
}

// zone validates the {zone} path value.
func (s *Sim) zone(r *http.Request) (string, error) {
	z := r.PathValue("zone")
	if !slices.Contains(s.cfg.Zones, z) {
		return "", invalidArguments(argDetail{"zone", "constraint", "unknown zone " + z})
	}
	return z, nil
}

// ---- small helpers ----

func itoa(i int) string { return strconv.Itoa(i) }

// hostname derives the hostname the API reports from a server name.
func hostname(name string) string { return strings.ReplaceAll(name, "_", "-") }

func parseMAC(s string) [6]byte {
	var hw [6]byte
	for i, p := range strings.SplitN(s, ":", 6) {
		v, _ := strconv.ParseUint(p, 16, 8)
		hw[i] = byte(v)
	}
	return hw
}

func formatMAC(hw [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", hw[0], hw[1], hw[2], hw[3], hw[4], hw[5])
}

func (s *Sim) sortedServers() []*server {
	out := make([]*server, 0, len(s.st.Servers))
	for _, sv := range s.st.Servers {
		out = append(out, sv)
	}
	slices.SortFunc(out, func(a, b *server) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// hasAllTags reports whether have contains every tag of want (the API's
// tags filter is an AND of exact tags).
func hasAllTags(have []string, want string) bool {
	if want == "" {
		return true
	}
	for _, t := range strings.Split(want, ",") {
		if t != "" && !slices.Contains(have, t) {
			return false
		}
	}
	return true
}
