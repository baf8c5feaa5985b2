package labhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Base is a cached root file system hosts are started from (the lower layer
// of their overlay). It is never modified once built.
type Base struct {
	// Dir is the root file system.
	Dir string
	// Recipe is what it was built from; Recipe.Key() names it.
	Recipe Recipe
	// Built says this call built it (a cold cache); BuildTime is how long
	// that took.
	Built     bool
	BuildTime time.Duration
}

// BuildOptions tell EnsureBase where the cache is and how to reach the
// mirror.
type BuildOptions struct {
	// CacheDir is the lab cache (see DefaultCacheDir); bases live in
	// CacheDir/base/<key>.
	CacheDir string
	// HTTPProxy, when set, is the proxy debootstrap downloads through
	// (the lab's apt proxy, so a rebuild is fast); it does not change the
	// recipe's key.
	HTTPProxy string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// EnsureBase returns the base root file system of r, building it with
// debootstrap first when the cache has none.
//
// A build happens in a temporary directory renamed into place only when
// complete, so an interrupted build never leaves a cache entry behind;
// builders of the same recipe in different processes serialise on a flock
// and the second one reuses the first one's result. Leftovers of an
// interrupted build are removed by the next build of the same recipe.
func EnsureBase(ctx context.Context, opts BuildOptions, r Recipe) (Base, error) {
	if err := r.Validate(); err != nil {
		return Base{}, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.CacheDir == "" {
		return Base{}, errors.New("ensure base: empty cache directory")
	}
	key := r.Key()
	dir := filepath.Join(opts.CacheDir, "base")
	final := filepath.Join(dir, key)
	if b, ok := readBase(final); ok {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Base{}, fmt.Errorf("ensure base %s: %w", key, err)
	}
	lock, err := lockFile(ctx, filepath.Join(dir, key+".lock"))
	if err != nil {
		return Base{}, fmt.Errorf("ensure base %s: %w", key, err)
	}
	defer lock.Close()
	if b, ok := readBase(final); ok {
		return b, nil // another process built it while we waited
	}
	// We hold the key's lock: no one else is building it, so any temporary
	// directory of this key is an interrupted build's.
	stale, _ := filepath.Glob(filepath.Join(dir, ".build-"+key+"-*"))
	for _, s := range stale {
		log.Info("removing interrupted base build", slog.String("dir", s))
		if err := removeTree(s); err != nil {
			return Base{}, fmt.Errorf("ensure base %s: %w", key, err)
		}
	}
	tmp := filepath.Join(dir, ".build-"+key+"-"+strconv.Itoa(os.Getpid()))
	start := time.Now()
	log.Info("building base root file system", slog.String("key", key), slog.String("release", r.Release))
	if err := buildBase(ctx, runner{log: log}, opts.HTTPProxy, r, tmp); err != nil {
		if rmErr := removeTree(tmp); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return Base{}, fmt.Errorf("build base %s: %w", key, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Base{}, fmt.Errorf("build base %s: %w", key, err)
	}
	b, ok := readBase(final)
	if !ok {
		return Base{}, fmt.Errorf("build base %s: built but unreadable", key)
	}
	b.Built, b.BuildTime = true, time.Since(start)
	log.Info("built base", slog.String("key", key), slog.Duration("took", b.BuildTime))
	return b, nil
}

// readBase reads a complete cache entry: recipe.json is written last, so
// its presence means the build finished.
func readBase(dir string) (Base, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "recipe.json"))
	if err != nil {
		return Base{}, false
	}
	var r Recipe
	if json.Unmarshal(data, &r) != nil {
		return Base{}, false
	}
	return Base{Dir: filepath.Join(dir, "rootfs"), Recipe: r}, true
}

func buildBase(ctx context.Context, run runner, proxy string, r Recipe, tmp string) error {
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	// debootstrap mounts /proc and /sys inside the target; in a private
	// mount namespace those mounts die with it, even when it is killed.
	args := []string{"unshare", "--mount", "--propagation", "private"}
	if proxy != "" {
		args = append(args, "env", "http_proxy="+proxy)
	}
	args = append(args, "debootstrap", "--variant=minbase",
		"--include="+strings.Join(r.Include, ","), r.Release, rootfs, r.Mirror)
	if _, err := run.run(ctx, nil, args...); err != nil {
		return err
	}
	if err := finishBase(rootfs); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(tmp, "recipe.json"), append(data, '\n'), 0o644)
}

// finishBase turns a debootstrap result into a base every host can share:
// what must be unique per host (SSH host keys, machine id, hostname) or
// comes from the box (resolv.conf) is removed and written per host at
// start; downloaded packages and package lists are dropped (hosts run
// apt-get update through the proxy, as on a real server).
func finishBase(rootfs string) error {
	p := func(rel string) string { return filepath.Join(rootfs, rel) }
	keys, _ := filepath.Glob(p("etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	for _, rel := range []string{"etc/resolv.conf", "etc/hostname", "var/lib/dbus/machine-id"} {
		if err := os.Remove(p(rel)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := os.WriteFile(p("etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"} {
		files, _ := filepath.Glob(p(glob))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	// Containers cannot load kernel modules: masked, the unit no longer
	// fails, and `systemctl is-system-running` says "running" as on a real
	// server instead of "degraded".
	if err := os.Symlink("/dev/null", p("etc/systemd/system/systemd-modules-load.service")); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}
