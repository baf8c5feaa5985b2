package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// KeyPEM is a PEM private key. Printing, logging or marshalling it shows
// [redacted]; Bytes gives the key to the one place that writes it.
type KeyPEM []byte

const redacted = "[redacted]"

func (k KeyPEM) String() string                { return redacted }
func (k KeyPEM) GoString() string              { return redacted }
func (k KeyPEM) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }
func (k KeyPEM) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (k KeyPEM) LogValue() slog.Value          { return slog.StringValue(redacted) }

// Bytes returns the key's PEM.
func (k KeyPEM) Bytes() []byte { return []byte(k) }

// Bundle is a certificate as deployed: the PEM chain (leaf first, then
// intermediates: certbot's fullchain.pem) and its private key.
type Bundle struct {
	Chain []byte
	Key   KeyPEM
}

// Info describes a certificate without its key.
type Info struct {
	// Names are the DNS names (SANs), sorted.
	Names []string `json:"names"`
	// Serial in lower-case hex.
	Serial    string    `json:"serial"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Inspect parses a PEM chain and describes its leaf.
func Inspect(chain []byte) (Info, *x509.Certificate, error) {
	certs, err := parseChain(chain)
	if err != nil {
		return Info{}, nil, err
	}
	return infoOf(certs[0]), certs[0], nil
}

func infoOf(c *x509.Certificate) Info {
	names := slices.Clone(c.DNSNames)
	slices.Sort(names)
	return Info{Names: names, Serial: serialHex(c), Issuer: c.Issuer.CommonName, NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
}

func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

func parseChain(chain []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := chain
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return out, nil
}

// checkChain verifies that chain is valid now for every name and chains
// to roots.
func checkChain(chain []byte, names []string, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	certs, err := parseChain(chain)
	if err != nil {
		return nil, err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return leaf, fmt.Errorf("certificate %s does not verify: %w", serialHex(leaf), err)
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return leaf, fmt.Errorf("certificate %s does not cover %s", serialHex(leaf), n)
		}
	}
	return leaf, nil
}

// checkPair verifies that the key belongs to the chain's leaf.
func checkPair(b Bundle) error {
	if _, err := tls.X509KeyPair(b.Chain, b.Key.Bytes()); err != nil {
		// The error from crypto/tls names no key material.
		return fmt.Errorf("certificate and key do not match: %w", err)
	}
	return nil
}

// sameNames reports whether a certificate's SANs are exactly names.
func sameNames(c *x509.Certificate, names []string) bool {
	a := slices.Clone(c.DNSNames)
	b := slices.Clone(names)
	for i := range a {
		a[i] = strings.ToLower(a[i])
	}
	for i := range b {
		b[i] = strings.ToLower(b[i])
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func tlsConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// chainEqual reports whether two PEM chains hold the same certificates.
func chainEqual(a, b []byte) bool {
	ca, errA := parseChain(a)
	cb, errB := parseChain(b)
	if errA != nil || errB != nil || len(ca) != len(cb) {
		return false
	}
	for i := range ca {
		if !bytes.Equal(ca[i].Raw, cb[i].Raw) {
			return false
		}
	}
	return true
}
