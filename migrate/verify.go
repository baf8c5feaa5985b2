package migrate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/migrate/archive"
)

// Verify compares the source and the target, per collection: document
// count, bytes, content hash (see Sums), GridFS totals and index
// definitions; then the uploaded files against their manifest and the
// app's settings that decide whether it comes up as the same workspace.
// It reads both sides and changes nothing on either (it only records the
// outcome in the target's migrate state).
type Verify struct {
	Source    Source
	Target    *Target
	Databases []string
	StateDir  string
	// Recorded uses the source sums recorded by the move (taken from the
	// stream) instead of reading the source again. The move's own
	// verification does this; `migrate verify` reads the source again
	// unless --recorded is given.
	Recorded bool
	// Uploads, when set, are checked against their manifest.
	Uploads *Uploads
	// App, when set, checks the app's settings in the target database.
	App      *AppCheck
	Progress *Progress
	Log      *slog.Logger
}

// Mismatch is one difference between the source and the target.
type Mismatch struct {
	// Collection is db.collection (or "uploads", or the setting).
	Collection string `json:"collection"`
	What       string `json:"what"`
	Source     string `json:"source,omitempty"`
	Target     string `json:"target,omitempty"`
}

func (m Mismatch) String() string {
	s := m.Collection + ": " + m.What
	if m.Source != "" || m.Target != "" {
		s += fmt.Sprintf(" (source %s, target %s)", m.Source, m.Target)
	}
	return s
}

// VerifyReport is what verify found.
type VerifyReport struct {
	// Collections checked equal, db.collection → sums.
	Equal      map[string]Sums `json:"equal"`
	Mismatches []Mismatch      `json:"mismatches,omitempty"`
	Warnings   []string        `json:"warnings,omitempty"`
}

// VerifyError is a failed verification; it names every collection that
// differs.
type VerifyError struct {
	Mismatches []Mismatch
}

func (e *VerifyError) Error() string {
	var parts []string
	for _, m := range e.Mismatches {
		parts = append(parts, m.String())
	}
	noun := "difference"
	if len(parts) > 1 {
		noun = "differences"
	}
	return fmt.Sprintf("verify: %d %s between source and target: %s", len(parts), noun, strings.Join(parts, "; "))
}

// sideSums are one side's view of a database.
type sideSums struct {
	sums    map[string]Sums
	indexes map[string][]IndexDef
}

// Run verifies; the error is a *VerifyError when something differs.
func (v *Verify) Run(ctx context.Context) (*VerifyReport, error) {
	log := logOrDiscard(v.Log)
	store := newStateStore(v.Target.Host, v.StateDir)
	st, err := store.loadData(ctx)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Equal: map[string]Sums{}}
	tc, err := connect(ctx, v.Target.Host, v.Target.URI, log, connectOptions{})
	if err != nil {
		return nil, err
	}
	defer tc.Close(ctx)
	for _, db := range v.Databases {
		var src, dst sideSums
		var srcErr, dstErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			src, srcErr = v.sourceSums(ctx, st, db)
		}()
		go func() {
			defer wg.Done()
			dst, dstErr = targetSideSums(ctx, tc.client.Database(db), v.Target.ReplyBytes, v.Progress)
		}()
		wg.Wait()
		if srcErr != nil {
			return nil, fmt.Errorf("verify %s: source: %w", db, srcErr)
		}
		if dstErr != nil {
			return nil, fmt.Errorf("verify %s: target: %w", db, dstErr)
		}
		v.compare(db, st, src, dst, rep)
	}
	if v.Uploads != nil {
		ms, warns, err := v.Uploads.Verify(ctx, st)
		if err != nil {
			return nil, err
		}
		rep.Mismatches = append(rep.Mismatches, ms...)
		rep.Warnings = append(rep.Warnings, warns...)
	}
	if v.App != nil {
		ms, warns, err := v.App.Check(ctx, tc.client, v.Uploads != nil)
		if err != nil {
			return nil, err
		}
		rep.Mismatches = append(rep.Mismatches, ms...)
		rep.Warnings = append(rep.Warnings, warns...)
	}
	// Record the outcome so that a re-run of data copies again exactly
	// the collections that differ.
	bad := map[string]bool{}
	for _, m := range rep.Mismatches {
		bad[m.Collection] = true
	}
	if err := store.update(ctx, st, func(st *DataState) {
		for _, db := range v.Databases {
			for _, name := range st.names(db) {
				cs := st.lookup(db, name)
				switch {
				case bad[db+"."+name]:
					cs.Status = StatusMismatch
				case cs.Status == StatusCopied || cs.Status == StatusMismatch:
					if _, ok := rep.Equal[db+"."+name]; ok {
						cs.Status = StatusVerified
					}
				}
			}
		}
	}); err != nil {
		return rep, err
	}
	if len(rep.Mismatches) > 0 {
		return rep, &VerifyError{Mismatches: rep.Mismatches}
	}
	return rep, nil
}

func (v *Verify) compare(db string, st *DataState, src, dst sideSums, rep *VerifyReport) {
	var names []string
	for n := range src.sums {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		full := db + "." + n
		s := src.sums[n]
		t, ok := dst.sums[n]
		if !ok {
			rep.Mismatches = append(rep.Mismatches, Mismatch{Collection: full, What: "missing on the target"})
			continue
		}
		before := len(rep.Mismatches)
		add := func(what, a, b string) {
			rep.Mismatches = append(rep.Mismatches, Mismatch{Collection: full, What: what, Source: a, Target: b})
		}
		if s.Count != t.Count {
			add("document count differs", fmt.Sprint(s.Count), fmt.Sprint(t.Count))
		}
		if s.Hash != t.Hash {
			add("content hash differs", shortHash(s.Hash), shortHash(t.Hash))
		} else if s.Bytes != t.Bytes {
			add("byte count differs", fmt.Sprint(s.Bytes), fmt.Sprint(t.Bytes))
		}
		if s.GridFS != nil && t.GridFS != nil && *s.GridFS != *t.GridFS {
			add("GridFS totals differ", fmt.Sprintf("%+v", *s.GridFS), fmt.Sprintf("%+v", *t.GridFS))
		}
		var skipped map[string]string
		if cs := st.lookup(db, n); cs != nil {
			skipped = map[string]string{}
			for _, sk := range cs.SkippedIndexes {
				skipped[sk.Index.Name] = sk.Reason
			}
		}
		tix := map[string]IndexDef{}
		for _, d := range dst.indexes[n] {
			tix[d.Name] = d
		}
		for _, d := range src.indexes[n] {
			td, ok := tix[d.Name]
			switch {
			case !ok && skipped[d.Name] != "":
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: index %s is missing on the target (refused at creation: %s); the app rebuilds its indexes when it starts", full, d.Name, skipped[d.Name]))
			case !ok:
				add("index "+d.Name+" missing on the target", d.String(), "none")
			case !td.Equal(d):
				add("index "+d.Name+" differs", d.String(), td.String())
			}
			delete(tix, d.Name)
		}
		for name := range tix {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: index %s exists only on the target", full, name))
		}
		if len(rep.Mismatches) == before {
			rep.Equal[full] = t
		}
	}
	for n := range dst.sums {
		if _, ok := src.sums[n]; !ok && dst.sums[n].Count > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s.%s exists only on the target (%d documents)", db, n, dst.sums[n].Count))
		}
	}
}

// sourceSums are the source's sums: recorded at move time, or read
// again by streaming the source through the same summing as a move.
func (v *Verify) sourceSums(ctx context.Context, st *DataState, db string) (sideSums, error) {
	out := sideSums{sums: map[string]Sums{}, indexes: map[string][]IndexDef{}}
	if v.Recorded {
		names := st.names(db)
		if len(names) == 0 {
			return out, fmt.Errorf("no move of %s is recorded on %s", db, v.Target.Host.Name)
		}
		for _, n := range names {
			cs := st.lookup(db, n)
			if cs.Source == nil {
				return out, fmt.Errorf("%s.%s was not completely copied (state %s): run migrate data", db, n, cs.Status)
			}
			out.sums[n] = *cs.Source
			out.indexes[n] = cs.Indexes
		}
		return out, nil
	}
	rc, err := v.Source.Dump(ctx, db, nil)
	if err != nil {
		return out, err
	}
	defer rc.Close()
	ar, err := archive.NewReader(rc)
	if err != nil {
		return out, err
	}
	nss := ar.Namespaces()
	summers := make([]*summer, len(nss))
	for i, ns := range nss {
		if ns.DB != db || skipNamespace(ns.Collection, ns.Type) != "" {
			continue
		}
		summers[i] = newSummer(ns.Collection)
		md, err := archive.ParseMetadata(ns.Metadata)
		if err != nil {
			return out, fmt.Errorf("%s: %w", ns.Name(), err)
		}
		defs := []IndexDef{}
		for _, sp := range md.Indexes {
			d, err := normalizeIndex(sp)
			if err != nil {
				return out, fmt.Errorf("%s: %w", ns.Name(), err)
			}
			defs = append(defs, d)
		}
		out.indexes[ns.Collection] = defs
	}
	for {
		ev, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, err
		}
		sm := summers[ev.NS]
		if sm == nil {
			continue
		}
		switch ev.Kind {
		case archive.Document:
			if err := sm.add(ev.Doc); err != nil {
				return out, fmt.Errorf("%s: %w", nss[ev.NS].Name(), err)
			}
		case archive.End:
			out.sums[nss[ev.NS].Collection] = sm.sum()
			summers[ev.NS] = nil
		}
	}
	return out, nil
}

// targetSideSums reads every collection of the target database, a few at
// a time, and sums it like the source.
func targetSideSums(ctx context.Context, d *mongo.Database, reply int64, p *Progress) (sideSums, error) {
	out := sideSums{sums: map[string]Sums{}, indexes: map[string][]IndexDef{}}
	specs, err := listCollectionSpecs(ctx, d)
	if err != nil {
		return out, err
	}
	if reply <= 0 {
		reply = 4 << 20
	}
	var mu sync.Mutex
	var firstErr error
	// Two at a time: each holds a reply of up to reply bytes and its
	// digests, and the target is serving the app's database alone.
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, sp := range specs {
		if skipNamespace(sp.Name, sp.Type) != "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, defs, err := collectionSums(ctx, d.Collection(sp.Name), reply)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s.%s: %w", d.Name(), sp.Name, err)
				}
				return
			}
			out.sums[sp.Name] = s
			out.indexes[sp.Name] = defs
		}()
	}
	wg.Wait()
	return out, firstErr
}

func collectionSums(ctx context.Context, c *mongo.Collection, reply int64) (Sums, []IndexDef, error) {
	_, _, avg, err := collStats(ctx, c.Database(), c.Name())
	if err != nil {
		avg = 0
	}
	cur, err := c.Find(ctx, bson.D{}, options.Find().SetBatchSize(batchSize(reply, avg)))
	if err != nil {
		return Sums{}, nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	sm := newSummer(c.Name())
	for cur.Next(ctx) {
		if err := sm.add(cur.Current); err != nil {
			return Sums{}, nil, err
		}
	}
	if err := cur.Err(); err != nil {
		return Sums{}, nil, err
	}
	specs, err := indexSpecs(ctx, c)
	if err != nil {
		return Sums{}, nil, err
	}
	defs := []IndexDef{}
	for _, sp := range specs {
		d, err := normalizeIndex(sp)
		if err != nil {
			return Sums{}, nil, err
		}
		defs = append(defs, d)
	}
	return sm.sum(), defs, nil
}
