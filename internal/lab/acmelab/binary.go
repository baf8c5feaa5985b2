package acmelab

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The pinned Pebble: the version must equal go.mod's requirement (a test
// checks it), so the lab runs the CA the project's dependencies name.
const (
	PebbleModule  = "github.com/letsencrypt/pebble/v2"
	PebblePackage = PebbleModule + "/cmd/pebble"
	PebbleVersion = "v2.10.1"
)

// InstallCommand is what the project's install script runs to build the
// pinned Pebble where CacheDir finds it (cacheRoot is the user cache dir,
// ${XDG_CACHE_HOME:-$HOME/.cache}).
func InstallCommand(cacheRoot string) string {
	return fmt.Sprintf("GOBIN=%s go install %s@%s", CacheDir(cacheRoot), PebblePackage, PebbleVersion)
}

// CacheDir is the directory holding the pinned Pebble binary under a cache
// root: <root>/lghsctl/pebble/<version>.
func CacheDir(cacheRoot string) string {
	return filepath.Join(cacheRoot, "lghsctl", "pebble", PebbleVersion)
}

// CheckBinary reports whether path is an executable pebble built from the
// pinned module version (read from the binary's Go build information, so a
// Debian pebble or another version on PATH is refused).
func CheckBinary(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check pebble binary %s: %w", path, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("check pebble binary %s: not an executable file", path)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("check pebble binary %s: no Go build information: %w", path, err)
	}
	if bi.Path != PebblePackage {
		return fmt.Errorf("check pebble binary %s: built from %s, not %s", path, bi.Path, PebblePackage)
	}
	version := ""
	if bi.Main.Path == PebbleModule {
		version = bi.Main.Version // go install …@version
	}
	for _, d := range bi.Deps {
		if d.Path == PebbleModule {
			version = d.Version // go build inside a module requiring pebble
			if d.Replace != nil {
				version = d.Replace.Version
			}
		}
	}
	if version != PebbleVersion {
		return fmt.Errorf("check pebble binary %s: version %q, want %s", path, version, PebbleVersion)
	}
	return nil
}

// ErrNoBinary is returned by FindBinary when no candidate is the pinned
// Pebble.
var ErrNoBinary = errors.New("pinned pebble binary not found")

// FindBinary returns the first "<dir>/pebble" that passes CheckBinary. The
// caller names the directories (the cache dir, GOBIN, GOPATH/bin…); the
// returned error lists why each candidate was refused.
func FindBinary(dirs ...string) (string, error) {
	var why []string
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "pebble")
		err := CheckBinary(p)
		if err == nil {
			return p, nil
		}
		why = append(why, err.Error())
	}
	if len(why) == 0 {
		return "", fmt.Errorf("find pebble %s: %w (no directory given)", PebbleVersion, ErrNoBinary)
	}
	return "", fmt.Errorf("find pebble %s: %w: %s", PebbleVersion, ErrNoBinary, strings.Join(why, "; "))
}

// Build installs the pinned Pebble into dir with `go install
// <package>@<version>` (goTool is the go command, e.g. "go" or
// "/usr/local/go/bin/go"; env is the environment for it, nil for the
// current one). It needs the Go module proxy. It returns the binary's path.
func Build(ctx context.Context, log *slog.Logger, goTool, dir string, env []string) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build pebble into %s: %w", dir, err)
	}
	if env == nil {
		env = os.Environ()
	}
	cmd := exec.CommandContext(ctx, goTool, "install", PebblePackage+"@"+PebbleVersion)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), env...), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	log.Info("building pebble", slog.String("version", PebbleVersion), slog.String("dir", dir))
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build pebble into %s: %w: %s", dir, err, strings.TrimSpace(out.String()))
	}
	p := filepath.Join(dir, "pebble")
	if err := CheckBinary(p); err != nil {
		return "", fmt.Errorf("build pebble into %s: %w", dir, err)
	}
	return p, nil
}

// EnsureBinary returns the pinned Pebble from dirs, or builds it into
// buildDir when none is found.
func EnsureBinary(ctx context.Context, log *slog.Logger, goTool, buildDir string, dirs ...string) (string, error) {
	if p, err := FindBinary(append([]string{buildDir}, dirs...)...); err == nil {
		return p, nil
	}
	return Build(ctx, log, goTool, buildDir, nil)
}
