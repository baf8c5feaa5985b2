package migrate

import (
	"context"
	"fmt"
	"path"
	"sort"
	"sync"
	"time"
)

// DefaultStateDir is where migrate keeps its state on the target host:
// which collections were copied and verified, the upload manifest, the
// ladder's progress and the TTL cutover --prepare replaced. Keeping it on
// the target means any machine running lghsctl resumes where the last
// run stopped.
const DefaultStateDir = "/var/lib/lghsctl/migrate"

// Collection states in DataState.
const (
	// StatusCopying: lghsctl created the collection on the target and is
	// (or was, when interrupted) filling it. A re-run drops it and copies
	// it again.
	StatusCopying = "copying"
	// StatusCopied: every document and index arrived, the stream's CRC and
	// the target's count matched.
	StatusCopied = "copied"
	// StatusVerified: verify found the same count, content hash and
	// indexes on both sides.
	StatusVerified = "verified"
	// StatusMismatch: verify found a difference; a re-run copies it again.
	StatusMismatch = "mismatch"
)

// DataState is the data move's resume state (data.json in the state
// directory).
type DataState struct {
	Version int `json:"version"`
	// Source identifies where the data came from; a different source is
	// not resumed.
	Source    string              `json:"source"`
	Databases map[string]*DBState `json:"databases"`
	Uploads   *UploadsState       `json:"uploads,omitempty"`
	Updated   time.Time           `json:"updated"`
}

// DBState is one database's collections.
type DBState struct {
	Collections map[string]*CollState `json:"collections"`
}

// CollState is one collection's progress.
type CollState struct {
	Status string `json:"status"`
	// Source is what the source held, from the stream (count, bytes,
	// content hash, GridFS totals), once the collection was copied.
	Source *Sums `json:"source,omitempty"`
	// CRC is the archive's CRC-64 of the collection (hex).
	CRC string `json:"crc,omitempty"`
	// Indexes are the source's index definitions.
	Indexes []IndexDef `json:"indexes,omitempty"`
	// SkippedIndexes were refused by the target; the app rebuilds its
	// indexes at start, so they are reported, not fatal.
	SkippedIndexes []SkippedIndex `json:"skipped_indexes,omitempty"`
	Updated        time.Time      `json:"updated"`
}

// SkippedIndex is an index the target refused to create.
type SkippedIndex struct {
	Index  IndexDef `json:"index"`
	Reason string   `json:"reason"`
}

// UploadsState is the uploaded files' copy.
type UploadsState struct {
	From     string    `json:"from"`
	To       string    `json:"to"`
	Manifest string    `json:"manifest"`
	Files    int       `json:"files"`
	Bytes    int64     `json:"bytes"`
	Digest   string    `json:"digest"`
	Status   string    `json:"status"`
	Updated  time.Time `json:"updated"`
}

// stateStore reads and writes the state documents on the target. Saves
// are serialised: collections finish concurrently.
type stateStore struct {
	host Host
	dir  string
	mu   sync.Mutex
	now  func() time.Time
}

func newStateStore(h Host, dir string) *stateStore {
	if dir == "" {
		dir = DefaultStateDir
	}
	return &stateStore{host: h, dir: dir, now: time.Now}
}

func (s *stateStore) path(name string) string { return path.Join(s.dir, name) }

func (s *stateStore) loadData(ctx context.Context) (*DataState, error) {
	st := &DataState{Version: 1, Databases: map[string]*DBState{}}
	if _, err := s.host.readJSON(ctx, s.path("data.json"), st); err != nil {
		return nil, err
	}
	if st.Databases == nil {
		st.Databases = map[string]*DBState{}
	}
	return st, nil
}

// update applies f to the state under the lock and saves it.
func (s *stateStore) update(ctx context.Context, st *DataState, f func(*DataState)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(st)
	st.Updated = s.now().UTC()
	if err := s.host.writeJSON(ctx, s.path("data.json"), st); err != nil {
		return fmt.Errorf("save migrate state: %w", err)
	}
	return nil
}

func (st *DataState) coll(db, coll string) *CollState {
	d := st.Databases[db]
	if d == nil {
		d = &DBState{Collections: map[string]*CollState{}}
		st.Databases[db] = d
	}
	c := d.Collections[coll]
	if c == nil {
		c = &CollState{}
		d.Collections[coll] = c
	}
	return c
}

// lookup returns a collection's state or nil.
func (st *DataState) lookup(db, coll string) *CollState {
	if d := st.Databases[db]; d != nil {
		return d.Collections[coll]
	}
	return nil
}

// names lists a database's collections in the state, sorted.
func (st *DataState) names(db string) []string {
	d := st.Databases[db]
	if d == nil {
		return nil
	}
	out := make([]string, 0, len(d.Collections))
	for n := range d.Collections {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
