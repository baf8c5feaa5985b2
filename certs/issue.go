package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/miekg/dns"

	"github.com/lghs/lghsctl/inventory"
)

// legoMu serialises lego operations in this process: lego keeps the DNS-01
// resolvers, DNS timeout, SOA cache and its logger in package variables,
// which each operation sets for itself.
var legoMu sync.Mutex

// Order is one certificate to obtain.
type Order struct {
	// Names are the certificate's DNS names; the first is its subject.
	Names []string
	// ZoneOf returns the DNS zone a name is in (one of Tokens' keys).
	ZoneOf func(name string) string
	// Tokens maps each zone to the Cloudflare token that edits its records
	// (Zone:Read and DNS:Edit on that zone).
	Tokens map[string]inventory.Secret
	// Replaces is the certificate this one renews, named to the CA when it
	// offers renewal info (RFC 9773 "replaces").
	Replaces *x509.Certificate
}

// Obtain gets a new certificate for the order with the account, over
// DNS-01: for each name, a TXT record through the Cloudflare API, checked
// to be served (by the configured resolvers, or else by every
// authoritative server of the zone) before the CA is asked to validate it,
// then removed. The returned bundle's chain is verified against the trust
// pool and its key matches.
//
// lego takes no context: ctx cancels its HTTP requests, which makes it
// return early.
func Obtain(ctx context.Context, s Settings, acct *Account, o Order) (Bundle, error) {
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return Bundle{}, err
	}
	if acct == nil || acct.URI == "" {
		return Bundle{}, errors.New("obtain certificate: no registered ACME account")
	}
	if len(o.Names) == 0 {
		return Bundle{}, errors.New("obtain certificate: no names")
	}
	what := "obtain certificate for " + strings.Join(o.Names, ", ")
	provider, err := newZoneProvider(s, o)
	if err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", what, err)
	}
	resolvers, err := s.propagationResolvers()
	if err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", what, err)
	}

	legoMu.Lock()
	defer legoMu.Unlock()
	restore := setLegoLogger(s.Logger)
	defer restore()
	client, err := newLegoClient(ctx, s, acct)
	if err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", what, err)
	}
	opts := []dns01.ChallengeOption{
		dns01.AddRecursiveNameservers(resolvers),
		dns01.AddDNSTimeout(5 * time.Second),
	}
	if len(s.Resolvers) > 0 {
		opts = append(opts, dns01.RecursiveNSsPropagationRequirement(), dns01.DisableAuthoritativeNssPropagationRequirement())
	}
	dns01.ClearFqdnCache()
	if err := client.Challenge.SetDNS01Provider(provider, opts...); err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", what, err)
	}
	req := certificate.ObtainRequest{Domains: o.Names, Bundle: true}
	if o.Replaces != nil {
		if _, err := client.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: o.Replaces}); err == nil {
			req.ReplacesCertID, _ = certificate.MakeARICertID(o.Replaces)
		}
	}
	res, err := client.Certificate.Obtain(req)
	if err != nil && req.ReplacesCertID != "" && ctx.Err() == nil && replacesRefused(err) {
		// The CA will not let this order replace the old certificate: it
		// was replaced already (by an issuance whose deployment then
		// failed), or another account got it (the operator's state was
		// lost). Ask for a plain new order.
		s.Logger.Info("the CA refused the renewal's replaces; ordering without it", "err", err)
		req.ReplacesCertID = ""
		res, err = client.Certificate.Obtain(req)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Bundle{}, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return Bundle{}, fmt.Errorf("%s: %w", what, err)
	}
	b := Bundle{Chain: res.Certificate, Key: KeyPEM(res.PrivateKey)}
	if _, err := checkChain(b.Chain, o.Names, s.Roots(), s.Now()); err != nil {
		return Bundle{}, fmt.Errorf("%s: the CA's answer: %w", what, err)
	}
	if err := checkPair(b); err != nil {
		return Bundle{}, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// replacesRefused reports whether an order failed on its "replaces"
// field (RFC 9773 §5): alreadyReplaced, or a problem about the replaced
// certificate (Pebble: unauthorized, "requester account did not request
// the certificate being replaced"; CAs word it differently).
func replacesRefused(err error) bool {
	var already *acme.AlreadyReplacedError
	if errors.As(err, &already) {
		return true
	}
	var pd *acme.ProblemDetails
	return errors.As(err, &pd) && strings.Contains(strings.ToLower(pd.Detail), "replace")
}

// Due says whether a certificate should be renewed now, and why: it
// expires within RenewBefore, or the CA's renewal info (ARI, RFC 9773)
// says its renewal window has opened.
func Due(ctx context.Context, s Settings, acct *Account, leaf *x509.Certificate) (bool, string) {
	s = s.withDefaults()
	now := s.Now()
	left := leaf.NotAfter.Sub(now)
	if left <= s.RenewBefore {
		return true, fmt.Sprintf("expires %s, within the renewal window (%s)", leaf.NotAfter.UTC().Format(time.RFC3339), human(s.RenewBefore))
	}
	if acct != nil {
		if start, ok := ariWindowStart(ctx, s, acct, leaf); ok {
			if !now.Before(start) {
				return true, fmt.Sprintf("the CA's renewal info says renew from %s", start.UTC().Format(time.RFC3339))
			}
			return false, fmt.Sprintf("valid until %s; renewal from %s (the CA's renewal info)", leaf.NotAfter.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
		}
	}
	return false, fmt.Sprintf("valid until %s; renewal from %s", leaf.NotAfter.UTC().Format(time.RFC3339), leaf.NotAfter.Add(-s.RenewBefore).UTC().Format(time.RFC3339))
}

// ariWindowStart asks the CA for the certificate's suggested renewal
// window; ok is false when the CA offers none (or cannot be asked).
func ariWindowStart(ctx context.Context, s Settings, acct *Account, leaf *x509.Certificate) (time.Time, bool) {
	legoMu.Lock()
	defer legoMu.Unlock()
	restore := setLegoLogger(s.Logger)
	defer restore()
	client, err := newLegoClient(ctx, s, acct)
	if err != nil {
		s.Logger.Debug("renewal info: no client", "err", err)
		return time.Time{}, false
	}
	info, err := client.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if err != nil {
		if !errors.Is(err, api.ErrNoARI) {
			s.Logger.Debug("renewal info unavailable", "err", err)
		}
		return time.Time{}, false
	}
	return info.SuggestedWindow.Start, true
}

func human(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// newLegoClient builds lego's client from explicit settings (lego.NewConfig
// would read LEGO_* environment variables). Its HTTP requests carry ctx.
func newLegoClient(ctx context.Context, s Settings, acct *Account) (*lego.Client, error) {
	keyType, err := legoKeyType(s.KeyType)
	if err != nil {
		return nil, err
	}
	hc := s.httpClient()
	hc.Transport = ctxTransport{ctx: ctx, next: hc.Transport}
	return lego.NewClient(&lego.Config{
		CADirURL:   s.DirectoryURL,
		User:       legoUser{acct},
		UserAgent:  "lghsctl",
		HTTPClient: hc,
		Certificate: lego.CertificateConfig{
			KeyType: keyType,
			Timeout: s.HTTPTimeout,
		},
	})
}

// ctxTransport attaches a context to requests made by code that takes none.
type ctxTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(r.WithContext(t.ctx))
}

// propagationResolvers are the resolvers lego queries: the configured ones,
// or the system's (/etc/resolv.conf). They are always set explicitly since
// lego keeps them in a package variable.
func (s Settings) propagationResolvers() ([]string, error) {
	if len(s.Resolvers) > 0 {
		return s.Resolvers, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cc.Servers) == 0 {
		return nil, fmt.Errorf("no DNS resolvers configured and none in /etc/resolv.conf: %v", err)
	}
	var out []string
	for _, srv := range cc.Servers {
		out = append(out, srv+":"+cc.Port)
	}
	return out, nil
}

// zoneProvider is lego's DNS-01 provider for an order: one lego Cloudflare
// provider per zone, each with that zone's token, built from an explicit
// configuration (never from environment variables).
type zoneProvider struct {
	zoneOf  func(string) string
	byZone  map[string]*cloudflare.DNSProvider
	timeout time.Duration
	poll    time.Duration
}

func newZoneProvider(s Settings, o Order) (*zoneProvider, error) {
	p := &zoneProvider{zoneOf: o.ZoneOf, byZone: map[string]*cloudflare.DNSProvider{}, timeout: s.PropagationTimeout, poll: s.PollingInterval}
	for _, n := range o.Names {
		zone := o.ZoneOf(strings.TrimPrefix(n, "*."))
		if zone == "" {
			return nil, fmt.Errorf("%s is in no declared DNS zone", n)
		}
		if p.byZone[zone] != nil {
			continue
		}
		tok, ok := o.Tokens[zone]
		if !ok || tok.Reveal() == "" {
			return nil, fmt.Errorf("no DNS token for zone %s", zone)
		}
		// Not cancelled with ctx: when an interrupted issuance unwinds,
		// lego's CleanUp must still remove the challenge records (each
		// request is bounded by the client's timeout).
		hc := s.httpClient()
		cf, err := cloudflare.NewDNSProviderConfig(&cloudflare.Config{
			AuthToken:          tok.Reveal(),
			BaseURL:            s.CloudflareURL,
			TTL:                120, // the provider's minimum
			PropagationTimeout: s.PropagationTimeout,
			PollingInterval:    s.PollingInterval,
			HTTPClient:         hc,
		})
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", zone, err)
		}
		p.byZone[zone] = cf
	}
	return p, nil
}

func (p *zoneProvider) provider(domain string) (*cloudflare.DNSProvider, error) {
	zone := p.zoneOf(strings.TrimPrefix(domain, "*."))
	cf := p.byZone[zone]
	if cf == nil {
		return nil, fmt.Errorf("no DNS provider for %s (zone %q)", domain, zone)
	}
	return cf, nil
}

func (p *zoneProvider) Present(domain, token, keyAuth string) error {
	cf, err := p.provider(domain)
	if err != nil {
		return err
	}
	return cf.Present(domain, token, keyAuth)
}

func (p *zoneProvider) CleanUp(domain, token, keyAuth string) error {
	cf, err := p.provider(domain)
	if err != nil {
		return err
	}
	return cf.CleanUp(domain, token, keyAuth)
}

func (p *zoneProvider) Timeout() (time.Duration, time.Duration) { return p.timeout, p.poll }

var _ challenge.ProviderTimeout = (*zoneProvider)(nil)

// setLegoLogger sends lego's log lines to the debug log instead of
// stderr; the returned function puts the previous logger back. Call it
// with legoMu held.
func setLegoLogger(l *slog.Logger) func() {
	prev := legolog.Logger
	legolog.Logger = slogLego{l}
	return func() { legolog.Logger = prev }
}

// slogLego adapts slog to lego's StdLogger. lego logs domains, record IDs
// and URLs, never tokens or keys.
type slogLego struct{ l *slog.Logger }

func (s slogLego) Fatal(args ...any)   { s.l.Error(fmt.Sprint(args...)); os.Exit(1) }
func (s slogLego) Fatalln(args ...any) { s.l.Error(fmt.Sprint(args...)); os.Exit(1) }
func (s slogLego) Fatalf(format string, args ...any) {
	s.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
func (s slogLego) Print(args ...any)   { s.l.Debug("lego: " + strings.TrimSpace(fmt.Sprint(args...))) }
func (s slogLego) Println(args ...any) { s.l.Debug("lego: " + strings.TrimSpace(fmt.Sprint(args...))) }
func (s slogLego) Printf(format string, args ...any) {
	s.l.Debug("lego: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}
