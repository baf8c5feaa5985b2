package cfsim

import (
	"fmt"
	"log/slog"
	"time"
)

// txn applies record operations to a working copy of one zone's records;
// nothing is visible until the Server commits it, so a batch is all or
// nothing.
type txn struct {
	z       *zoneState
	recs    []*Record
	changes []Change
	now     time.Time
}

func (t *txn) find(id string) (int, *Record) {
	for i, r := range t.recs {
		if r.ID == id {
			return i, r
		}
	}
	return -1, nil
}

func (t *txn) create(b recordBody) (*Record, *apiError) {
	if !b.has["type"] || !b.has["name"] || (!b.has["content"] && !b.has["data"]) {
		return nil, errInvalidBody()
	}
	r := newRecordDefaults()
	b.apply(r)
	return t.insert(r)
}

func (t *txn) insert(r *Record) (*Record, *apiError) {
	if err := normalizeRecord(t.z, r); err != nil {
		return nil, err
	}
	r.ID = ""
	if err := conflict(t.recs, r); err != nil {
		return nil, err
	}
	r.ID = randomHex(16)
	r.ZoneID = t.z.Zone.ID
	stamp(r, nil, t.now)
	t.recs = append(t.recs, r)
	t.changes = append(t.changes, Change{Kind: RecordCreated, Record: r.clone()})
	return r, nil
}

// update is PATCH (overwrite false: the body's fields replace the record's)
// or PUT (overwrite true: the body is the whole record; omitted optional
// fields go back to their defaults).
func (t *txn) update(id string, b recordBody, overwrite bool) (*Record, *apiError) {
	i, prev := t.find(id)
	if prev == nil {
		return nil, errRecordNotFound()
	}
	var r *Record
	if overwrite {
		if !b.has["type"] || !b.has["name"] || (!b.has["content"] && !b.has["data"]) {
			return nil, errInvalidBody()
		}
		r = newRecordDefaults()
	} else {
		r = prev.clone()
		// The stored name is absolute; normalizeName keeps it so.
	}
	b.apply(r)
	if err := normalizeRecord(t.z, r); err != nil {
		return nil, err
	}
	r.ID, r.ZoneID = prev.ID, prev.ZoneID
	if err := conflict(t.recs, r); err != nil {
		return nil, err
	}
	stamp(r, prev, t.now)
	t.recs[i] = r
	t.changes = append(t.changes, Change{Kind: RecordUpdated, Record: r.clone(), Previous: prev.clone()})
	return r, nil
}

func (t *txn) delete(id string) (*Record, *apiError) {
	i, prev := t.find(id)
	if prev == nil {
		return nil, errRecordNotFound()
	}
	t.recs = append(t.recs[:i:i], t.recs[i+1:]...)
	t.changes = append(t.changes, Change{Kind: RecordDeleted, Previous: prev.clone()})
	return prev, nil
}

// mutate runs fn on a transaction over the zone's records and commits it if
// fn succeeds: the zone's serial is bumped once, the state persisted and the
// subscribers told, in commit order.
func (s *Server) mutate(zoneID string, fn func(t *txn) *apiError) *apiError {
	s.mu.Lock()
	z := s.zoneLocked(zoneID)
	if z == nil {
		s.mu.Unlock()
		return errRecordNotFound()
	}
	t := &txn{z: z, recs: append([]*Record(nil), z.Records...), now: s.now()}
	if err := fn(t); err != nil {
		s.mu.Unlock()
		return err
	}
	if len(t.changes) == 0 {
		s.mu.Unlock()
		return nil
	}
	z.Records = t.recs
	z.Serial++
	for i := range t.changes {
		t.changes[i].ZoneID, t.changes[i].ZoneName, t.changes[i].Serial = z.Zone.ID, z.Zone.Name, z.Serial
	}
	if err := s.persistLocked(); err != nil {
		s.log.Error("persist cloudflare stand-in state", slog.Any("err", err))
	}
	fns := s.subscribersLocked()
	s.notifyMu.Lock()
	s.mu.Unlock()
	defer s.notifyMu.Unlock()
	for _, c := range t.changes {
		s.log.Debug("dns record change", slog.String("kind", string(c.Kind)), slog.String("zone", c.ZoneName),
			slog.Uint64("serial", uint64(c.Serial)))
		for _, fn := range fns {
			fn(c)
		}
	}
	return nil
}

// AddRecord creates a record through the same validation as the API (the
// lab uses it to seed zones). r.ID, timestamps and ZoneID are ignored.
func (s *Server) AddRecord(zoneID string, r Record) (Record, error) {
	var out Record
	err := s.mutate(zoneID, func(t *txn) *apiError {
		c := r.clone()
		if c.TTL == 0 {
			c.TTL = 1
		}
		rec, err := t.insert(c)
		if err != nil {
			return err
		}
		out = *rec.clone()
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("add %s record %s to zone %s: %w", r.Type, r.Name, zoneID, err)
	}
	return out, nil
}

// DeleteRecord removes a record by ID.
func (s *Server) DeleteRecord(zoneID, recordID string) error {
	err := s.mutate(zoneID, func(t *txn) *apiError {
		_, err := t.delete(recordID)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete record %s of zone %s: %w", recordID, zoneID, err)
	}
	return nil
}
