package labhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Spec describes a host to start.
type Spec struct {
	// Name identifies the host in the lab (unique; lower-case letters,
	// digits and dashes, at most 40). Its network namespace is
	// <lab>-<Name>.
	Name string
	// Hostname is the host's hostname (default Name); a FQDN is allowed.
	Hostname string
	// Release is the Debian release (default the lab's). A layer that
	// already exists keeps the release it was created with; asking for
	// another is an error.
	Release string
	// LayerDir is a caller-owned layer directory: created when missing,
	// booted from when it exists (a stopped server's disk), and kept by
	// Remove and Close. Empty: the lab owns the layer and deletes it with
	// the host.
	LayerDir string
	// IPv4 is the host's routed address (a /32 in 10.0.0.0/8); the zero
	// value allocates one from the lab.
	IPv4 netip.Addr
	// IPv6Prefix is the host's routed /64 (in fc00::/7); the zero value
	// allocates one. IPv6 is the host's address in it; the zero value is
	// the EUI-64 (SLAAC) address of MAC, as on Scaleway.
	IPv6Prefix netip.Prefix
	IPv6       netip.Addr
	// MAC is the host's MAC address; nil generates one (de:00:00:xx:xx:xx).
	MAC net.HardwareAddr
	// AuthorizedKeys are root's keys ("type base64 comment" lines), added
	// at every boot to those already in the layer.
	AuthorizedKeys []string
	// Resolvers go into /etc/resolv.conf at every boot (e.g. the lab's DNS
	// server on BoxAddr4). None: the host has no resolver.
	Resolvers []netip.Addr
	// Files are written into the layer before every boot (over whatever
	// is there).
	Files []File
	// NewHostKeys replaces the layer's SSH host keys before booting, as
	// cloud-init does on a new server's first boot (use it when booting a
	// copy of another host's layer). A layer without keys always gets new
	// ones.
	NewHostKeys bool
	// Firewall is the host's security group from the start (the zero Policy
	// accepts everything); change it with SetFirewall.
	Firewall Policy
}

// File is a file to drop into a host's layer before boot.
type File struct {
	// Path is absolute in the host.
	Path string
	// Mode is the file's permission bits (0 means 0644). Files are owned
	// by root; missing parent directories are created 0755.
	Mode fs.FileMode
	Data []byte
}

var hostNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)

// Host is a lab host: a Debian system booted by systemd-nspawn with systemd
// as PID 1, in its own network namespace, on its own overlay layer. Its
// methods are safe for concurrent use; lifecycle operations (Start, Stop,
// Remove, Shape, Cut, Restore, SetFirewall) are serialised.
type Host struct {
	lab      *Lab
	name     string
	hostname string
	release  string
	netns    string
	link     string // the router's end of the host's link
	ifb      string // the router's ifb device shaping traffic from the host
	cgroup   string // relative to the lab's cgroup root
	dir      string // lab-private: mount point, console log
	layer    string
	owned    bool // the lab owns layer
	autoV4   bool
	autoV6   bool
	v4       netip.Addr
	prefix6  netip.Prefix
	v6       netip.Addr
	mac      net.HardwareAddr
	files    layerFiles
	log      *slog.Logger

	opMu sync.Mutex // serialises lifecycle operations

	mu       sync.Mutex
	removed  bool
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current boot's nspawn exits
	exitErr  error
	stopping bool
	leader   int
	keys     []ssh.PublicKey
	policy   Policy
	shape    Shape
	cut      *CutMode
}

// Start creates a host from spec, boots it and returns once its sshd
// answers on port 22 (within Config.BootTimeout). On error nothing of the
// host is left but a caller-owned layer.
func (l *Lab) Start(ctx context.Context, spec Spec) (*Host, error) {
	h, err := l.newHost(spec)
	if err != nil {
		return nil, err
	}
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if err := l.applyHostNft(ctx, h, spec.Firewall); err != nil {
		return nil, errors.Join(err, h.remove(ctx, true))
	}
	if err := h.boot(ctx); err != nil {
		return nil, errors.Join(err, h.remove(ctx, true))
	}
	return h, nil
}

// newHost validates spec, allocates what it leaves open and registers the
// host.
func (l *Lab) newHost(spec Spec) (*Host, error) {
	if !hostNameRE.MatchString(spec.Name) {
		return nil, fmt.Errorf("start host %q: bad name (want [a-z0-9-], at most 40, no leading or trailing dash)", spec.Name)
	}
	h := &Host{lab: l, name: spec.Name, hostname: spec.Hostname, release: spec.Release, mac: spec.MAC}
	fail := func(err error) (*Host, error) { return nil, fmt.Errorf("start host %s: %w", spec.Name, err) }
	if h.hostname == "" {
		h.hostname = spec.Name
	}
	if !hostnameRE.MatchString(h.hostname) || len(h.hostname) > 64 {
		return fail(fmt.Errorf("bad hostname %q", h.hostname))
	}
	if h.mac == nil {
		h.mac = newMAC()
	} else if err := checkMAC(h.mac); err != nil {
		return fail(err)
	}
	for _, k := range spec.AuthorizedKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fail(fmt.Errorf("authorized key %q: %w", k, err))
		}
	}
	if err := spec.Firewall.Validate(); err != nil {
		return fail(err)
	}
	for _, f := range spec.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) == "/" {
			return fail(fmt.Errorf("file %q: want an absolute path", f.Path))
		}
	}
	h.files = layerFiles{hostname: h.hostname, newHostKeys: spec.NewHostKeys, authorizedKeys: spec.AuthorizedKeys, files: spec.Files}
	for _, r := range spec.Resolvers {
		h.files.resolvers = append(h.files.resolvers, r.String())
	}
	for i := range h.files.files {
		if h.files.files[i].Mode == 0 {
			h.files.files[i].Mode = 0o644
		}
	}
	if spec.LayerDir != "" {
		if !filepath.IsAbs(spec.LayerDir) || strings.ContainsAny(spec.LayerDir, ",:\n ") {
			return fail(fmt.Errorf("layer directory %q: want an absolute path without commas, colons or spaces", spec.LayerDir))
		}
		h.layer = filepath.Clean(spec.LayerDir)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fail(errors.New("lab is closed"))
	}
	if _, ok := l.hosts[h.name]; ok {
		return fail(errors.New("a host of that name exists"))
	}
	h.v4, h.prefix6, h.v6 = spec.IPv4, spec.IPv6Prefix, spec.IPv6
	if !h.v4.IsValid() {
		a, err := l.pool.alloc4()
		if err != nil {
			return fail(err)
		}
		h.v4, h.autoV4 = a, true
	}
	if !h.prefix6.IsValid() {
		if h.v6.IsValid() {
			return fail(errors.New("IPv6 address given without its prefix"))
		}
		p, err := l.pool.alloc6()
		if err != nil {
			if h.autoV4 {
				l.pool.release(netip.PrefixFrom(h.v4, 32))
			}
			return fail(err)
		}
		h.prefix6, h.autoV6 = p, true
	}
	if !h.v6.IsValid() {
		h.v6 = eui64(h.prefix6, h.mac)
	}
	release := func() {
		if h.autoV4 {
			l.pool.release(netip.PrefixFrom(h.v4, 32))
		}
		if h.autoV6 {
			l.pool.release(h.prefix6)
		}
	}
	if err := checkHostAddrs(h.v4, h.prefix6, h.v6); err != nil {
		release()
		return fail(err)
	}
	for _, o := range l.hosts {
		if o.v4 == h.v4 || o.prefix6.Overlaps(h.prefix6) {
			release()
			return fail(fmt.Errorf("address %s or %s is used by host %s", h.v4, h.prefix6, o.name))
		}
		if h.layer != "" && o.layer == h.layer {
			release()
			return fail(fmt.Errorf("layer %s is used by host %s", h.layer, o.name))
		}
	}
	l.pool.claim(h.v4, h.prefix6)
	l.nextLink++
	h.link = "h" + strconv.Itoa(l.nextLink)
	h.ifb = "i" + strconv.Itoa(l.nextLink)
	h.netns = l.name + "-" + h.name
	h.cgroup = l.name + "/" + h.name
	h.dir = filepath.Join(l.workDir, "hosts", h.name)
	if h.layer == "" {
		h.layer, h.owned = filepath.Join(l.workDir, "layers", h.name), true
	}
	h.log = l.log.With(slog.String("host", h.name))
	h.policy = spec.Firewall
	l.hosts[h.name] = h
	return h, nil
}

// applyHostNft creates the host's chains in the router and sets its
// policy.
func (l *Lab) applyHostNft(ctx context.Context, h *Host, p Policy) error {
	if err := nftApply(ctx, l.run, l.routerNS(), hostNftSetup(h.link)+renderPolicy(h.link, p)); err != nil {
		return fmt.Errorf("set firewall of %s: %w", h.name, err)
	}
	return nil
}

// bootWrapper runs in a fresh private mount namespace (so the overlay
// mount dies with the host, even when everything is killed): it joins the
// host's cgroups, drops the copies of other network namespaces' mounts
// (they would keep those namespaces, and their links, alive as long as
// this host runs), mounts the overlay and becomes systemd-nspawn inside
// the host's network namespace. (With --network-namespace-path instead,
// nspawn mounts the box's sysfs in the host: /sys/class/net would show, and
// let the host write to, the box's interfaces.)
const bootWrapper = `set -e
for p in $LAB_CGPROCS; do echo $$ > "$p"; done
awk -v own="$LAB_NETNS" '$5 ~ "^/run/netns/." && $5 != own { print $5 }' /proc/self/mountinfo |
while read -r m; do umount -l "$m" 2>/dev/null || true; done
mount -t overlay overlay -o "lowerdir=$LAB_LOWER,upperdir=$LAB_UPPER,workdir=$LAB_WORK" "$LAB_MERGED"
exec nsenter --net="$LAB_NETNS" systemd-nspawn "$@"
`

// boot prepares the layer and the network, starts nspawn and waits for
// sshd. The caller holds opMu; on error the caller cleans up.
func (h *Host) boot(ctx context.Context) error {
	l := h.lab
	start := time.Now()
	base, firstBoot, err := h.base(ctx)
	if err != nil {
		return err
	}
	files := h.files
	files.firstBoot = firstBoot
	files.aptProxy = l.AptProxyURL()
	if err := prepareLayer(h.layer, base.Dir, files); err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	if firstBoot {
		meta, _ := json.MarshalIndent(layerMeta{Release: base.Recipe.Release, Base: base.Recipe.Key(), Created: time.Now().UTC()}, "", "  ")
		if err := writeFileAtomic(filepath.Join(h.layer, "layer.json"), meta, 0o644); err != nil {
			return fmt.Errorf("start host %s: %w", h.name, err)
		}
	}
	// Only the first boot of a copied layer gets new keys.
	h.files.newHostKeys = false
	tLayer := time.Now()
	if err := l.setupHostNet(ctx, h); err != nil {
		return err
	}
	h.mu.Lock()
	shape, cut := h.shape, h.cut
	h.mu.Unlock()
	if err := l.applyShape(ctx, h, shape); err != nil {
		return err
	}
	if cut != nil {
		if err := l.applyCut(ctx, h, *cut, true); err != nil {
			return err
		}
	}
	tNet := time.Now()
	if err := h.launch(base.Dir); err != nil {
		return err
	}
	if err := h.waitSSH(ctx); err != nil {
		return err
	}
	h.log.Info("host up", slog.String("ipv4", h.v4.String()), slog.String("ipv6", h.v6.String()),
		slog.Duration("took", time.Since(start)), slog.Duration("layer", tLayer.Sub(start)),
		slog.Duration("network", tNet.Sub(tLayer)), slog.Duration("boot", time.Since(tNet)))
	return nil
}

// base finds the base of the host's layer: the one it was created on when
// the cache still has it, else the current recipe of its release.
func (h *Host) base(ctx context.Context) (Base, bool, error) {
	l := h.lab
	meta, exists, err := readLayerMeta(h.layer)
	if err != nil {
		return Base{}, false, fmt.Errorf("start host %s: %w", h.name, err)
	}
	release := h.release
	if exists {
		if release != "" && release != meta.Release {
			return Base{}, false, fmt.Errorf("start host %s: layer %s is %s, not %s", h.name, h.layer, meta.Release, release)
		}
		release = meta.Release
		if b, ok := readBase(filepath.Join(l.cfg.CacheDir, "base", meta.Base)); ok {
			return b, false, nil
		}
		h.log.Warn("the layer's base is gone from the cache; booting it on the current base", slog.String("base", meta.Base))
	}
	if release == "" {
		release = l.cfg.Release
	}
	b, err := l.EnsureBase(ctx, release)
	if err != nil {
		return Base{}, false, fmt.Errorf("start host %s: %w", h.name, err)
	}
	return b, !exists, nil
}

func (h *Host) launch(lower string) error {
	l := h.lab
	merged := filepath.Join(h.dir, "root")
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	if err := l.cg.kill(context.Background(), h.cgroup); err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	_ = l.cg.remove(h.cgroup)
	if err := l.cg.create(h.cgroup); err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	console, err := os.OpenFile(h.ConsoleLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	defer console.Close()
	fmt.Fprintf(console, "\n=== lab: boot %s at %s ===\n", h.name, time.Now().UTC().Format(time.RFC3339))
	var procs []string
	for _, d := range l.cg.dirs(h.cgroup) {
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	args := []string{"lab-boot",
		"-D", merged, "--boot", "--register=no", "--keep-unit", "--capability=all",
		"--system-call-filter=@keyring bpf",
		"--machine=" + h.netns, "--hostname=" + h.hostname,
		"--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only",
		"--bind=" + filepath.Join(h.layer, "docker") + ":/var/lib/docker",
	}
	cmd := exec.Command("sh", append([]string{"-c", bootWrapper}, args...)...)
	cmd.Env = append(boxEnv(),
		"LAB_CGPROCS="+strings.Join(procs, " "),
		"LAB_NETNS=/run/netns/"+h.netns,
		"LAB_LOWER="+lower,
		"LAB_UPPER="+filepath.Join(h.layer, "upper"),
		"LAB_WORK="+filepath.Join(h.layer, "work"),
		"LAB_MERGED="+merged,
		// LAB.md: without a unified hierarchy inside, Docker cannot create
		// cgroups in the host; with writable API file systems it can set
		// what it needs.
		"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1",
		"SYSTEMD_NSPAWN_API_VFS_WRITABLE=1",
	)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Unshareflags: syscall.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	done := make(chan struct{})
	h.mu.Lock()
	h.cmd, h.done, h.exitErr, h.stopping, h.leader, h.keys = cmd, done, nil, false, 0, nil
	h.mu.Unlock()
	go h.watch(cmd, done)
	return nil
}

// exitReboot is systemd-nspawn's exit status when the host asked to reboot.
const exitReboot = 133

// watch waits for nspawn to exit; a reboot requested from inside the host
// boots it again, like a real server.
func (h *Host) watch(cmd *exec.Cmd, done chan struct{}) {
	err := cmd.Wait()
	h.mu.Lock()
	h.exitErr = err
	stopping := h.stopping || h.removed
	h.mu.Unlock()
	close(done)
	var ee *exec.ExitError
	if stopping || !errors.As(err, &ee) || ee.ExitCode() != exitReboot {
		if !stopping {
			h.log.Info("host exited", slog.Any("status", err))
		}
		return
	}
	h.log.Info("host rebooting")
	h.opMu.Lock()
	defer h.opMu.Unlock()
	h.mu.Lock()
	current := h.cmd == cmd && !h.removed && !h.stopping
	h.mu.Unlock()
	if !current {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.lab.cfg.BootTimeout+time.Minute)
	defer cancel()
	if err := h.stop(ctx, false); err != nil {
		h.log.Error("reboot: cleaning up failed", slog.Any("err", err))
		return
	}
	if err := h.boot(ctx); err != nil {
		h.log.Error("reboot failed", slog.Any("err", err))
		_ = h.stop(ctx, false)
	}
}

// waitSSH waits until the host's sshd sends its banner, then reads the
// host's keys from its own file system.
func (h *Host) waitSSH(ctx context.Context) error {
	h.mu.Lock()
	done, cmd := h.done, h.cmd
	h.mu.Unlock()
	deadline := time.Now().Add(h.lab.cfg.BootTimeout)
	addr := netip.AddrPortFrom(h.v4, 22).String()
	for {
		select {
		case <-done:
			return fmt.Errorf("start host %s: systemd-nspawn exited (%v): %s", h.name, h.exitError(), h.consoleTail())
		case <-ctx.Done():
			return fmt.Errorf("start host %s: %w", h.name, ctx.Err())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start host %s: sshd not answering on %s after %v: %s", h.name, addr, h.lab.cfg.BootTimeout, h.consoleTail())
		}
		if sshBanner(ctx, addr) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	leader, err := childOf(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	keys, err := readHostKeys(filepath.Join("/proc", strconv.Itoa(leader), "root", "etc", "ssh"))
	if err != nil {
		return fmt.Errorf("start host %s: %w", h.name, err)
	}
	h.mu.Lock()
	h.leader, h.keys = leader, keys
	h.mu.Unlock()
	return nil
}

func sshBanner(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "SSH-"
}

// childOf returns the first child of pid (nspawn's child is the host's
// PID 1).
func childOf(pid int) (int, error) {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(data)); len(f) > 0 {
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("find PID 1 of host: systemd-nspawn (pid %d) has no child", pid)
}

func (h *Host) exitError() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exitErr
}

// ConsoleLog is the file the host's console output (its boot messages)
// goes to.
func (h *Host) ConsoleLog() string { return filepath.Join(h.dir, "console.log") }

func (h *Host) consoleTail() string {
	data, err := os.ReadFile(h.ConsoleLog())
	if err != nil {
		return "no console log"
	}
	data = bytes.TrimSpace(data)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return "console (" + h.ConsoleLog() + "): ..." + string(data)
}

// Start boots a stopped host again from its layer, with the same
// addresses, MAC, firewall and shaping (a server's power-on). Starting a
// running host is a no-op.
func (h *Host) Start(ctx context.Context) error {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	h.mu.Lock()
	removed, running := h.removed, h.runningLocked()
	h.mu.Unlock()
	if removed {
		return fmt.Errorf("start host %s: removed", h.name)
	}
	if running {
		return nil
	}
	if err := h.stop(ctx, false); err != nil { // leftovers of a host that exited by itself
		return err
	}
	if err := h.boot(ctx); err != nil {
		return errors.Join(err, h.stop(ctx, false))
	}
	return nil
}

// Stop powers the host off: systemd shuts down cleanly (killed after
// Config.StopTimeout), then its network namespace goes. The layer, the
// addresses, the firewall and the shaping are kept for Start. Stopping a
// stopped host is a no-op. A host that powered itself off (Done closed)
// keeps its namespace and cgroup until Stop, Start or Remove.
func (h *Host) Stop(ctx context.Context) error {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	return h.stop(ctx, true)
}

// stop ends the current boot (if any) and frees its processes, cgroups and
// network. The caller holds opMu.
func (h *Host) stop(ctx context.Context, graceful bool) error {
	l := h.lab
	h.mu.Lock()
	cmd, done := h.cmd, h.done
	h.stopping = true
	h.mu.Unlock()
	if cmd != nil && graceful {
		// nspawn turns SIGTERM into a clean shutdown of the host's systemd.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(l.cfg.StopTimeout)
		select {
		case <-done:
		case <-t.C:
			h.log.Warn("host did not shut down in time; killing it")
		case <-ctx.Done():
		}
		t.Stop()
	}
	var errs []error
	if err := l.cg.kill(ctx, h.cgroup); err != nil {
		errs = append(errs, err)
	}
	if done != nil {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("stop host %s: systemd-nspawn did not exit", h.name))
		}
	}
	if err := l.cg.remove(h.cgroup); err != nil {
		errs = append(errs, err)
	}
	if err := l.teardownHostNet(ctx, h); err != nil {
		errs = append(errs, err)
	}
	h.mu.Lock()
	h.cmd, h.leader = nil, 0
	h.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop host %s: %w", h.name, err)
	}
	if cmd != nil {
		h.log.Info("host stopped")
	}
	return nil
}

// Remove stops the host at once (no clean shutdown: a terminated server),
// deletes its firewall, its lab-owned layer (a caller-owned one stays) and
// gives back the addresses the lab allocated for it. Removing a removed
// host is a no-op.
func (h *Host) Remove(ctx context.Context) error {
	return h.remove(ctx, false)
}

func (h *Host) remove(ctx context.Context, locked bool) error {
	if !locked {
		h.opMu.Lock()
		defer h.opMu.Unlock()
	}
	h.mu.Lock()
	if h.removed {
		h.mu.Unlock()
		return nil
	}
	h.removed = true
	h.mu.Unlock()
	l := h.lab
	var errs []error
	if err := h.stop(ctx, false); err != nil {
		errs = append(errs, err)
	}
	if err := nftApply(ctx, l.run, l.routerNS(), hostNftTeardown(h.link)); err != nil && !strings.Contains(err.Error(), "No such file") {
		errs = append(errs, fmt.Errorf("remove firewall of %s: %w", h.name, err))
	}
	if h.owned {
		if err := removeTree(h.layer); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeTree(h.dir); err != nil {
		errs = append(errs, err)
	}
	l.mu.Lock()
	if h.autoV4 {
		l.pool.release(netip.PrefixFrom(h.v4, 32))
	}
	if h.autoV6 {
		l.pool.release(h.prefix6)
	}
	delete(l.hosts, h.name)
	l.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove host %s: %w", h.name, err)
	}
	return nil
}

func (h *Host) runningLocked() bool {
	if h.cmd == nil {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// Running says whether the host's current boot is alive.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runningLocked()
}

// Done is closed when the host's current boot ends (Stop, Remove, a crash
// or a poweroff from inside); nil when it is not running.
func (h *Host) Done() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return nil
	}
	return h.done
}

// withFrozen runs fn with the host's processes frozen (when it runs).
func (h *Host) withFrozen(ctx context.Context, fn func() error) error {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if !h.Running() {
		return fn()
	}
	cg := h.lab.cg
	if err := cg.freeze(ctx, h.cgroup, true); err != nil {
		return err
	}
	h.log.Info("host frozen for a consistent copy")
	err := fn()
	if thawErr := cg.freeze(context.Background(), h.cgroup, false); thawErr != nil {
		err = errors.Join(err, thawErr)
	}
	return err
}

// Name is the host's name in the lab.
func (h *Host) Name() string { return h.name }

// Hostname is the host's hostname.
func (h *Host) Hostname() string { return h.hostname }

// Addr4 is the host's IPv4 address.
func (h *Host) Addr4() netip.Addr { return h.v4 }

// Addr6 is the host's IPv6 address.
func (h *Host) Addr6() netip.Addr { return h.v6 }

// Prefix6 is the host's routed IPv6 /64.
func (h *Host) Prefix6() netip.Prefix { return h.prefix6 }

// MAC is the host's MAC address.
func (h *Host) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), h.mac...) }

// SSHAddr is host:port for SSH over IPv4.
func (h *Host) SSHAddr() string { return netip.AddrPortFrom(h.v4, 22).String() }

// LayerDir is the host's layer directory.
func (h *Host) LayerDir() string { return h.layer }

// Netns is the name of the host's network namespace (ip netns exec ...).
func (h *Host) Netns() string { return h.netns }

// PID is the host's PID 1 as seen from the box (0 when not running); the
// host's file system is /proc/<PID>/root.
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.runningLocked() {
		return 0
	}
	return h.leader
}

// HostKeys are the host's SSH public host keys (ed25519, ecdsa, rsa), read
// from its /etc/ssh when it last booted.
func (h *Host) HostKeys() []ssh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ssh.PublicKey(nil), h.keys...)
}

// HostKey is the host's ed25519 host key (nil before the first boot).
func (h *Host) HostKey() ssh.PublicKey {
	keys := h.HostKeys()
	if len(keys) == 0 {
		return nil
	}
	return keys[0]
}

// Fingerprint is HostKey's SHA256 fingerprint ("SHA256:...").
func (h *Host) Fingerprint() string {
	if k := h.HostKey(); k != nil {
		return ssh.FingerprintSHA256(k)
	}
	return ""
}

// HostKeyCallback accepts exactly the host's keys, whatever algorithm the
// client negotiates.
func (h *Host) HostKeyCallback() ssh.HostKeyCallback {
	keys := h.HostKeys()
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return fmt.Errorf("host key %s of %s (%s) is not one of lab host %s's", ssh.FingerprintSHA256(key), hostname, remote, h.name)
	}
}

// KnownHosts returns known_hosts lines for the host's keys at its IPv4 and
// IPv6 addresses.
func (h *Host) KnownHosts() []string {
	var out []string
	for _, k := range h.HostKeys() {
		out = append(out, fmt.Sprintf("%s,%s %s", h.v4, h.v6, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))))
	}
	return out
}

// SetFirewall replaces the host's security group; it takes effect at once
// (see Policy), whether the host runs or not.
func (h *Host) SetFirewall(ctx context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("set firewall of %s: %w", h.name, err)
	}
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if err := h.checkNotRemoved(); err != nil {
		return err
	}
	if err := nftApply(ctx, h.lab.run, h.lab.routerNS(), renderPolicy(h.link, p)); err != nil {
		return fmt.Errorf("set firewall of %s: %w", h.name, err)
	}
	h.mu.Lock()
	h.policy = p
	h.mu.Unlock()
	return nil
}

// Firewall returns the host's current security group.
func (h *Host) Firewall() Policy {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.policy
}

// Shape sets the host link's rate and loss (see Shape), replacing the
// previous shaping. It persists across Stop/Start.
func (h *Host) Shape(ctx context.Context, s Shape) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("shape link of %s: %w", h.name, err)
	}
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if err := h.checkNotRemoved(); err != nil {
		return err
	}
	if h.Running() {
		if err := h.lab.applyShape(ctx, h, s); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.shape = s
	h.mu.Unlock()
	return nil
}

// Cut takes the host off the network (see CutMode) until Restore.
func (h *Host) Cut(ctx context.Context, mode CutMode) error {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if err := h.checkNotRemoved(); err != nil {
		return err
	}
	h.mu.Lock()
	prev := h.cut
	h.mu.Unlock()
	if h.Running() {
		if prev != nil {
			if err := h.lab.applyCut(ctx, h, *prev, false); err != nil {
				return err
			}
		}
		if err := h.lab.applyCut(ctx, h, mode, true); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.cut = &mode
	h.mu.Unlock()
	return nil
}

// Restore undoes Cut and Shape: the link is back to full speed, no loss.
// The firewall is not touched.
func (h *Host) Restore(ctx context.Context) error {
	h.opMu.Lock()
	defer h.opMu.Unlock()
	if err := h.checkNotRemoved(); err != nil {
		return err
	}
	h.mu.Lock()
	cut := h.cut
	h.mu.Unlock()
	if h.Running() {
		if cut != nil {
			if err := h.lab.applyCut(ctx, h, *cut, false); err != nil {
				return err
			}
		}
		if err := h.lab.applyShape(ctx, h, Shape{}); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.cut, h.shape = nil, Shape{}
	h.mu.Unlock()
	return nil
}

func (h *Host) checkNotRemoved() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.removed {
		return fmt.Errorf("host %s: removed", h.name)
	}
	return nil
}
