package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Probe says how to check what a web server serves for some names.
type Probe struct {
	// Names to check; each is resolved and every address is dialed with
	// the name as SNI.
	Names []string
	// Port to dial (default 443).
	Port int
	// Roots verify the served chain (Settings.Roots).
	Roots *x509.CertPool
	// Resolvers ("host:port") resolve the names; empty means the system's.
	Resolvers []string
	// Path, when set, is requested with GET after the handshake, and the
	// HTTP status is recorded; empty means the TLS handshake only.
	Path string
	// Timeout bounds each address's check (default 10 s).
	Timeout time.Duration
	// Addrs, for some names, are the addresses to dial instead of what
	// DNS answers (a public name still pointing at the old server before
	// migrate cutover is checked on the new host).
	Addrs map[string][]netip.Addr
}

// Served is what one address answered for one name.
type Served struct {
	Name string
	Addr netip.Addr
	// Cert describes the leaf the server sent (zero if none came).
	Cert Info
	// Status is the HTTP status (0 without Path or when the request failed).
	Status int
	// Err is why the check failed: resolution, connection, a chain that
	// does not verify for the name, or the HTTP request.
	Err error
}

func (s Served) String() string {
	where := s.Name + " on " + s.Addr.String()
	if !s.Addr.IsValid() {
		where = s.Name
	}
	if s.Err != nil {
		return where + ": " + s.Err.Error()
	}
	out := fmt.Sprintf("%s: serial %s until %s", where, s.Cert.Serial, s.Cert.NotAfter.Format(time.RFC3339))
	if s.Status != 0 {
		out += fmt.Sprintf(", HTTP %d", s.Status)
	}
	return out
}

// CheckServed resolves every name (IPv4 and IPv6) and, on each address,
// completes a TLS handshake verified against the roots for that name (and
// the GET of Path). It returns one Served per name and address, and one
// with Err set for a name that does not resolve.
func CheckServed(ctx context.Context, p Probe) []Served {
	if p.Port == 0 {
		p.Port = 443
	}
	if p.Timeout == 0 {
		p.Timeout = 10 * time.Second
	}
	res := resolver(p.Resolvers)
	var out []Served
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range p.Names {
		addrs, err := p.Addrs[name], error(nil)
		if len(addrs) == 0 {
			addrs, err = lookup(ctx, res, name)
		}
		if err != nil {
			out = append(out, Served{Name: name, Err: err})
			continue
		}
		for _, a := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := checkOne(ctx, p, name, a)
				mu.Lock()
				out = append(out, s)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	sortServed(out, p.Names)
	return out
}

func sortServed(out []Served, names []string) {
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	// Names in the order given, IPv4 before IPv6.
	less := func(a, b Served) bool {
		if idx[a.Name] != idx[b.Name] {
			return idx[a.Name] < idx[b.Name]
		}
		return a.Addr.Less(b.Addr)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
}

func resolver(servers []string) *net.Resolver {
	if len(servers) == 0 {
		return net.DefaultResolver
	}
	var next int
	var mu sync.Mutex
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		mu.Lock()
		srv := servers[next%len(servers)]
		next++
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, srv)
	}}
}

// lookup returns a name's IPv4 and IPv6 addresses; it is an error only
// when there is none.
func lookup(ctx context.Context, r *net.Resolver, name string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	var errs []string
	for _, family := range []string{"ip4", "ip6"} {
		as, err := r.LookupNetIP(ctx, family, name)
		var de *net.DNSError
		if err != nil && !(errors.As(err, &de) && de.IsNotFound) {
			errs = append(errs, err.Error())
		}
		for _, a := range as {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 {
		if len(errs) > 0 {
			return nil, fmt.Errorf("resolve %s: %s", name, strings.Join(errs, "; "))
		}
		return nil, fmt.Errorf("resolve %s: no A or AAAA record", name)
	}
	return addrs, nil
}

func checkOne(ctx context.Context, p Probe, name string, addr netip.Addr) Served {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	s := Served{Name: name, Addr: addr}
	target := net.JoinHostPort(addr.String(), strconv.Itoa(p.Port))
	var served *x509.Certificate
	cfg := tlsConfig(p.Roots)
	cfg.ServerName = name
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			served = cs.PeerCertificates[0]
		}
		return nil
	}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	}
	if p.Path == "" {
		conn, err := dial(ctx, "tcp", "")
		if err == nil {
			tc := tls.Client(conn, cfg)
			err = tc.HandshakeContext(ctx)
			tc.Close()
		}
		if served != nil {
			s.Cert = infoOf(served)
		}
		if err != nil {
			s.Err = fmt.Errorf("TLS to %s: %w", target, err)
		}
		return s
	}
	tr := &http.Transport{Proxy: nil, DialContext: dial, TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	url := "https://" + net.JoinHostPort(name, strconv.Itoa(p.Port)) + p.Path
	if p.Port == 443 {
		url = "https://" + name + p.Path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.Err = err
		return s
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if served != nil {
		s.Cert = infoOf(served)
	}
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		s.Err = fmt.Errorf("GET %s on %s: %w", url, target, err)
		return s
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	s.Status = resp.StatusCode
	return s
}
