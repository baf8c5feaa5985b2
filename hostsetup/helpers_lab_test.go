package hostsetup

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

// labInventory is run_test.go's testInventory for a lab host: no app (the
// lab reaches no registry; the app stack is proven elsewhere), Debian's
// Docker (the lab cannot reach Docker's repository), the site proxying to
// [::1]:3000, and the admin's key a real one so that it can log in.
const labInventory = `
version: 1
name: lab
dns:
  zones: [{name: example.test}]
acme: {email: admin@example.test, directory: "https://acme.example.test/dir"}
ssh_keys:
  - name: alice
    public_key: "{{key}}"
admins:
  - name: alice
    ssh_keys: [alice]
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}}
    packages: [tmux, vim, rsync]
    docker: {source: debian}
    directories:
      - {path: /srv/chat.example.test, mode: "0755"}
      - {path: /srv/chat.example.test/data, mode: "0750"}
    sites:
      - name: chat.example.test
        upstream: "[::1]:3000"
        client_max_body_size: 200M
`

// sshOnlyInventory configures nothing but the SSH hardening: the lockout
// tests need no package.
const sshOnlyInventory = `
version: 1
name: lab
dns:
  zones: [{name: example.test}]
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}}
    unattended_upgrades: false
`

// labRig is one lab host and the ways to reach it: lghsctl's own SSH
// transport (as up dials it: a known_hosts file pinned from the lab's host
// keys, an identity file) and, out of band, commands run inside the host
// without SSH (they work whatever sshd's state).
type labRig struct {
	t       *testing.T
	lab     *labhost.Lab
	h       *labhost.Host
	rcfg    remote.Config
	authKey string // the identity's authorized_keys line
}

// newLabRig starts a lab host (release "" is the lab's default).
func newLabRig(t *testing.T, lb *labhost.Lab, name, release string) *labRig {
	t.Helper()
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	authKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " lghsctl-lab"
	h := labtest.Host(t, lb, labhost.Spec{Name: name, Release: release, AuthorizedKeys: []string{authKey}})
	return &labRig{t: t, lab: lb, h: h, authKey: authKey, rcfg: remote.Config{
		Name:           name,
		Address:        h.Addr4().String(),
		IdentityFiles:  []string{keyFile},
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		ExpectedKeys:   h.HostKeys(),
		ConnectTimeout: 10 * time.Second,
	}}
}

// inventory parses an inventory whose {{address}} is the host's address
// and {{key}} the rig's public key.
func (r *labRig) inventory(yaml string) *inventory.File {
	r.t.Helper()
	data := strings.NewReplacer("{{address}}", r.h.Addr4().String(), "{{key}}", r.authKey).Replace(yaml)
	f, err := inventory.Parse("inventory.yaml", []byte(data))
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

// put writes a file inside the host without SSH.
func (r *labRig) put(ctx context.Context, p string, mode fs.FileMode, data []byte) {
	r.t.Helper()
	cmd := fmt.Sprintf("mkdir -p \"$(dirname %s)\" && cat > %s && chmod %04o %s", quote(p), quote(p), mode, quote(p))
	if err := r.h.Run(ctx, labhost.Cmd{Args: []string{"sh", "-c", cmd}, Stdin: bytes.NewReader(data)}); err != nil {
		r.t.Fatalf("write %s in %s: %v", p, r.h.Name(), err)
	}
}

// config is host setup's configuration for the rig, as up builds it.
func (r *labRig) config(f *inventory.File) Config {
	keys := map[string]string{}
	for _, k := range f.SSHKeys {
		keys[k.Name] = k.PublicKey
	}
	return Config{Inventory: f, Host: &f.Hosts[0], AuthorizedKeys: keys, VerifyLogin: r.verifyLogin}
}

// dial opens a new connection with lghsctl's transport.
func (r *labRig) dial(ctx context.Context) (*remote.Client, error) {
	return remote.Dial(ctx, r.rcfg)
}

// verifyLogin is up's VerifyLogin (internal/cli/hosts.go): a second, new
// connection that runs a command, retried for a few seconds while sshd
// restarts its listener.
func (r *labRig) verifyLogin(ctx context.Context, user string) error {
	cfg := r.rcfg
	cfg.User = user
	cfg.Sudo = user != "root"
	var lastErr error
	for range 20 {
		c, err := remote.Dial(ctx, cfg)
		if err == nil {
			_, err = c.Run(ctx, "true", nil)
			c.Close()
			if err == nil {
				return nil
			}
		}
		var changed *remote.HostKeyChangedError
		if errors.As(err, &changed) {
			return err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return lastErr
}

// sh runs a shell command inside the host without SSH and returns its
// standard output; the test fails if it fails.
func (r *labRig) sh(ctx context.Context, cmd string) string {
	r.t.Helper()
	out, err := r.shErr(ctx, cmd)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func (r *labRig) shErr(ctx context.Context, cmd string) (string, error) {
	var stdout, stderr bytes.Buffer
	err := r.h.Run(ctx, labhost.Cmd{Args: []string{"sh", "-c", cmd}, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// fileDigest is the SHA-256 of a file in the host, "" when it is missing.
func (r *labRig) fileDigest(ctx context.Context, p string) string {
	r.t.Helper()
	return strings.TrimSpace(r.sh(ctx, fmt.Sprintf("if [ -e %s ]; then sha256sum < %s | cut -d' ' -f1; fi", quote(p), quote(p))))
}

// countingHost records every operation that reaches the host: the number
// of remote commands a run costs.
type countingHost struct {
	Host
	mu  sync.Mutex
	ops []string
}

func (c *countingHost) record(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := strings.IndexByte(op, '\n'); i >= 0 {
		op = op[:i] + " ..."
	}
	c.ops = append(c.ops, op)
}

func (c *countingHost) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	c.record("run " + cmd)
	return c.Host.Run(ctx, cmd, stdin)
}

func (c *countingHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	c.record("read " + p)
	return c.Host.ReadFile(ctx, p)
}

func (c *countingHost) WriteFile(ctx context.Context, p string, data []byte, mode fs.FileMode, owner, group string) error {
	c.record("write " + p)
	return c.Host.WriteFile(ctx, p, data, mode, owner, group)
}

func (c *countingHost) operations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ops...)
}

// labRun is the outcome of one run of host setup.
type labRun struct {
	res   *results
	recap report.HostRecap
	ops   []string // every remote operation, in order
	out   string   // what the user would read
	err   error
}

func (lr *labRun) task(name string) (report.TaskResult, bool) {
	for _, x := range lr.res.list {
		if x.Task == name {
			return x, true
		}
	}
	return report.TaskResult{}, false
}

// tee passes every event to both reporters.
type tee struct {
	a, b report.Reporter
}

func (t tee) Play(s string)                    { t.a.Play(s); t.b.Play(s) }
func (t tee) Task(r report.TaskResult)         { t.a.Task(r); t.b.Task(r) }
func (t tee) Plan(s string, c []report.Change) { t.a.Plan(s, c); t.b.Plan(s, c) }
func (t tee) Progress(h, s string)             { t.a.Progress(h, s); t.b.Progress(h, s) }
func (t tee) Message(l report.Level, s string) { t.a.Message(l, s); t.b.Message(l, s) }
func (t tee) Summary(s report.Summary)         { t.a.Summary(s) }

// run runs host setup once with cfg, over a new connection as up does
// (one per host for the whole run), and logs what a user would read.
// mutate, if set, may change the Run before it starts (test hooks).
func (r *labRig) run(ctx context.Context, what string, cfg Config, check bool, mutate ...func(*Run, *remote.Client)) *labRun {
	r.t.Helper()
	hs := NewRun(cfg)
	var counting *countingHost
	var client *remote.Client
	tgt := hs.Target(func(ctx context.Context) error {
		c, err := r.dial(ctx)
		if err != nil {
			return err
		}
		client = c
		counting = &countingHost{Host: c}
		for _, m := range mutate {
			m(hs, c)
		}
		hs.Attach(counting)
		return nil
	}, func() {
		if client != nil {
			client.Close()
		}
	})
	var out bytes.Buffer
	txt := report.NewText(&out)
	txt.Verbose = true
	res := &results{}
	tally := report.NewTally(tee{txt, res})
	start := time.Now()
	err := (&task.Runner{Check: check, Diff: true, Reporter: tally}).Run(ctx, []task.Target{tgt})
	lr := &labRun{res: res, out: out.String(), err: err}
	if rc := tally.Recaps(); len(rc) > 0 {
		lr.recap = rc[0]
	}
	if counting != nil {
		lr.ops = counting.operations()
	}
	r.t.Logf("%s (%v, %d remote operations, err %v):\n%s", what, time.Since(start).Round(time.Millisecond), len(lr.ops), err, lr.out)
	return lr
}

// mustConverge runs host setup and fails the test unless it succeeds.
func (r *labRig) mustRun(ctx context.Context, what string, cfg Config, check bool) *labRun {
	r.t.Helper()
	lr := r.run(ctx, what, cfg, check)
	if lr.err != nil {
		r.t.Fatalf("%s: %v", what, lr.err)
	}
	return lr
}

func labCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
