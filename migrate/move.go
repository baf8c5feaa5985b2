package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/lghs/lghsctl/migrate/archive"
)

// Move is the data move of one or more databases from Source to Target,
// streamed: no full dump is ever written to a disk, the archive stream is
// parsed on its way (CRC-64 per collection, counts, content hashes,
// progress), and each collection's completion is recorded on the target
// so that an interrupted move resumes per collection.
type Move struct {
	Source    Source
	Target    *Target
	Databases []string
	// StateDir on the target (default DefaultStateDir).
	StateDir string
	// Drop allows replacing collections on the target that lghsctl did not
	// create; without it a non-empty target database stops the move
	// before anything changes.
	Drop bool
	// Restart forgets an earlier run's state and copies everything again.
	Restart bool
	// Archive, when set, opens the local copy of a database's stream
	// (lghsctl migrate data --archive).
	Archive func(db string) (io.WriteCloser, error)
	// Progress receives counters (may be nil).
	Progress *Progress
	Log      *slog.Logger
	// Warn receives non-fatal findings: skipped indexes, refused
	// collection options, collections left out.
	Warn func(string)
}

// MoveResult says what a move did.
type MoveResult struct {
	// Copied lists the collections (db.coll) copied by this run, Resumed
	// those an earlier run had already copied.
	Copied  []string
	Resumed []string
	// Sums are the source's sums of the collections copied by this run,
	// taken from the stream.
	Sums map[string]Sums
	// StreamBytes is the size of the stream(s) read from the source.
	StreamBytes int64
}

// TargetNotEmptyError stops a move whose target holds data lghsctl did
// not put there.
type TargetNotEmptyError struct {
	Host        string
	DB          string
	Collections []string
}

func (e *TargetNotEmptyError) Error() string {
	return fmt.Sprintf("the database %s on %s is not empty (%s): nothing was changed; give --drop to replace it", e.DB, e.Host, strings.Join(e.Collections, ", "))
}

func (m *Move) log() *slog.Logger { return logOrDiscard(m.Log) }

func (m *Move) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.log().Warn(msg)
	if m.Warn != nil {
		m.Warn(msg)
	}
}

func (m *Move) progress() *Progress {
	if m.Progress == nil {
		m.Progress = NewProgress(nil, m.Target.Host.Name)
	}
	return m.Progress
}

// Run moves every database.
func (m *Move) Run(ctx context.Context) (*MoveResult, error) {
	store := newStateStore(m.Target.Host, m.StateDir)
	st, err := store.loadData(ctx)
	if err != nil {
		return nil, err
	}
	if m.Restart {
		st = &DataState{Version: 1, Databases: map[string]*DBState{}}
	}
	if st.Source != "" && st.Source != m.Source.ID() {
		return nil, fmt.Errorf("the migrate state on %s comes from %q, not %q: give --restart to start over", m.Target.Host.Name, st.Source, m.Source.ID())
	}
	tc, err := connect(ctx, m.Target.Host, m.Target.URI, m.log(), connectOptions{})
	if err != nil {
		return nil, err
	}
	defer tc.Close(ctx)
	if err := ensureWritable(ctx, tc, m.Target.Host.Name); err != nil {
		return nil, err
	}
	res := &MoveResult{Sums: map[string]Sums{}}
	m.progress().Begin()
	for _, db := range m.Databases {
		if err := m.moveDB(ctx, store, st, tc, db, res); err != nil {
			return res, fmt.Errorf("move database %s: %w", db, err)
		}
	}
	return res, nil
}

// ensureWritable checks the target is a writable primary: a one-node
// replica set that was never initiated refuses writes.
func ensureWritable(ctx context.Context, c *dbConn, host string) error {
	raw, err := c.client.Database("admin").RunCommand(ctx, bson.D{{Key: "isMaster", Value: 1}}).Raw()
	if err != nil {
		return fmt.Errorf("database on %s: %w", host, err)
	}
	if ok, _ := raw.Lookup("ismaster").BooleanOK(); !ok {
		return fmt.Errorf("the database on %s is not a writable primary (is its replica set initiated?)", host)
	}
	return nil
}

// EnsurePrimary checks that the target database accepts writes and, when
// it does not and initiate is given (a one-node replica set never
// initiated), initiates it and waits up to a minute for it to become
// primary. changed says whether it initiated.
func EnsurePrimary(ctx context.Context, t *Target, initiate func(context.Context) error, log *slog.Logger) (changed bool, err error) {
	c, err := connect(ctx, t.Host, t.URI, logOrDiscard(log), connectOptions{})
	if err != nil {
		return false, err
	}
	defer c.Close(ctx)
	if ensureWritable(ctx, c, t.Host.Name) == nil {
		return false, nil
	}
	if initiate == nil {
		return false, ensureWritable(ctx, c, t.Host.Name)
	}
	if err := initiate(ctx); err != nil {
		return true, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err := ensureWritable(ctx, c, t.Host.Name)
		if err == nil || time.Now().After(deadline) {
			return true, err
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// quickCount is a collection's document count from collStats: metadata on
// MongoDB, a table count on FerretDB, where counting the documents reads
// them all (seconds per 10,000). verify counts every document anyway.
func quickCount(ctx context.Context, c *mongo.Collection) (int64, error) {
	if n, _, _, err := collStats(ctx, c.Database(), c.Name()); err == nil {
		return n, nil
	}
	return c.CountDocuments(ctx, bson.D{})
}

type targetColl struct {
	exists bool
	count  int64
}

func targetCollections(ctx context.Context, d *mongo.Database) (map[string]targetColl, error) {
	specs, err := listCollectionSpecs(ctx, d)
	if err != nil {
		return nil, err
	}
	out := map[string]targetColl{}
	for _, s := range specs {
		if s.Type == "view" || strings.HasPrefix(s.Name, "system.") {
			continue
		}
		n, err := quickCount(ctx, d.Collection(s.Name))
		if err != nil {
			return nil, fmt.Errorf("count %s.%s on the target: %w", d.Name(), s.Name, err)
		}
		out[s.Name] = targetColl{exists: true, count: n}
	}
	return out, nil
}

// countingReader counts stream bytes for the progress line.
type countingReader struct {
	r io.Reader
	p *Progress
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.p.Raw(n)
	return n, err
}

// resumable returns the collections an earlier run finished whose target
// count still matches, and the collections lghsctl owns on the target.
func resumable(st *DataState, db string, tcolls map[string]targetColl) (done []string, ours map[string]bool) {
	ours = map[string]bool{}
	for _, name := range st.names(db) {
		cs := st.lookup(db, name)
		ours[name] = true
		tc := tcolls[name]
		if (cs.Status == StatusCopied || cs.Status == StatusVerified) && cs.Source != nil && tc.exists && tc.count == cs.Source.Count {
			done = append(done, name)
		}
	}
	return done, ours
}

func (m *Move) moveDB(ctx context.Context, store *stateStore, st *DataState, tc *dbConn, db string, res *MoveResult) error {
	tdb := tc.client.Database(db)
	tcolls, err := targetCollections(ctx, tdb)
	if err != nil {
		return err
	}
	done, ours := resumable(st, db, tcolls)
	var foreign []string
	for name, c := range tcolls {
		if !ours[name] && c.count > 0 {
			foreign = append(foreign, name)
		}
	}
	sort.Strings(foreign)
	if len(foreign) > 0 && !m.Drop {
		return &TargetNotEmptyError{Host: m.Target.Host.Name, DB: db, Collections: foreign}
	}
	for _, name := range done {
		res.Resumed = append(res.Resumed, db+"."+name)
		m.progress().Done(name)
	}

	rc, err := m.Source.Dump(ctx, db, done)
	if err != nil {
		return fmt.Errorf("start %s: %w", m.Source.Name(), err)
	}
	defer rc.Close()
	// Up to 32 MiB read ahead: the old host keeps dumping while the
	// target digests a burst of one collection.
	ra := newReadAhead(rc, 32, 1<<20)
	defer ra.Close()
	counter := &countingReader{r: ra, p: m.progress()}
	defer func() { res.StreamBytes += counter.n }()
	var stream io.Reader = counter
	if m.Archive != nil {
		af, err := m.Archive(db)
		if err != nil {
			return err
		}
		defer af.Close()
		stream = io.TeeReader(stream, af)
	}
	br := bufio.NewReaderSize(stream, 1<<20)
	gz := false
	if b, err := br.Peek(2); err == nil && b[0] == 0x1f && b[1] == 0x8b {
		gz = true
	}

	// The mongorestore mode gets the raw bytes as they are parsed, once
	// the prelude has passed the checks below (until then they are held).
	var parsed io.Reader = br
	var gate *gateWriter
	var restoreIn *io.PipeWriter
	restoreErr := make(chan error, 1)
	rctx, cancelRestore := context.WithCancel(ctx)
	defer cancelRestore()
	if m.Target.mode() == RestoreMongorestore {
		gate = &gateWriter{}
		parsed = io.TeeReader(br, gate)
	}

	ar, err := archive.NewReader(parsed)
	if err != nil {
		return fmt.Errorf("read the stream from %s: %w", m.Source.Name(), err)
	}
	nss := ar.Namespaces()
	leftOut := map[int]bool{}
	var metas = make([]archive.Metadata, len(nss))
	inStream := map[string]bool{}
	doneSet := map[string]bool{}
	for _, n := range done {
		doneSet[n] = true
	}
	for i, ns := range nss {
		if ns.DB != db {
			leftOut[i] = true
			m.warn("%s left out: not in database %s", ns.Name(), db)
			continue
		}
		if doneSet[ns.Collection] {
			leftOut[i] = true // copied by an earlier run; the source could not leave it out
			continue
		}
		if why := skipNamespace(ns.Collection, ns.Type); why != "" {
			leftOut[i] = true
			m.warn("%s left out: %s", ns.Name(), why)
			continue
		}
		md, err := archive.ParseMetadata(ns.Metadata)
		if err != nil {
			return fmt.Errorf("%s: %w", ns.Name(), err)
		}
		metas[i] = md
		inStream[ns.Collection] = true
	}

	// Every check passed: record the source, then change the target.
	var copying []string
	if err := store.update(ctx, st, func(st *DataState) {
		st.Source = m.Source.ID()
		for i, ns := range nss {
			if leftOut[i] {
				continue
			}
			cs := st.coll(db, ns.Collection)
			*cs = CollState{Status: StatusCopying, Updated: store.now().UTC()}
			copying = append(copying, ns.Collection)
		}
	}); err != nil {
		return err
	}
	if gate != nil {
		pr, pw := io.Pipe()
		restoreIn = pw
		cmd := m.Target.RestoreCommand(db, gz) + " --nsExclude " + q(db+".system.*")
		for _, n := range done {
			cmd += " --nsExclude " + q(db+"."+n)
		}
		go func() {
			err := m.Target.Host.Shell.Stream(rctx, cmd, pr, nil)
			pr.CloseWithError(errors.New("mongorestore exited"))
			restoreErr <- err
		}()
		if err := gate.open(pw); err != nil {
			pw.CloseWithError(err)
			return fmt.Errorf("mongorestore on %s: %w", m.Target.Host.Name, <-restoreErr)
		}
	}
	if m.Drop {
		for name := range tcolls {
			if !ours[name] && !inStream[name] {
				if err := tdb.Collection(name).Drop(ctx); err != nil {
					return fmt.Errorf("drop %s.%s on the target: %w", db, name, err)
				}
				m.log().Info("dropped target collection", slog.String("collection", db+"."+name))
			}
		}
	}

	sctx, cancelSink := context.WithCancel(ctx)
	defer cancelSink()
	var sumsMu sync.Mutex
	sums := map[int]Sums{}
	crcs := map[int]uint64{}
	var finishErrs []error
	finish := func(ns int, skipped []SkippedIndex, ferr error) {
		name := nss[ns].Collection
		sumsMu.Lock()
		s := sums[ns]
		crc := crcs[ns]
		sumsMu.Unlock()
		if ferr == nil {
			n, err := quickCount(sctx, tdb.Collection(name))
			switch {
			case err != nil:
				ferr = fmt.Errorf("count %s.%s on the target: %w", db, name, err)
			case n != s.Count:
				ferr = fmt.Errorf("%s.%s: the target has %d documents after the copy, the stream had %d", db, name, n, s.Count)
			}
		}
		if ferr != nil {
			sumsMu.Lock()
			finishErrs = append(finishErrs, ferr)
			sumsMu.Unlock()
			return
		}
		var defs []IndexDef
		for _, sp := range metas[ns].Indexes {
			if d, err := normalizeIndex(sp); err == nil {
				defs = append(defs, d)
			}
		}
		for _, sk := range skipped {
			m.warn("%s.%s: index %s not created on the target: %s", db, name, sk.Index.Name, sk.Reason)
		}
		err := store.update(ctx, st, func(st *DataState) {
			cs := st.coll(db, name)
			*cs = CollState{Status: StatusCopied, Source: &s, CRC: fmt.Sprintf("%016x", crc), Indexes: defs, SkippedIndexes: skipped, Updated: store.now().UTC()}
			res.Copied = append(res.Copied, db+"."+name)
			res.Sums[db+"."+name] = s
		})
		if err != nil {
			sumsMu.Lock()
			finishErrs = append(finishErrs, err)
			sumsMu.Unlock()
		}
		m.progress().Done(name)
	}

	var sink *insertSink
	if restoreIn == nil {
		sink = newInsertSink(sctx, tdb, m.Target, m.log(), finish)
		for i, ns := range nss {
			if leftOut[i] {
				continue
			}
			warns, err := sink.prepare(ctx, i, ns, metas[i], tcolls[ns.Collection].exists)
			if err != nil {
				return err
			}
			for _, w := range warns {
				m.warn("%s", w)
			}
		}
	}

	summers := make([]*summer, len(nss))
	for i, ns := range nss {
		summers[i] = newSummer(ns.Collection)
	}
	ended := map[int]bool{}
	var loopErr error
	for {
		ev, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			loopErr = fmt.Errorf("read the stream from %s: %w", m.Source.Name(), err)
			break
		}
		if leftOut[ev.NS] {
			continue
		}
		name := nss[ev.NS].Collection
		switch ev.Kind {
		case archive.Document:
			if err := summers[ev.NS].add(ev.Doc); err != nil {
				loopErr = fmt.Errorf("%s.%s: %w", db, name, err)
				break
			}
			m.progress().Doc(name, len(ev.Doc))
			if sink != nil {
				if err := sink.Document(ev.NS, ev.Doc); err != nil {
					loopErr = err
				}
			}
		case archive.End:
			s := summers[ev.NS].sum()
			if summers[ev.NS].duplicateIDs() {
				loopErr = fmt.Errorf("%s.%s: the stream holds two documents with the same _id", db, name)
				break
			}
			summers[ev.NS] = nil // free the digests
			sumsMu.Lock()
			sums[ev.NS] = s
			crcs[ev.NS] = ar.Stats(ev.NS).CRC
			sumsMu.Unlock()
			ended[ev.NS] = true
			if sink != nil {
				loopErr = sink.End(ev.NS)
			}
		}
		if loopErr != nil {
			break
		}
	}

	if sink != nil {
		if loopErr != nil {
			if ctx.Err() != nil {
				cancelSink()
				sink.Abort()
			} else {
				sink.AbortUnfinished(loopErr)
			}
			return loopErr
		}
		if err := sink.Wait(); err != nil {
			return err
		}
		return errors.Join(finishErrs...)
	}

	// mongorestore: the tool reads to the end, then restores what is left
	// and builds indexes; its exit says whether it all went in.
	if loopErr != nil {
		restoreIn.CloseWithError(loopErr)
		cancelRestore()
		<-restoreErr
		m.recoverCounts(nss, ended, finish)
		return loopErr
	}
	restoreIn.Close()
	if err := <-restoreErr; err != nil {
		m.recoverCounts(nss, ended, finish)
		return fmt.Errorf("mongorestore on %s: %w", m.Target.Host.Name, err)
	}
	for i := range nss {
		if !leftOut[i] {
			finish(i, nil, nil)
		}
	}
	return errors.Join(finishErrs...)
}

// recoverCounts marks as copied, after a failed mongorestore run, the
// collections whose stream ended and whose target count matches (finish
// checks the count and only records a match): a re-run resumes after
// them.
func (m *Move) recoverCounts(nss []archive.Namespace, ended map[int]bool, finish func(int, []SkippedIndex, error)) {
	for i := range nss {
		if ended[i] {
			finish(i, nil, nil)
		}
	}
}

// gateWriter holds what is written until open, then forwards it all.
type gateWriter struct {
	buf []byte
	w   io.Writer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if g.w == nil {
		g.buf = append(g.buf, p...)
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gateWriter) open(w io.Writer) error {
	g.w = w
	_, err := w.Write(g.buf)
	g.buf = nil
	return err
}
