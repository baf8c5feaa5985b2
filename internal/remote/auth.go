package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AuthError says the server accepted none of the keys offered. It names
// where each key came from and its fingerprint, never key material.
type AuthError struct {
	// Host is Config.Name (or the jump host's alias); User and Address
	// say which login was refused.
	Host, User, Address string
	// Tried describes each key offered, in order ("identity file PATH
	// (TYPE SHA256:…)", "agent key TYPE SHA256:…").
	Tried []string
	// Notes explain keys that could not be offered (an unreachable agent,
	// a passphrase-protected file whose key is not in the agent).
	Notes []string
	// Err is the SSH library's or the server's refusal.
	Err error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "authenticate as %s on %s (%s): ", e.User, e.Host, e.Address)
	if len(e.Tried) == 0 {
		b.WriteString("no key to offer (no identity file, no agent key)")
	} else {
		b.WriteString("no key accepted; tried publickey with " + strings.Join(e.Tried, ", "))
	}
	if len(e.Notes) > 0 {
		b.WriteString("; " + strings.Join(e.Notes, "; "))
	}
	return b.String()
}

func (e *AuthError) Unwrap() error { return e.Err }

// isAuthFailure recognises x/crypto's "unable to authenticate" and
// OpenSSH's MaxAuthTries disconnect.
func isAuthFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unable to authenticate") || strings.Contains(s, "Too many authentication failures")
}

// keyring is what one endpoint may offer.
type keyring struct {
	signers []ssh.Signer
	tried   []string
	notes   []string
}

func describe(source string, k ssh.PublicKey) string {
	return fmt.Sprintf("%s (%s %s)", source, k.Type(), ssh.FingerprintSHA256(k))
}

// keysFor gathers the keys for an endpoint: its identity files first (the
// explicit ones must exist), then the agent's keys unless IdentitiesOnly,
// then OpenSSH's default identity files when nothing named any.
func keysFor(e endpoint, agent []ssh.Signer, agentNote, home string) (keyring, error) {
	var kr keyring
	seen := map[string]bool{}
	add := func(s ssh.Signer, source string) {
		k := string(s.PublicKey().Marshal())
		if seen[k] {
			return
		}
		seen[k] = true
		kr.signers = append(kr.signers, s)
		kr.tried = append(kr.tried, describe(source, s.PublicKey()))
	}
	if agentNote != "" {
		kr.notes = append(kr.notes, agentNote)
	}
	loadFile := func(path string, required bool) error {
		b, err := os.ReadFile(path)
		if err != nil {
			if required {
				return fmt.Errorf("identity file %s: %w", path, err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				kr.notes = append(kr.notes, fmt.Sprintf("identity file %s: %v", path, err))
			}
			return nil
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		switch {
		case err == nil:
			add(s, "identity file "+path)
			return nil
		case errors.As(err, &pm):
			pub := pm.PublicKey
			if pub == nil {
				pub = readPublicKey(path + ".pub")
			}
			if pub != nil {
				for _, a := range agent {
					if bytes.Equal(a.PublicKey().Marshal(), pub.Marshal()) {
						add(a, "agent key of identity file "+path)
						return nil
					}
				}
			}
			kr.notes = append(kr.notes, fmt.Sprintf("identity file %s is passphrase-protected and its key is not in the agent (ssh-add it)", path))
			return nil
		default:
			if required {
				return fmt.Errorf("identity file %s: %w", path, err)
			}
			kr.notes = append(kr.notes, fmt.Sprintf("identity file %s: %v", path, err))
			return nil
		}
	}
	for i, f := range e.identityFiles {
		if err := loadFile(f, i < e.explicitIDs); err != nil {
			return kr, err
		}
	}
	if !e.identitiesOnly {
		for _, a := range agent {
			add(a, "agent key")
		}
	}
	if len(e.identityFiles) == 0 && home != "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if err := loadFile(filepath.Join(home, ".ssh", n), false); err != nil {
				return kr, err
			}
		}
	}
	return kr, nil
}

func readPublicKey(path string) ssh.PublicKey {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	return k
}
