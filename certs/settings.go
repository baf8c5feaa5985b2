package certs

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
)

// DefaultCloudflareURL is the Cloudflare API's base URL.
const DefaultCloudflareURL = "https://api.cloudflare.com/client/v4"

// Settings is how to reach the CA and the DNS provider. The operator side
// builds it from the inventory (and the CLI's overrides); the host side
// from its renew configuration. The zero value of an optional field means
// its default.
type Settings struct {
	// DirectoryURL is the ACME directory (required).
	DirectoryURL string
	// CABundle is PEM of extra roots, trusted (besides the system's) both
	// for the ACME directory's HTTPS and for verifying issued and served
	// certificates (a test CA, Pebble's roots).
	CABundle []byte
	// Email is the ACME account's contact.
	Email string
	// KeyType of certificate keys: ec256 (default), ec384, rsa2048, rsa4096.
	KeyType string
	// RenewBefore: renew when a certificate expires within this long
	// (default 30 days), or earlier when the CA's renewal info says so.
	RenewBefore time.Duration
	// Resolvers ("host:port") answer the propagation check and name
	// lookups. Empty: the system's resolvers find the zone's authoritative
	// servers, which must all serve the challenge record.
	Resolvers []string
	// CloudflareURL is the Cloudflare API base (default DefaultCloudflareURL).
	CloudflareURL string
	// PropagationTimeout bounds the wait for a challenge record to be
	// served (default 2 minutes); PollingInterval is the wait between checks
	// (default 2 s).
	PropagationTimeout, PollingInterval time.Duration
	// HTTPTimeout bounds each HTTP request to the CA and to Cloudflare
	// (default 30 s).
	HTTPTimeout time.Duration
	// Logger receives debug lines (lego's included); nil discards.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (s Settings) withDefaults() Settings {
	if s.KeyType == "" {
		s.KeyType = "ec256"
	}
	if s.RenewBefore == 0 {
		s.RenewBefore = 30 * 24 * time.Hour
	}
	if s.CloudflareURL == "" {
		s.CloudflareURL = DefaultCloudflareURL
	}
	s.CloudflareURL = strings.TrimSuffix(s.CloudflareURL, "/")
	if s.PropagationTimeout == 0 {
		s.PropagationTimeout = 2 * time.Minute
	}
	if s.PollingInterval == 0 {
		s.PollingInterval = 2 * time.Second
	}
	if s.HTTPTimeout == 0 {
		s.HTTPTimeout = 30 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s
}

func (s Settings) validate() error {
	if s.DirectoryURL == "" {
		return fmt.Errorf("no ACME directory URL")
	}
	if _, err := legoKeyType(s.KeyType); err != nil {
		return err
	}
	if len(s.CABundle) > 0 {
		if !x509.NewCertPool().AppendCertsFromPEM(s.CABundle) {
			return fmt.Errorf("the CA bundle holds no PEM certificate")
		}
	}
	return nil
}

func legoKeyType(kt string) (certcrypto.KeyType, error) {
	switch kt {
	case "", "ec256":
		return certcrypto.EC256, nil
	case "ec384":
		return certcrypto.EC384, nil
	case "rsa2048":
		return certcrypto.RSA2048, nil
	case "rsa4096":
		return certcrypto.RSA4096, nil
	}
	return "", fmt.Errorf("unknown key type %q (ec256, ec384, rsa2048, rsa4096)", kt)
}

// Roots is the trust pool for issued and served certificates: the system's
// roots plus the CA bundle.
func (s Settings) Roots() *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if len(s.CABundle) > 0 {
		pool.AppendCertsFromPEM(s.CABundle)
	}
	return pool
}

// httpClient talks to the CA or to Cloudflare: the trust pool above, no
// proxy from the environment, the request timeout.
func (s Settings) httpClient() *http.Client {
	return &http.Client{
		Timeout: s.HTTPTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			TLSClientConfig:     tlsConfig(s.Roots()),
			TLSHandshakeTimeout: 15 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}
