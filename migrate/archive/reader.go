// Package archive reads and writes the byte stream of `mongodump
// --archive` (format version "0.1", the same from MongoDB 3.2 tools to
// today), the one stream format of lghsctl's data move: the old host's
// mongodump produces it, lghsctl's driver-based reader produces it too,
// and both mongorestore and lghsctl's own restorer consume it.
//
// Layout (integers little-endian; see ../../docs/migrate.md):
//
//	magic (0x8199e26d) header-BSON *collection-metadata-BSON TERM
//	*( ns-header-BSON{EOF:false} *document TERM | ns-header-BSON{EOF:true, CRC} TERM )
//
// TERM is 0xffffffff. Blocks of different namespaces may interleave; every
// namespace of the prelude ends with exactly one EOF block whose CRC is
// CRC-64/ECMA over its documents' raw bytes in stream order. A gzip stream
// (mongodump --archive --gzip) is recognised by its first two bytes.
//
// The Reader checks everything it can while streaming (magic, document
// lengths and terminators, namespace bookkeeping, each namespace's CRC) and
// never holds more than one document. The Writer produces archives the
// official mongorestore --archive accepts.
package archive

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Magic is the archive's first four bytes, little-endian.
const Magic uint32 = 0x8199e26d

// FormatVersion is the only archive version mongodump has ever written.
const FormatVersion = "0.1"

const terminator uint32 = 0xffffffff

// MaxDocumentSize bounds a document in the stream: MongoDB's 16 MiB plus
// the headroom the server allows internal documents.
const MaxDocumentSize = 16*1024*1024 + 16*1024

var crcTable = crc64.MakeTable(crc64.ECMA)

// Header is the archive's first document.
type Header struct {
	ConcurrentCollections int32  `bson:"concurrent_collections"`
	Version               string `bson:"version"`
	ServerVersion         string `bson:"server_version"`
	ToolVersion           string `bson:"tool_version"`
}

// Namespace is one collection-metadata entry of the prelude.
type Namespace struct {
	DB         string `bson:"db"`
	Collection string `bson:"collection"`
	// Metadata is the collection's metadata.json as mongodump writes it:
	// Extended JSON (canonical v2 from current tools, legacy JSON from
	// tools up to 4.0) with indexes and options; see ParseMetadata.
	Metadata string `bson:"metadata"`
	// Size is never filled by current mongodump (0); do not rely on it.
	Size int64 `bson:"size"`
	// Type is "", "collection", "view" or "timeseries" (absent before 4.2
	// tools).
	Type string `bson:"type"`
}

// Name is "db.collection" (just the collection for a top-level
// namespace such as --oplog's).
func (n Namespace) Name() string {
	if n.DB == "" {
		return n.Collection
	}
	return n.DB + "." + n.Collection
}

// Kind says what an Event is.
type Kind int

// Event kinds.
const (
	// Document: one document of a namespace, in stream order.
	Document Kind = iota + 1
	// End: a namespace's EOF block; its CRC matched the documents read.
	End
)

// Event is one step of a Reader.
type Event struct {
	Kind Kind
	// NS is the namespace's index in Reader.Namespaces.
	NS int
	// Doc is the document's raw BSON (Kind Document). It is only valid
	// until the next call to Next: copy it to keep it.
	Doc []byte
}

// Stats counts one namespace's content as read so far.
type Stats struct {
	Documents int64
	// Bytes is the sum of the documents' lengths.
	Bytes int64
	// Blocks is the number of data blocks (non-EOF namespace headers).
	Blocks int
	// CRC is the CRC-64/ECMA of the documents so far.
	CRC uint64
	// Ended is set once the namespace's EOF block was read and checked.
	Ended bool
}

// FormatError is a malformed or inconsistent archive. Offset is the byte
// offset in the (uncompressed) archive where the problem was found.
type FormatError struct {
	Offset int64
	Msg    string
	// Err is the read error that cut the stream, if any.
	Err error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("archive: %s (at byte %d)", e.Msg, e.Offset)
}

func (e *FormatError) Unwrap() error { return e.Err }

// ErrCRC is wrapped by the error of a namespace whose EOF block's CRC
// does not match its documents.
var ErrCRC = errors.New("CRC mismatch")

type nsState struct {
	Stats
	crc hash.Hash64
}

// Reader parses an archive stream.
type Reader struct {
	br     *bufio.Reader
	gz     *gzip.Reader
	off    int64
	header Header
	nss    []Namespace
	index  map[string]int
	st     []nsState
	cur    int // namespace of the open data block, -1 between blocks
	buf    []byte
	done   bool
}

// NewReader reads the magic, header and prelude of an archive, plain or
// gzip-compressed. Documents are then read with Next.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	ar := &Reader{br: br, cur: -1, index: map[string]int{}}
	if b, err := br.Peek(2); err == nil && b[0] == 0x1f && b[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("archive: gzip: %w", err)
		}
		ar.gz = gz
		ar.br = bufio.NewReaderSize(gz, 1<<20)
	}
	var magic [4]byte
	if _, err := io.ReadFull(ar.br, magic[:]); err != nil {
		return nil, ar.errw(err, "stream too short for an archive: %v", err)
	}
	if m := binary.LittleEndian.Uint32(magic[:]); m != Magic {
		return nil, ar.errf("not a mongodump archive: magic %08x, want %08x", m, Magic)
	}
	ar.off = 4
	doc, term, err := ar.readDoc()
	if err != nil {
		return nil, err
	}
	if term {
		return nil, ar.errf("missing archive header")
	}
	if err := bson.Unmarshal(doc, &ar.header); err != nil {
		return nil, ar.errf("archive header: %v", err)
	}
	if ar.header.Version != FormatVersion {
		return nil, ar.errf("archive format version %q, only %q is known", ar.header.Version, FormatVersion)
	}
	for {
		doc, term, err := ar.readDoc()
		if err != nil {
			return nil, err
		}
		if term {
			break
		}
		var ns Namespace
		if err := bson.Unmarshal(doc, &ns); err != nil {
			return nil, ar.errf("collection metadata: %v", err)
		}
		if _, dup := ar.index[ns.Name()]; dup {
			return nil, ar.errf("namespace %s twice in the prelude", ns.Name())
		}
		ar.index[ns.Name()] = len(ar.nss)
		ar.nss = append(ar.nss, ns)
		ar.st = append(ar.st, nsState{crc: newCRC()})
	}
	return ar, nil
}

// Header returns the archive header.
func (r *Reader) Header() Header { return r.header }

// Namespaces returns the prelude's namespaces, in prelude order.
func (r *Reader) Namespaces() []Namespace { return r.nss }

// Stats returns what was read of namespace i so far.
func (r *Reader) Stats(i int) Stats {
	s := r.st[i].Stats
	s.CRC = r.st[i].crc.Sum64()
	return s
}

// Offset is the number of uncompressed archive bytes consumed.
func (r *Reader) Offset() int64 { return r.off }

func (r *Reader) errf(format string, args ...any) error {
	return &FormatError{Offset: r.off, Msg: fmt.Sprintf(format, args...)}
}

func (r *Reader) errw(err error, format string, args ...any) error {
	return &FormatError{Offset: r.off, Msg: fmt.Sprintf(format, args...), Err: err}
}

// readDoc reads a length-prefixed BSON document or a terminator. The
// returned slice is reused by the next call.
func (r *Reader) readDoc() (doc []byte, term bool, err error) {
	var l [4]byte
	if _, err := io.ReadFull(r.br, l[:]); err != nil {
		if err == io.EOF {
			return nil, false, io.EOF
		}
		return nil, false, r.errw(err, "stream cut inside a length: %v", err)
	}
	n := binary.LittleEndian.Uint32(l[:])
	if n == terminator {
		r.off += 4
		return nil, true, nil
	}
	if n < 5 || n > MaxDocumentSize {
		return nil, false, r.errf("invalid BSON document length %d", n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n, max(int(n), 64*1024))
	}
	r.buf = r.buf[:n]
	copy(r.buf, l[:])
	if _, err := io.ReadFull(r.br, r.buf[4:]); err != nil {
		return nil, false, r.errw(err, "stream cut inside a %d-byte document: %v", n, err)
	}
	if r.buf[n-1] != 0 {
		return nil, false, r.errf("BSON document of %d bytes does not end with 0x00", n)
	}
	r.off += int64(n)
	return r.buf, false, nil
}

type blockHeader struct {
	DB         string `bson:"db"`
	Collection string `bson:"collection"`
	EOF        bool   `bson:"EOF"`
	CRC        int64  `bson:"CRC"`
}

// Next returns the next document or namespace end. It returns io.EOF at
// the end of a complete archive, and an error when the stream ends before
// every namespace's EOF block (naming the unfinished ones), when a CRC
// does not match (wrapping ErrCRC), or when the stream is malformed.
func (r *Reader) Next() (Event, error) {
	if r.done {
		return Event{}, io.EOF
	}
	for {
		doc, term, err := r.readDoc()
		if err == io.EOF {
			if r.cur >= 0 {
				return Event{}, r.errf("stream ended inside a block of %s", r.nss[r.cur].Name())
			}
			var open []string
			for i, s := range r.st {
				if !s.Ended {
					open = append(open, r.nss[i].Name())
				}
			}
			if len(open) > 0 {
				return Event{}, r.errf("archive ended before these collections were complete: %v", open)
			}
			r.done = true
			if r.gz != nil {
				if err := r.gz.Close(); err != nil {
					return Event{}, fmt.Errorf("archive: gzip: %w", err)
				}
			}
			return Event{}, io.EOF
		}
		if err != nil {
			return Event{}, err
		}
		if r.cur >= 0 {
			if term {
				r.cur = -1
				continue
			}
			s := &r.st[r.cur]
			s.crc.Write(doc)
			s.Documents++
			s.Bytes += int64(len(doc))
			return Event{Kind: Document, NS: r.cur, Doc: doc}, nil
		}
		if term {
			return Event{}, r.errf("terminator where a namespace header was expected (headerless blocks are not allowed)")
		}
		var h blockHeader
		if err := bson.Unmarshal(doc, &h); err != nil {
			return Event{}, r.errf("namespace header: %v", err)
		}
		name := h.Collection
		if h.DB != "" {
			name = h.DB + "." + h.Collection
		}
		i, ok := r.index[name]
		if !ok {
			return Event{}, r.errf("block of namespace %s, which is not in the prelude", name)
		}
		s := &r.st[i]
		if s.Ended {
			return Event{}, r.errf("namespace header for already finished namespace %s", name)
		}
		if !h.EOF {
			s.Blocks++
			r.cur = i
			continue
		}
		// An EOF block carries no documents: its header is directly
		// followed by a terminator.
		_, term, err = r.readDoc()
		if err == io.EOF || (err == nil && !term) {
			return Event{}, r.errf("EOF block of %s not followed by a terminator", name)
		}
		if err != nil {
			return Event{}, err
		}
		if got := s.crc.Sum64(); got != uint64(h.CRC) {
			return Event{}, fmt.Errorf("archive: namespace %s: %w: archive says %016x, documents give %016x", name, ErrCRC, uint64(h.CRC), got)
		}
		s.Ended = true
		return Event{Kind: End, NS: i}, nil
	}
}

func newCRC() hash.Hash64 { return crc64.New(crcTable) }
