package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lghs/lghsctl/migrate/archive"
)

// Restore modes of a Target.
const (
	// RestoreDriver: lghsctl inserts through a tunnel: collections in
	// parallel, unordered bulk inserts of about BatchBytes, indexes built
	// after each collection's data.
	RestoreDriver = "driver"
	// RestoreMongorestore: the stream is piped into mongorestore --archive
	// inside the database container; lghsctl still parses it on the way
	// for checksums and progress.
	RestoreMongorestore = "mongorestore"
)

// Target is the new server's database.
type Target struct {
	Host Host
	// URI of the database as the target host sees it (published on its
	// loopback by the compose stack).
	URI string
	// Mode is RestoreDriver (default) or RestoreMongorestore.
	Mode string
	// Exec is the command prefix that runs a command inside the database
	// container with stdin attached, e.g. docker compose -p chatlghsbe -f
	// /srv/chat.lghs.be/compose.yaml exec -T mongo (see appstack). Empty:
	// mongorestore runs on the host itself.
	Exec []string
	// Mongorestore is the tool's name inside the container (default
	// mongorestore); RestoreArgs are added to its command line (e.g.
	// --host/--port when the server is not on the container's
	// localhost:27017).
	Mongorestore string
	RestoreArgs  []string
	// Writers per collection (default 2), BatchBytes per insert (default
	// 2 MiB) and InFlight, the most insert batches under way at once across
	// all collections (default 4), of the driver mode. InFlight bounds
	// memory (each batch is held twice: as received and as marshalled) and
	// the write concurrency the target sees.
	Writers    int
	BatchBytes int
	InFlight   int
	// ReplyBytes sizes find batches when reading the target back
	// (default 8 MiB).
	ReplyBytes int64
}

func (t *Target) mode() string {
	if t.Mode == "" {
		return RestoreDriver
	}
	return t.Mode
}

// RestoreCommand is the mongorestore command line (mongorestore mode).
// --drop only drops the collections present in the stream, which the
// pre-flight has cleared (empty, lghsctl's own from an interrupted run,
// or --drop given); --stopOnError makes a refused document fatal instead
// of a count in the log.
func (t *Target) RestoreCommand(db string, gzip bool) string {
	tool := t.Mongorestore
	if tool == "" {
		tool = "mongorestore"
	}
	var parts []string
	for _, p := range t.Exec {
		parts = append(parts, q(p))
	}
	parts = append(parts, q(tool), "--archive", "--drop", "--stopOnError", "--bypassDocumentValidation",
		"--numInsertionWorkersPerCollection=2", "--nsInclude", q(db+".*"))
	if gzip {
		parts = append(parts, "--gzip")
	}
	for _, a := range t.RestoreArgs {
		parts = append(parts, q(a))
	}
	return strings.Join(parts, " ")
}

// insertSink restores parsed documents through the driver.
type insertSink struct {
	ctx     context.Context
	db      *mongo.Database
	log     *slog.Logger
	writers int
	batch   int
	colls   map[int]*collSink
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	onDone  func(ns int, skipped []SkippedIndex, err error)
	indexes map[int][]bson.Raw
	names   map[int]string
	slots   chan struct{}
	pool    sync.Pool
}

type collSink struct {
	name    string
	coll    *mongo.Collection
	buf     []byte
	offs    []int
	queue   chan *batch
	closed  bool
	writers sync.WaitGroup
	mu      sync.Mutex
	err     error
}

func newInsertSink(ctx context.Context, db *mongo.Database, t *Target, log *slog.Logger, onDone func(int, []SkippedIndex, error)) *insertSink {
	w, b := t.Writers, t.BatchBytes
	if w <= 0 {
		w = 2
	}
	if b <= 0 {
		b = 2 << 20
	}
	inflight := t.InFlight
	if inflight <= 0 {
		inflight = 4
	}
	return &insertSink{ctx: ctx, db: db, log: log, writers: w, batch: b, colls: map[int]*collSink{}, onDone: onDone, indexes: map[int][]bson.Raw{}, names: map[int]string{},
		slots: make(chan struct{}, inflight)}
}

// prepare (re)creates a collection with the source's options and
// registers its indexes for after the data.
func (s *insertSink) prepare(ctx context.Context, ns int, nsp archive.Namespace, md archive.Metadata, exists bool) ([]string, error) {
	var warnings []string
	c := s.db.Collection(nsp.Collection)
	if exists {
		if err := c.Drop(ctx); err != nil {
			return nil, fmt.Errorf("drop %s.%s on the target: %w", s.db.Name(), nsp.Collection, err)
		}
	}
	cmd := bson.D{{Key: "create", Value: nsp.Collection}}
	if len(md.Options) > 0 {
		elems, _ := md.Options.Elements()
		for _, e := range elems {
			if e.Key() == "uuid" {
				continue
			}
			cmd = append(cmd, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	if err := s.db.RunCommand(ctx, cmd).Err(); err != nil {
		if len(cmd) == 1 {
			return nil, fmt.Errorf("create %s.%s on the target: %w", s.db.Name(), nsp.Collection, err)
		}
		// The target refused an option (FerretDB refuses most of them);
		// the documents matter more than the collection options.
		warnings = append(warnings, fmt.Sprintf("%s.%s created without its options (%s): %v", s.db.Name(), nsp.Collection, canonicalValue(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: md.Options}), err))
		if err := s.db.RunCommand(ctx, bson.D{{Key: "create", Value: nsp.Collection}}).Err(); err != nil {
			return nil, fmt.Errorf("create %s.%s on the target: %w", s.db.Name(), nsp.Collection, err)
		}
	}
	s.indexes[ns] = md.Indexes
	s.names[ns] = nsp.Collection
	return warnings, nil
}

func (s *insertSink) sink(ns int) *collSink {
	cs := s.colls[ns]
	if cs != nil {
		return cs
	}
	cs = &collSink{name: s.names[ns], coll: s.db.Collection(s.names[ns]), queue: make(chan *batch, 1)}
	s.colls[ns] = cs
	for range s.writers {
		cs.writers.Add(1)
		go func() {
			defer cs.writers.Done()
			for b := range cs.queue {
				if cs.failed() != nil {
					continue // drain
				}
				select {
				case s.slots <- struct{}{}:
				case <-s.ctx.Done():
					cs.fail(s.ctx.Err())
					continue
				}
				err := insertBatch(s.ctx, cs.coll, b.docs)
				<-s.slots
				s.release(b)
				if err != nil {
					cs.fail(err)
				}
			}
		}()
	}
	return cs
}

func (cs *collSink) fail(err error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.err == nil {
		cs.err = err
	}
}

func (cs *collSink) failed() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.err
}

// Document queues one document (copied) for its collection.
func (s *insertSink) Document(ns int, doc []byte) error {
	cs := s.sink(ns)
	if err := cs.failed(); err != nil {
		return fmt.Errorf("insert into %s.%s: %w", s.db.Name(), cs.name, err)
	}
	if cs.buf == nil {
		cs.buf = s.acquire()
	}
	cs.offs = append(cs.offs, len(cs.buf))
	cs.buf = append(cs.buf, doc...)
	if len(cs.buf) >= s.batch {
		return s.flush(cs)
	}
	return nil
}

// batch is a run of documents in one buffer, recycled after its insert.
type batch struct {
	buf  []byte
	docs [][]byte
}

func (s *insertSink) acquire() []byte {
	if b, ok := s.pool.Get().([]byte); ok {
		return b[:0]
	}
	return make([]byte, 0, s.batch+s.batch/4)
}

func (s *insertSink) release(b *batch) {
	if cap(b.buf) <= s.batch*2 {
		s.pool.Put(b.buf[:0]) //nolint:staticcheck // a slice header is fine here
	}
}

func (s *insertSink) flush(cs *collSink) error {
	if len(cs.offs) == 0 {
		return nil
	}
	b := &batch{buf: cs.buf, docs: make([][]byte, len(cs.offs))}
	for i, o := range cs.offs {
		end := len(cs.buf)
		if i+1 < len(cs.offs) {
			end = cs.offs[i+1]
		}
		b.docs[i] = cs.buf[o:end]
	}
	select {
	case cs.queue <- b:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	// The queued batch keeps its buffer; take another.
	cs.buf = nil
	cs.offs = cs.offs[:0:0]
	return nil
}

// End flushes a collection and finishes it in the background: wait for
// its inserts, build its indexes, then report through onDone.
func (s *insertSink) End(ns int) error {
	cs := s.sink(ns)
	if err := s.flush(cs); err != nil {
		return err
	}
	close(cs.queue)
	cs.closed = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		cs.writers.Wait()
		err := cs.failed()
		var skipped []SkippedIndex
		if err == nil {
			skipped, err = createIndexes(s.ctx, cs.coll, s.indexes[ns])
		}
		if err != nil {
			err = fmt.Errorf("%s.%s: %w", s.db.Name(), cs.name, err)
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
		}
		s.onDone(ns, skipped, err)
	}()
	return nil
}

// AbortUnfinished gives up the collections whose end was not seen (their
// writers drop what is queued) and waits for the others to finish: a
// collection complete in the stream is still recorded as copied after a
// cut, so a re-run skips it.
func (s *insertSink) AbortUnfinished(err error) {
	for _, cs := range s.colls {
		if !cs.closed {
			cs.fail(err)
			close(cs.queue)
			cs.closed = true
		}
	}
	for _, cs := range s.colls {
		cs.writers.Wait()
	}
	s.wg.Wait()
}

// Abort stops feeding (the caller cancels the sink's context first) and
// waits for the writers and finishers.
func (s *insertSink) Abort() {
	for _, cs := range s.colls {
		if !cs.closed {
			close(cs.queue)
			cs.closed = true
		}
	}
	for _, cs := range s.colls {
		cs.writers.Wait()
	}
	s.wg.Wait()
}

// Wait waits for every collection's finish and returns the first error.
func (s *insertSink) Wait() error {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// insertBatch inserts documents unordered. A batch cut by a network error
// is sent again; documents that did arrive the first time come back as
// duplicate-key errors (same _id, same content), which are ignored, so a
// retried batch never duplicates anything.
func insertBatch(ctx context.Context, c *mongo.Collection, docs [][]byte) error {
	batch := make([]any, len(docs))
	for i, d := range docs {
		batch[i] = bson.Raw(d)
	}
	opts := options.InsertMany().SetOrdered(false).SetBypassDocumentValidation(true)
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		_, err = c.InsertMany(ctx, batch, opts)
		if err == nil || onlyDuplicates(err) {
			return nil
		}
		if !isNetworkError(err) {
			return err
		}
	}
	return err
}

func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// createIndexes builds a collection's indexes after its data. It tries
// them all in one command, then one by one so that an index the target
// refuses (FerretDB: TTL, partial, text, collation...) is skipped and
// reported without losing the others.
func createIndexes(ctx context.Context, c *mongo.Collection, specs []bson.Raw) ([]SkippedIndex, error) {
	var all bson.A
	var defs []IndexDef
	var raw []bson.D
	for _, sp := range specs {
		def, err := normalizeIndex(sp)
		if err != nil {
			return nil, fmt.Errorf("index spec %s: %w", sp, err)
		}
		if def.Name == "_id_" {
			continue
		}
		cs, err := createSpec(sp)
		if err != nil {
			return nil, err
		}
		all = append(all, cs)
		defs = append(defs, def)
		raw = append(raw, cs)
	}
	if len(all) == 0 {
		return nil, nil
	}
	db := c.Database()
	if err := db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.Name()}, {Key: "indexes", Value: all}}).Err(); err == nil {
		return nil, nil
	} else if isNetworkError(err) || ctx.Err() != nil {
		return nil, fmt.Errorf("create indexes: %w", err)
	}
	var skipped []SkippedIndex
	for i, spec := range raw {
		err := db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.Name()}, {Key: "indexes", Value: bson.A{spec}}}).Err()
		if err == nil {
			continue
		}
		if isNetworkError(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("create index %s: %w", defs[i].Name, err)
		}
		skipped = append(skipped, SkippedIndex{Index: defs[i], Reason: err.Error()})
	}
	return skipped, nil
}
