package labhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The apt proxy is one apt-cacher-ng daemon per box, shared by every lab so
// its cache (CacheDir/apt-cacher-ng) makes repeated runs fast. It runs with
// the lab's own configuration (never the Debian package's: its default
// backends_debian does not resolve here) and listens on loopback only; each
// lab forwards its box addresses' port 3142 to it, so hosts use
// http://<BoxAddr4>:3142 and nothing is exposed beyond the box.
//
// Lifetime: a lab registers as a user (RunDir/aptproxy/users/<lab>.lock,
// flock'ed for the lab's life) and the last user to leave stops the
// daemon, so nothing keeps running after the last lab closes. A user that
// died is pruned by the next user to come or go, or by its lab's watchdog.

// AptProxyPort is the port hosts reach the apt proxy on, at the lab's box
// addresses.
const AptProxyPort = 3142

func aptProxyDir(runDir string) string { return filepath.Join(runDir, "aptproxy") }

type aptProxy struct {
	dir  string
	name string
	port int
	user *os.File
}

// acquireAptProxy registers lab name as a user of the box's apt proxy,
// starting the daemon if none runs.
func acquireAptProxy(ctx context.Context, log *slog.Logger, runDir, cacheDir, name string) (*aptProxy, error) {
	dir := aptProxyDir(runDir)
	if err := os.MkdirAll(filepath.Join(dir, "users"), 0o755); err != nil {
		return nil, fmt.Errorf("start apt proxy: %w", err)
	}
	lock, err := lockFile(ctx, filepath.Join(dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("start apt proxy: %w", err)
	}
	defer lock.Close()
	user, ok, err := tryLockFile(filepath.Join(dir, "users", name+".lock"))
	if err != nil {
		return nil, fmt.Errorf("start apt proxy: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("start apt proxy: lab %s is already registered by a live process", name)
	}
	p := &aptProxy{dir: dir, name: name, user: user}
	if port, ok := aptProxyAlive(dir); ok {
		p.port = port
		return p, nil
	}
	if p.port, err = startAptCacherNG(ctx, log, dir, cacheDir); err != nil {
		user.Close()
		os.Remove(filepath.Join(dir, "users", name+".lock"))
		return nil, err
	}
	return p, nil
}

// release unregisters the lab and stops the daemon when no live user is
// left.
func (p *aptProxy) release(ctx context.Context) error {
	if p == nil {
		return nil
	}
	lock, err := lockFile(ctx, filepath.Join(p.dir, "lock"))
	if err != nil {
		return fmt.Errorf("release apt proxy: %w", err)
	}
	defer lock.Close()
	os.Remove(filepath.Join(p.dir, "users", p.name+".lock"))
	p.user.Close()
	return pruneAptProxy(p.dir)
}

// releaseAptProxyUser is release for a dead lab (its lock is already gone).
func releaseAptProxyUser(ctx context.Context, runDir, name string) error {
	dir := aptProxyDir(runDir)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	lock, err := lockFile(ctx, filepath.Join(dir, "lock"))
	if err != nil {
		return fmt.Errorf("release apt proxy for %s: %w", name, err)
	}
	defer lock.Close()
	return pruneAptProxy(dir)
}

// pruneAptProxy removes dead users and stops the daemon when none is left.
// The caller holds the proxy's lock.
func pruneAptProxy(dir string) error {
	users, _ := filepath.Glob(filepath.Join(dir, "users", "*.lock"))
	live := 0
	for _, u := range users {
		f, free, err := tryLockFile(u)
		if err != nil {
			return err
		}
		if free {
			os.Remove(u)
			f.Close()
			continue
		}
		live++
	}
	if live > 0 {
		return nil
	}
	stopAptCacherNG(dir)
	return nil
}

func processIs(pid int, comm string) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil {
		return false
	}
	if st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil {
		// A zombie has its name but no longer runs.
		if _, rest, ok := strings.Cut(string(st), ") "); ok && strings.HasPrefix(rest, "Z") {
			return false
		}
	}
	return strings.TrimSpace(string(data)) == comm
}

func aptProxyPID(dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || !processIs(pid, "apt-cacher-ng") {
		return 0, false
	}
	return pid, true
}

// aptProxyAlive says whether the daemon recorded in dir runs and answers.
func aptProxyAlive(dir string) (int, bool) {
	if _, ok := aptProxyPID(dir); !ok {
		return 0, false
	}
	data, err := os.ReadFile(filepath.Join(dir, "port"))
	if err != nil {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return 0, false
	}
	c.Close()
	return port, true
}

// aptCacherConf is the daemon's whole configuration: its own cache, log,
// pid file and admin socket, loopback only, Debian remapped to the one
// mirror that works here (LAB.md: the package's backends list does not
// resolve).
func aptCacherConf(dir, cacheDir string, port int) string {
	return fmt.Sprintf(`# Written by the lghsctl lab.
CacheDir: %s
LogDir: %s
SupportDir: /usr/lib/apt-cacher-ng
Port: %d
BindAddress: 127.0.0.1
PidFile: %s
SocketPath: %s
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security ; deb.debian.org/debian-security
ExThreshold: 4
`, filepath.Join(cacheDir, "apt-cacher-ng"), filepath.Join(dir, "log"), port,
		filepath.Join(dir, "pid"), filepath.Join(dir, "socket"))
}

func startAptCacherNG(ctx context.Context, log *slog.Logger, dir, cacheDir string) (int, error) {
	// A daemon recorded here that does not answer is ours and useless.
	stopAptCacherNG(dir)
	port, err := freeAptProxyPort()
	if err != nil {
		return 0, fmt.Errorf("start apt proxy: %w", err)
	}
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{conf, filepath.Join(dir, "log"), filepath.Join(cacheDir, "apt-cacher-ng")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("start apt proxy: %w", err)
		}
	}
	if err := writeFileAtomic(filepath.Join(conf, "acng.conf"), []byte(aptCacherConf(dir, cacheDir, port)), 0o644); err != nil {
		return 0, fmt.Errorf("start apt proxy: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(conf, "backends_debian"), []byte(DefaultMirror+"/\n"), 0o644); err != nil {
		return 0, fmt.Errorf("start apt proxy: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "port"), []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("start apt proxy: %w", err)
	}
	// ForeGround=0: the daemon detaches (it is no child of ours to reap)
	// and writes its pid file.
	if _, err := (runner{log: log}).run(ctx, nil, "apt-cacher-ng", "-c", conf, "ForeGround=0"); err != nil {
		return 0, fmt.Errorf("start apt proxy: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if p, ok := aptProxyAlive(dir); ok {
			log.Info("started apt proxy", slog.Int("port", p))
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopAptCacherNG(dir)
	return 0, fmt.Errorf("start apt proxy: apt-cacher-ng did not answer on 127.0.0.1:%d (see %s)", port, filepath.Join(dir, "log"))
}

// stopAptCacherNG stops the daemon recorded in dir, if it runs.
func stopAptCacherNG(dir string) {
	pid, ok := aptProxyPID(dir)
	if !ok {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && processIs(pid, "apt-cacher-ng"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if processIs(pid, "apt-cacher-ng") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	os.Remove(filepath.Join(dir, "pid"))
}

// freeAptProxyPort finds a free loopback port below 32768: apt-cacher-ng
// 3.7 cannot bind higher ones ("Error resolving address for binding"), and
// the kernel's ephemeral ports start there.
func freeAptProxyPort() (int, error) {
	for port := 31420; port < 32768; port++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port in 31420-32767 on 127.0.0.1")
}

// forwarder relays TCP connections accepted on some listeners to one
// target address (a lab's box addresses to the shared apt proxy).
type forwarder struct {
	target    string
	listeners []net.Listener
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
}

func startForwarder(target string, addrs ...netip.AddrPort) (*forwarder, error) {
	f := &forwarder{target: target, conns: map[net.Conn]struct{}{}}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a.String())
		if err != nil {
			f.close()
			return nil, fmt.Errorf("listen on %s: %w", a, err)
		}
		f.listeners = append(f.listeners, l)
		f.wg.Add(1)
		go f.serve(l)
	}
	return f, nil
}

func (f *forwarder) serve(l net.Listener) {
	defer f.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.relay(c)
		}()
	}
}

func (f *forwarder) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		if f.closed {
			return false
		}
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
	return true
}

func (f *forwarder) relay(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !f.track(c, true) || !f.track(up, true) {
		return
	}
	defer f.track(c, false)
	defer f.track(up, false)
	pipe(c, up)
}

// pipe copies both ways until both directions are done, passing half
// closes on.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
}

func (f *forwarder) close() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closed = true
	for _, l := range f.listeners {
		l.Close()
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
