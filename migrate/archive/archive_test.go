package archive

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// fixtures is shared/fixtures/mongo, next to the repository (read in
// place, never copied into it).
const fixtures = "../../../shared/fixtures/mongo"

type manifestFile struct {
	File   string            `json:"file"`
	Size   int64             `json:"size"`
	SHA256 string            `json:"sha256"`
	Gzip   bool              `json:"gzip"`
	Header map[string]string `json:"header"`
	NSs    []struct {
		Namespace string `json:"namespace"`
		Documents int64  `json:"documents"`
		Segments  int    `json:"segments"`
		CRC       string `json:"crc64_ecma"`
	} `json:"namespaces"`
}

func loadManifestFiles(t *testing.T) []manifestFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "rocketchat.manifest.json"))
	if err != nil {
		t.Fatalf("fixtures missing (they live in ../shared/fixtures/mongo): %v", err)
	}
	var m struct {
		Files []manifestFile `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 {
		t.Fatalf("manifest lists %d files, want 2", len(m.Files))
	}
	return m.Files
}

func readAll(t *testing.T, r *Reader) (docs map[int][][]byte) {
	t.Helper()
	docs = map[int][][]byte{}
	for {
		ev, err := r.Next()
		if err == io.EOF {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == Document {
			docs[ev.NS] = append(docs[ev.NS], bytes.Clone(ev.Doc))
		}
	}
}

// TestReaderReproducesFixtureManifestFiles parses both real mongodump
// archives (plain and gzip) and checks header, prelude order, and per
// namespace the document count, block count and CRC-64 against the
// manifest's files section.
func TestReaderReproducesFixtureManifestFiles(t *testing.T) {
	for _, mf := range loadManifestFiles(t) {
		t.Run(mf.File, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(fixtures, mf.File))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(raw)) != mf.Size || fmt.Sprintf("%x", sha256.Sum256(raw)) != mf.SHA256 {
				t.Fatalf("fixture file differs from its manifest entry")
			}
			r, err := NewReader(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if (r.gz != nil) != mf.Gzip {
				t.Errorf("gzip detected = %v, manifest says %v", r.gz != nil, mf.Gzip)
			}
			h := r.Header()
			got := map[string]string{"concurrent_collections": fmt.Sprint(h.ConcurrentCollections), "version": h.Version, "server_version": h.ServerVersion, "tool_version": h.ToolVersion}
			for k, v := range mf.Header {
				if got[k] != v {
					t.Errorf("header %s = %q, want %q", k, got[k], v)
				}
			}
			readAll(t, r)
			if len(r.Namespaces()) != len(mf.NSs) {
				t.Fatalf("%d namespaces, want %d", len(r.Namespaces()), len(mf.NSs))
			}
			for i, want := range mf.NSs {
				ns := r.Namespaces()[i]
				st := r.Stats(i)
				if ns.Name() != want.Namespace || st.Documents != want.Documents || st.Blocks != want.Segments || fmt.Sprintf("%016x", st.CRC) != want.CRC || !st.Ended {
					t.Errorf("namespace %d = %s docs=%d blocks=%d crc=%016x ended=%v, want %s docs=%d blocks=%d crc=%s",
						i, ns.Name(), st.Documents, st.Blocks, st.CRC, st.Ended, want.Namespace, want.Documents, want.Segments, want.CRC)
				}
				md, err := ParseMetadata(ns.Metadata)
				if err != nil {
					t.Errorf("%s: %v", ns.Name(), err)
				} else if len(md.Indexes) == 0 || md.Type != "collection" {
					t.Errorf("%s: metadata has %d indexes, type %q", ns.Name(), len(md.Indexes), md.Type)
				}
			}
		})
	}
}

// TestWriterRoundTripInterleaved rewrites the fixture with tiny blocks,
// interleaving namespaces document by document, and reads it back: same
// documents in the same order per namespace, same CRCs, many blocks.
func TestWriterRoundTripInterleaved(t *testing.T) {
	f, err := os.Open(filepath.Join(fixtures, "rocketchat.archive"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	orig := readAll(t, r)

	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{ConcurrentCollections: 4, ServerVersion: "4.2.22", ToolVersion: "lghsctl-test"}, r.Namespaces(), 64*1024)
	if err != nil {
		t.Fatal(err)
	}
	next := map[int]int{}
	for left := true; left; {
		left = false
		for i := range r.Namespaces() {
			if next[i] < len(orig[i]) {
				if err := w.Write(i, orig[i][next[i]]); err != nil {
					t.Fatal(err)
				}
				next[i]++
				left = true
			} else if next[i] == len(orig[i]) {
				if err := w.End(i); err != nil {
					t.Fatal(err)
				}
				next[i]++
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	again := readAll(t, r2)
	blocks := 0
	for i := range r.Namespaces() {
		if r.Stats(i).CRC != r2.Stats(i).CRC || len(again[i]) != len(orig[i]) {
			t.Errorf("%s: round trip changed the namespace", r.Namespaces()[i].Name())
		}
		for j := range orig[i] {
			if !bytes.Equal(orig[i][j], again[i][j]) {
				t.Fatalf("%s doc %d differs", r.Namespaces()[i].Name(), j)
			}
		}
		blocks += r2.Stats(i).Blocks
	}
	if blocks < 40 { // 4.5 MB in 64 KiB blocks, chunks of 255 KiB each
		t.Errorf("only %d blocks: the writer did not split", blocks)
	}
	for i := range r2.Namespaces() {
		if st := r2.Stats(i); st.Documents == 0 && (st.Blocks != 1 || !st.Ended) {
			t.Errorf("empty namespace %s written as %+v, want one empty block then EOF", r2.Namespaces()[i].Name(), st)
		}
	}
}

// builder writes archives by hand, to make broken ones.
type builder struct{ bytes.Buffer }

func (b *builder) u32(v uint32) *builder { binary.Write(&b.Buffer, binary.LittleEndian, v); return b }
func (b *builder) doc(d any) *builder {
	raw, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	b.Write(raw)
	return b
}
func (b *builder) term() *builder { return b.u32(terminator) }
func (b *builder) prelude(colls ...string) *builder {
	b.u32(Magic).doc(bson.D{{Key: "concurrent_collections", Value: int32(1)}, {Key: "version", Value: "0.1"}, {Key: "server_version", Value: "3.4.24"}, {Key: "tool_version", Value: "r3.4.24"}})
	for _, c := range colls {
		// Legacy (tools <= 4.0) metadata: plain JSON, no type.
		b.doc(bson.D{{Key: "db", Value: "rc"}, {Key: "collection", Value: c}, {Key: "metadata", Value: `{"options":{},"indexes":[{"v":1,"key":{"_id":1},"name":"_id_","ns":"rc.` + c + `"}]}`}, {Key: "size", Value: int32(0)}})
	}
	return b.term()
}
func (b *builder) block(c string, docs ...bson.D) *builder {
	b.doc(bson.D{{Key: "db", Value: "rc"}, {Key: "collection", Value: c}, {Key: "EOF", Value: false}, {Key: "CRC", Value: int64(0)}})
	for _, d := range docs {
		b.doc(d)
	}
	return b.term()
}
func (b *builder) eof(c string, docs ...bson.D) *builder {
	h := crcOf(docs...)
	return b.doc(bson.D{{Key: "db", Value: "rc"}, {Key: "collection", Value: c}, {Key: "EOF", Value: true}, {Key: "CRC", Value: int64(h)}}).term()
}

func crcOf(docs ...bson.D) uint64 {
	var all []byte
	for _, d := range docs {
		raw, _ := bson.Marshal(d)
		all = append(all, raw...)
	}
	h := newCRC()
	h.Write(all)
	return h.Sum64()
}

func d(id string) bson.D { return bson.D{{Key: "_id", Value: id}, {Key: "msg", Value: "hi " + id}} }

func readErr(raw []byte) error {
	r, err := NewReader(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// TestReaderAcceptsLegacyAndEdgeForms: a 3.4-era prelude (no type, legacy
// JSON metadata with ns and v:1), interleaved blocks, an EOF block with no
// data block before it, and the empty-data-block form of current tools.
func TestReaderAcceptsLegacyAndEdgeForms(t *testing.T) {
	var b builder
	b.prelude("a", "b", "c", "d").
		block("a", d("1")).block("b", d("x")).block("a", d("2")).
		eof("a", d("1"), d("2")).eof("b", d("x")).
		eof("c").           // no data block at all
		block("d").eof("d") // empty data block, as mongodump 100.x writes
	raw := b.Bytes()
	r, err := NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	docs := readAll(t, r)
	if len(docs[0]) != 2 || len(docs[1]) != 1 || r.Stats(0).Blocks != 2 || !r.Stats(2).Ended || !r.Stats(3).Ended {
		t.Fatalf("unexpected reading: %v %+v", docs, r.Stats(0))
	}
	md, err := ParseMetadata(r.Namespaces()[0].Metadata)
	if err != nil || len(md.Indexes) != 1 || md.Indexes[0].Lookup("ns").StringValue() != "rc.a" {
		t.Fatalf("legacy metadata: %+v %v", md, err)
	}
	// And gzip of the same stream.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	if err := readErr(gz.Bytes()); err != nil {
		t.Fatalf("gzip: %v", err)
	}
}

// TestReaderRejectsBrokenArchives lists the ways an archive can be wrong
// and the exact complaint for each.
func TestReaderRejectsBrokenArchives(t *testing.T) {
	good := func() *builder { var b builder; b.prelude("a", "b"); return &b }
	cases := []struct {
		name string
		raw  func() []byte
		want string
	}{
		{"not an archive", func() []byte { return []byte("{\"json\": true}\n") }, "not a mongodump archive: magic"},
		{"empty", func() []byte { return nil }, "stream too short for an archive"},
		{"cut before the end", func() []byte {
			return good().block("a", d("1")).eof("a", d("1")).block("b", d("2")).Bytes()
		}, "archive ended before these collections were complete: [rc.b]"},
		{"cut inside a document", func() []byte {
			raw := good().block("a", d("1"), d("2")).Bytes()
			return raw[:len(raw)-10]
		}, "stream cut inside a"},
		{"crc mismatch", func() []byte {
			b := good().block("a", d("1"))
			return b.eof("a", d("9")).block("b").eof("b").Bytes()
		}, "namespace rc.a: CRC mismatch"},
		{"headerless block", func() []byte { return good().term().Bytes() }, "headerless blocks are not allowed"},
		{"header after EOF", func() []byte {
			return good().block("a").eof("a").block("a", d("1")).Bytes()
		}, "namespace header for already finished namespace rc.a"},
		{"unknown namespace", func() []byte { return good().block("zz", d("1")).Bytes() }, "block of namespace rc.zz, which is not in the prelude"},
		{"bad length", func() []byte { return good().u32(3).Bytes() }, "invalid BSON document length 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := readErr(c.raw())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if c.name == "crc mismatch" && !errors.Is(err, ErrCRC) {
				t.Errorf("CRC error does not wrap ErrCRC")
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	var b builder
	b.prelude("a").block("a", d("1")).eof("a", d("1"))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = readErr(raw) // must not panic or hang
	})
}
