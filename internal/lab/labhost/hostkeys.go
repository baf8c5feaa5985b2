package labhost

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// hostKeyTypes are the SSH host keys a lab host has, as on a fresh Debian
// server: file suffix and generator.
type hostKeyType struct {
	name string
	gen  func() (crypto.Signer, error)
}

func hostKeyTypes() []hostKeyType {
	return []hostKeyType{
		{"ed25519", func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err }},
		{"ecdsa", func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
		{"rsa", func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 3072) }},
	}
}

// writeHostKeys generates fresh host keys into etcSSH (an upper layer's
// etc/ssh), replacing any there. Generating them here instead of letting
// the host run ssh-keygen at boot keeps boots fast and identical on
// bookworm (which has no sshd-keygen unit) and trixie.
func writeHostKeys(etcSSH, hostname string) error {
	for _, t := range hostKeyTypes() {
		key, err := t.gen()
		if err != nil {
			return fmt.Errorf("generate %s host key: %w", t.name, err)
		}
		block, err := ssh.MarshalPrivateKey(key, "root@"+hostname)
		if err != nil {
			return fmt.Errorf("encode %s host key: %w", t.name, err)
		}
		pub, err := ssh.NewPublicKey(key.Public())
		if err != nil {
			return fmt.Errorf("encode %s host key: %w", t.name, err)
		}
		base := filepath.Join(etcSSH, "ssh_host_"+t.name+"_key")
		if err := writeFileAtomic(base, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " root@" + hostname + "\n"
		if err := writeFileAtomic(base+".pub", []byte(line), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hasHostKeys says whether etcSSH has every host key the lab generates.
func hasHostKeys(etcSSH string) bool {
	for _, t := range hostKeyTypes() {
		if _, err := os.Stat(filepath.Join(etcSSH, "ssh_host_"+t.name+"_key")); err != nil {
			return false
		}
	}
	return true
}

// readHostKeys reads the public host keys in etcSSH (as the host sees its
// own /etc/ssh), ed25519 first.
func readHostKeys(etcSSH string) ([]ssh.PublicKey, error) {
	files, err := filepath.Glob(filepath.Join(etcSSH, "ssh_host_*_key.pub"))
	if err != nil {
		return nil, err
	}
	rank := func(k ssh.PublicKey) int {
		switch k.Type() {
		case ssh.KeyAlgoED25519:
			return 0
		case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
			return 1
		}
		return 2
	}
	var keys []ssh.PublicKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read host key %s: %w", f, err)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, fmt.Errorf("parse host key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("read host keys in %s: none", etcSSH)
	}
	slices.SortStableFunc(keys, func(a, b ssh.PublicKey) int { return rank(a) - rank(b) })
	return keys, nil
}
