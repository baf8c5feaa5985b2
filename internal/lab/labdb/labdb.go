// Package labdb runs the lab's database stand-in, labdb-ferretdb
// (FerretDB v1.24.2 with its SQLite backend, built from the nested module
// in ./ferretdb so that FerretDB never enters lghsctl's go.mod), as a
// plain process on loopback for tests, and builds the rootfs of its
// container image for lab hosts (image.go).
//
// FerretDB speaks the MongoDB wire protocol but is not MongoDB; what the
// migrate engine works around, and what it can only test at the level of
// the commands sent (replSet*, dbHash, setFeatureCompatibilityVersion,
// some index kinds), is listed in docs/migrate.md.
package labdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BinaryName is the program's file name.
const BinaryName = "labdb-ferretdb"

// EnvBinary names a prebuilt binary (scripts/setup.sh builds one with
// internal/lab/labdb/build.sh).
const EnvBinary = "LGHSCTL_LABDB"

var buildMu sync.Mutex

// moduleDir is the nested module's directory, from this file's location.
func moduleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("labdb: cannot locate its sources")
	}
	dir := filepath.Join(filepath.Dir(file), "ferretdb")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("labdb: sources of %s not found: %w", BinaryName, err)
	}
	return dir, nil
}

// Binary returns the path of labdb-ferretdb: $LGHSCTL_LABDB, else
// $(go env GOPATH)/bin/labdb-ferretdb when it is not older than its
// sources, else a build into the user cache directory (the first build
// takes a few minutes on 2 cores; later ones hit Go's build cache).
func Binary(ctx context.Context) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("labdb: %s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	src, err := moduleDir()
	if err != nil {
		// A binary built without its sources at hand (go build
		// -trimpath): the installed program, if any.
		if p, ok := installed(BinaryName); ok {
			return p, nil
		}
		return "", fmt.Errorf("%w (scripts/setup.sh installs %s)", err, BinaryName)
	}
	newest := time.Time{}
	for _, f := range []string{"main.go", "go.mod", "go.sum"} {
		if st, err := os.Stat(filepath.Join(src, f)); err == nil && st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	fresh := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && !st.ModTime().Before(newest)
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", BinaryName)
		if fresh(p) {
			return p, nil
		}
	}
	out := cachePath(BinaryName)
	buildMu.Lock()
	defer buildMu.Unlock()
	if fresh(out) {
		return out, nil
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out+".tmp", ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("labdb: build %s: %v\n%s", BinaryName, err, b)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return "", err
	}
	return out, nil
}

// Config of a server process.
type Config struct {
	// Binary of labdb-ferretdb (default: Binary()).
	Binary string
	// Dir holds the SQLite files (required).
	Dir string
	// Listen address (default 127.0.0.1:0, a free port).
	Listen string
	// Stderr receives FerretDB's log (default: discarded).
	Stderr io.Writer
}

// Server is a running labdb-ferretdb process.
type Server struct {
	// URI is mongodb://host:port/.
	URI string
	// Addr is host:port.
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs a server and waits until it accepts connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("labdb: Config.Dir is required")
	}
	if cfg.Binary == "" {
		b, err := Binary(ctx)
		if err != nil {
			return nil, err
		}
		cfg.Binary = b
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cmd := exec.Command(cfg.Binary, "--listen", cfg.Listen, "--dir", cfg.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = cfg.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("labdb: start: %w", err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if uri, ok := strings.CutPrefix(sc.Text(), "labdb: listening on "); ok {
				select {
				case lines <- uri:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	select {
	case uri := <-lines:
		s.URI = uri
		s.Addr = strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("labdb: exited before listening: %v", s.err)
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	case <-time.After(60 * time.Second):
		s.Stop()
		return nil, errors.New("labdb: not listening after 60s")
	}
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop ends the server (SIGTERM, then SIGKILL after 10 s) and waits.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	return nil
}

// StartT starts a server for a test, in a temporary directory, and stops
// it when the test ends (even when it fails). It skips the test under
// -short, since the first build of the binary takes minutes.
func StartT(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the FerretDB lab database (labdb-ferretdb); skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// BuildStatic builds a package of lghsctl's module (e.g.
// github.com/lghs/lghsctl/internal/lab/labdb/mongotools) as a static
// binary at out, for the lab's hosts and images.
func BuildStatic(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	if _, file, _, ok := runtime.Caller(0); ok {
		cmd.Dir = filepath.Dir(file)
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// ToolsPackage is the mongodump/mongorestore stand-in.
const ToolsPackage = "github.com/lghs/lghsctl/internal/lab/labdb/mongotools"

// AppPackage is the Rocket.Chat stand-in.
const AppPackage = "github.com/lghs/lghsctl/internal/lab/labapp/cmd/labapp"

// cachePath is where a lab program built here is kept: lghsctl's
// directory in the user cache directory.
func cachePath(name string) string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "lghsctl", name)
}

// installed finds a program in $GOBIN or $(go env GOPATH)/bin.
func installed(name string) (string, bool) {
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.Join(strings.TrimSpace(string(gopath)), "bin"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// Program returns a static build of pkg (a lab program of lghsctl's
// module, e.g. ToolsPackage or AppPackage) named name: built from the
// sources into the user cache directory when they are at hand (Go's build
// cache makes a rebuild quick), else the installed one in $GOBIN or
// $(go env GOPATH)/bin (scripts/setup.sh installs them).
func Program(ctx context.Context, pkg, name string) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		if _, err := os.Stat(file); err == nil {
			out := cachePath(name)
			buildMu.Lock()
			defer buildMu.Unlock()
			if err := BuildStatic(ctx, pkg, out); err != nil {
				return "", err
			}
			return out, nil
		}
	}
	if p, ok := installed(name); ok {
		return p, nil
	}
	return "", fmt.Errorf("lab program %s: its sources are not at hand and it is not installed (scripts/setup.sh installs it)", name)
}

// BuildTools builds the stand-in tools into dir as dir/mongotools with
// the links mongodump and mongorestore, and returns dir (to put first in
// a PATH).
func BuildTools(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "mongotools")
	if err := BuildStatic(ctx, ToolsPackage, bin); err != nil {
		return "", err
	}
	for _, n := range []string{"mongodump", "mongorestore"} {
		os.Remove(filepath.Join(dir, n))
		if err := os.Symlink("mongotools", filepath.Join(dir, n)); err != nil {
			return "", err
		}
	}
	return dir, nil
}
