package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrConnectionLost is wrapped by the errors of operations that failed
// because the connection died (no keepalive reply, or the transport
// closed under them).
var ErrConnectionLost = errors.New("connection lost")

// maxSessions bounds the sessions open at once on one connection: OpenSSH
// refuses more than MaxSessions (10 by default), and the SFTP client holds
// one.
const maxSessions = 8

// Client is one SSH connection to a host (through its jump hosts), shared
// by every command, file transfer and tunnel to it. Its methods are safe
// for concurrent use; sessions beyond a handful wait for a free slot.
type Client struct {
	name    string
	user    string
	sudo    bool
	log     *slog.Logger
	conn    *ssh.Client
	hops    []*ssh.Client // jump hosts, in connection order
	hostKey ssh.PublicKey
	slots   chan struct{}

	sftpMu  sync.Mutex
	sftp    *sftp.Client
	noSFTP  bool
	done    chan struct{}
	closing sync.Once
	kaWait  sync.WaitGroup

	lostMu sync.Mutex
	lost   error
}

// Dial connects to the host cfg describes, through its jump hosts,
// checking every host key before authenticating (see Config for the trust
// rules), and starts keepalives. ctx bounds the whole dial; each hop also
// has Config.ConnectTimeout.
//
// Errors: *HostKeyChangedError and *UnknownHostError (nothing was sent to
// the server), *AuthError, or a wrapped network error; each names the
// host.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, err := loadSSHConfig(cfg.SSHConfigFile)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", displayName(cfg), err)
	}
	r, err := resolveRoute(&cfg, sc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", displayName(cfg), err)
	}
	name := cfg.Name
	if name == "" {
		name = r.target.String()
	}
	if cfg.KnownHostsFile == "" {
		return nil, fmt.Errorf("connect to %s: no known_hosts file configured", name)
	}
	log = log.With("host", name)
	keys := &hostKeys{file: cfg.KnownHostsFile, extra: cfg.ExtraKnownHosts, log: log}
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}

	agentSigners, agentNote, closeAgent := openAgent(ctx, cfg.AgentSocket)
	defer closeAgent()

	var hops []*ssh.Client
	closeHops := func() {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
	}
	var via *ssh.Client
	for _, hop := range r.hops {
		v := &verifier{keys: keys, name: "jump host " + hop.alias, hostport: hop.addr()}
		c, err := handshake(ctx, via, hop, v, agentSigners, agentNote, cfg.HomeDir, timeout, log)
		if err != nil {
			closeHops()
			return nil, fmt.Errorf("connect to %s: %w", name, err)
		}
		hops = append(hops, c)
		via = c
	}
	v := &verifier{keys: keys, name: name, hostport: r.target.addr(), trustNew: cfg.TrustNew, expected: cfg.ExpectedKeys}
	conn, err := handshake(ctx, via, r.target, v, agentSigners, agentNote, cfg.HomeDir, timeout, log)
	if err != nil {
		closeHops()
		return nil, fmt.Errorf("connect to %s (%s): %w", name, r.target, err)
	}
	c := &Client{
		name:    name,
		user:    r.target.user,
		sudo:    cfg.Sudo && r.target.user != "root",
		log:     log,
		conn:    conn,
		hops:    hops,
		hostKey: v.presented,
		slots:   make(chan struct{}, maxSessions),
		done:    make(chan struct{}),
	}
	log.Debug("ssh connected", "target", r.target.String(), "jumps", len(hops), "host_key", v.presented.Type()+" "+ssh.FingerprintSHA256(v.presented))
	interval, max := cfg.KeepAlive, cfg.KeepAliveMax
	if interval == 0 {
		interval = defaultKeepAlive
	}
	if max <= 0 {
		max = defaultKeepAliveMax
	}
	if interval > 0 {
		c.kaWait.Add(1)
		go c.keepalive(interval, max)
	}
	return c, nil
}

func displayName(cfg Config) string {
	for _, s := range []string{cfg.Name, cfg.ConfigHost, cfg.Address} {
		if s != "" {
			return s
		}
	}
	return "host"
}

// openAgent connects to the agent and lists its keys. Failures become a
// note for the authentication error, not an error: keys may come from
// files.
func openAgent(ctx context.Context, socket string) ([]ssh.Signer, string, func()) {
	if socket == "" {
		return nil, "", func() {}
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Sprintf("agent %s unreachable: %v", socket, err), func() {}
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil, fmt.Sprintf("agent %s: list keys: %v", socket, err), func() {}
	}
	// The agent signs during the handshakes; it is not needed afterwards.
	return signers, "", func() { conn.Close() }
}

// handshake opens a TCP connection to e (directly or through via),
// checks the host key with v and authenticates.
func handshake(ctx context.Context, via *ssh.Client, e endpoint, v *verifier, agentSigners []ssh.Signer, agentNote, home string, timeout time.Duration, log *slog.Logger) (*ssh.Client, error) {
	kr, err := keysFor(e, agentSigners, agentNote, home)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	if via == nil {
		conn, err = (&net.Dialer{}).DialContext(dctx, "tcp", e.addr())
	} else {
		conn, err = via.DialContext(dctx, "tcp", e.addr())
	}
	if err != nil {
		return nil, dialErr(ctx, dctx, timeout, fmt.Errorf("dial %s: %w", e.addr(), err))
	}
	db, err := v.keys.db()
	if err != nil {
		conn.Close()
		return nil, err
	}
	config := &ssh.ClientConfig{
		User:              e.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(kr.signers...)},
		HostKeyCallback:   v.check,
		HostKeyAlgorithms: algorithms(known(db, e.addr())),
	}
	// The handshake has no context of its own: closing the connection is
	// what interrupts it (SetDeadline does not work on a jump channel).
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, e.addr(), config)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, dialErr(ctx, dctx, timeout, fmt.Errorf("ssh handshake with %s: %w", e.addr(), dctx.Err()))
	}
	if err != nil {
		var changed *HostKeyChangedError
		var unknown *UnknownHostError
		// Returned bare: x/crypto's "handshake failed:" prefix adds nothing.
		if errors.As(err, &changed) {
			return nil, changed
		}
		if errors.As(err, &unknown) {
			return nil, unknown
		}
		if v.presented != nil && isAuthFailure(err) {
			return nil, &AuthError{Host: v.name, User: e.user, Address: e.addr(), Tried: kr.tried, Notes: kr.notes, Err: err}
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", e.addr(), err)
	}
	log.Debug("ssh authenticated", "endpoint", e.String(), "host_key", knownhosts.Normalize(e.addr()))
	return ssh.NewClient(sc, chans, reqs), nil
}

func dialErr(parent, dctx context.Context, timeout time.Duration, err error) error {
	if parent.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (connect timeout %s)", err, timeout)
	}
	return err
}

// keepalive sends keepalive@openssh.com requests and closes the
// connection when none was answered for max intervals. Requests are
// answered in order, so the time since the last reply is what counts.
func (c *Client) keepalive(interval time.Duration, max int) {
	defer c.kaWait.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	replies := make(chan error, max+2)
	pending := 0
	last := time.Now()
	for {
		select {
		case <-c.done:
			return
		case err := <-replies:
			pending--
			if err != nil {
				c.fail(fmt.Errorf("%w: keepalive: %v", ErrConnectionLost, err))
				return
			}
			last = time.Now()
			continue
		case <-t.C:
		}
		if since := time.Since(last); since >= time.Duration(max)*interval {
			c.fail(fmt.Errorf("%w: no keepalive reply for %s", ErrConnectionLost, since.Round(time.Millisecond)))
			return
		}
		if pending < max+1 {
			pending++
			go func() {
				// A server that does not know the request answers false:
				// any answer proves the connection alive.
				_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
				select {
				case replies <- err:
				case <-c.done:
				}
			}()
		}
	}
}

// fail records why the connection died and closes it.
func (c *Client) fail(err error) {
	c.lostMu.Lock()
	if c.lost == nil {
		c.lost = err
	}
	c.lostMu.Unlock()
	c.log.Warn("ssh connection lost", "err", err)
	c.conn.Close()
	for i := len(c.hops) - 1; i >= 0; i-- {
		c.hops[i].Close()
	}
}

// lostErr is the reason the connection died, or nil.
func (c *Client) lostErr() error {
	c.lostMu.Lock()
	defer c.lostMu.Unlock()
	return c.lost
}

// Close closes the connection and its jump connections; commands still
// running fail. It is safe to call more than once.
func (c *Client) Close() error {
	var err error
	c.closing.Do(func() {
		close(c.done)
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
		}
		c.sftpMu.Unlock()
		err = c.conn.Close()
		for i := len(c.hops) - 1; i >= 0; i-- {
			c.hops[i].Close()
		}
		c.kaWait.Wait()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// HostKey is the key the host presented (and that was checked).
func (c *Client) HostKey() ssh.PublicKey { return c.hostKey }

// Name is the host's name in messages (Config.Name or user@address:port).
func (c *Client) Name() string { return c.name }
