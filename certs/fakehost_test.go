package certs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/lghs/lghsctl/hostsetup"
)

// fakeHost is an in-memory Debian host for the phase's steps: it answers
// host setup's facts script from its state and interprets the few
// commands the steps send (mkdir, chown, chmod, systemctl), failing on any
// other so that a new command cannot go unnoticed.
type fakeHost struct {
	mu       sync.Mutex
	files    map[string]fakeFile
	dirs     map[string]fs.FileMode
	units    map[string]hostsetup.UnitFact
	commands []string
	writes   []string
	// nginxActive makes nginx active for the reload handler, which then
	// counts its reloads.
	nginxActive bool
	reloads     int
}

type fakeFile struct {
	content []byte
	mode    fs.FileMode
	owner   string
}

func newFakeHost() *fakeHost {
	return &fakeHost{files: map[string]fakeFile{}, dirs: map[string]fs.FileMode{"/etc": 0o755}, units: map[string]hostsetup.UnitFact{}}
}

var reChmod = regexp.MustCompile(`^chmod (0[0-7]+) (.+)$`)

func (h *fakeHost) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasPrefix(cmd, "LC_ALL=C") {
		return h.facts(), nil
	}
	h.commands = append(h.commands, cmd)
	switch cmd {
	case "uname -m":
		return []byte("x86_64\n"), nil
	case HostBinary + " version":
		if _, ok := h.files[HostBinary]; !ok {
			return nil, fmt.Errorf("%s: not found", HostBinary)
		}
		return []byte("lghsctl test\n"), nil
	}
	if cmd == "systemctl is-active nginx.service || true" {
		if h.nginxActive {
			return []byte("active\n"), nil
		}
		return []byte("inactive\n"), nil
	}
	if cmd == hostsetup.ReloadNginxScript {
		if !h.nginxActive {
			return nil, fmt.Errorf("nginx is not running")
		}
		h.reloads++
		return nil, nil
	}
	for _, part := range strings.Split(cmd, " && ") {
		f := strings.Fields(part)
		switch {
		case len(f) >= 3 && f[0] == "mkdir" && f[1] == "-p":
			for _, p := range f[2:] {
				for d := p; d != "/" && d != "."; d = path.Dir(d) {
					if _, ok := h.dirs[d]; !ok {
						h.dirs[d] = 0o755
					}
				}
			}
		case len(f) >= 3 && f[0] == "chown":
		case reChmod.MatchString(part):
			m := reChmod.FindStringSubmatch(part)
			mode, _ := strconv.ParseUint(m[1], 8, 32)
			for _, p := range strings.Fields(m[2]) {
				if _, ok := h.dirs[p]; ok {
					h.dirs[p] = fs.FileMode(mode)
				} else if ff, ok := h.files[p]; ok {
					ff.mode = fs.FileMode(mode)
					ff.owner = "root"
					h.files[p] = ff
				} else {
					return nil, fmt.Errorf("chmod %s: no such file", p)
				}
			}
		case len(f) == 2 && f[0] == "systemctl" && f[1] == "daemon-reload":
		case len(f) == 3 && f[0] == "systemctl" && f[1] == "enable":
			u := h.units[f[2]]
			u.Enabled = "enabled"
			h.units[f[2]] = u
		case len(f) == 3 && f[0] == "systemctl" && f[1] == "restart":
			u := h.units[f[2]]
			u.Active = "active"
			h.units[f[2]] = u
		default:
			return nil, fmt.Errorf("fake host: unexpected command %q", part)
		}
	}
	return nil, nil
}

func (h *fakeHost) facts() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "os\tdebian\t13\ttrixie\nnow\t1000\naptlists\t900\n")
	var paths []string
	for p := range h.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := h.files[p]
		fmt.Fprintf(&b, "path\t%s\tregular file\t%o\t%s\troot\nsha\t%s\t%s\n", p, f.mode, f.owner, p, digest(f.content))
	}
	for p, m := range h.dirs {
		fmt.Fprintf(&b, "path\t%s\tdirectory\t%o\troot\troot\n", p, m)
	}
	for u, st := range h.units {
		fmt.Fprintf(&b, "unit\tId=%s\nunit\tUnitFileState=%s\nunit\tActiveState=%s\nunit\t\n", u, st.Enabled, st.Active)
	}
	return b.Bytes()
}

func (h *fakeHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[p]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	}
	return bytes.Clone(f.content), nil
}

func (h *fakeHost) WriteFile(ctx context.Context, p string, b []byte, m fs.FileMode, owner, group string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.dirs[path.Dir(p)]; !ok {
		return fmt.Errorf("write %s: %w (no directory)", p, fs.ErrNotExist)
	}
	h.writes = append(h.writes, p)
	h.files[p] = fakeFile{content: bytes.Clone(b), mode: m, owner: owner}
	return nil
}

func (h *fakeHost) file(p string) (fakeFile, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.files[p]
	return f, ok
}

func (h *fakeHost) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commands, h.writes = nil, nil
}
