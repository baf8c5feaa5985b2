package migrate

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lghs/lghsctl/internal/lab/labdb"
)

const rcDB = "rocketchat"

// seeded starts a lab database holding a generated Rocket.Chat-like
// database.
func seeded(t *testing.T, shape labdb.Shape) *labdb.Server {
	t.Helper()
	srv := startDB(t)
	if err := labdb.Generate(testCtx(t), client(t, srv.URI), rcDB, shape); err != nil {
		t.Fatal(err)
	}
	return srv
}

// sourceFingerprint is every collection's sums on a database, to prove
// it did not change.
func sourceFingerprint(t *testing.T, uri string) map[string]Sums {
	t.Helper()
	ss, err := targetSideSums(testCtx(t), client(t, uri).Database(rcDB), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ss.sums
}

func driverMove(src, dst *labdb.Server, stateDir string) *Move {
	return &Move{
		Source:    &DriverSource{Host: Local("old"), URI: src.URI},
		Target:    &Target{Host: Local("new"), URI: dst.URI},
		Databases: []string{rcDB},
		StateDir:  stateDir,
	}
}

func verifyOf(m *Move) *Verify {
	return &Verify{Source: m.Source, Target: m.Target, Databases: m.Databases, StateDir: m.StateDir}
}

func loadState(t *testing.T, dir string) *DataState {
	t.Helper()
	st, err := newStateStore(Local("new"), dir).loadData(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDriverMoveVerifiesAndAChangedTargetDocumentFailsVerifyNamingTheCollection
// is the first acceptance item on loopback: a generated LgHS-like
// database moved by the driver source and target verifies equal; one
// message changed on the target makes verify fail naming
// rocketchat.rocketchat_message (and only it); the source never changes;
// re-running data copies that one collection again and verify passes.
func TestDriverMoveVerifiesAndAChangedTargetDocumentFailsVerifyNamingTheCollection(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	dst := startDB(t)
	before := sourceFingerprint(t, src.URI)
	mv := driverMove(src, dst, t.TempDir())
	res, err := mv.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copied) != 9 {
		t.Fatalf("copied %v", res.Copied)
	}
	rep, err := verifyOf(mv).Run(ctx)
	if err != nil {
		t.Fatalf("verify after the move: %v", err)
	}
	if len(rep.Equal) != 9 {
		t.Errorf("verify found %d equal collections, want 9", len(rep.Equal))
	}
	for _, n := range loadState(t, mv.StateDir).names(rcDB) {
		if s := loadState(t, mv.StateDir).lookup(rcDB, n).Status; s != StatusVerified {
			t.Errorf("%s is %s after verify", n, s)
		}
	}

	// One document changed on the target.
	msgs := client(t, dst.URI).Database(rcDB).Collection("rocketchat_message")
	var one bson.Raw
	if one, err = msgs.FindOne(ctx, bson.D{}).Raw(); err != nil {
		t.Fatal(err)
	}
	if _, err := msgs.UpdateOne(ctx, bson.D{{Key: "_id", Value: one.Lookup("_id")}}, bson.D{{Key: "$set", Value: bson.D{{Key: "msg", Value: "edited on the new server"}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = verifyOf(mv).Run(ctx)
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("verify after the edit: %v, want a VerifyError", err)
	}
	if len(ve.Mismatches) != 1 || ve.Mismatches[0].Collection != "rocketchat.rocketchat_message" || ve.Mismatches[0].What != "content hash differs" {
		t.Fatalf("mismatches %v", ve.Mismatches)
	}
	if !strings.Contains(err.Error(), "rocketchat.rocketchat_message: content hash differs (source ") {
		t.Errorf("message %q does not name the collection", err)
	}
	if st := loadState(t, mv.StateDir).lookup(rcDB, "rocketchat_message").Status; st != StatusMismatch {
		t.Errorf("state %s, want mismatch", st)
	}

	// Re-running the move copies that collection only.
	res, err = mv.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Copied, []string{"rocketchat.rocketchat_message"}) || len(res.Resumed) != 8 {
		t.Fatalf("re-run copied %v, resumed %v", res.Copied, res.Resumed)
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatalf("verify after the re-run: %v", err)
	}
	sameJSON(t, "source sums before and after", sourceFingerprint(t, src.URI), before)
}

// cutSource fails its stream after a number of bytes, like an SSH session
// whose link was cut.
type cutSource struct {
	Source
	after int64
}

var errLinkCut = errors.New("link cut (test)")

func (c *cutSource) Dump(ctx context.Context, db string, skip []string) (io.ReadCloser, error) {
	rc, err := c.Source.Dump(ctx, db, skip)
	if err != nil {
		return nil, err
	}
	return &cutReader{ReadCloser: rc, left: c.after}, nil
}

type cutReader struct {
	io.ReadCloser
	left int64
}

func (c *cutReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errLinkCut
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.ReadCloser.Read(b)
	c.left -= int64(n)
	return n, err
}

// TestCutHalfWayThenRerunResumesPerCollectionWithoutDuplicates: the
// stream is cut half way; the state then holds finished and unfinished
// collections; the re-run copies only the unfinished ones (dropping
// their partial content) and ends verified, with no duplicate (counts and
// hashes equal on both sides).
func TestCutHalfWayThenRerunResumesPerCollectionWithoutDuplicates(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	dst := startDB(t)
	mv := driverMove(src, dst, t.TempDir())

	// Size of the whole stream, to cut it in the middle.
	full, err := mv.Source.Dump(ctx, rcDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	size, err := io.Copy(io.Discard, full)
	full.Close()
	if err != nil {
		t.Fatal(err)
	}
	cut := *mv
	cut.Source = &cutSource{Source: mv.Source, after: size / 2}
	_, err = cut.Run(ctx)
	if !errors.Is(err, errLinkCut) {
		t.Fatalf("cut move: %v, want the cut", err)
	}
	st := loadState(t, mv.StateDir)
	var copied, copying []string
	for _, n := range st.names(rcDB) {
		switch st.lookup(rcDB, n).Status {
		case StatusCopied:
			copied = append(copied, rcDB+"."+n)
		case StatusCopying:
			copying = append(copying, rcDB+"."+n)
		}
	}
	if len(copied) == 0 || len(copying) == 0 {
		t.Fatalf("after the cut: copied %v, copying %v; want some of each", copied, copying)
	}
	res, err := mv.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.Resumed)
	sort.Strings(res.Copied)
	if !slices.Equal(res.Resumed, copied) || !slices.Equal(res.Copied, copying) {
		t.Fatalf("re-run resumed %v copied %v; want resumed %v copied %v", res.Resumed, res.Copied, copied, copying)
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// flakyDialer closes every connection it carries once, after a number of
// bytes written through all of them, like a link that drops while
// inserts are in flight.
type flakyDialer struct {
	net.Dialer
	left  atomic.Int64
	mu    sync.Mutex
	conns []net.Conn
	cuts  atomic.Int32
}

type flakyConn struct {
	net.Conn
	d *flakyDialer
}

func (c *flakyConn) Write(b []byte) (int, error) {
	if c.d.left.Add(-int64(len(b))) < 0 && c.d.cuts.CompareAndSwap(0, 1) {
		c.d.mu.Lock()
		for _, x := range c.d.conns {
			x.Close()
		}
		c.d.mu.Unlock()
		return 0, errLinkCut
	}
	return c.Conn.Write(b)
}

func (d *flakyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.Dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return &flakyConn{Conn: c, d: d}, nil
}

// TestTargetLinkDropDuringInsertsIsRetriedWithoutDuplicates: the tunnel's
// connections drop while batches are in flight; batches are sent again
// (documents that had arrived come back as duplicate-key errors, ignored)
// and the move verifies with the same counts and hashes.
func TestTargetLinkDropDuringInsertsIsRetriedWithoutDuplicates(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	dst := startDB(t)
	mv := driverMove(src, dst, t.TempDir())
	fd := &flakyDialer{}
	fd.left.Store(2 << 20)
	mv.Target.Host.Dial = fd
	if _, err := mv.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if fd.cuts.Load() != 1 {
		t.Fatalf("the link was never cut")
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveCopyRestoresWithTheEnginesReaderAndVerifiesEqual: the
// --archive copy written during a move (plain and gzip) restores through
// ArchiveSource into an empty database, which verifies equal to the
// original source.
func TestArchiveCopyRestoresWithTheEnginesReaderAndVerifiesEqual(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	for _, name := range []string{"copy.archive", "copy.archive.gz"} {
		t.Run(name, func(t *testing.T) {
			dst := startDB(t)
			path := filepath.Join(t.TempDir(), name)
			mv := driverMove(src, dst, t.TempDir())
			mv.Archive = func(db string) (io.WriteCloser, error) { return createArchive(path) }
			if _, err := mv.Run(ctx); err != nil {
				t.Fatal(err)
			}
			again := startDB(t)
			re := &Move{Source: &ArchiveSource{Path: path}, Target: &Target{Host: Local("again"), URI: again.URI}, Databases: []string{rcDB}, StateDir: t.TempDir()}
			if _, err := re.Run(ctx); err != nil {
				t.Fatal(err)
			}
			v := &Verify{Source: mv.Source, Target: re.Target, Databases: []string{rcDB}, StateDir: re.StateDir}
			if _, err := v.Run(ctx); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(path)
			if gz := len(raw) > 2 && raw[0] == 0x1f && raw[1] == 0x8b; gz != strings.HasSuffix(name, ".gz") {
				t.Errorf("%s: gzip = %v", name, gz)
			}
		})
	}
}

// createArchive is what the CLI's --archive does: a file, gzip when named .gz.
func createArchive(path string) (io.WriteCloser, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	return &gzFile{Writer: gzip.NewWriter(f), f: f}, nil
}

type gzFile struct {
	*gzip.Writer
	f *os.File
}

func (g *gzFile) Close() error {
	if err := g.Writer.Close(); err != nil {
		return err
	}
	return g.f.Close()
}

// TestNonEmptyTargetStopsBeforeAnyChangeUnlessDrop: a target database
// holding someone else's data stops the move before anything changes
// (the error lists the collections); with Drop the move replaces it.
func TestNonEmptyTargetStopsBeforeAnyChangeUnlessDrop(t *testing.T) {
	ctx := testCtx(t)
	src := seeded(t, labdb.SmallShape)
	dst := startDB(t)
	tdb := client(t, dst.URI).Database(rcDB)
	if _, err := tdb.Collection("rocketchat_message").InsertOne(ctx, bson.D{{Key: "_id", Value: "fresh-install"}, {Key: "msg", Value: "welcome"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tdb.Collection("leftover").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	mv := driverMove(src, dst, t.TempDir())
	_, err := mv.Run(ctx)
	var ne *TargetNotEmptyError
	if !errors.As(err, &ne) || !slices.Equal(ne.Collections, []string{"leftover", "rocketchat_message"}) {
		t.Fatalf("move into a non-empty target: %v", err)
	}
	if n, _ := tdb.Collection("rocketchat_message").CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("the target changed: %d messages", n)
	}
	if _, err := os.Stat(filepath.Join(mv.StateDir, "data.json")); err == nil {
		t.Errorf("state written although nothing may change")
	}
	mv.Drop = true
	if _, err := mv.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := tdb.ListCollectionNames(ctx, bson.D{{Key: "name", Value: "leftover"}}); len(names) != 0 {
		t.Errorf("leftover not dropped with --drop")
	}
	if _, err := verifyOf(mv).Run(ctx); err != nil {
		t.Fatal(err)
	}
}
