package archive

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// DefaultBlockSize is the Writer's per-namespace buffer. mongodump uses
// 16 MiB; a smaller one bounds memory when several collections stream at
// once, at the price of more (valid) block headers.
const DefaultBlockSize = 4 << 20

// Writer produces an archive. Documents of different namespaces may be
// written from different goroutines: each namespace buffers up to
// BlockSize bytes and the full buffer is written as one data block, so
// blocks interleave as in mongodump's own output.
type Writer struct {
	mu        sync.Mutex // serialises writes to w
	w         io.Writer
	err       error
	blockSize int
	nss       []Namespace
	st        []*writerNS
}

type writerNS struct {
	mu     sync.Mutex
	buf    []byte
	crc    hash.Hash64
	blocks int
	ended  bool
}

// NewWriter writes the magic, header and prelude. h.Version defaults to
// FormatVersion; h.ServerVersion must be a version x.y.z (mongorestore
// parses it). blockSize 0 means DefaultBlockSize.
func NewWriter(w io.Writer, h Header, nss []Namespace, blockSize int) (*Writer, error) {
	if h.Version == "" {
		h.Version = FormatVersion
	}
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	aw := &Writer{w: w, blockSize: blockSize, nss: nss}
	var out []byte
	out = binary.LittleEndian.AppendUint32(out, Magic)
	hb, err := bson.Marshal(bson.D{
		{Key: "concurrent_collections", Value: h.ConcurrentCollections},
		{Key: "version", Value: h.Version},
		{Key: "server_version", Value: h.ServerVersion},
		{Key: "tool_version", Value: h.ToolVersion},
	})
	if err != nil {
		return nil, err
	}
	out = append(out, hb...)
	for _, ns := range nss {
		mb, err := bson.Marshal(bson.D{
			{Key: "db", Value: ns.DB},
			{Key: "collection", Value: ns.Collection},
			{Key: "metadata", Value: ns.Metadata},
			{Key: "size", Value: ns.Size},
			{Key: "type", Value: ns.Type},
		})
		if err != nil {
			return nil, err
		}
		out = append(out, mb...)
		aw.st = append(aw.st, &writerNS{crc: newCRC()})
	}
	out = binary.LittleEndian.AppendUint32(out, terminator)
	if _, err := w.Write(out); err != nil {
		return nil, fmt.Errorf("archive: write prelude: %w", err)
	}
	return aw, nil
}

// Write adds one raw BSON document to namespace ns (an index into the
// prelude given to NewWriter). It is safe for concurrent use across
// namespaces; documents of one namespace must come from one goroutine at
// a time, in the order they should be restored.
func (w *Writer) Write(ns int, doc []byte) error {
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc)) != len(doc) || doc[len(doc)-1] != 0 {
		return fmt.Errorf("archive: %s: not a BSON document", w.nss[ns].Name())
	}
	s := w.st[ns]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return fmt.Errorf("archive: %s: write after end", w.nss[ns].Name())
	}
	s.crc.Write(doc)
	s.buf = append(s.buf, doc...)
	if len(s.buf) >= w.blockSize {
		return w.flush(ns, s)
	}
	return nil
}

// flush writes s's buffer as one data block; s.mu is held.
func (w *Writer) flush(ns int, s *writerNS) error {
	h, err := bson.Marshal(bson.D{
		{Key: "db", Value: w.nss[ns].DB},
		{Key: "collection", Value: w.nss[ns].Collection},
		{Key: "EOF", Value: false},
		{Key: "CRC", Value: int64(0)},
	})
	if err != nil {
		return err
	}
	err = w.emit(h, s.buf, binary.LittleEndian.AppendUint32(nil, terminator))
	s.buf = s.buf[:0]
	s.blocks++
	return err
}

func (w *Writer) emit(parts ...[]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	for _, p := range parts {
		if _, err := w.w.Write(p); err != nil {
			w.err = fmt.Errorf("archive: write: %w", err)
			return w.err
		}
	}
	return nil
}

// End flushes namespace ns and writes its EOF block with the CRC of its
// documents. A namespace without documents still gets an empty data
// block first, as mongodump writes it.
func (w *Writer) End(ns int) error {
	s := w.st[ns]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return fmt.Errorf("archive: %s: ended twice", w.nss[ns].Name())
	}
	if len(s.buf) > 0 || s.blocks == 0 {
		if err := w.flush(ns, s); err != nil {
			return err
		}
	}
	h, err := bson.Marshal(bson.D{
		{Key: "db", Value: w.nss[ns].DB},
		{Key: "collection", Value: w.nss[ns].Collection},
		{Key: "EOF", Value: true},
		{Key: "CRC", Value: int64(s.crc.Sum64())},
	})
	if err != nil {
		return err
	}
	s.ended = true
	return w.emit(h, binary.LittleEndian.AppendUint32(nil, terminator))
}

// Close checks that every namespace was ended. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	for i, s := range w.st {
		s.mu.Lock()
		ended := s.ended
		s.mu.Unlock()
		if !ended {
			return fmt.Errorf("archive: %s was never ended", w.nss[i].Name())
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
