package acmelab

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// skipOrFail skips a test whose prerequisite is missing, except under
// CI=true where it fails.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing (CI=true): %s", reason)
	}
	t.Skip(reason)
}

// pebbleBinary finds the pinned pebble where the install script puts it
// (the user cache dir) or where a plain `go install` does (GOBIN,
// GOPATH/bin).
func pebbleBinary(t *testing.T) string {
	t.Helper()
	var dirs []string
	if c, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, CacheDir(c))
	}
	dirs = append(dirs, os.Getenv("GOBIN"))
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	} else if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	p, err := FindBinary(dirs...)
	if err != nil {
		c, _ := os.UserCacheDir()
		skipOrFail(t, fmt.Sprintf("%v; build it with: %s", err, InstallCommand(c)))
	}
	return p
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root not found")
		}
		dir = parent
	}
}

// listening returns the sockets process pid has bound, as "proto addr"
// (TCP in LISTEN state, UDP bound), read from /proc.
func listening(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("read fds of %d: %v", pid, err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			if strings.HasPrefix(proto, "tcp") && fl[3] != "0A" {
				continue // not LISTEN
			}
			out = append(out, strings.TrimSuffix(proto, "6")+" "+procAddr(fl[1]))
		}
		f.Close()
	}
	sort.Strings(out)
	return out
}

// procAddr decodes /proc/net's "0100007F:1F90" (little-endian words).
func procAddr(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	b, _ := hex.DecodeString(hexIP)
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	ip, _ := netip.AddrFromSlice(b)
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	return net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(int(port)))
}

// processGone reports whether pid no longer exists (reaped).
func processGone(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

// portFree reports whether a TCP listener can bind addr again.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// goTool is the go command for tests that build.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
