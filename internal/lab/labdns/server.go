package labdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on, UDP and TCP on the same port
	// ("127.0.0.1:0" picks a free port; the lab uses its box address and
	// port 53).
	Addr string
	// Source supplies the zones. Required.
	Source Source
	// SelfAddrs are answered for the zones' name-server host names that lie
	// in a served zone and have no address record of their own. Default:
	// the IP of Addr when it is not unspecified.
	SelfAddrs []netip.Addr
	// NegativeTTL is the SOA minimum and the TTL of negative answers
	// (default 60 s: short, so that lab clients do not cache a name's
	// absence across a test step).
	NegativeTTL uint32
	// MaxUDPSize is the largest UDP answer with EDNS0 (default 1232, the
	// DNS flag day 2020 value); without EDNS0 it is 512.
	MaxUDPSize uint16
	// Logger gets one debug line per query; nil discards.
	Logger *slog.Logger
}

// Stats are the server's counters.
type Stats struct {
	UDPQueries, TCPQueries, Truncated, Refused uint64
}

// Server is a running DNS server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	addr   string
	udp    *dns.Server
	tcp    *dns.Server
	closed sync.Once
	err    error

	udpQueries, tcpQueries, truncated, refused atomic.Uint64
}

// Start listens on cfg.Addr (UDP and TCP) and serves until Close or until
// ctx is done.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("start lab dns: no source")
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = 60
	}
	if cfg.MaxUDPSize == 0 {
		cfg.MaxUDPSize = 1232
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	pc, ln, err := listenBoth(ctx, cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.addr = pc.LocalAddr().String()
	if len(s.cfg.SelfAddrs) == 0 {
		if ap, err := netip.ParseAddrPort(s.addr); err == nil && !ap.Addr().IsUnspecified() {
			s.cfg.SelfAddrs = []netip.Addr{ap.Addr().Unmap()}
		}
	}
	h := dns.HandlerFunc(s.serveDNS)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpUp) }}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpUp) },
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	errs := make(chan error, 2)
	go func() { errs <- s.udp.ActivateAndServe() }()
	go func() { errs <- s.tcp.ActivateAndServe() }()
	for _, up := range []chan struct{}{udpUp, tcpUp} {
		select {
		case <-up:
		case err := <-errs:
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("start lab dns on %s: %w", s.addr, err)
		}
	}
	context.AfterFunc(ctx, func() { _ = s.Close() })
	s.log.Info("lab dns listening", slog.String("addr", s.addr))
	return s, nil
}

// listenBoth opens UDP and TCP on the same port; with port 0 it retries
// until a port free for both is found.
func listenBoth(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("start lab dns on %q: %w", addr, err)
	}
	var lc net.ListenConfig
	var lastErr error
	for range 20 {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("start lab dns: listen udp %s: %w", addr, err)
		}
		_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("start lab dns: listen tcp %s: %w", addr, lastErr)
}

// Addr is the "ip:port" served (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Port is the port served.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{UDPQueries: s.udpQueries.Load(), TCPQueries: s.tcpQueries.Load(),
		Truncated: s.truncated.Load(), Refused: s.refused.Load()}
}

// Close stops both listeners and waits for them; safe to call twice.
func (s *Server) Close() error {
	s.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.err = errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
		if s.err != nil {
			s.err = fmt.Errorf("stop lab dns on %s: %w", s.addr, s.err)
		}
	})
	return s.err
}

func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	udp := w.LocalAddr().Network() == "udp"
	if udp {
		s.udpQueries.Add(1)
	} else {
		s.tcpQueries.Add(1)
	}
	resp := s.answer(req)
	if resp.Rcode == dns.RcodeRefused {
		s.refused.Add(1)
	}
	if udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(min(opt.UDPSize(), s.cfg.MaxUDPSize)), dns.MinMsgSize)
		}
		resp.Truncate(size)
		if resp.Truncated {
			s.truncated.Add(1)
		}
	} else {
		resp.Compress = true
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Warn("lab dns write", slog.Any("err", err))
	}
	if len(req.Question) == 1 {
		q := req.Question[0]
		s.log.Debug("dns query", slog.String("name", q.Name), slog.String("type", dns.TypeToString[q.Qtype]),
			slog.String("proto", w.LocalAddr().Network()), slog.String("rcode", dns.RcodeToString[resp.Rcode]),
			slog.Int("answers", len(resp.Answer)), slog.Bool("tc", resp.Truncated))
	}
}
