package remotetest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// HostKey is the server's key; nil generates an Ed25519 key.
	HostKey ssh.Signer
	// ExtraHostKeys are more host keys (of other types), offered when the
	// client asks for their algorithm.
	ExtraHostKeys []ssh.Signer
	// Users maps each login to the public keys it may log in with.
	Users map[string][]ssh.PublicKey
	// Dir is the working directory of commands (default: a temporary
	// directory).
	Dir string
	// Env is added to the environment of commands, e.g. a PATH that puts
	// a stand-in sudo first.
	Env []string
	// NoSFTP refuses the sftp subsystem.
	NoSFTP bool
}

// Server is an in-process SSH server on 127.0.0.1 for tests. It runs exec
// requests with /bin/sh -c as the test's own user, in a process group of
// their own, and behaves like OpenSSH where the client can tell: a
// "signal" request signals the command's process group, closing the
// channel does not kill the command, keepalive requests are answered with
// a failure, and the sftp subsystem and direct-tcpip channels (to
// loopback addresses only) are served. It records what clients asked for.
type Server struct {
	t       testing.TB
	opts    ServerOptions
	ln      net.Listener
	hostKey ssh.Signer
	config  *ssh.ServerConfig

	mu         sync.Mutex
	closed     bool
	conns      map[net.Conn]struct{}
	pgids      map[int]struct{}
	execs      []string
	auths      []AuthAttempt
	forwards   []string
	keepalives int
	handshakes int
	signals    []string
	wg         sync.WaitGroup
}

// AuthAttempt is one public key a client offered.
type AuthAttempt struct {
	User        string
	Fingerprint string
	Accepted    bool
}

// NewServer starts a server; it stops when the test ends.
func NewServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if opts.HostKey == nil {
		opts.HostKey = NewKey(t)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s := &Server{t: t, opts: opts, hostKey: opts.HostKey, conns: map[net.Conn]struct{}{}, pgids: map[int]struct{}{}}
	s.config = &ssh.ServerConfig{PublicKeyCallback: s.checkKey}
	s.config.AddHostKey(opts.HostKey)
	for _, k := range opts.ExtraHostKeys {
		s.config.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("remotetest: listen: %v", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

// NewKey generates an Ed25519 key.
func NewKey(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Port is the TCP port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey.PublicKey() }

// KnownHostsLine is the known_hosts line pinning this server's key.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr()}, s.hostKey.PublicKey()) + "\n"
}

// Execs are the commands clients ran, in order.
func (s *Server) Execs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

// AuthAttempts are the keys clients offered.
func (s *Server) AuthAttempts() []AuthAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AuthAttempt(nil), s.auths...)
}

// Forwards are the host:port targets of direct-tcpip channels.
func (s *Server) Forwards() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.forwards...)
}

// Keepalives counts keepalive@openssh.com requests.
func (s *Server) Keepalives() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keepalives
}

// Handshakes counts completed SSH handshakes (authenticated connections).
func (s *Server) Handshakes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshakes
}

// Signals are the signal requests received ("TERM", ...).
func (s *Server) Signals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.signals...)
}

// Close stops the server: connections are closed, commands still running
// are killed (process group) and waited for.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	for pgid := range s.pgids {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	ok := false
	for _, k := range s.opts.Users[meta.User()] {
		if string(k.Marshal()) == string(key.Marshal()) {
			ok = true
		}
	}
	s.mu.Lock()
	s.auths = append(s.auths, AuthAttempt{User: meta.User(), Fingerprint: ssh.FingerprintSHA256(key), Accepted: ok})
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("key not authorized")
	}
	return &ssh.Permissions{}, nil
}

// track registers c for Close; false when the server is closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			defer c.Close()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.config)
	if err != nil {
		return
	}
	defer sc.Close()
	s.mu.Lock()
	s.handshakes++
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for r := range reqs {
			if r.Type == "keepalive@openssh.com" {
				s.mu.Lock()
				s.keepalives++
				s.mu.Unlock()
			}
			// OpenSSH answers requests it does not implement, keepalives
			// included, with a failure.
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	var chwg sync.WaitGroup
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			chwg.Add(1)
			go func() {
				defer chwg.Done()
				s.serveSession(ch, creqs)
			}()
		case "direct-tcpip":
			chwg.Add(1)
			go func() {
				defer chwg.Done()
				s.serveForward(nc)
			}()
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
	chwg.Wait()
}

func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var started bool
	var cmdDone chan struct{}
	var pgid int
	for r := range reqs {
		switch r.Type {
		case "exec":
			if started {
				r.Reply(false, nil)
				continue
			}
			var msg struct{ Command string }
			if err := ssh.Unmarshal(r.Payload, &msg); err != nil {
				r.Reply(false, nil)
				continue
			}
			s.mu.Lock()
			s.execs = append(s.execs, msg.Command)
			s.mu.Unlock()
			cmd := exec.Command("/bin/sh", "-c", msg.Command)
			cmd.Dir = s.opts.Dir
			cmd.Env = append(os.Environ(), s.opts.Env...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			stdin, err1 := cmd.StdinPipe()
			stdout, err2 := cmd.StdoutPipe()
			stderr, err3 := cmd.StderrPipe()
			if err := errors.Join(err1, err2, err3); err != nil {
				r.Reply(false, nil)
				continue
			}
			if !s.startCmd(cmd) {
				r.Reply(false, nil)
				continue
			}
			pgid = cmd.Process.Pid
			started = true
			r.Reply(true, nil)
			cmdDone = make(chan struct{})
			go func() {
				io.Copy(stdin, ch)
				stdin.Close()
			}()
			go func() {
				defer close(cmdDone)
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); io.Copy(ch, stdout) }()
				go func() { defer wg.Done(); io.Copy(ch.Stderr(), stderr) }()
				wg.Wait()
				err := cmd.Wait()
				s.mu.Lock()
				delete(s.pgids, pgid)
				s.mu.Unlock()
				sendExit(ch, cmd.ProcessState, err)
				ch.CloseWrite()
				ch.Close()
			}()
		case "subsystem":
			var msg struct{ Name string }
			if err := ssh.Unmarshal(r.Payload, &msg); err != nil || msg.Name != "sftp" || s.opts.NoSFTP || started {
				r.Reply(false, nil)
				continue
			}
			started = true
			r.Reply(true, nil)
			srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.opts.Dir))
			if err != nil {
				return
			}
			cmdDone = make(chan struct{})
			go func() {
				defer close(cmdDone)
				srv.Serve()
				srv.Close()
			}()
		case "signal":
			var msg struct{ Signal string }
			ssh.Unmarshal(r.Payload, &msg)
			s.mu.Lock()
			s.signals = append(s.signals, msg.Signal)
			s.mu.Unlock()
			if sig, ok := signalByName(msg.Signal); ok && pgid > 0 {
				// Like sshd: the whole process group.
				syscall.Kill(-pgid, sig)
			}
			if r.WantReply {
				r.Reply(true, nil)
			}
		default:
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
	// The client closed the channel. As with OpenSSH, the command is not
	// killed: it ends when it notices its closed input or output.
	if cmdDone != nil {
		<-cmdDone
	}
}

// signalNames are the signals RFC 4254 names, without "SIG".
func signalNames() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
		"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE,
		"ALRM": syscall.SIGALRM, "ABRT": syscall.SIGABRT, "SEGV": syscall.SIGSEGV, "FPE": syscall.SIGFPE, "ILL": syscall.SIGILL,
	}
}

func signalByName(name string) (syscall.Signal, bool) {
	sig, ok := signalNames()[name]
	return sig, ok
}

func (s *Server) startCmd(cmd *exec.Cmd) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || cmd.Start() != nil {
		return false
	}
	s.pgids[cmd.Process.Pid] = struct{}{}
	return true
}

func sendExit(ch ssh.Channel, st *os.ProcessState, waitErr error) {
	if st == nil {
		return
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := ""
		for n, sig := range signalNames() {
			if sig == ws.Signal() {
				name = n
			}
		}
		if name == "" {
			name = strconv.Itoa(int(ws.Signal()))
		}
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: name}))
		return
	}
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, uint32(st.ExitCode()))
	ch.SendRequest("exit-status", false, b)
}

func (s *Server) serveForward(nc ssh.NewChannel) {
	var msg struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &msg); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	target := net.JoinHostPort(msg.Host, strconv.Itoa(int(msg.Port)))
	s.mu.Lock()
	s.forwards = append(s.forwards, target)
	s.mu.Unlock()
	// Tests only ever reach loopback.
	if ip := net.ParseIP(msg.Host); msg.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		nc.Reject(ssh.Prohibited, fmt.Sprintf("remotetest forwards only to loopback, not %s", target))
		return
	}
	conn, err := net.Dial("tcp", target)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	if !s.track(conn) {
		conn.Close()
		nc.Reject(ssh.ConnectionFailed, "server closing")
		return
	}
	defer s.untrack(conn)
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(ch, conn)
		ch.CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		io.Copy(conn, ch)
		conn.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
	ch.Close()
	conn.Close()
}
