package remote

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KnownKey is a host key a known_hosts file pins (or the caller expects).
type KnownKey struct {
	// Type is the key type, e.g. ssh-ed25519.
	Type string
	// Fingerprint is the SHA256 fingerprint, as ssh-keygen -l prints it.
	Fingerprint string
	// File and Line locate the known_hosts entry; File is empty for a key
	// from Config.ExpectedKeys.
	File string
	Line int
}

func (k KnownKey) String() string {
	where := "expected by the caller"
	if k.File != "" {
		where = k.File + ":" + strconv.Itoa(k.Line)
	}
	return fmt.Sprintf("%s %s (%s)", k.Type, k.Fingerprint, where)
}

// HostKeyChangedError says a server presented a key other than the one
// pinned for it: a rebuilt machine, or someone in the middle. The
// connection is dropped during the handshake, before authentication, so
// neither a key offer nor a command reached that server.
type HostKeyChangedError struct {
	// Host is Config.Name (or the jump host's alias).
	Host string
	// Address is the host's name in known_hosts form: host or [host]:port.
	Address string
	// Known are the keys pinned for Address (or expected by the caller).
	Known []KnownKey
	// PresentedType and Presented are the type and SHA256 fingerprint of
	// the key the server presented.
	PresentedType, Presented string
	// KnownHostsFile is where new keys are pinned, for the hint.
	KnownHostsFile string
}

func (e *HostKeyChangedError) Error() string {
	known := make([]string, len(e.Known))
	for i, k := range e.Known {
		known[i] = k.String()
	}
	msg := fmt.Sprintf("host key of %s (%s) changed: the server presented %s %s, but %s is pinned; refusing to connect (a rebuilt server, or an impostor)",
		e.Host, e.Address, e.PresentedType, e.Presented, strings.Join(known, ", "))
	for _, k := range e.Known {
		if k.File != "" {
			return msg + fmt.Sprintf("; if the server was rebuilt, check the new fingerprint out of band, then remove the old entry (ssh-keygen -R %s -f %s)", Quote(e.Address), Quote(k.File))
		}
	}
	return msg
}

// UnknownHostError says no known_hosts file knows the host and nothing
// allowed trusting it (Config.TrustNew, Config.ExpectedKeys). The
// connection is dropped during the handshake: nothing was sent to it.
type UnknownHostError struct {
	Host, Address string
	// PresentedType and Presented are the type and SHA256 fingerprint of
	// the key the server presented.
	PresentedType, Presented string
	KnownHostsFile           string
}

func (e *UnknownHostError) Error() string {
	host, port := e.Address, "22"
	if h, p, err := net.SplitHostPort(e.Address); err == nil {
		host, port = h, p
	}
	return fmt.Sprintf("host key of %s (%s) is unknown: the server presented %s %s, and %s has no entry for it; "+
		"check that fingerprint out of band (cloud console, the server's own ssh-keygen -l), then pin it "+
		"(ssh-keyscan -p %s %s >> %s), or let provision pin it when it creates the machine",
		e.Host, e.Address, e.PresentedType, e.Presented, e.KnownHostsFile, port, Quote(host), Quote(e.KnownHostsFile))
}

// hostKeys checks host keys against the known_hosts files and pins new
// ones in the writable one.
type hostKeys struct {
	file  string   // writable, may not exist yet
	extra []string // read-only
	log   *slog.Logger
}

// zeroKey matches no real host key: checking it reveals the keys known for
// a host.
func zeroKey() ssh.PublicKey {
	k, _ := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	return k
}

func zeroAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

// db loads the known_hosts files that exist.
func (h *hostKeys) db() (ssh.HostKeyCallback, error) {
	var files []string
	for _, f := range append([]string{h.file}, h.extra...) {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("read known hosts %s: %w", f, err)
		}
		files = append(files, f)
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	return cb, nil
}

// known returns the keys pinned for hostport.
func known(db ssh.HostKeyCallback, hostport string) []knownhosts.KnownKey {
	var ke *knownhosts.KeyError
	if err := db(hostport, zeroAddr(), zeroKey()); errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// algorithms restricts the handshake to the key types pinned for a host:
// a server offering a type nobody pinned would otherwise look like a
// changed key. For a host with no pinned key it is OpenSSH's preference
// (Ed25519 first, no SHA-1 RSA), so the key pinned on first use is the
// one ssh(1) would pin, not x/crypto's first choice (ECDSA).
func algorithms(keys []knownhosts.KnownKey) []string {
	if len(keys) == 0 {
		return []string{
			ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
			ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
			ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
			ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
		}
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range keys {
		t := k.Key.Type()
		if seen[t] {
			continue
		}
		seen[t] = true
		if t == ssh.KeyAlgoRSA {
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			algos = append(algos, t)
		}
	}
	return algos
}

// verifier is the policy for one endpoint.
type verifier struct {
	keys     *hostKeys
	name     string // for messages
	hostport string
	trustNew bool
	expected []ssh.PublicKey
	// presented is the key the server showed, set by check.
	presented ssh.PublicKey
}

func (v *verifier) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	v.presented = key
	db, err := v.keys.db()
	if err != nil {
		return err
	}
	err = db(hostname, remote, key)
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("host key of %s (%s) %s is revoked (%s:%d)", v.name, knownhosts.Normalize(hostname), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return v.changed(key, ke.Want, nil)
	case errors.As(err, &ke):
		// Unknown host: below.
	default:
		return fmt.Errorf("check host key of %s: %w", v.name, err)
	}
	if len(v.expected) > 0 {
		for _, k := range v.expected {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return v.keys.pin(v, hostname, key, "expected")
			}
		}
		return v.changed(key, nil, v.expected)
	}
	if v.trustNew {
		return v.keys.pin(v, hostname, key, "new host, trusted on first use")
	}
	return &UnknownHostError{Host: v.name, Address: knownhosts.Normalize(hostname), PresentedType: key.Type(), Presented: ssh.FingerprintSHA256(key), KnownHostsFile: v.keys.file}
}

func (v *verifier) changed(presented ssh.PublicKey, pinned []knownhosts.KnownKey, expected []ssh.PublicKey) error {
	e := &HostKeyChangedError{Host: v.name, Address: knownhosts.Normalize(v.hostport), PresentedType: presented.Type(), Presented: ssh.FingerprintSHA256(presented), KnownHostsFile: v.keys.file}
	for _, k := range pinned {
		e.Known = append(e.Known, KnownKey{Type: k.Key.Type(), Fingerprint: ssh.FingerprintSHA256(k.Key), File: k.Filename, Line: k.Line})
	}
	for _, k := range expected {
		e.Known = append(e.Known, KnownKey{Type: k.Type(), Fingerprint: ssh.FingerprintSHA256(k)})
	}
	return e
}

// pin appends key for hostport to the writable known_hosts file. Under
// the lock it checks again: a concurrent Dial may have pinned the same
// host meanwhile (fine if it is the same key, a changed key otherwise).
func (h *hostKeys) pin(v *verifier, hostport string, key ssh.PublicKey, why string) error {
	dir := filepath.Dir(h.file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin host key of %s: %w", v.name, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("pin host key of %s: lock %s: %w", v.name, dir, err)
	}
	defer unlock()
	db, err := h.db()
	if err != nil {
		return err
	}
	var ke *knownhosts.KeyError
	if err := db(hostport, zeroAddr(), key); err == nil {
		return nil
	} else if errors.As(err, &ke) && len(ke.Want) > 0 {
		return v.changed(key, ke.Want, nil)
	}
	f, err := os.OpenFile(h.file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pin host key of %s: %w", v.name, err)
	}
	defer f.Close()
	line := knownhosts.Line([]string{hostport}, key) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("pin host key of %s in %s: %w", v.name, h.file, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pin host key of %s in %s: %w", v.name, h.file, err)
	}
	h.log.Info("pinned host key", "host", v.name, "address", knownhosts.Normalize(hostport), "key", key.Type()+" "+ssh.FingerprintSHA256(key), "file", h.file, "why", why)
	return nil
}

// ForgetHost removes the keys pinned for address and port from a
// known_hosts file (plain and hashed entries; other names on the same line
// stay), and returns how many names it removed. Call it only when the
// machine behind that address was destroyed (provision recreated it): it
// turns the next connection into a first one. A missing file is not an
// error.
func ForgetHost(knownHostsFile, address string, port int) (int, error) {
	name := knownhosts.Normalize(net.JoinHostPort(address, strconv.Itoa(port)))
	dir := filepath.Dir(knownHostsFile)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return 0, fmt.Errorf("forget %s in %s: lock: %w", name, knownHostsFile, err)
	}
	defer unlock()
	b, err := os.ReadFile(knownHostsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	var out bytes.Buffer
	removed := 0
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		hostsAt := 0
		if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
			hostsAt = 1
		}
		if len(fields) <= hostsAt+1 || strings.HasPrefix(fields[0], "#") {
			out.WriteString(line)
			continue
		}
		var keep []string
		for _, h := range strings.Split(fields[hostsAt], ",") {
			if h == name || hashedMatch(h, name) {
				removed++
				continue
			}
			keep = append(keep, h)
		}
		switch {
		case len(keep) == len(strings.Split(fields[hostsAt], ",")):
			out.WriteString(line)
		case len(keep) > 0:
			fields[hostsAt] = strings.Join(keep, ",")
			out.WriteString(strings.Join(fields, " ") + "\n")
		}
	}
	if removed == 0 {
		return 0, nil
	}
	st, err := os.Stat(knownHostsFile)
	if err != nil {
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(knownHostsFile)+".lghsctl-*")
	if err != nil {
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), knownHostsFile); err != nil {
		return 0, fmt.Errorf("forget %s: %w", name, err)
	}
	return removed, nil
}

// hashedMatch reports whether a hashed known_hosts name (|1|salt|hash)
// stands for name.
func hashedMatch(entry, name string) bool {
	parts := strings.Split(entry, "|")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "1" {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(name))
	return hmac.Equal(m.Sum(nil), want)
}
