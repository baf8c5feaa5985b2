package hostsetup

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

// Config is what host setup needs besides the host itself.
type Config struct {
	// Inventory is the loaded inventory; Host is the entry to configure.
	Inventory *inventory.File
	Host      *inventory.Host
	// AuthorizedKeys maps ssh_keys names to their authorized_keys line,
	// resolved by the caller (public_key_file read locally).
	AuthorizedKeys map[string]string
	// VerifyLogin opens a new SSH connection as user and runs a command;
	// it proves that an sshd change did not lock anyone out. Without it,
	// the SSH hardening step refuses to apply a change.
	VerifyLogin func(ctx context.Context, user string) error
	// AptMaxAge is how old the package lists may be before apt-get update
	// runs (when something is to be installed). Default 1h.
	AptMaxAge time.Duration
	// RollbackAfter is when the on-host timer restores the previous sshd
	// configuration if lghsctl has not confirmed the new one. Default 90s.
	RollbackAfter time.Duration
	// SelfSigned makes a temporary certificate for a site (PEM chain and
	// key); the default generates an ECDSA P-256 one locally.
	SelfSigned func(names []string) (cert, key []byte, err error)
	// Secret resolves a secret reference (app secret environment).
	Secret func(inventory.SecretRef) (string, error)
	// AppTimeout bounds the wait for an app's database and upstream.
	// Default 3 minutes.
	AppTimeout time.Duration
	// SSHDExtra are extra sshd directives appended to the hardening
	// drop-in (e.g. AllowUsers).
	SSHDExtra []string
	// Now is the clock (tests).
	Now func() time.Time
	// afterSSHDReload is a test hook run right after sshd reloads.
	afterSSHDReload func()
}

// Run is one host's setup: its tasks share the facts gathered at the
// start, updated as tasks change things.
type Run struct {
	cfg   Config
	host  Host
	facts *Facts
	// nginx holds what the nginx steps learned (version, previous files).
	nginx nginxState
	// listsRefreshed: this run ran apt-get update (so pending upgrades
	// have not been looked at with these lists yet).
	listsRefreshed bool
}

// NewRun prepares a run; Attach gives it the connected host.
func NewRun(cfg Config) *Run {
	if cfg.AptMaxAge == 0 {
		cfg.AptMaxAge = time.Hour
	}
	if cfg.RollbackAfter == 0 {
		cfg.RollbackAfter = 90 * time.Second
	}
	if cfg.AppTimeout == 0 {
		cfg.AppTimeout = 3 * time.Minute
	}
	if cfg.SelfSigned == nil {
		cfg.SelfSigned = selfSigned
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Run{cfg: cfg}
}

// Attach sets the host the steps act on (call it from task.Target.Connect).
func (r *Run) Attach(h Host) { r.host = h }

// Facts returns the facts as they stand (after the run: as the steps left
// the host).
func (r *Run) Facts() *Facts { return r.facts }

// Target returns the host's steps and handlers for the task runner;
// connect must dial the host and call Attach.
func (r *Run) Target(connect func(ctx context.Context) error, close func()) task.Target {
	steps := []task.Step{{Name: "facts", Run: r.gather}}
	steps = append(steps, r.aptSteps()...)
	steps = append(steps, r.adminSteps()...)
	steps = append(steps, r.sshdStep())
	steps = append(steps, r.dockerSteps()...)
	if dirs := r.directories(); len(dirs) > 0 {
		steps = append(steps, r.fileStep("directories", dirs, nil))
	}
	if app := r.appSteps(); len(app) > 0 {
		// Containers start under the Docker daemon's final configuration,
		// not before a restart that would bounce them.
		steps = append(steps, task.FlushHandlers())
		steps = append(steps, app...)
	}
	steps = append(steps, r.nginxSteps()...)
	return task.Target{
		Name:     r.cfg.Host.Name,
		Connect:  connect,
		Steps:    steps,
		Handlers: r.handlers(),
		Close:    close,
	}
}

// request lists every fact the steps will read, so that one command
// gathers them all.
func (r *Run) request() FactsRequest {
	var req FactsRequest
	for _, p := range r.packages() {
		req.Packages = append(req.Packages, p)
	}
	req.Packages = append(req.Packages, "openssh-server", "nginx", "docker.io", "docker-ce", "docker-compose", "docker-compose-plugin")
	req.Units = []string{"ssh.service", "nginx.service", "docker.service"}
	for _, a := range r.cfg.Inventory.Admins {
		req.Users = append(req.Users, a.Name)
	}
	for _, d := range r.directories() {
		req.Paths = append(req.Paths, d.Path)
	}
	for _, f := range r.managedFiles() {
		req.Paths = append(req.Paths, f.Path)
	}
	for _, af := range r.adminFiles() {
		for _, d := range af.dirs {
			req.Paths = append(req.Paths, d.Path)
		}
	}
	req.Paths = append(req.Paths, "/etc/docker")
	req.Paths = append(req.Paths, r.nginxPaths()...)
	req.Paths = append(req.Paths, r.appPaths()...)
	for _, s := range r.stacks() {
		req.Projects = append(req.Projects, s.Project)
	}
	req.Paths = append(req.Paths, sshdDropIn, dockerSources, dockerKeyring)
	req.Packages = append(req.Packages, "ca-certificates", "curl", "gnupg")
	return req
}

func (r *Run) gather(ctx context.Context, env task.Env) (task.Result, error) {
	f, err := Gather(ctx, r.host, r.request())
	if err != nil {
		return task.Result{}, err
	}
	if f.OSID != "debian" {
		return task.Result{}, fmt.Errorf("%s runs %s %s: lghsctl configures Debian (12 bookworm or 13 trixie)", r.cfg.Host.Name, f.OSID, f.OSVersion)
	}
	r.facts = f
	return task.Result{Message: fmt.Sprintf("Debian %s (%s)", f.OSVersion, f.Codename)}, nil
}

// directories are the inventory's directories, parents first.
func (r *Run) directories() []Dir {
	var ds []Dir
	for _, d := range r.cfg.Host.Directories {
		ds = append(ds, Dir{Path: d.Path, Mode: modeOf(d.Mode), Owner: d.Owner, Group: d.Group})
	}
	sort.SliceStable(ds, func(i, j int) bool { return strings.Count(ds[i].Path, "/") < strings.Count(ds[j].Path, "/") })
	return ds
}

// managedFiles lists the files whose facts must be gathered (content
// depends on nothing gathered).
func (r *Run) managedFiles() []File {
	var fs []File
	fs = append(fs, r.unattendedFiles()...)
	for _, a := range r.adminFiles() {
		fs = append(fs, a.files...)
	}
	fs = append(fs, r.dockerFiles()...)
	return fs
}

func (r *Run) handlers() []task.Step {
	return []task.Step{
		{Name: "restart docker", Run: r.restartUnit("docker.service")},
		{Name: "reload nginx", Run: r.reloadNginx},
	}
}

func (r *Run) restartUnit(unit string) func(context.Context, task.Env) (task.Result, error) {
	return func(ctx context.Context, env task.Env) (task.Result, error) {
		if env.Check {
			return task.Changedf("would restart %s", unit), nil
		}
		if _, err := r.host.Run(ctx, "systemctl restart "+quote(unit), nil); err != nil {
			return task.Result{}, fmt.Errorf("restart %s: %w", unit, err)
		}
		return task.Changedf("restarted %s", unit), nil
	}
}

// ensureUnit makes a unit enabled and running.
func (r *Run) ensureUnit(unit string) task.Step {
	return task.Step{Name: "service " + strings.TrimSuffix(unit, ".service"), Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		u := r.facts.Units[unit]
		var cmds, what, would []string
		if u.Enabled != "enabled" && u.Enabled != "static" {
			cmds = append(cmds, "systemctl enable "+quote(unit))
			what, would = append(what, "enabled"), append(would, "enable")
		}
		if u.Active != "active" {
			cmds = append(cmds, "systemctl start "+quote(unit))
			what, would = append(what, "started"), append(would, "start")
		}
		if len(cmds) == 0 {
			return task.Unchanged(), nil
		}
		if env.Check {
			return task.Changedf("would %s", strings.Join(would, " and ")), nil
		}
		if _, err := r.host.Run(ctx, strings.Join(cmds, " && "), nil); err != nil {
			return task.Result{}, fmt.Errorf("%s %s: %w", strings.Join(what, " and "), unit, err)
		}
		r.facts.Units[unit] = UnitFact{Enabled: "enabled", Active: "active"}
		return task.Changedf("%s", strings.Join(what, ", ")), nil
	}}
}

func modeOf(m inventory.Mode) fs.FileMode { return fs.FileMode(m) }
