package labhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Lab is one lab instance: a router namespace (the lab's Internet), its
// link to the box, the hosts started on it, and a share of the box's apt
// proxy. Its methods are safe for concurrent use.
type Lab struct {
	cfg      Config
	log      *slog.Logger
	run      runner
	n        int
	name     string
	plan     netPlan
	cg       cgroupTree
	slot     *os.File
	workDir  string
	watchdog *exec.Cmd
	proxy    *aptProxy
	fwd      *forwarder

	// baseMu serialises base lookups and builds within the process
	// (EnsureBase serialises across processes).
	baseMu sync.Mutex

	mu       sync.Mutex
	pool     *addrPool
	hosts    map[string]*Host
	nextLink int
	closed   bool
}

// Open starts a lab instance: it takes a free slot on the box (reaping the
// leftovers of labs whose process died), creates the lab's network and
// registers with the apt proxy (starting it if needed). Close releases
// everything. Bases are built lazily, by the first Start of each release
// (or by EnsureBase).
func Open(ctx context.Context, cfg Config) (*Lab, error) {
	cfg = cfg.withDefaults()
	if err := CheckPrerequisites(cfg); err != nil {
		return nil, fmt.Errorf("open lab: %w", err)
	}
	cg, err := findCgroupTree()
	if err != nil {
		return nil, fmt.Errorf("open lab: %w", err)
	}
	l := &Lab{cfg: cfg, log: cfg.Logger, run: runner{log: cfg.Logger}, cg: cg, hosts: map[string]*Host{}}
	n, slot, err := claimSlot(ctx, l.run, cg, cfg.RunDir)
	if err != nil {
		return nil, fmt.Errorf("open lab: %w", err)
	}
	l.n, l.slot, l.name, l.plan = n, slot, instanceName(n), netPlan{n: n}
	l.pool = newAddrPool(l.plan)
	l.workDir = filepath.Join(cfg.CacheDir, "instances", l.name)
	l.log = l.log.With(slog.String("lab", l.name))
	l.run = runner{log: l.log}
	if err := l.open(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open lab %s: %w", l.name, err), l.Close())
	}
	l.log.Info("lab open", slog.String("box4", l.plan.box4().String()), slog.String("box6", l.plan.box6().String()))
	return l, nil
}

func (l *Lab) open(ctx context.Context) error {
	// Record first, create second: whatever exists can then be found by
	// whoever reaps this slot.
	if err := writeInstanceState(l.cfg.RunDir, l.n, instanceState{
		Name: l.name, PID: os.Getpid(), WorkDir: l.workDir, Started: time.Now().UTC(),
	}); err != nil {
		return err
	}
	wd, err := startWatchdog(l.cfg.RunDir, l.n, l.cg)
	if err != nil {
		return err
	}
	l.watchdog = wd
	if err := os.MkdirAll(l.workDir, 0o755); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	if err := l.cg.create(l.name); err != nil {
		return err
	}
	if err := l.setupRouter(ctx); err != nil {
		return err
	}
	if l.cfg.NoAptProxy {
		return nil
	}
	p, err := acquireAptProxy(ctx, l.log, l.cfg.RunDir, l.cfg.CacheDir, l.name)
	if err != nil {
		return err
	}
	l.proxy = p
	fwd, err := startForwarder(p.target(),
		netip.AddrPortFrom(l.plan.box4(), AptProxyPort), netip.AddrPortFrom(l.plan.box6(), AptProxyPort))
	if err != nil {
		return fmt.Errorf("forward apt proxy: %w", err)
	}
	l.fwd = fwd
	return nil
}

func (p *aptProxy) target() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// Close stops and removes every host (keeping caller-owned layers), the
// lab's network and its share of the apt proxy, checks that nothing of the
// lab is left (Leftovers) and frees the slot. It is safe to call more than
// once.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	hosts := make([]*Host, 0, len(l.hosts))
	for _, h := range l.hosts {
		hosts = append(hosts, h)
	}
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.remove(ctx, false); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	l.fwd.close()
	if l.proxy != nil {
		errs = append(errs, l.proxy.release(ctx))
	}
	if l.slot != nil {
		errs = append(errs, reapInstance(ctx, l.run, l.cg, l.cfg.RunDir, l.n))
		// Checked while the slot is still ours: once released, another lab
		// may take the name at once.
		if left := Leftovers(l.name); len(left) > 0 {
			errs = append(errs, fmt.Errorf("still there after teardown: %s", strings.Join(left, "; ")))
		}
		stopWatchdog(l.watchdog)
		l.slot.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close lab %s: %w", l.name, err)
	}
	l.log.Info("lab closed")
	return nil
}

// Name is the lab's resource prefix (lgl<N>): its network namespaces are
// <Name>-r (the router) and <Name>-<host>, its box link <Name>-box.
func (l *Lab) Name() string { return l.name }

// BoxAddr4 and BoxAddr6 are the box's addresses on the lab's network.
// Services the hosts must reach (cloud stand-ins, Pebble, the lab's DNS
// server, the apt proxy) listen there; hosts reach them through their
// default route.
func (l *Lab) BoxAddr4() netip.Addr { return l.plan.box4() }

// BoxAddr6 is BoxAddr4's IPv6 counterpart.
func (l *Lab) BoxAddr6() netip.Addr { return l.plan.box6() }

// AptProxyURL is the apt proxy as hosts reach it ("" with NoAptProxy).
// Hosts are configured with it automatically.
func (l *Lab) AptProxyURL() string {
	if l.proxy == nil {
		return ""
	}
	return fmt.Sprintf("http://%s:%d", l.plan.box4(), AptProxyPort)
}

// BoxProxyURL is the apt proxy as the box reaches it ("" with NoAptProxy),
// for builds on the box such as bases.
func (l *Lab) BoxProxyURL() string {
	if l.proxy == nil {
		return ""
	}
	return "http://" + l.proxy.target()
}

// AllocIPv4 reserves a host address (a routed /32) unique in this lab. It
// stays reserved until ReleaseAddr, even when hosts using it are removed.
func (l *Lab) AllocIPv4() (netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pool.alloc4()
}

// AllocIPv6Prefix reserves a routed /64 unique in this lab, until
// ReleaseAddr.
func (l *Lab) AllocIPv6Prefix() (netip.Prefix, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pool.alloc6()
}

// ReleaseAddr gives back an address (a /32) or a /64 from AllocIPv4 or
// AllocIPv6Prefix. Releasing what a running host uses does not change the
// host; a later allocation may then collide with it and Start will refuse.
func (l *Lab) ReleaseAddr(p netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pool.release(p)
}

// Host returns the host named name, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hosts[name]
}

// Hosts returns the lab's hosts (running or stopped) sorted by name.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Host, 0, len(l.hosts))
	for _, h := range l.hosts {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b *Host) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return out
}

// EnsureBase returns the base of release, building it when the cache has
// none (through the apt proxy, so a rebuild is fast).
func (l *Lab) EnsureBase(ctx context.Context, release string) (Base, error) {
	r := DefaultRecipe(release)
	r.Mirror = l.cfg.Mirror
	return l.ensureRecipe(ctx, r)
}

func (l *Lab) ensureRecipe(ctx context.Context, r Recipe) (Base, error) {
	l.baseMu.Lock()
	defer l.baseMu.Unlock()
	return EnsureBase(ctx, BuildOptions{CacheDir: l.cfg.CacheDir, HTTPProxy: l.BoxProxyURL(), Logger: l.log}, r)
}

// CopyLayer copies the layer directory src to dst (which must not exist),
// e.g. to snapshot a host's disk or to start a new host from an image.
//
// When src is the layer of a running host of this lab, the host is frozen
// (all its processes stopped through its cgroup) for the duration of the
// copy, so the copy is crash-consistent: what a power cut at that instant
// would leave. Copies of a stopped host are exact. The copy uses
// cp -a --reflink=auto: instant on file systems with reflinks, a full copy
// elsewhere (ext4).
func (l *Lab) CopyLayer(ctx context.Context, src, dst string) error {
	src, dst = filepath.Clean(src), filepath.Clean(dst)
	if _, ok, err := readLayerMeta(src); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("copy layer %s: not a lab layer (no layer.json)", src)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy layer %s to %s: destination exists", src, dst)
	}
	if h := l.hostUsingLayer(src); h != nil {
		return h.withFrozen(ctx, func() error { return copyTree(ctx, l.run, src, dst) })
	}
	return copyTree(ctx, l.run, src, dst)
}

// RemoveLayer deletes a layer directory; it refuses a layer a host of this
// lab uses (running or stopped). Removing a missing layer is not an error.
func (l *Lab) RemoveLayer(ctx context.Context, dir string) error {
	dir = filepath.Clean(dir)
	if h := l.hostUsingLayer(dir); h != nil {
		return fmt.Errorf("remove layer %s: used by host %s", dir, h.name)
	}
	if _, err := os.Stat(dir); errNotExist(err) {
		return nil
	}
	if _, ok, err := readLayerMeta(dir); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("remove layer %s: not a lab layer (no layer.json)", dir)
	}
	return removeTree(dir)
}

func (l *Lab) hostUsingLayer(dir string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hosts {
		if h.layer == dir {
			return h
		}
	}
	return nil
}
