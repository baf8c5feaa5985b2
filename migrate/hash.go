package migrate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Sums describe one collection's content. Both sides of a move compute
// them the same way: the source's from the archive stream as it passes
// (or through the driver), the target's through the driver.
//
// Hash is the content hash: SHA-256 over the concatenated SHA-256 digests
// of the documents' raw BSON bytes, taken in ascending _id order (the
// order of IDKey, which for a collection whose _ids share one type is
// MongoDB's own: numbers by value, strings and ObjectIds byte-wise). The
// documents are ordered on the client, so both sides agree whatever order
// the servers return them in, and the stream side needs only the digests,
// never the documents, to compute it.
type Sums struct {
	Count int64  `json:"count"`
	Bytes int64  `json:"bytes"`
	Hash  string `json:"hash"`
	// GridFS totals, for collections named <bucket>.files (files, total
	// length, empty files) and <bucket>.chunks (chunks, payload bytes).
	GridFS *GridFSSums `json:"gridfs,omitempty"`
}

// GridFSSums are one side (files or chunks) of a GridFS bucket.
type GridFSSums struct {
	// Files: the number of documents of <bucket>.files and the sum of
	// their length fields.
	Files       int64 `json:"files,omitempty"`
	TotalLength int64 `json:"total_length,omitempty"`
	EmptyFiles  int64 `json:"empty_files,omitempty"`
	// Chunks: the number of documents of <bucket>.chunks and the sum of
	// their data payload lengths.
	Chunks    int64 `json:"chunks,omitempty"`
	DataBytes int64 `json:"data_bytes,omitempty"`
}

type gridKind int

const (
	notGridFS gridKind = iota
	gridFiles
	gridChunks
)

func gridKindOf(coll string) gridKind {
	switch {
	case strings.HasSuffix(coll, ".files"):
		return gridFiles
	case strings.HasSuffix(coll, ".chunks"):
		return gridChunks
	}
	return notGridFS
}

// summer accumulates Sums one document at a time. Memory: one id key and
// one digest per document (about 60-80 bytes each).
type summer struct {
	kind    gridKind
	entries []sumEntry
	count   int64
	bytes   int64
	grid    GridFSSums
}

type sumEntry struct {
	key    string
	digest [32]byte
}

func newSummer(coll string) *summer { return &summer{kind: gridKindOf(coll)} }

func (s *summer) add(doc []byte) error {
	raw := bson.Raw(doc)
	id, err := raw.LookupErr("_id")
	if err != nil {
		return fmt.Errorf("document without _id: %w", err)
	}
	s.entries = append(s.entries, sumEntry{key: IDKey(id), digest: sha256.Sum256(doc)})
	s.count++
	s.bytes += int64(len(doc))
	switch s.kind {
	case gridFiles:
		s.grid.Files++
		if l, ok := raw.Lookup("length").AsInt64OK(); ok {
			s.grid.TotalLength += l
			if l == 0 {
				s.grid.EmptyFiles++
			}
		}
	case gridChunks:
		s.grid.Chunks++
		if v, err := raw.LookupErr("data"); err == nil && v.Type == bson.TypeBinary {
			_, data := v.Binary()
			s.grid.DataBytes += int64(len(data))
		}
	}
	return nil
}

func (s *summer) sum() Sums {
	slices.SortFunc(s.entries, func(a, b sumEntry) int { return strings.Compare(a.key, b.key) })
	h := sha256.New()
	for i := range s.entries {
		h.Write(s.entries[i].digest[:])
	}
	out := Sums{Count: s.count, Bytes: s.bytes, Hash: hex.EncodeToString(h.Sum(nil))}
	if s.kind != notGridFS {
		g := s.grid
		out.GridFS = &g
	}
	return out
}

// duplicateIDs reports whether two documents share an _id (after sum).
func (s *summer) duplicateIDs() bool {
	for i := 1; i < len(s.entries); i++ {
		if s.entries[i].key == s.entries[i-1].key {
			return true
		}
	}
	return false
}

// typeRank is MongoDB's comparison order of BSON types.
func typeRank(t bson.Type) byte {
	switch t {
	case bson.TypeMinKey:
		return 1
	case bson.TypeNull, bson.TypeUndefined:
		return 2
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128:
		return 3
	case bson.TypeSymbol, bson.TypeString:
		return 4
	case bson.TypeEmbeddedDocument:
		return 5
	case bson.TypeArray:
		return 6
	case bson.TypeBinary:
		return 7
	case bson.TypeObjectID:
		return 8
	case bson.TypeBoolean:
		return 9
	case bson.TypeDateTime:
		return 10
	case bson.TypeTimestamp:
		return 11
	case bson.TypeRegex:
		return 12
	case bson.TypeMaxKey:
		return 14
	}
	return 13
}

// IDKey maps an _id to a string whose byte order is the _id's order:
// MongoDB's type order first, then numbers by value, strings by their
// UTF-8 bytes, ObjectIds by their 12 bytes, dates by time, and anything
// else by its raw bytes. The raw value is appended, so distinct _ids
// never get the same key (the order stays total when numbers of different
// types are equal).
func IDKey(v bson.RawValue) string {
	var b []byte
	b = append(b, typeRank(v.Type))
	switch v.Type {
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		f, _ := v.AsFloat64OK()
		if v.Type == bson.TypeInt64 {
			f = float64(v.Int64())
		}
		bits := math.Float64bits(f)
		if f >= 0 {
			bits ^= 1 << 63
		} else {
			bits = ^bits
		}
		b = binary.BigEndian.AppendUint64(b, bits)
	case bson.TypeString:
		b = append(b, v.StringValue()...)
		b = append(b, 0)
	case bson.TypeSymbol:
		b = append(b, v.Symbol()...)
		b = append(b, 0)
	case bson.TypeObjectID:
		oid := v.ObjectID()
		b = append(b, oid[:]...)
	case bson.TypeDateTime:
		b = binary.BigEndian.AppendUint64(b, uint64(v.DateTime())^(1<<63))
	case bson.TypeBoolean:
		if v.Boolean() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	b = append(b, byte(v.Type))
	b = append(b, v.Value...)
	return string(b)
}

// ManifestHash is the fixtures' content hash (shared/fixtures/mongo): the
// SHA-256 of the documents' raw bytes concatenated in ascending _id
// order. It needs the documents themselves, so lghsctl only uses it to
// check restores against a manifest.
func ManifestHash(docs [][]byte) (string, error) {
	type kd struct {
		key string
		doc []byte
	}
	all := make([]kd, 0, len(docs))
	for _, d := range docs {
		id, err := bson.Raw(d).LookupErr("_id")
		if err != nil {
			return "", err
		}
		all = append(all, kd{IDKey(id), d})
	}
	slices.SortFunc(all, func(a, b kd) int { return strings.Compare(a.key, b.key) })
	h := sha256.New()
	for _, x := range all {
		h.Write(x.doc)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// shortHash abbreviates a hash for messages.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
