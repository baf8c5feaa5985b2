package labhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// A layer directory holds one host's disk: the writable overlay layer on
// top of a base, plus Docker's data directory (bind-mounted at
// /var/lib/docker so Docker inside the host can use overlay2, which it
// cannot on top of an overlay). Everything the host writes lands in it, so
// copying the directory copies the host's disk.
//
//	layer.json  which base the layer belongs to
//	upper/      overlayfs upperdir
//	work/       overlayfs workdir
//	docker/     the host's /var/lib/docker
type layerMeta struct {
	Release string    `json:"release"`
	Base    string    `json:"base"`
	Created time.Time `json:"created"`
}

func readLayerMeta(dir string) (layerMeta, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, "layer.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return layerMeta{}, false, nil
	}
	if err != nil {
		return layerMeta{}, false, fmt.Errorf("read layer %s: %w", dir, err)
	}
	var m layerMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return layerMeta{}, false, fmt.Errorf("read layer %s: %w", dir, err)
	}
	return m, true, nil
}

// layerFiles is what the lab writes into a host's upper layer before each
// boot (the host is not running, so writing to the upper directory is safe).
type layerFiles struct {
	hostname       string
	firstBoot      bool
	newHostKeys    bool
	authorizedKeys []string
	resolvers      []string
	aptProxy       string // "" removes the lab's proxy configuration
	files          []File
}

// aptProxyConf is where the apt proxy setting goes in hosts.
const aptProxyConf = "/etc/apt/apt.conf.d/00lghsctl-lab-proxy"

// prepareLayer creates the layer's directories when missing and writes the
// per-boot files. lower is the base root file system (to copy directory
// attributes from when a parent directory only exists there).
func prepareLayer(dir, lower string, f layerFiles) error {
	for _, d := range []string{"upper", "work", "docker"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("prepare layer %s: %w", dir, err)
		}
	}
	u := upper{dir: filepath.Join(dir, "upper"), lower: lower}
	var errs []error
	put := func(p string, data []byte, mode fs.FileMode) {
		if err := u.write(p, data, mode); err != nil {
			errs = append(errs, err)
		}
	}
	if f.firstBoot {
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		put("/etc/machine-id", []byte(hex.EncodeToString(id)+"\n"), 0o444)
	}
	if f.firstBoot || !u.exists("/etc/hostname") {
		put("/etc/hostname", []byte(f.hostname+"\n"), 0o644)
	}
	if f.firstBoot || !u.exists("/etc/hosts") {
		put("/etc/hosts", []byte(etcHosts(f.hostname)), 0o644)
	}
	if len(f.resolvers) > 0 || !u.exists("/etc/resolv.conf") {
		put("/etc/resolv.conf", []byte(resolvConf(f.resolvers)), 0o644)
	}
	if f.aptProxy != "" {
		put(aptProxyConf, fmt.Appendf(nil, "// Written by the lghsctl lab at every boot.\nAcquire::http::Proxy %q;\n", f.aptProxy), 0o644)
	} else if err := os.Remove(u.path(aptProxyConf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(f.authorizedKeys) > 0 {
		old, _ := os.ReadFile(u.path("/root/.ssh/authorized_keys"))
		if err := u.mkdirAll("/root/.ssh", 0o700); err != nil {
			errs = append(errs, err)
		}
		put("/root/.ssh/authorized_keys", mergeAuthorizedKeys(old, f.authorizedKeys), 0o600)
	}
	if f.newHostKeys || !hasHostKeys(u.path("/etc/ssh")) {
		if err := u.mkdirAll("/etc/ssh", 0o755); err != nil {
			errs = append(errs, err)
		} else if err := writeHostKeys(u.path("/etc/ssh"), f.hostname); err != nil {
			errs = append(errs, err)
		}
	}
	for _, file := range f.files {
		put(file.Path, file.Data, file.Mode)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepare layer %s: %w", dir, err)
	}
	return nil
}

func etcHosts(hostname string) string {
	short, _, _ := strings.Cut(hostname, ".")
	names := hostname
	if short != hostname {
		names += " " + short
	}
	return "127.0.0.1\tlocalhost\n127.0.1.1\t" + names + "\n\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
}

func resolvConf(resolvers []string) string {
	if len(resolvers) == 0 {
		return "# lghsctl lab host: no resolver configured\n"
	}
	var b strings.Builder
	b.WriteString("# Written by the lghsctl lab at every boot.\n")
	for _, r := range resolvers {
		b.WriteString("nameserver " + r + "\n")
	}
	return b.String()
}

// mergeAuthorizedKeys appends the keys old lacks (compared by key, not
// comment), the way a cloud's boot-time key fetcher adds the project's keys
// without dropping the ones the server's owner added.
func mergeAuthorizedKeys(old []byte, keys []string) []byte {
	have := map[string]bool{}
	for _, line := range strings.Split(string(old), "\n") {
		if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
			have[string(k.Marshal())] = true
		}
	}
	out := bytes.TrimRight(old, "\n")
	if len(out) > 0 {
		out = append(out, '\n')
	}
	for _, line := range keys {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil || have[string(k.Marshal())] {
			continue
		}
		have[string(k.Marshal())] = true
		out = append(out, strings.TrimSpace(line)...)
		out = append(out, '\n')
	}
	return out
}

// upper writes into an overlay upper directory while the overlay is not
// mounted. A directory created there shadows the lower one's attributes in
// the merged view, so missing parents are created with the owner and mode
// of the same directory in the lower layer (a fresh upper /root must stay
// 0700).
type upper struct{ dir, lower string }

func (u upper) path(p string) string {
	return filepath.Join(u.dir, filepath.FromSlash(path.Clean("/"+p)))
}

// exists says whether p exists in the merged view (upper, or lower and not
// whited out).
func (u upper) exists(p string) bool {
	if fi, err := os.Lstat(u.path(p)); err == nil {
		return !isWhiteout(fi)
	}
	_, err := os.Lstat(filepath.Join(u.lower, filepath.FromSlash(path.Clean("/"+p))))
	return err == nil
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func (u upper) mkdirAll(p string, mode fs.FileMode) error {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil
	}
	if err := u.mkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	up := u.path(p)
	fi, err := os.Lstat(up)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil { // a whiteout or a file: the merged view has no directory here
		if err := os.Remove(up); err != nil {
			return fmt.Errorf("create %s in layer: %w", p, err)
		}
	}
	uid, gid := 0, 0
	if lfi, err := os.Stat(filepath.Join(u.lower, filepath.FromSlash(p))); err == nil && lfi.IsDir() {
		mode = lfi.Mode().Perm()
		if st, ok := lfi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	if err := os.Mkdir(up, mode); err != nil {
		return fmt.Errorf("create %s in layer: %w", p, err)
	}
	if err := os.Chmod(up, mode); err != nil { // umask
		return fmt.Errorf("create %s in layer: %w", p, err)
	}
	if err := os.Lchown(up, uid, gid); err != nil {
		return fmt.Errorf("create %s in layer: %w", p, err)
	}
	return nil
}

func (u upper) write(p string, data []byte, mode fs.FileMode) error {
	if err := u.mkdirAll(path.Dir(path.Clean("/"+p)), 0o755); err != nil {
		return err
	}
	up := u.path(p)
	if fi, err := os.Lstat(up); err == nil && fi.IsDir() {
		return fmt.Errorf("write %s in layer: is a directory", p)
	}
	if err := writeFileAtomic(up, data, mode); err != nil {
		return fmt.Errorf("write %s in layer: %w", p, err)
	}
	return nil
}

// copyTree copies the directory src to dst (which must not exist) with
// cp -a, reflinking where the file system can, through a temporary name so
// an interrupted copy leaves no dst.
func copyTree(ctx context.Context, run runner, src, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy %s to %s: destination exists", src, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	tmp := dst + ".copying"
	if err := removeTree(tmp); err != nil {
		return err
	}
	if _, err := run.run(ctx, nil, "cp", "-a", "--reflink=auto", "--", src, tmp); err != nil {
		_ = removeTree(tmp)
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = removeTree(tmp)
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
