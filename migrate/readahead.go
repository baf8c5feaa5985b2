package migrate

import (
	"io"
	"sync"
)

// readAhead reads r in the background into up to n chunks of size bytes,
// so that the source keeps streaming while the target is busy (an SSH
// channel alone buffers only its 2 MiB window). At most n+2 chunks exist.
// Close stops the reader goroutine once its current Read returns.
type readAhead struct {
	ch     chan []byte
	free   chan []byte
	chunk  []byte
	off    int
	stop   chan struct{}
	once   sync.Once
	failed error // set before ch is closed
}

func newReadAhead(r io.Reader, n, size int) *readAhead {
	ra := &readAhead{ch: make(chan []byte, n), free: make(chan []byte, n+2), stop: make(chan struct{})}
	go func() {
		defer close(ra.ch)
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			default:
				buf = make([]byte, size)
			}
			m, err := io.ReadFull(r, buf[:size])
			if m > 0 {
				select {
				case ra.ch <- buf[:m]:
				case <-ra.stop:
					ra.failed = io.ErrClosedPipe
					return
				}
			}
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if err != nil {
				ra.failed = err
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.chunk == nil || ra.off == len(ra.chunk) {
		if ra.chunk != nil {
			select {
			case ra.free <- ra.chunk[:cap(ra.chunk)]:
			default:
			}
			ra.chunk = nil
		}
		b, ok := <-ra.ch
		if !ok {
			return 0, ra.failed
		}
		ra.chunk, ra.off = b, 0
	}
	n := copy(p, ra.chunk[ra.off:])
	ra.off += n
	return n, nil
}

// Close stops reading ahead.
func (ra *readAhead) Close() {
	ra.once.Do(func() { close(ra.stop) })
}
