package remote_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

// testKey is a client key with its private key file.
type testKey struct {
	signer ssh.Signer
	priv   ed25519.PrivateKey
	path   string
}

func (k testKey) pub() ssh.PublicKey { return k.signer.PublicKey() }

// newKey writes a fresh Ed25519 key to dir/name (and name.pub), encrypted
// when passphrase is not empty.
func newKey(t *testing.T, dir, name, passphrase string) testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return testKey{signer: signer, priv: priv, path: path}
}

// serveAgent serves an agent holding keys on a unix socket until the test
// ends.
func serveAgent(t *testing.T, keys ...testKey) string {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k.priv}); err != nil {
			t.Fatal(err)
		}
	}
	// Unix socket paths are short: keep it out of the long test temp dir.
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				agent.ServeAgent(kr, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return sock
}

// writeKnownHosts writes lines to a known_hosts file in a fresh directory.
func writeKnownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	var b []byte
	for _, l := range lines {
		b = append(b, l...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lab is one server with a user "root" allowed in with key.
type lab struct {
	srv   *remotetest.Server
	key   testKey
	known string
	dir   string // the server's working directory
}

func newLab(t *testing.T, opts remotetest.ServerOptions) lab {
	t.Helper()
	key := newKey(t, t.TempDir(), "id_ed25519", "")
	if opts.Users == nil {
		opts.Users = map[string][]ssh.PublicKey{"root": {key.pub()}}
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	srv := remotetest.NewServer(t, opts)
	return lab{srv: srv, key: key, known: writeKnownHosts(t, srv.KnownHostsLine()), dir: opts.Dir}
}

func (l lab) config() remote.Config {
	return remote.Config{
		Name:           "lab",
		Address:        "127.0.0.1",
		Port:           l.srv.Port(),
		User:           "root",
		IdentityFiles:  []string{l.key.path},
		KnownHostsFile: l.known,
		ConnectTimeout: 5 * time.Second,
	}
}

func dial(t *testing.T, cfg remote.Config) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// currentOwner is the test process's user and group names.
func currentOwner(t *testing.T) (string, string) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return u.Username, g.Name
}

// proxy forwards TCP to a target until frozen: then it stops moving bytes
// without closing anything, like a dead network path.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen chan struct{}
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, frozen: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(u, c)
			go p.pipe(c, u)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			// Swallow everything from now on.
			if err != nil {
				return
			}
			continue
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			return
		}
	}
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) freeze() { close(p.frozen) }
