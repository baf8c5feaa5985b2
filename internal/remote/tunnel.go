package remote

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
)

// DialTCP opens a TCP connection to addr (host:port) as seen from the
// host, through the SSH connection (a direct-tcpip channel): a database
// bound to the host's loopback is "127.0.0.1:27017". The server's
// AllowTcpForwarding must permit it.
func (c *Client) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := c.conn.DialContext(ctx, "tcp", addr)
	if err != nil {
		if lost := c.lostErr(); lost != nil {
			return nil, fmt.Errorf("open tunnel to %s on %s: %w", addr, c.name, lost)
		}
		return nil, fmt.Errorf("open tunnel to %s on %s: %w", addr, c.name, err)
	}
	c.log.Debug("ssh tunnel opened", "addr", addr)
	return conn, nil
}

// DialContext is DialTCP in the shape of net.Dialer's method (what
// database drivers and HTTP transports accept, e.g. the MongoDB driver's
// ContextDialer). Only TCP networks are supported. Like every SSH channel,
// the connection does not support deadlines.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("open tunnel to %s on %s: network %q not supported over SSH", addr, c.name, network)
	}
	return c.DialTCP(ctx, addr)
}

// Dialer opens TCP connections from a host's point of view. *Client and
// remotetest.Host implement it.
type Dialer interface {
	DialTCP(ctx context.Context, addr string) (net.Conn, error)
}

// Tunnel exposes an address reachable from a host on a local loopback
// port, for clients that need an address rather than a net.Conn (database
// drivers, CLI tools).
type Tunnel struct {
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	err   error
}

// Forward listens on 127.0.0.1 (a free port) and connects every accepted
// connection to remoteAddr through d. The tunnel stops when Close is
// called or ctx is done, whichever comes first; stopping closes the
// connections it carries.
func Forward(ctx context.Context, d Dialer, remoteAddr string) (*Tunnel, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("forward to %s: %w", remoteAddr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &Tunnel{ln: ln, cancel: cancel, conns: map[net.Conn]struct{}{}}
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		<-ctx.Done()
		ln.Close()
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
	}()
	go func() {
		defer t.wg.Done()
		for {
			local, err := ln.Accept()
			if err != nil {
				return
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				t.serve(ctx, d, remoteAddr, local)
			}()
		}
	}()
	return t, nil
}

// Addr is the local address to connect to, like 127.0.0.1:41234.
func (t *Tunnel) Addr() string { return t.ln.Addr().String() }

// Err is the last error opening the remote side of a connection (the
// local client only sees its connection closed), or nil.
func (t *Tunnel) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close stops listening, closes the connections in flight and waits for
// them.
func (t *Tunnel) Close() error {
	t.cancel()
	t.wg.Wait()
	return nil
}

// track registers a connection for Close. Callers check ctx after
// tracking: the stopper closes what is tracked once ctx is done, so a
// connection is either closed by it or seen by its server as stopped.
func (t *Tunnel) track(c net.Conn, add bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if add {
		t.conns[c] = struct{}{}
	} else {
		delete(t.conns, c)
	}
}

func (t *Tunnel) serve(ctx context.Context, d Dialer, remoteAddr string, local net.Conn) {
	defer local.Close()
	t.track(local, true)
	defer t.track(local, false)
	if ctx.Err() != nil {
		return
	}
	remote, err := d.DialTCP(ctx, remoteAddr)
	if err != nil {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		return
	}
	defer remote.Close()
	t.track(remote, true)
	defer t.track(remote, false)
	if ctx.Err() != nil {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Pass the end of one direction on, keep the other open.
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(remote, local)
	go pipe(local, remote)
	<-done
	<-done
}
