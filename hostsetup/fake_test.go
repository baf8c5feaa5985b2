package hostsetup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"github.com/lghs/lghsctl/appstack"
)

func appContainer(service, state, image string) appstack.Container {
	return appstack.Container{Service: service, State: state, Image: image}
}

// fakeHost is an in-memory Debian host: it answers the facts script from
// its state and records every other command and write. It does not
// emulate the commands that change things; those run against real lab
// hosts in the lab tests.
type fakeHost struct {
	mu         sync.Mutex
	os         string // codename
	files      map[string]fakeFile
	dirs       map[string]fakeFile
	links      map[string]string
	packages   map[string]string
	units      map[string]UnitFact
	users      map[string]bool
	containers map[string]map[string]appstack.Container
	aptAge     int64
	commands   []string // commands other than the facts script
	writes     []string
	reads      []string
}

type fakeFile struct {
	content      []byte
	mode         fs.FileMode
	owner, group string
}

func newFakeHost() *fakeHost {
	return &fakeHost{
		os:         "trixie",
		files:      map[string]fakeFile{},
		dirs:       map[string]fakeFile{},
		links:      map[string]string{},
		packages:   map[string]string{"openssh-server": "1:10.0p1-7", "ca-certificates": "1", "curl": "1", "gnupg": "1"},
		units:      map[string]UnitFact{"ssh.service": {"enabled", "active"}},
		users:      map[string]bool{"root": true},
		containers: map[string]map[string]appstack.Container{},
		aptAge:     60,
	}
}

func (h *fakeHost) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasPrefix(cmd, "LC_ALL=C") {
		return h.factsOutput(), nil
	}
	h.commands = append(h.commands, cmd)
	return nil, nil
}

func (h *fakeHost) factsOutput() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "os\tdebian\t13\t%s\nnow\t1000\naptlists\t%d\n", h.os, 1000-h.aptAge)
	var paths []string
	for p := range h.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := h.files[p]
		fmt.Fprintf(&b, "path\t%s\tregular file\t%o\t%s\t%s\nsha\t%s\t%s\n", p, f.mode, f.owner, f.group, p, digest(f.content))
	}
	for p, d := range h.dirs {
		fmt.Fprintf(&b, "path\t%s\tdirectory\t%o\t%s\t%s\n", p, d.mode, d.owner, d.group)
	}
	for p, t := range h.links {
		fmt.Fprintf(&b, "path\t%s\tsymbolic link\t777\troot\troot\nlink\t%s\t%s\n", p, p, t)
	}
	for p, v := range h.packages {
		fmt.Fprintf(&b, "pkg\t%s\tii \t%s\n", p, v)
	}
	for u, st := range h.units {
		fmt.Fprintf(&b, "unit\tId=%s\nunit\tUnitFileState=%s\nunit\tActiveState=%s\nunit\t\n", u, st.Enabled, st.Active)
	}
	for u := range h.users {
		fmt.Fprintf(&b, "user\t%s\n", u)
	}
	for p, cs := range h.containers {
		fmt.Fprintf(&b, "project\t%s\n", p)
		for _, c := range cs {
			status := "Up 2 hours"
			if c.Health != "" {
				status += " (" + c.Health + ")"
			}
			fmt.Fprintf(&b, "ctr\t%s\t%s\t%s\t%s\n", c.Service, c.State, status, c.Image)
		}
	}
	return b.Bytes()
}

func (h *fakeHost) ReadFile(ctx context.Context, p string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads = append(h.reads, p)
	f, ok := h.files[p]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	}
	return f.content, nil
}

func (h *fakeHost) WriteFile(ctx context.Context, p string, b []byte, m fs.FileMode, o, g string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, p)
	h.files[p] = fakeFile{b, m, o, g}
	return nil
}

// converge makes the fake hold exactly what a run wants, as a real run
// would have left it.
func (h *fakeHost) converge(r *Run) {
	r.facts = &Facts{Packages: map[string]string{}, Paths: map[string]PathFact{}, Units: map[string]UnitFact{}, Users: map[string]bool{}, Codename: h.os}
	for k, v := range h.packages {
		r.facts.Packages[k] = v
	}
	for _, p := range r.packages() {
		h.packages[p] = "1.0"
	}
	h.packages["nginx"] = "1.26.3-3"
	r.facts.Packages["nginx"] = "1.26.3-3"
	for _, a := range r.cfg.Inventory.Admins {
		h.users[a.Name] = true
	}
	for _, d := range r.directories() {
		h.dirs[d.Path] = fakeFile{mode: d.Mode, owner: orRoot(d.Owner), group: orRoot(d.Group)}
	}
	h.dirs["/etc/docker"] = fakeFile{mode: 0o755, owner: "root", group: "root"}
	for _, af := range r.adminFiles() {
		for _, d := range af.dirs {
			h.dirs[d.Path] = fakeFile{mode: d.Mode, owner: d.Owner, group: d.Group}
		}
	}
	files := r.managedFiles()
	sites, err := r.siteFiles()
	if err != nil {
		panic(err)
	}
	files = append(files, sites...)
	files = append(files, File{Path: sshdDropIn, Content: r.sshdConfig(), Mode: 0o644})
	for _, f := range files {
		h.files[f.Path] = fakeFile{f.Content, f.Mode, orRoot(f.Owner), orRoot(f.Group)}
	}
	for _, s := range r.cfg.Host.Sites {
		h.links[siteEnabled(s.Name)] = siteAvailable(s.Name)
		dir := selfSignedDir + "/" + s.Name
		h.files[dir+"/fullchain.pem"] = fakeFile{[]byte("cert"), 0o644, "root", "root"}
		h.files[dir+"/privkey.pem"] = fakeFile{[]byte("key"), 0o600, "root", "root"}
	}
	for _, u := range []string{"nginx.service", "docker.service"} {
		h.units[u] = UnitFact{"enabled", "active"}
	}
	for _, s := range r.stacks() {
		content, _ := s.Compose()
		h.files[s.ComposeFile()] = fakeFile{content, 0o644, "root", "root"}
		h.files[replicaSetMarker(s)] = fakeFile{[]byte("x"), 0o644, "root", "root"}
		h.containers[s.Project] = map[string]appstack.Container{}
		for _, svc := range s.Services {
			state := "running"
			if svc.State == "stopped" {
				state = "exited"
			}
			h.containers[s.Project][svc.Name] = appContainer(svc.Name, state, svc.Image)
		}
	}
	r.facts = nil
}
