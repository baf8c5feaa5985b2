package migrate

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lghs/lghsctl/internal/report"
)

func rawValue(t *testing.T, v any) bson.RawValue {
	t.Helper()
	raw, err := bson.Marshal(bson.D{{Key: "_id", Value: v}})
	if err != nil {
		t.Fatal(err)
	}
	return bson.Raw(raw).Lookup("_id")
}

// TestIDKeyOrdersLikeMongoDBsIDSort: numbers by value across types,
// strings byte-wise (upper case first, a prefix first), ObjectIds
// byte-wise, and types in MongoDB's order.
func TestIDKeyOrdersLikeMongoDBsIDSort(t *testing.T) {
	oid := func(b byte) bson.ObjectID { var o bson.ObjectID; o[11] = b; o[0] = 1; return o }
	want := []any{
		nil,
		int64(-5), -1.5, int32(0), int32(1), 1.5, int64(1 << 40),
		"GENERAL", "a", "a.b", "ab", "rocket.cat", "é",
		bson.D{{Key: "x", Value: 1}},
		oid(1), oid(2),
		false, true,
		time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	keys := make([]string, len(want))
	for i, v := range want {
		keys[i] = IDKey(rawValue(t, v))
	}
	shuffled := slices.Clone(keys)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.Sort(shuffled)
	if !slices.Equal(shuffled, keys) {
		for i := range keys {
			if shuffled[i] != keys[i] {
				t.Fatalf("position %d: sorted order differs from MongoDB's (first difference at %v)", i, want[i])
			}
		}
	}
	if IDKey(rawValue(t, int32(1))) == IDKey(rawValue(t, int64(1))) {
		t.Error("equal numbers of different types must still get distinct keys")
	}
}

// TestContentHashIgnoresOrderButNotContent: the same documents in another
// order sum equal; one changed byte does not.
func TestContentHashIgnoresOrderButNotContent(t *testing.T) {
	var docs [][]byte
	for i := range 50 {
		b, _ := bson.Marshal(bson.D{{Key: "_id", Value: string(rune('A' + i))}, {Key: "n", Value: i}})
		docs = append(docs, b)
	}
	sum := func(ds [][]byte) Sums {
		s := newSummer("c")
		for _, d := range ds {
			if err := s.add(d); err != nil {
				t.Fatal(err)
			}
		}
		return s.sum()
	}
	a := sum(docs)
	rev := slices.Clone(docs)
	slices.Reverse(rev)
	if b := sum(rev); b != a {
		t.Fatalf("order changed the sums: %+v vs %+v", a, b)
	}
	changed := slices.Clone(docs)
	changed[7] = slices.Clone(changed[7])
	changed[7][len(changed[7])-2] ^= 1
	if c := sum(changed); c.Hash == a.Hash || c.Count != a.Count {
		t.Fatalf("a changed byte kept the hash")
	}
}

func TestGridFSTotalsAreSummedFromFilesAndChunks(t *testing.T) {
	files, chunks := newSummer("up.files"), newSummer("up.chunks")
	for i, l := range []int64{0, 10, 300000} {
		b, _ := bson.Marshal(bson.D{{Key: "_id", Value: i}, {Key: "length", Value: l}})
		files.add(b)
	}
	for i, n := range []int{10, 261120, 38880} {
		b, _ := bson.Marshal(bson.D{{Key: "_id", Value: i}, {Key: "data", Value: bson.Binary{Data: make([]byte, n)}}})
		chunks.add(b)
	}
	if f := files.sum().GridFS; *f != (GridFSSums{Files: 3, TotalLength: 300010, EmptyFiles: 1}) {
		t.Errorf("files: %+v", *f)
	}
	if c := chunks.sum().GridFS; *c != (GridFSSums{Chunks: 3, DataBytes: 300010}) {
		t.Errorf("chunks: %+v", *c)
	}
}

// TestIndexDefinitionsCompareWhatMatters: v, ns and background never
// make a difference; numeric direction types do not either; unique,
// sparse, TTL and partial filters do.
func TestIndexDefinitionsCompareWhatMatters(t *testing.T) {
	def := func(d bson.D) IndexDef {
		raw, _ := bson.Marshal(d)
		x, err := normalizeIndex(raw)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	legacy := def(bson.D{{Key: "v", Value: 1}, {Key: "key", Value: bson.D{{Key: "rid", Value: 1.0}, {Key: "ts", Value: int64(-1)}}}, {Key: "name", Value: "rid_1_ts_-1"}, {Key: "ns", Value: "rocketchat.rocketchat_message"}, {Key: "background", Value: true}, {Key: "unique", Value: false}})
	current := def(bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "rid", Value: int32(1)}, {Key: "ts", Value: int32(-1)}}}, {Key: "name", Value: "rid_1_ts_-1"}})
	if !legacy.Equal(current) {
		t.Fatalf("%s != %s", legacy, current)
	}
	if got := current.String(); got != `rid_1_ts_-1 {"rid":1,"ts":-1}` {
		t.Errorf("String() = %s", got)
	}
	for _, d := range []bson.D{
		{{Key: "key", Value: bson.D{{Key: "rid", Value: 1}, {Key: "ts", Value: 1}}}, {Key: "name", Value: "rid_1_ts_-1"}},
		{{Key: "key", Value: bson.D{{Key: "rid", Value: 1}, {Key: "ts", Value: -1}}}, {Key: "name", Value: "rid_1_ts_-1"}, {Key: "unique", Value: true}},
		{{Key: "key", Value: bson.D{{Key: "rid", Value: 1}, {Key: "ts", Value: -1}}}, {Key: "name", Value: "rid_1_ts_-1"}, {Key: "sparse", Value: true}},
		{{Key: "key", Value: bson.D{{Key: "rid", Value: 1}, {Key: "ts", Value: -1}}}, {Key: "name", Value: "rid_1_ts_-1"}, {Key: "expireAfterSeconds", Value: 3600}},
		{{Key: "key", Value: bson.D{{Key: "rid", Value: 1}, {Key: "ts", Value: -1}}}, {Key: "name", Value: "rid_1_ts_-1"}, {Key: "partialFilterExpression", Value: bson.D{{Key: "t", Value: "c"}}}},
	} {
		if x := def(d); x.Equal(current) {
			t.Errorf("%s should differ from %s", x, current)
		}
	}
	raw, _ := bson.Marshal(bson.D{{Key: "v", Value: 1}, {Key: "key", Value: bson.D{{Key: "a", Value: 1}}}, {Key: "name", Value: "a_1"}, {Key: "ns", Value: "x.y"}, {Key: "background", Value: true}, {Key: "dropDups", Value: true}, {Key: "sparse", Value: true}})
	spec, _ := createSpec(raw)
	if len(spec) != 3 || spec[0].Key != "key" || spec[1].Key != "name" || spec[2].Key != "sparse" {
		t.Errorf("createSpec kept %v", spec)
	}
}

func TestParseManifestReadsSizesAndEscapedNames(t *testing.T) {
	out := "12 ./a/photo.jpg\x000 ./b/empty\x005 ./c/new\nline\x00\n--\n" +
		strings.Repeat("1", 64) + "  ./a/photo.jpg\n" +
		strings.Repeat("2", 64) + "  ./b/empty\n" +
		`\` + strings.Repeat("3", 64) + `  ./c/new\nline` + "\n"
	files, err := parseManifest([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []FileEntry{{"a/photo.jpg", 12, strings.Repeat("1", 64)}, {"b/empty", 0, strings.Repeat("2", 64)}, {"c/new\nline", 5, strings.Repeat("3", 64)}}
	if !slices.Equal(files, want) {
		t.Fatalf("got %+v", files)
	}
	if _, err := parseManifest([]byte("garbage")); err == nil {
		t.Error("garbage accepted")
	}
}

func TestParseStatsSkipsShellNoise(t *testing.T) {
	out := "MongoDB shell version v3.4.24\nconnecting to: mongodb://127.0.0.1:27017/rocketchat\n" +
		`{"name":"users","type":"collection","count":200,"size":148395,"avgObjSize":741}` + "\n" +
		`{"name":"migrations","type":"collection","count":1,"size":79,"avgObjSize":79}` + "\n"
	infos, err := parseStats([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Name != "migrations" || infos[1].Count != 200 || infos[1].AvgObjSize != 741 {
		t.Fatalf("%+v", infos)
	}
}

// fakeMongo answers one legacy isMaster with the given wire versions.
func fakeMongo(t *testing.T, minW, maxW int32) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [16]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				body := make([]byte, binary.LittleEndian.Uint32(hdr[:])-16)
				io.ReadFull(c, body)
				doc, _ := bson.Marshal(bson.D{{Key: "ismaster", Value: true}, {Key: "minWireVersion", Value: minW}, {Key: "maxWireVersion", Value: maxW}, {Key: "ok", Value: 1.0}})
				var msg []byte
				msg = binary.LittleEndian.AppendUint32(msg, uint32(16+20+len(doc)))
				msg = binary.LittleEndian.AppendUint32(msg, 7)
				msg = append(msg, hdr[4:8]...)
				msg = binary.LittleEndian.AppendUint32(msg, opReply)
				msg = binary.LittleEndian.AppendUint32(msg, 8) // AwaitCapable
				msg = binary.LittleEndian.AppendUint64(msg, 0)
				msg = binary.LittleEndian.AppendUint32(msg, 0)
				msg = binary.LittleEndian.AppendUint32(msg, 1)
				msg = append(msg, doc...)
				c.Write(msg)
			}()
		}
	}()
	return l.Addr().String()
}

// TestOldServerGetsAClearWireVersionMessage: a 3.6 server (wire 6) is
// refused before any driver handshake, with what to do instead; a 4.2
// one (wire 8) passes the check. FerretDB reports 21, so only this test
// exercises the refusal.
func TestOldServerGetsAClearWireVersionMessage(t *testing.T) {
	ctx := testCtx(t)
	addr := fakeMongo(t, 0, 6)
	_, err := connect(ctx, Local("escandalo"), "mongodb://"+addr, nil, connectOptions{})
	var we *WireVersionError
	if !errors.As(err, &we) {
		t.Fatalf("err = %v, want a WireVersionError", err)
	}
	want := "the database on escandalo speaks wire version 6 (MongoDB 3.6): lghsctl's Go driver needs 8 (MongoDB 4.2) to 25 (MongoDB 8.0); read it with its own mongodump instead (migrate.source: mongodump)"
	if err.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", err, want)
	}
	min, max, err := wireVersion(ctx, Local("x").Dial, fakeMongo(t, 0, 8))
	if err != nil || min != 0 || max != 8 {
		t.Errorf("wire 8: %d %d %v", min, max, err)
	}
}

func TestCommandLinesQuoteEverythingFromTheInventory(t *testing.T) {
	s := &MongodumpSource{URI: "mongodb://127.0.0.1:27017", Command: "/opt/mongo tools/mongodump"}
	got, err := s.DumpCommand("rocket'chat", []string{"b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := `'/opt/mongo tools/mongodump' --host '127.0.0.1' --port '27017' --db 'rocket'\''chat' --archive --excludeCollection 'a' --excludeCollection 'b'`
	if got != want {
		t.Errorf("dump:\n got %s\nwant %s", got, want)
	}
	tg := &Target{Exec: []string{"docker", "compose", "-p", "chatlghsbe", "-f", "/srv/chat.lghs.be/compose.yaml", "exec", "-T", "mongo"}}
	if got, want := tg.RestoreCommand("rocketchat", true), `'docker' 'compose' '-p' 'chatlghsbe' '-f' '/srv/chat.lghs.be/compose.yaml' 'exec' '-T' 'mongo' 'mongorestore' --archive --drop --stopOnError --bypassDocumentValidation --numInsertionWorkersPerCollection=2 --nsInclude 'rocketchat.*' --gzip`; got != want {
		t.Errorf("restore:\n got %s\nwant %s", got, want)
	}
}

type progressSink struct {
	report.Reporter
	lines []string
}

func (p *progressSink) Progress(host, text string) { p.lines = append(p.lines, host+": "+text) }

func TestProgressLineShowsTotalsRatesAndETAPerCollection(t *testing.T) {
	p := NewProgress(&progressSink{}, "lghs-chat")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.now = func() time.Time { return now }
	p.Expect("rocketchat_message", 1000, 10<<20)
	p.Expect("rocketchat_uploads.chunks", 100, 90<<20)
	p.Begin()
	for range 500 {
		p.Doc("rocketchat_message", 10<<10)
	}
	p.Doc("rocketchat_uploads.chunks", 9<<20)
	p.Raw(15 << 20)
	now = now.Add(10 * time.Second)
	got := p.Line()
	want := "13.9 MiB/100.0 MiB 1.4 MiB/s ETA 1m02s (stream 15.0 MiB) | rocketchat_uploads.chunks 10% 1 docs 921.6 KiB/s ETA 1m30s, rocketchat_message 48% 500 docs 500.0 KiB/s ETA 10s"
	if got != want {
		t.Errorf("line:\n got %s\nwant %s", got, want)
	}
}
