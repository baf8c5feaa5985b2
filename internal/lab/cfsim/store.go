package cfsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Logger receives one debug line per request and info lines for
	// configuration changes; nil discards.
	Logger *slog.Logger
	// StateFile, when set, is loaded by New if it exists and rewritten
	// (atomically) after every change, so a lab daemon can restart.
	StateFile string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Quota is how many requests one token may make per QuotaWindow before
	// being answered 429, as Cloudflare's global API limit (default 1200
	// per 5 minutes). A negative Quota disables the limit (the Ratelimit
	// headers are still sent).
	Quota       int
	QuotaWindow time.Duration
}

// Server is the Cloudflare API stand-in: the state, the Go API the lab uses
// to configure it, and (Handler, Start) the HTTP API clients use. It is safe
// for concurrent use.
type Server struct {
	log       *slog.Logger
	now       func() time.Time
	stateFile string
	quota     int
	window    time.Duration

	mu        sync.Mutex
	zones     []*zoneState // in creation order
	tokens    []*Token
	subs      map[int]func(Change)
	nextSub   int
	inject    RateLimit
	windows   map[string]*quotaWindow // by token ID
	requests  []Request
	counters  Counters
	persistMu sync.Mutex
	// notifyMu is taken before mu is released by a commit and held while
	// subscribers run, so they see changes in commit order.
	notifyMu sync.Mutex
}

type zoneState struct {
	Zone    Zone      `json:"zone"`
	Serial  uint32    `json:"serial"`
	Records []*Record `json:"records"`
}

// stateFileV1 is the persisted form.
type stateFileV1 struct {
	Version int          `json:"version"`
	Zones   []*zoneState `json:"zones"`
	Tokens  []*Token     `json:"tokens"`
}

// New returns a Server, loading opts.StateFile when it exists.
func New(opts Options) (*Server, error) {
	s := &Server{
		log:       opts.Logger,
		now:       opts.Now,
		stateFile: opts.StateFile,
		quota:     opts.Quota,
		window:    opts.QuotaWindow,
		subs:      map[int]func(Change){},
		windows:   map[string]*quotaWindow{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.quota == 0 {
		s.quota = 1200
	}
	if s.window <= 0 {
		s.window = 5 * time.Minute
	}
	if s.stateFile != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Server) load() error {
	b, err := os.ReadFile(s.stateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	var st stateFileV1
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("parse cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	if st.Version != 1 {
		return fmt.Errorf("parse cloudflare stand-in state %s: unknown version %d", s.stateFile, st.Version)
	}
	s.zones, s.tokens = st.Zones, st.Tokens
	for _, z := range s.zones {
		if z.Records == nil {
			z.Records = []*Record{}
		}
	}
	s.log.Info("cloudflare stand-in state loaded", slog.String("file", s.stateFile),
		slog.Int("zones", len(s.zones)), slog.Int("tokens", len(s.tokens)))
	return nil
}

// persistLocked writes the state file; s.mu must be held (the write itself
// is serialised by persistMu so a slow disk does not reorder snapshots).
func (s *Server) persistLocked() error {
	if s.stateFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(stateFileV1{Version: 1, Zones: s.zones, Tokens: s.tokens}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cloudflare stand-in state: %w", err)
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	dir := filepath.Dir(s.stateFile)
	tmp, err := os.CreateTemp(dir, ".cfsim-state-*")
	if err != nil {
		return fmt.Errorf("write cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("write cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	if err := os.Rename(tmp.Name(), s.stateFile); err != nil {
		return fmt.Errorf("write cloudflare stand-in state %s: %w", s.stateFile, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// NewTokenValue returns a random 40-character token value, the format
// Cloudflare issues.
func NewTokenValue() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
	b := make([]byte, 40)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// AddZone adds a zone. Name is required; ID, NameServers, Plan, Status,
// CreatedOn and the account get defaults. It fails if the name or ID is
// already used or malformed.
func (s *Server) AddZone(z Zone) (Zone, error) {
	name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(z.Name)), ".")
	if name == "" || !validHostname(name, false) {
		return Zone{}, fmt.Errorf("add zone %q: invalid name", z.Name)
	}
	z.Name = name
	if z.ID == "" {
		z.ID = randomHex(16)
	}
	if !isHexID(z.ID) {
		return Zone{}, fmt.Errorf("add zone %s: id %q is not 32 lower-case hex digits", name, z.ID)
	}
	if z.AccountID == "" {
		z.AccountID = "0123456789abcdef0123456789abcdef"
	}
	if z.AccountName == "" {
		z.AccountName = "Lab Account"
	}
	if len(z.NameServers) == 0 {
		z.NameServers = []string{"ada.ns.cloudflare.com", "bob.ns.cloudflare.com"}
	}
	for i, ns := range z.NameServers {
		ns = strings.TrimSuffix(strings.ToLower(ns), ".")
		if !validHostname(ns, false) {
			return Zone{}, fmt.Errorf("add zone %s: invalid name server %q", name, ns)
		}
		z.NameServers[i] = ns
	}
	switch z.Plan {
	case "":
		z.Plan = PlanFree
	case PlanFree, PlanPro, PlanBusiness, PlanEnterprise:
	default:
		return Zone{}, fmt.Errorf("add zone %s: unknown plan %q", name, z.Plan)
	}
	if z.Status == "" {
		z.Status = "active"
	}
	if z.CreatedOn.IsZero() {
		z.CreatedOn = s.now().UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.zones {
		if o.Zone.Name == z.Name || o.Zone.ID == z.ID {
			return Zone{}, fmt.Errorf("add zone %s: a zone with that name or id exists (%s)", name, o.Zone.ID)
		}
	}
	// Serials in the style of Cloudflare's (a large, growing number).
	s.zones = append(s.zones, &zoneState{Zone: z, Serial: uint32(s.now().Unix()), Records: []*Record{}})
	s.log.Info("zone added", slog.String("zone", z.Name), slog.String("id", z.ID))
	return z, s.persistLocked()
}

// Zone returns the zone with this ID or name.
func (s *Server) Zone(idOrName string) (Zone, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneLocked(idOrName)
	if z == nil {
		return Zone{}, false
	}
	return z.Zone, true
}

func (s *Server) zoneLocked(idOrName string) *zoneState {
	n := strings.TrimSuffix(strings.ToLower(idOrName), ".")
	for _, z := range s.zones {
		if z.Zone.ID == idOrName || z.Zone.Name == n {
			return z
		}
	}
	return nil
}

// Zones lists the zones in creation order.
func (s *Server) Zones() []Zone {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Zone, 0, len(s.zones))
	for _, z := range s.zones {
		out = append(out, z.Zone)
	}
	return out
}

// AddToken registers a token. ID and Value are generated when empty; the
// value must not contain spaces or control characters. ZoneIDs must name
// existing zones.
func (s *Server) AddToken(t Token) (Token, error) {
	if t.ID == "" {
		t.ID = randomHex(16)
	}
	if t.Value == "" {
		t.Value = NewTokenValue()
	}
	if !validTokenValue(t.Value) {
		return Token{}, fmt.Errorf("add token %s: value has spaces or control characters", t.ID)
	}
	if t.Status == "" {
		t.Status = TokenActive
	}
	for _, p := range t.Permissions {
		switch p {
		case ZoneRead, DNSRead, DNSEdit:
		default:
			return Token{}, fmt.Errorf("add token %s: unknown permission %q", t.ID, p)
		}
	}
	t.Permissions = slices.Clone(t.Permissions)
	t.ZoneIDs = slices.Clone(t.ZoneIDs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, zid := range t.ZoneIDs {
		if s.zoneLocked(zid) == nil {
			return Token{}, fmt.Errorf("add token %s: unknown zone %s", t.ID, zid)
		}
	}
	for _, o := range s.tokens {
		if o.ID == t.ID || o.Value == t.Value {
			return Token{}, fmt.Errorf("add token %s: a token with that id or value exists", t.ID)
		}
	}
	c := t
	s.tokens = append(s.tokens, &c)
	s.log.Info("token added", slog.String("id", t.ID), slog.Any("permissions", t.Permissions),
		slog.Any("zones", t.ZoneIDs))
	return t, s.persistLocked()
}

func validTokenValue(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// SetTokenStatus changes a token's status (e.g. to TokenDisabled).
func (s *Server) SetTokenStatus(id string, st TokenStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if t.ID == id {
			t.Status = st
			return s.persistLocked()
		}
	}
	return fmt.Errorf("set status of token %s: no such token", id)
}

func (s *Server) tokenByValueLocked(v string) *Token {
	for _, t := range s.tokens {
		if t.Value == v {
			return t
		}
	}
	return nil
}

// Records returns copies of the zone's records in creation order.
func (s *Server) Records(zoneID string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zoneLocked(zoneID)
	if z == nil {
		return nil, fmt.Errorf("list records of zone %s: no such zone", zoneID)
	}
	out := make([]Record, 0, len(z.Records))
	for _, r := range z.Records {
		out = append(out, *r.clone())
	}
	return out, nil
}

// Snapshot returns every zone with its serial and records, taken under one
// lock so the three agree.
func (s *Server) Snapshot() []ZoneSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ZoneSnapshot, 0, len(s.zones))
	for _, z := range s.zones {
		zs := ZoneSnapshot{Zone: z.Zone, Serial: z.Serial, Records: make([]Record, 0, len(z.Records))}
		zs.Zone.NameServers = slices.Clone(z.Zone.NameServers)
		for _, r := range z.Records {
			zs.Records = append(zs.Records, *r.clone())
		}
		out = append(out, zs)
	}
	return out
}

// Subscribe registers fn to be called after every committed record change,
// synchronously, in commit order, outside the Server's lock: fn may read
// (Snapshot, Records, Zones) but must not change records, and must not block
// for long. The returned function unsubscribes.
func (s *Server) Subscribe(fn func(Change)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
	}
}

func (s *Server) subscribersLocked() []func(Change) {
	ids := make([]int, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	fns := make([]func(Change), 0, len(ids))
	for _, id := range ids {
		fns = append(fns, s.subs[id])
	}
	return fns
}
