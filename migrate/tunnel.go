package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// forwarder is a local loopback listener whose connections are carried to
// an address on a host through its Dialer, like ssh -L. The database
// driver needs connections with deadlines, which SSH channels do not
// offer; a loopback TCP connection does.
type forwarder struct {
	l      net.Listener
	dial   Dialer
	target string
	log    *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startForwarder(ctx context.Context, d Dialer, target string, log *slog.Logger) (*forwarder, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", target, err)
	}
	f := &forwarder{l: l, dial: d, target: target, log: log, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve(ctx)
	return f, nil
}

func (f *forwarder) Addr() string { return f.l.Addr().String() }

func (f *forwarder) serve(ctx context.Context) {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			remote, err := f.dial.DialContext(ctx, "tcp", f.target)
			if err != nil {
				f.log.Warn("tunnel dial failed", slog.String("target", f.target), slog.Any("err", err))
				c.Close()
				return
			}
			if !f.track(c, remote) {
				return
			}
			done := make(chan struct{}, 2)
			go func() { io.Copy(remote, c); closeWrite(remote); done <- struct{}{} }()
			go func() { io.Copy(c, remote); closeWrite(c); done <- struct{}{} }()
			<-done
			c.Close()
			remote.Close()
			<-done
			f.untrack(c, remote)
		}()
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

// Close stops the listener and every carried connection, and waits.
func (f *forwarder) Close() error {
	err := f.l.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
	return err
}

// Supported server range of the Go driver lghsctl links
// (go.mongodb.org/mongo-driver/v2 v2.8.x): wire versions 8 (MongoDB 4.2)
// to 25 (MongoDB 8.0). v2.9 needs 4.4, which the LgHS target (4.2) is not.
const (
	minWireVersion = 8
	maxWireVersion = 25
)

// mongoVersionOfWire names the MongoDB release of a wire version.
func mongoVersionOfWire(w int32) string {
	switch {
	case w <= 2:
		return "2.6 or older"
	case w <= 3:
		return "3.0"
	case w <= 4:
		return "3.2"
	case w == 5:
		return "3.4"
	case w == 6:
		return "3.6"
	case w == 7:
		return "4.0"
	case w == 8:
		return "4.2"
	case w == 9:
		return "4.4"
	case w <= 13:
		return "5.0"
	case w <= 17:
		return "6.0"
	case w <= 21:
		return "7.0"
	case w <= 25:
		return "8.0"
	}
	return "newer than 8.0"
}

// WireVersionError says the server is outside the driver's range.
type WireVersionError struct {
	Host          string
	Min, Max      int32
	ServerVersion string
}

func (e *WireVersionError) Error() string {
	what := "MongoDB " + mongoVersionOfWire(e.Max)
	if e.Max < minWireVersion {
		return fmt.Sprintf("the database on %s speaks wire version %d (%s): lghsctl's Go driver needs %d (MongoDB 4.2) to %d (MongoDB 8.0); read it with its own mongodump instead (migrate.source: mongodump)", e.Host, e.Max, what, minWireVersion, maxWireVersion)
	}
	return fmt.Sprintf("the database on %s speaks wire versions %d-%d (%s): lghsctl's Go driver needs %d (MongoDB 4.2) to %d (MongoDB 8.0)", e.Host, e.Min, e.Max, what, minWireVersion, maxWireVersion)
}

// dbConn is a driver client to a database on a host, through a tunnel.
type dbConn struct {
	host   string
	client *mongo.Client
	fwd    *forwarder
	// Wire is the server's maxWireVersion (from our own handshake).
	Wire int32
}

func (c *dbConn) Close(ctx context.Context) {
	if c.client != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		c.client.Disconnect(ctx)
		cancel()
	}
	if c.fwd != nil {
		c.fwd.Close()
	}
}

// connectOptions tune a database connection.
type connectOptions struct {
	// Monitor sees every command sent (tests).
	Monitor *event.CommandMonitor
	// PoolSize bounds concurrent connections (0: driver default).
	PoolSize uint64
}

// connect opens a driver client to uri as seen from host h: it checks the
// server's wire version itself first (so an old server gets a clear
// message, not a server-selection timeout), then connects through a local
// forwarder with directConnection=true, so the driver never follows a
// replica-set member name the local side cannot resolve.
func connect(ctx context.Context, h Host, uri string, log *slog.Logger, o connectOptions) (*dbConn, error) {
	log = logOrDiscard(log)
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mongodb" || u.Host == "" {
		return nil, fmt.Errorf("database URI %q: want mongodb://host:port", uri)
	}
	addr := strings.Split(u.Host, ",")[0]
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "27017")
	}
	min, max, err := wireVersion(ctx, h.Dial, addr)
	if err != nil {
		return nil, fmt.Errorf("database %s on %s: %w", addr, h.Name, err)
	}
	if max < minWireVersion || min > maxWireVersion {
		return nil, &WireVersionError{Host: h.Name, Min: min, Max: max}
	}
	fwd, err := startForwarder(context.WithoutCancel(ctx), h.Dial, addr, log)
	if err != nil {
		return nil, err
	}
	lu := *u
	lu.Host = fwd.Addr()
	qs := lu.Query()
	qs.Del("replicaSet")
	qs.Set("directConnection", "true")
	lu.RawQuery = qs.Encode()
	if lu.Path == "" {
		lu.Path = "/"
	}
	opts := options.Client().ApplyURI(lu.String()).
		SetServerSelectionTimeout(20 * time.Second).
		SetConnectTimeout(20 * time.Second).
		SetAppName("lghsctl-migrate")
	if o.Monitor != nil {
		opts.SetMonitor(o.Monitor)
	}
	if o.PoolSize > 0 {
		opts.SetMaxPoolSize(o.PoolSize)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		fwd.Close()
		return nil, fmt.Errorf("database %s on %s: %w", addr, h.Name, err)
	}
	c := &dbConn{host: h.Name, client: client, fwd: fwd, Wire: max}
	if err := client.Ping(ctx, nil); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("database %s on %s: %w", addr, h.Name, err)
	}
	return c, nil
}

// isNetworkError reports whether err is a connection-level failure worth a
// retry (a cut link, a reset), not a server's refusal.
func isNetworkError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
