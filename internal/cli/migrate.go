package cli

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/appstack"
	"github.com/lghs/lghsctl/internal/logging"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
	"github.com/lghs/lghsctl/migrate"
	"github.com/lghs/lghsctl/provision"
)

type migrateOptions struct {
	*Globals
	Drop, Restart, NoVerify bool
	Archive                 string
	Source, Target          string
	Recorded                bool
	SkipBackup              bool
	Prepare, Force          bool
	Addresses, Nameservers  []string
}

// newMigrate is `lghsctl migrate`: the data move from the old server, its
// verification, the upgrade ladder and the DNS cutover.
func newMigrate(g *Globals) *cobra.Command {
	o := &migrateOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Move the data from the old server, verify it, run the upgrade ladder, switch DNS",
		Long: `migrate moves the chat's database (and uploaded files kept on disk) from the old
server (migrate.from) to the new host (migrate.to), over SSH only: the
databases stay bound to loopback on both hosts.

  plan      every pre-flight check, read-only: sizes, free disk, app stopped,
            target empty (or --drop); nothing changes before they all pass
  data      the streamed move (mongodump --archive format end to end, no
            dump on any disk), per-collection checksums, resumable; then verify
  verify    counts, content hashes, indexes, GridFS totals, uploads and the
            app's settings on both sides; a difference names the collection
  upgrade   the ladder of migrate.ladder, a backup before each rung
  cutover   --prepare lowers the public name's TTL days before; then point
            the name at the new host and restore the TTL

Nothing on the old server is ever modified. See docs/migrate.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	plan := &cobra.Command{Use: "plan", Short: "Pre-flight checks of the data move (read-only)", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.runPlan(cmd.Context()) }}
	data := &cobra.Command{Use: "data", Short: "Move the databases (and uploads), resumable, then verify", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.runData(cmd.Context()) }}
	verify := &cobra.Command{Use: "verify", Short: "Compare source and target, collection by collection", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.runVerify(cmd.Context()) }}
	upgrade := &cobra.Command{Use: "upgrade", Short: "Walk the upgrade ladder, a backup before each rung", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.runUpgrade(cmd.Context()) }}
	cutover := &cobra.Command{Use: "cutover", Short: "Point the public name at the new host (--prepare lowers its TTL first)", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.runCutover(cmd.Context()) }}
	for _, c := range []*cobra.Command{plan, data} {
		c.Flags().BoolVar(&o.Drop, "drop", false, "replace collections on the target that lghsctl did not put there")
		c.Flags().StringVar(&o.Source, "source", "", "read the old database with mongodump or driver (default: migrate.source)")
		c.Flags().StringVar(&o.Target, "target", "", "write the new database with driver or mongorestore (default: migrate.target)")
	}
	data.Flags().BoolVar(&o.Restart, "restart", false, "forget what an earlier run copied and start over")
	data.Flags().StringVar(&o.Archive, "archive", "", "also write the stream to this local file (gzip when it ends in .gz), restorable with mongorestore --archive")
	data.Flags().BoolVar(&o.NoVerify, "no-verify", false, "skip the verification after the move (run migrate verify later)")
	verify.Flags().StringVar(&o.Source, "source", "", "read the old database with mongodump or driver (default: migrate.source)")
	verify.Flags().BoolVar(&o.Recorded, "recorded", false, "compare with the source sums recorded during the move instead of reading the old database again")
	upgrade.Flags().BoolVar(&o.SkipBackup, "skip-backup", false, "do not take a backup before each rung")
	cutover.Flags().BoolVar(&o.Prepare, "prepare", false, "only lower the public name's TTL (days before the cutover)")
	cutover.Flags().BoolVar(&o.Force, "force", false, "cut over before the old TTL has expired since --prepare")
	cutover.Flags().StringSliceVar(&o.Addresses, "address", nil, "the new host's addresses (default: the A/AAAA records of its technical name)")
	cutover.Flags().StringSliceVar(&o.Nameservers, "nameserver", nil, "authoritative servers to check (host:port; default: the zone's NS, or LGHSCTL_DNS_NAMESERVERS)")
	cmd.AddCommand(plan, data, verify, upgrade, cutover)
	return cmd
}

// migrateSession is one migrate command's context: the inventory, the
// report, and the SSH connections to the old and new hosts.
type migrateSession struct {
	*cloudSession
	o        *migrateOptions
	m        *inventory.Migrate
	target   *inventory.Host
	site     *inventory.Site
	src, dst *remote.Client
	srcHost  migrate.Host
	dstHost  migrate.Host
	app      *migrate.ComposeApp
}

// openLocal is a session without cloud APIs (the data commands need
// none).
func (g *Globals) openLocal(command string) (*cloudSession, error) {
	f, err := g.loadInventory()
	if err != nil {
		return nil, g.reportProblems(err)
	}
	s := &cloudSession{g: g, command: command, start: time.Now(), f: f, red: &logging.Redactor{}}
	if s.logf, err = g.openLog(command, s.red); err != nil {
		return nil, err
	}
	s.tally = report.NewTally(g.reporter())
	return s, nil
}

// memoryLimit keeps a data move's memory near its working set (batches
// in flight, replies, digests): the garbage collector works harder
// instead of letting the heap double. GOMEMLIMIT overrides it.
const memoryLimit = 150 << 20

func (o *migrateOptions) open(ctx context.Context, command string, cloud *cloudNeeds) (*migrateSession, error) {
	if o.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	var cs *cloudSession
	var err error
	if cloud != nil {
		cs, err = o.openCloud(ctx, command, cloud)
	} else {
		cs, err = o.openLocal(command)
	}
	if err != nil {
		return nil, err
	}
	s := &migrateSession{cloudSession: cs, o: o, m: cs.f.Migrate}
	if s.m == nil {
		cs.close()
		return nil, usageError{fmt.Errorf("%s has no migrate section (from, to)", cs.f.Path)}
	}
	for _, v := range []struct {
		flag, val string
		ok        []string
	}{
		{"--source", o.Source, []string{"", "mongodump", "driver"}},
		{"--target", o.Target, []string{"", "driver", "mongorestore"}},
	} {
		if !slices.Contains(v.ok, v.val) {
			cs.close()
			return nil, usageError{fmt.Errorf("%s %q: want %s", v.flag, v.val, strings.Join(v.ok[1:], " or "))}
		}
	}
	for i := range cs.f.Hosts {
		if cs.f.Hosts[i].Name == s.m.To {
			s.target = &cs.f.Hosts[i]
		}
	}
	for i := range s.target.Sites {
		if s.target.Sites[i].Name == strings.ToLower(s.m.Site) {
			s.site = &s.target.Sites[i]
		}
	}
	return s, nil
}

func (s *migrateSession) close() {
	if s.src != nil {
		s.src.Close()
	}
	if s.dst != nil {
		s.dst.Close()
	}
	s.cloudSession.close()
}

// remoteShell runs migrate's streamed commands over an SSH connection.
type remoteShell struct{ c *remote.Client }

func (r remoteShell) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) error {
	return r.c.Exec(ctx, cmd, remote.Streams{Stdin: stdin, Stdout: stdout})
}

// targetAddress is how lghsctl reaches the new host: its ssh.address,
// its ssh_config alias, else its technical DNS name (up created it).
func targetAddress(h *inventory.Host) string {
	if h.SSH.Address != "" || h.SSH.ConfigHost != "" {
		return h.SSH.Address
	}
	for _, n := range h.DNS {
		if n.Role == "technical" {
			return n.Name
		}
	}
	if len(h.DNS) > 0 {
		return h.DNS[0].Name
	}
	return ""
}

// connect opens the SSH connections (the old host only when needed).
func (s *migrateSession) connect(ctx context.Context, source bool) error {
	addr := targetAddress(s.target)
	if addr == "" && s.target.SSH.ConfigHost == "" {
		return fmt.Errorf("no address to reach %s: set hosts[].ssh.address or give it a DNS name", s.target.Name)
	}
	cfg := s.g.sshConfig(s.target, addr)
	cfg.Log = s.logf.Logger.With("host", s.target.Name)
	c, err := remote.Dial(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.target.Name, err)
	}
	s.dst = c
	s.dstHost = migrate.Host{Name: s.target.Name, Shell: remoteShell{c}, Dial: c}
	if s.site != nil && s.site.App != nil {
		stack := appstack.FromSite(s.f, s.site)
		if s.app, err = migrate.NewComposeApp(s.dstHost, stack); err != nil {
			return err
		}
		if s.m.DatabaseService != "" {
			s.app.DBService = s.m.DatabaseService
		}
	}
	if !source {
		return nil
	}
	name := s.m.From.Name
	if name == "" {
		name = "old"
	}
	old := &inventory.Host{Name: name, SSH: s.m.From.SSH}
	scfg := s.g.sshConfig(old, s.m.From.SSH.Address)
	// Only reads happen on the old server: no sudo (it may want a password).
	scfg.Sudo = false
	scfg.Log = s.logf.Logger.With("host", name)
	if s.src, err = remote.Dial(ctx, scfg); err != nil {
		return fmt.Errorf("connect to %s: %w", name, err)
	}
	s.srcHost = migrate.Host{Name: name, Shell: remoteShell{s.src}, Dial: s.src}
	return nil
}

func (s *migrateSession) sourceMethod() string {
	if s.o.Source != "" {
		return s.o.Source
	}
	return s.m.Source
}

func (s *migrateSession) source() migrate.Source {
	if s.sourceMethod() == "driver" {
		return &migrate.DriverSource{Host: s.srcHost, URI: s.m.From.MongoURI, Log: s.logf.Logger}
	}
	return &migrate.MongodumpSource{Host: s.srcHost, URI: s.m.From.MongoURI, Command: s.m.From.Mongodump, Gzip: s.m.Compress, Log: s.logf.Logger}
}

func (s *migrateSession) targetDB() *migrate.Target {
	t := &migrate.Target{Host: s.dstHost, URI: s.m.TargetMongoURI, Mode: s.m.Target}
	if s.o.Target != "" {
		t.Mode = s.o.Target
	}
	if s.app != nil {
		t.Exec = s.app.ExecPrefix()
	}
	return t
}

func (s *migrateSession) uploads(p *migrate.Progress) *migrate.Uploads {
	if s.m.From.UploadsDir == "" {
		return nil
	}
	return &migrate.Uploads{From: s.srcHost, FromDir: s.m.From.UploadsDir, To: s.dstHost, ToDir: s.m.UploadsTo,
		Owner: s.m.UploadsOwner, StateDir: s.m.StateDir, Progress: p}
}

func (s *migrateSession) appCheck() *migrate.AppCheck {
	if !slices.Contains(s.m.From.Databases, "rocketchat") {
		return nil
	}
	a := &migrate.AppCheck{DB: "rocketchat", UploadsPath: "/app/uploads"}
	if s.site != nil {
		a.SiteURL = "https://" + s.site.Name
	}
	return a
}

func (s *migrateSession) preflight(drop bool) *migrate.Preflight {
	p := &migrate.Preflight{Source: s.source(), Target: s.targetDB(), Databases: s.m.From.Databases, StateDir: s.m.StateDir,
		Drop: drop, SourceHost: s.srcHost, UploadsDir: s.m.From.UploadsDir, Log: s.logf.Logger}
	if s.sourceMethod() == "mongodump" {
		p.SourceTool = s.m.From.Mongodump
	}
	if s.site != nil && s.site.App != nil {
		p.DataDir = filepath.Join(s.site.App.Dir, "data", "db")
	}
	if s.app != nil {
		p.AppRunning = s.app.AppRunning
	}
	return p
}

// handOff is the document an exec engine reads.
func (s *migrateSession) handOff(action string) migrate.HandOff {
	abspath := func(p string) string {
		if p == "" || strings.HasPrefix(p, "~") {
			return p
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	ssh := func(x inventory.SSH) migrate.HandOffSSH {
		return migrate.HandOffSSH{Address: x.Address, Port: x.Port, User: x.User, IdentityFile: abspath(x.IdentityFile), ConfigHost: x.ConfigHost, ProxyJump: x.ProxyJump, KnownHosts: abspath(x.KnownHosts)}
	}
	abs, _ := filepath.Abs(s.f.Path)
	doc := migrate.HandOff{Action: action, Inventory: abs, Databases: s.m.From.Databases,
		Source:  migrate.HandOffHost{Name: s.m.From.Name, SSH: ssh(s.m.From.SSH), MongoURI: s.m.From.MongoURI, UploadsDir: s.m.From.UploadsDir},
		Target:  migrate.HandOffHost{Name: s.target.Name, SSH: ssh(s.target.SSH), MongoURI: s.m.TargetMongoURI, UploadsDir: s.m.UploadsTo, StateDir: s.m.StateDir},
		Options: migrate.HandOffOptions{Drop: s.o.Drop, Restart: s.o.Restart, Archive: s.o.Archive, Check: s.o.Check},
	}
	if doc.Target.SSH.Address == "" {
		doc.Target.SSH.Address = targetAddress(s.target)
	}
	if s.site != nil && s.site.App != nil {
		stack := appstack.FromSite(s.f, s.site)
		c := &migrate.HandOffCompose{Project: stack.Project, File: stack.ComposeFile(), DatabaseService: s.m.DatabaseService}
		if app, ok := stack.Service("app"); ok {
			c.AppService = app.Name
		}
		doc.Target.Compose = c
	}
	if s.m.Exec != nil && len(s.m.Exec.Secrets) > 0 {
		doc.Secrets = map[string]migrate.SecretRef{}
		for k, v := range s.m.Exec.Secrets {
			doc.Secrets[k] = migrate.SecretRef{Env: v.Env, File: v.File}
		}
	}
	return doc
}

// runExec hands the command over to the external engine.
func (s *migrateSession) runExec(ctx context.Context, action string) error {
	e := &migrate.ExecEngine{Command: s.m.Exec.Command, Dir: s.f.Dir, Env: os.Environ(), Stdout: s.g.Out, Stderr: s.g.Err}
	s.tally.Play("migrate " + action + " (engine " + s.m.Exec.Command[0] + ")")
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger}
	err := runner.Run(ctx, []task.Target{{Name: s.target.Name, Steps: []task.Step{{Name: "hand over to " + filepath.Base(s.m.Exec.Command[0]),
		Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			if err := e.Run(ctx, s.handOff(action)); err != nil {
				return task.Result{}, err
			}
			return task.Changedf("the engine finished"), nil
		}}}}})
	return s.finish(err, false)
}

func (o *migrateOptions) runPlan(ctx context.Context) error {
	s, err := o.open(ctx, "migrate-plan", nil)
	if err != nil {
		return err
	}
	defer s.close()
	if s.m.Engine == "exec" {
		return s.runExec(ctx, "plan")
	}
	s.tally.Play("migrate plan")
	var rep *migrate.PlanReport
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger}
	err = runner.Run(ctx, []task.Target{{Name: s.target.Name, Connect: func(ctx context.Context) error { return s.connect(ctx, true) },
		Steps: []task.Step{{Name: "pre-flight", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			rep, err = s.preflight(o.Drop).Run(ctx)
			if err != nil {
				return task.Result{}, err
			}
			s.showPlanReport(rep)
			if !rep.OK() {
				return task.Result{}, fmt.Errorf("%d check(s) failed: %s", len(rep.Failed()), strings.Join(rep.Failed(), "; "))
			}
			return task.Unchanged(), nil
		}}}}})
	return s.finish(err, true)
}

// showPlanReport prints the collections and the checks.
func (s *migrateSession) showPlanReport(rep *migrate.PlanReport) {
	for _, db := range s.m.From.Databases {
		for _, c := range rep.Collections[db] {
			s.tally.Message(report.Info, fmt.Sprintf("  %s.%-40s %10d docs %12s", db, c.Name, c.Count, humanSize(c.Size)))
		}
	}
	for _, c := range rep.Checks {
		mark := "ok    "
		if !c.OK {
			mark = "FAILED"
		}
		s.tally.Message(report.Info, fmt.Sprintf("  %s %-18s %s", mark, c.Name, c.Detail))
	}
	if len(rep.Resumable) > 0 {
		s.tally.Message(report.Info, fmt.Sprintf("  resumable: %s", strings.Join(rep.Resumable, ", ")))
	}
}

func humanSize(n int64) string { return provision.HumanSize(n) }

// archiveWriter opens --archive for one database (FILE, or FILE with the
// database's name before its extension when several move).
func (s *migrateSession) archiveWriter(path string) func(db string) (io.WriteCloser, error) {
	if path == "" {
		return nil
	}
	return func(db string) (io.WriteCloser, error) {
		p := path
		if len(s.m.From.Databases) > 1 {
			base, ext := strings.TrimSuffix(path, ".gz"), ""
			if strings.HasSuffix(path, ".gz") {
				ext = ".gz"
			}
			p = base + "." + db + ext
		}
		f, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(p, ".gz") {
			return f, nil
		}
		return &gzipFile{Writer: gzip.NewWriter(f), f: f}, nil
	}
}

type gzipFile struct {
	*gzip.Writer
	f *os.File
}

func (g *gzipFile) Close() error {
	if err := g.Writer.Close(); err != nil {
		g.f.Close()
		return err
	}
	return g.f.Close()
}

func (o *migrateOptions) runData(ctx context.Context) error {
	s, err := o.open(ctx, "migrate-data", nil)
	if err != nil {
		return err
	}
	defer s.close()
	if s.m.Engine == "exec" {
		return s.runExec(ctx, "data")
	}
	s.tally.Play("migrate data")
	progress := migrate.NewProgress(s.tally, s.target.Name)
	var rep *migrate.PlanReport
	steps := []task.Step{
		{Name: "pre-flight", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			rep, err = s.preflight(o.Drop || o.Restart).Run(ctx)
			if err != nil {
				return task.Result{}, err
			}
			if !rep.OK() {
				s.showPlanReport(rep)
				return task.Result{}, fmt.Errorf("nothing was changed: %s", strings.Join(rep.Failed(), "; "))
			}
			for _, db := range s.m.From.Databases {
				for _, c := range rep.Collections[db] {
					progress.Expect(c.Name, c.Count, c.Size)
				}
			}
			return task.Unchanged(), nil
		}},
	}
	for _, db := range s.m.From.Databases {
		steps = append(steps, task.Step{Name: "move " + db, Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			if env.Check {
				return task.Changedf("would copy %s from %s (%d collections already copied are kept)", humanSize(rep.TotalBytes), s.source().Name(), len(rep.Resumable)), nil
			}
			if s.app != nil && s.app.Ops.Stack.ReplicaSet != "" {
				initiated, err := migrate.EnsurePrimary(ctx, s.targetDB(), s.app.Ops.InitiateReplicaSet, s.logf.Logger)
				if err != nil {
					return task.Result{}, err
				}
				if initiated {
					s.tally.Message(report.Info, "initiated the replica set "+s.app.Ops.Stack.ReplicaSet+" on "+s.target.Name)
				}
			}
			mv := &migrate.Move{Source: s.source(), Target: s.targetDB(), Databases: []string{db}, StateDir: s.m.StateDir,
				Drop: o.Drop, Restart: o.Restart, Archive: s.archiveWriter(o.Archive), Progress: progress, Log: s.logf.Logger,
				Warn: func(m string) { s.tally.Message(report.Warning, m) }}
			pctx, stop := context.WithCancel(ctx)
			go progress.Run(pctx, time.Second)
			res, err := mv.Run(ctx)
			stop()
			if err != nil {
				return task.Result{}, err
			}
			if len(res.Copied) == 0 {
				return task.Unchanged(), nil
			}
			return task.Changedf("%d collections copied (%s streamed), %d kept from an earlier run", len(res.Copied), humanSize(res.StreamBytes), len(res.Resumed)), nil
		}})
	}
	if s.m.From.UploadsDir != "" {
		steps = append(steps, task.Step{Name: "uploads", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			up := s.uploads(progress) // the hosts are connected now
			if env.Check {
				return task.Changedf("would copy %s of files to %s", humanSize(rep.UploadsBytes), up.ToDir), nil
			}
			res, err := up.Copy(ctx)
			if err != nil {
				return task.Result{}, err
			}
			if res.Sent == 0 {
				return task.Unchanged(), nil
			}
			return task.Changedf("%d of %d files sent (%s)", res.Sent, res.Files, humanSize(res.SentBytes)), nil
		}})
	}
	if !o.NoVerify {
		steps = append(steps, s.verifyStep(true, progress))
	}
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger, Check: o.Check}
	err = runner.Run(ctx, []task.Target{{Name: s.target.Name, Connect: func(ctx context.Context) error { return s.connect(ctx, true) }, Steps: steps}})
	return s.finish(err, o.Check)
}

func (s *migrateSession) verifyStep(recorded bool, p *migrate.Progress) task.Step {
	return task.Step{Name: "verify", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		if env.Check {
			return task.Skipf("check mode"), nil
		}
		v := &migrate.Verify{Source: s.source(), Target: s.targetDB(), Databases: s.m.From.Databases, StateDir: s.m.StateDir,
			Recorded: recorded, Uploads: s.uploads(nil), App: s.appCheck(), Progress: p, Log: s.logf.Logger}
		rep, err := v.Run(ctx)
		if rep != nil {
			for _, w := range rep.Warnings {
				s.tally.Message(report.Warning, w)
			}
		}
		if err != nil {
			return task.Result{}, err
		}
		return task.Result{Message: fmt.Sprintf("%d collections equal on both sides", len(rep.Equal))}, nil
	}}
}

func (o *migrateOptions) runVerify(ctx context.Context) error {
	s, err := o.open(ctx, "migrate-verify", nil)
	if err != nil {
		return err
	}
	defer s.close()
	if s.m.Engine == "exec" {
		return s.runExec(ctx, "verify")
	}
	s.tally.Play("migrate verify")
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger}
	err = runner.Run(ctx, []task.Target{{Name: s.target.Name, Connect: func(ctx context.Context) error { return s.connect(ctx, !o.Recorded || s.m.From.UploadsDir != "") },
		Steps: []task.Step{s.verifyStep(o.Recorded, nil)}}})
	return s.finish(err, false)
}

// snapshotter takes the ladder's backups with provision (snapshot create).
type snapshotter struct{ p *provision.Provisioner }

func (s snapshotter) CreateSnapshot(ctx context.Context, host, name string) (string, error) {
	b, err := s.p.CreateBackup(ctx, host, name)
	if err != nil {
		return "", err
	}
	return b.Name, nil
}

func (o *migrateOptions) runUpgrade(ctx context.Context) error {
	var needs *cloudNeeds
	if !o.SkipBackup {
		needs = &cloudNeeds{noDNS: true}
	}
	s, err := o.open(ctx, "migrate-upgrade", needs)
	if err != nil {
		return err
	}
	defer s.close()
	if len(s.m.Ladder) == 0 {
		return usageError{errors.New("migrate.ladder is empty: nothing to upgrade")}
	}
	s.tally.Play("migrate upgrade")
	l := &migrate.Ladder{Host: s.dstHost, DatabaseURI: s.m.TargetMongoURI, DB: "rocketchat", StateDir: s.m.StateDir,
		AppAddr: s.site.Upstream, SkipBackup: o.SkipBackup, Log: s.logf.Logger,
		RestoreHint: func(host, snap string) string {
			return fmt.Sprintf("to go back to the state before this rung, restore its backup as a new server: lghsctl snapshot restore %s --as %s-restored", snap, host)
		}}
	if len(s.m.From.Databases) > 0 {
		l.DB = s.m.From.Databases[0]
	}
	if s.prov != nil && s.target.Provider == "scaleway" {
		l.Backup = snapshotter{s.prov}
	} else if !o.SkipBackup {
		s.tally.Message(report.Warning, s.target.Name+" is not a Scaleway server: no backup can be taken before the rungs")
	}
	for _, r := range s.m.Ladder {
		rung := migrate.Rung{AppImage: r.App, DatabaseImage: r.Database, FeatureCompatibility: r.FeatureCompatibility,
			Backup: r.Backup == nil || *r.Backup, Timeout: time.Duration(r.Timeout)}
		rung.Before = ladderSteps(r.Before)
		rung.After = ladderSteps(r.After)
		l.Rungs = append(l.Rungs, rung)
	}
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger, Check: o.Check}
	err = runner.Run(ctx, []task.Target{{Name: s.target.Name, Connect: func(ctx context.Context) error {
		if err := s.connect(ctx, false); err != nil {
			return err
		}
		if s.app == nil {
			return fmt.Errorf("migrate.site %q has no app to upgrade", s.m.Site)
		}
		l.Host, l.App = s.dstHost, s.app
		return nil
	}, Steps: l.Steps()}})
	return s.finish(err, o.Check)
}

func ladderSteps(in []inventory.LadderStep) []migrate.Step {
	var out []migrate.Step
	for _, st := range in {
		x := migrate.Step{DropIndexes: st.DropIndexes, UnlockMigrations: st.UnlockMigrations, ReplicaSetHost: st.ReplicaSetHost, WaitLog: st.WaitLog, WaitVersion: st.WaitVersion}
		if st.SetSetting != nil {
			x.SetSetting = &migrate.Setting{ID: st.SetSetting.ID, Value: st.SetSetting.Value.Value()}
		}
		out = append(out, x)
	}
	return out
}

// cutoverDNS is migrate's DNS seam over provision's DNS provider
// (Cloudflare). Records it writes carry the target host's ownership
// comment, so that up and destroy then treat them as the host's.
type cutoverDNS struct {
	d       provision.DNS
	zone    string
	comment string
}

func (c *cutoverDNS) list(ctx context.Context, name string) (string, []provision.Record, error) {
	z, err := c.d.Zone(ctx, c.zone)
	if err != nil {
		return "", nil, err
	}
	all, err := c.d.Records(ctx, z.ID)
	if err != nil {
		return "", nil, err
	}
	var out []provision.Record
	for _, r := range all {
		if strings.EqualFold(strings.TrimSuffix(r.Name, "."), name) && (r.Type == "A" || r.Type == "AAAA") {
			out = append(out, r)
		}
	}
	return z.ID, out, nil
}

func (c *cutoverDNS) Records(ctx context.Context, name string) ([]migrate.DNSRecord, error) {
	_, recs, err := c.list(ctx, name)
	var out []migrate.DNSRecord
	for _, r := range recs {
		a, perr := netip.ParseAddr(r.Content)
		if perr != nil {
			continue
		}
		out = append(out, migrate.DNSRecord{Type: r.Type, Addr: a, TTL: r.TTL})
	}
	return out, err
}

func (c *cutoverDNS) SetTTL(ctx context.Context, name string, ttl int) error {
	zid, recs, err := c.list(ctx, name)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.TTL != ttl {
			r.TTL = ttl
			if _, err := c.d.UpdateRecord(ctx, zid, r.ID, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *cutoverDNS) Point(ctx context.Context, name string, addrs []netip.Addr, ttl int) error {
	zid, recs, err := c.list(ctx, name)
	if err != nil {
		return err
	}
	typ := func(a netip.Addr) string {
		if a.Is4() {
			return "A"
		}
		return "AAAA"
	}
	left := slices.Clone(addrs)
	for _, r := range recs {
		j := slices.IndexFunc(left, func(a netip.Addr) bool { return typ(a) == r.Type })
		if j < 0 {
			if err := c.d.DeleteRecord(ctx, zid, r.ID); err != nil {
				return err
			}
			continue
		}
		r.Content, r.TTL, r.Comment = left[j].String(), ttl, c.comment
		if _, err := c.d.UpdateRecord(ctx, zid, r.ID, r); err != nil {
			return err
		}
		left = slices.Delete(left, j, j+1)
	}
	for _, a := range left {
		if _, err := c.d.CreateRecord(ctx, zid, provision.Record{Name: name, Type: typ(a), Content: a.String(), TTL: ttl, Comment: c.comment}); err != nil {
			return err
		}
	}
	return nil
}

func (o *migrateOptions) runCutover(ctx context.Context) error {
	s, err := o.open(ctx, "migrate-cutover", &cloudNeeds{dnsAlways: true})
	if err != nil {
		return err
	}
	defer s.close()
	if s.dns == nil {
		return usageError{errors.New("cutover needs the DNS provider (dns.zones and its token)")}
	}
	var public, technical string
	for _, n := range s.target.DNS {
		switch {
		case n.Role == "public" && public == "":
			public = n.Name
		case n.Role == "technical" && technical == "":
			technical = n.Name
		}
	}
	if public == "" {
		return usageError{fmt.Errorf("%s has no DNS name with role public to move", s.target.Name)}
	}
	zone := ""
	for _, z := range s.f.DNS.Zones {
		if (public == z.Name || strings.HasSuffix(public, "."+z.Name)) && len(z.Name) > len(zone) {
			zone = z.Name
		}
	}
	d := &cutoverDNS{d: s.dns, zone: zone, comment: provision.RecordComment(s.f.Name, s.target.Name)}
	var addrs []netip.Addr
	for _, a := range o.Addresses {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return usageError{fmt.Errorf("--address %q: %v", a, err)}
		}
		addrs = append(addrs, ip)
	}
	ns := o.Nameservers
	if len(ns) == 0 {
		if v := s.g.Getenv("LGHSCTL_DNS_NAMESERVERS"); v != "" {
			ns = strings.Split(v, ",")
		}
	}
	c := &migrate.Cutover{Name: public, Zone: zone, LowTTL: s.m.CutoverTTL, DNS: d, Resolver: &migrate.AuthResolver{Servers: ns},
		StateDir: s.m.StateDir, Force: o.Force, Log: s.logf.Logger}
	s.tally.Play("migrate cutover")
	step := task.Step{Name: "cutover " + public, Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		if len(addrs) == 0 && !o.Prepare {
			if technical == "" {
				return task.Result{}, fmt.Errorf("give --address: %s has no technical DNS name to read its addresses from", s.target.Name)
			}
			tzone := ""
			for _, z := range s.f.DNS.Zones {
				if strings.HasSuffix(technical, "."+z.Name) && len(z.Name) > len(tzone) {
					tzone = z.Name
				}
			}
			recs, err := (&cutoverDNS{d: s.dns, zone: tzone}).Records(ctx, technical)
			if err != nil {
				return task.Result{}, err
			}
			for _, r := range recs {
				addrs = append(addrs, r.Addr)
			}
			if len(addrs) == 0 {
				return task.Result{}, fmt.Errorf("%s has no A/AAAA record: give --address", technical)
			}
		}
		c.Addrs = addrs
		if env.Check {
			if o.Prepare {
				return task.Changedf("would lower the TTL of %s to %d s", public, c.LowTTL), nil
			}
			return task.Changedf("would point %s at %v", public, addrs), nil
		}
		if o.Prepare {
			old, ready, changed, err := c.Prepare(ctx)
			if err != nil {
				return task.Result{}, err
			}
			msg := fmt.Sprintf("TTL of %s lowered from %d s to %d s; cut over after %s", public, old, c.LowTTL, ready.Local().Format(time.RFC1123))
			if !changed {
				return task.Result{Message: msg}, nil
			}
			return task.Changedf("%s", msg), nil
		}
		res, err := c.Run(ctx)
		if err != nil {
			return task.Result{}, err
		}
		if !res.Changed {
			return task.Unchanged(), nil
		}
		return task.Changedf("%s now points at %v (was %v), TTL back to %d s", public, addrs, res.OldAddrs, res.TTL), nil
	}}
	runner := &task.Runner{Reporter: s.tally, Log: s.logf.Logger, Check: o.Check}
	err = runner.Run(ctx, []task.Target{{Name: s.target.Name, Connect: func(ctx context.Context) error {
		if err := s.connect(ctx, false); err != nil {
			return err
		}
		c.Host = s.dstHost
		return nil
	}, Steps: []task.Step{step}}})
	return s.finish(err, o.Check)
}
