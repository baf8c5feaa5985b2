package labhost

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DelayProxy adds latency to TCP connections, which the kernel here cannot
// (no netem): it accepts connections on a listen address and relays each to
// a target, delivering every chunk of data Delay after it arrived, in each
// direction. A client connecting through it sees the path's round trip time
// grow by 2×Delay; throughput is not limited (data is pipelined, not
// stop-and-wait), up to 8 MiB in flight per direction. Connection setup
// takes one extra Delay (the proxy dials the target after accepting) and
// half-closes are forwarded after the data before them.
//
// Point a client at Addr instead of the target (for SSH keep checking the
// target host's key: the proxy does not touch the bytes).
type DelayProxy struct {
	delay  time.Duration
	target string
	ln     net.Listener
	fwd    *forwarder
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// StartDelayProxy listens on listen (e.g. "127.0.0.1:0", or the lab's
// BoxAddr4 with port 0 so hosts can use it too) and relays to target with
// delay added each way.
func StartDelayProxy(ctx context.Context, listen, target string, delay time.Duration) (*DelayProxy, error) {
	if delay < 0 {
		return nil, fmt.Errorf("start delay proxy to %s: negative delay", target)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("start delay proxy to %s: %w", target, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &DelayProxy{delay: delay, target: target, ln: ln, cancel: cancel,
		fwd: &forwarder{target: target, conns: map[net.Conn]struct{}{}}}
	p.wg.Add(1)
	go p.serve(ctx)
	return p, nil
}

// Addr is where clients connect.
func (p *DelayProxy) Addr() netip.AddrPort {
	return p.ln.Addr().(*net.TCPAddr).AddrPort()
}

// Close stops accepting and cuts every relayed connection.
func (p *DelayProxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.fwd.close()
	p.wg.Wait()
	return err
}

func (p *DelayProxy) serve(ctx context.Context) {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(ctx, c)
		}()
	}
}

func (p *DelayProxy) relay(ctx context.Context, c net.Conn) {
	defer c.Close()
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return
	}
	up, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.fwd.track(c, true) || !p.fwd.track(up, true) {
		return
	}
	defer p.fwd.track(c, false)
	defer p.fwd.track(up, false)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); delayCopy(ctx, up, c, p.delay) }()
	go func() { defer wg.Done(); delayCopy(ctx, c, up, p.delay) }()
	wg.Wait()
}

type chunk struct {
	data []byte
	due  time.Time
}

// delayCopy copies src to dst, writing each chunk delay after it was read,
// then half-closes dst.
func delayCopy(ctx context.Context, dst, src net.Conn, delay time.Duration) {
	const chunkSize, inFlight = 32 * 1024, 256 // 8 MiB
	q := make(chan chunk, inFlight)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{buf[:n], time.Now().Add(delay)}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		if d := time.Until(ch.due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return
			}
		}
		if _, err := dst.Write(ch.data); err != nil {
			_ = src.Close() // unblock the reader
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
