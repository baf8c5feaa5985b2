package labhost

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Config configures a Lab. The zero value works (as root).
type Config struct {
	// CacheDir holds what outlives a lab: base root file systems, the apt
	// proxy's cache, and (under instances/) the layers of running labs.
	// Default: DefaultCacheDir().
	CacheDir string
	// RunDir holds the box-wide coordination state (instance slots and
	// their locks, the apt proxy's registration). Every process using the
	// lab on one box must use the same one. Default: /run/lghsctl-lab.
	RunDir string
	// Release is the Debian release of hosts whose Spec has none.
	// Default: Trixie.
	Release string
	// Mirror is the Debian mirror bases are built from. Default:
	// DefaultMirror.
	Mirror string
	// NoAptProxy disables the apt proxy: hosts get no proxy configuration
	// and bases are downloaded directly.
	NoAptProxy bool
	// BootTimeout bounds the time from start to SSH answering. Default 90 s.
	BootTimeout time.Duration
	// StopTimeout bounds a clean shutdown before the host's processes are
	// killed. Default 20 s.
	StopTimeout time.Duration
	// Logger receives the lab's progress and every command it runs (at
	// debug level). Default: discard.
	Logger *slog.Logger
}

// DefaultCacheDir is $XDG_CACHE_HOME/lghsctl/lab when XDG_CACHE_HOME is
// set, /var/cache/lghsctl/lab for root, ~/.cache/lghsctl/lab otherwise.
// It is the one place the package reads the environment.
func DefaultCacheDir() string {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "lghsctl", "lab")
	}
	if os.Geteuid() == 0 {
		return "/var/cache/lghsctl/lab"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "lghsctl", "lab")
	}
	return filepath.Join(os.TempDir(), "lghsctl-lab-cache")
}

// DefaultRunDir is where labs coordinate when Config.RunDir is empty.
const DefaultRunDir = "/run/lghsctl-lab"

func (c Config) withDefaults() Config {
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	}
	if c.Release == "" {
		c.Release = Trixie
	}
	if c.Mirror == "" {
		c.Mirror = DefaultMirror
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = 90 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 20 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ErrPrerequisites is wrapped by errors saying the box cannot run a lab
// (not root, a tool missing). Test helpers skip on it.
var ErrPrerequisites = errors.New("lab prerequisites missing")

// requiredTools are the box commands the lab runs and the Debian package
// that provides each.
func requiredTools(aptProxy bool) map[string]string {
	t := map[string]string{
		"systemd-nspawn": "systemd-container",
		"debootstrap":    "debootstrap",
		"ip":             "iproute2",
		"tc":             "iproute2",
		"nft":            "nftables",
		"nsenter":        "util-linux",
		"unshare":        "util-linux",
		"flock":          "util-linux",
		"mount":          "mount",
		"awk":            "mawk",
		"cp":             "coreutils",
	}
	if aptProxy {
		t["apt-cacher-ng"] = "apt-cacher-ng"
	}
	return t
}

// CheckPrerequisites reports, wrapping ErrPrerequisites, what the box lacks
// to run a lab with cfg: root, the tools (with the Debian packages to
// install), cgroup v2, overlayfs.
func CheckPrerequisites(cfg Config) error {
	cfg = cfg.withDefaults()
	var problems []string
	if os.Geteuid() != 0 {
		problems = append(problems, "not root")
	}
	var pkgs []string
	for tool, pkg := range requiredTools(!cfg.NoAptProxy) {
		if _, err := lookTool(tool); err != nil {
			problems = append(problems, tool+" not found")
			pkgs = append(pkgs, pkg)
		}
	}
	if _, err := findCgroupTree(); err != nil {
		problems = append(problems, err.Error())
	}
	if data, err := os.ReadFile("/proc/filesystems"); err == nil && !strings.Contains(string(data), "\toverlay\n") {
		problems = append(problems, "overlayfs not available")
	}
	if len(problems) == 0 {
		return nil
	}
	msg := strings.Join(problems, "; ")
	if len(pkgs) > 0 {
		msg += " (apt-get install " + strings.Join(pkgs, " ") + ")"
	}
	return fmt.Errorf("%w: %s", ErrPrerequisites, msg)
}

// lookTool finds a box command in the lab's fixed PATH.
func lookTool(name string) (string, error) {
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}
