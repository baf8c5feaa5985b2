package certs

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/certcrypto"
	"github.com/go-acme/lego/v4/registration"
)

// Account is an ACME account: its key and the URI the CA gave it (the
// accounturi of CAA records).
type Account struct {
	Email string
	URI   string
	Key   KeyPEM
	// Created is set when OpenAccount registered it during this call.
	Created bool

	signer crypto.Signer
}

// accountFile is the JSON stored next to the key (no secret in it).
type accountFile struct {
	Directory string    `json:"directory"`
	Email     string    `json:"email"`
	URI       string    `json:"uri"`
	Created   time.Time `json:"created"`
}

// AccountDir is where OpenAccount keeps the account of a directory URL
// under a state directory: <state>/acme/<host_path>.
func AccountDir(stateDir, directoryURL string) string {
	slug := directoryURL
	if u, err := url.Parse(directoryURL); err == nil && u.Host != "" {
		slug = u.Host + u.Path
	}
	slug = regexp.MustCompile(`[^A-Za-z0-9.-]+`).ReplaceAllString(slug, "_")
	return filepath.Join(stateDir, "acme", strings.Trim(slug, "_"))
}

// OpenAccount returns the account of s.DirectoryURL kept under stateDir,
// registering one (and agreeing to the CA's terms) when there is none yet.
// The key is written with mode 0600 in a 0700 directory before the
// registration, so a registered account is never lost; a registration is
// reused as long as its files exist.
func OpenAccount(ctx context.Context, stateDir string, s Settings) (*Account, error) {
	s = s.withDefaults()
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	dir := AccountDir(stateDir, s.DirectoryURL)
	keyPath, infoPath := filepath.Join(dir, "account.key"), filepath.Join(dir, "account.json")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	var info accountFile
	if b, err := os.ReadFile(infoPath); err == nil {
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("acme account: read %s: %w", infoPath, err)
		}
	} else if !isNotExist(err) {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	keyPEM, err := readSecretFile(keyPath)
	switch {
	case isNotExist(err):
		key, gerr := certcrypto.GeneratePrivateKey(certcrypto.EC256)
		if gerr != nil {
			return nil, fmt.Errorf("acme account: generate key: %w", gerr)
		}
		keyPEM = certcrypto.PEMEncode(key)
		if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
			return nil, fmt.Errorf("acme account: %w", err)
		}
		info = accountFile{}
	case err != nil:
		return nil, fmt.Errorf("acme account: %w", err)
	}
	acct, err := LoadAccount(keyPEM, info.URI, s.Email)
	if err != nil {
		return nil, fmt.Errorf("acme account: %s: %w", keyPath, err)
	}
	if info.URI != "" && info.Directory == s.DirectoryURL {
		return acct, nil
	}
	uri, err := register(ctx, s, acct)
	if err != nil {
		return nil, err
	}
	acct.URI, acct.Created = uri, true
	b, _ := json.MarshalIndent(accountFile{Directory: s.DirectoryURL, Email: s.Email, URI: uri, Created: s.Now().UTC()}, "", "  ")
	if err := writeFileAtomic(infoPath, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	s.Logger.Info("acme account registered", "directory", s.DirectoryURL, "uri", uri)
	return acct, nil
}

// LoadAccount makes an account from its PEM key and URI (the host side,
// which never registers).
func LoadAccount(keyPEM []byte, uri, email string) (*Account, error) {
	key, err := certcrypto.ParsePEMPrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse account key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse account key: not a signing key")
	}
	return &Account{Email: email, URI: uri, Key: KeyPEM(keyPEM), signer: signer}, nil
}

// legoUser is lego's registration.User for an account.
type legoUser struct{ a *Account }

func (u legoUser) GetEmail() string { return u.a.Email }
func (u legoUser) GetRegistration() *registration.Resource {
	if u.a.URI == "" {
		return nil
	}
	return &registration.Resource{URI: u.a.URI}
}
func (u legoUser) GetPrivateKey() crypto.PrivateKey { return u.a.signer }

func register(ctx context.Context, s Settings, acct *Account) (string, error) {
	legoMu.Lock()
	defer legoMu.Unlock()
	restore := setLegoLogger(s.Logger)
	defer restore()
	client, err := newLegoClient(ctx, s, acct)
	if err != nil {
		return "", fmt.Errorf("acme account: %w", err)
	}
	reg, err := client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	if err != nil {
		return "", fmt.Errorf("acme account: register with %s: %w", s.DirectoryURL, err)
	}
	return reg.URI, nil
}

// PeekAccount returns the stored account of s.DirectoryURL, or nil when
// there is none yet; it never registers (check mode).
func PeekAccount(stateDir string, s Settings) (*Account, error) {
	dir := AccountDir(stateDir, s.DirectoryURL)
	var info accountFile
	b, err := os.ReadFile(filepath.Join(dir, "account.json"))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil || info.URI == "" || info.Directory != s.DirectoryURL {
		return nil, nil
	}
	key, err := readSecretFile(filepath.Join(dir, "account.key"))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acme account: %w", err)
	}
	return LoadAccount(key, info.URI, s.Email)
}
