package hostsetup

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/lghs/lghsctl/appstack"
	"github.com/lghs/lghsctl/internal/task"
)

// stacks are the apps of the host's sites.
func (r *Run) stacks() []*appstack.Stack {
	var out []*appstack.Stack
	for i := range r.cfg.Host.Sites {
		if r.cfg.Host.Sites[i].App != nil {
			out = append(out, appstack.FromSite(r.cfg.Inventory, &r.cfg.Host.Sites[i]))
		}
	}
	return out
}

func replicaSetMarker(s *appstack.Stack) string {
	return path.Join(s.Dir, ".lghsctl", "replica-set-initiated")
}

func (r *Run) appPaths() []string {
	var ps []string
	for _, s := range r.stacks() {
		ps = append(ps, s.Dir, s.ComposeFile(), path.Join(s.Dir, ".lghsctl"), replicaSetMarker(s))
		for _, svc := range s.Services {
			if len(svc.SecretEnvironment) > 0 {
				ps = append(ps, s.EnvFile(svc.Name))
			}
		}
	}
	return ps
}

func (r *Run) appSteps() []task.Step {
	var steps []task.Step
	for i, s := range r.stacks() {
		site := r.cfg.Host.Sites[i]
		steps = append(steps, task.Step{Name: "app " + s.Site, Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			return r.deployApp(ctx, env, s, site.Upstream)
		}})
	}
	return steps
}

// deployApp renders the stack's compose file and applies it: the file is
// replaced only after docker compose validated it, containers are created
// or recreated only when the file or a service's desired state changed,
// the replica set is initiated once, and the run waits until the database
// is healthy and the app answers on nginx's upstream.
func (r *Run) deployApp(ctx context.Context, env task.Env, s *appstack.Stack, upstream string) (task.Result, error) {
	ops := appstack.Ops{Host: r.host, Stack: s}
	content, err := s.Compose()
	if err != nil {
		return task.Result{}, err
	}
	var changes []string
	res := task.Result{}
	compose := File{Path: s.ComposeFile(), Content: content, Mode: 0o644}
	fileOK, metaOK := fileState(compose, r.facts.Path(compose.Path))
	if !fileOK || !metaOK {
		changes = append(changes, "compose.yaml")
		res.Diff = r.fileDiff(ctx, env, compose, r.facts.Path(compose.Path))
	}
	var envFiles []File
	for _, svc := range s.Services {
		if len(svc.SecretEnvironment) == 0 {
			continue
		}
		values := map[string]string{}
		for k, ref := range svc.SecretEnvironment {
			if r.cfg.Secret == nil {
				return task.Result{}, fmt.Errorf("app %s: service %s has secret environment but no secret resolver", s.Site, svc.Name)
			}
			v, err := r.cfg.Secret(ref)
			if err != nil {
				return task.Result{}, fmt.Errorf("app %s: %s of service %s: %w", s.Site, k, svc.Name, err)
			}
			values[k] = v
		}
		f := File{Path: s.EnvFile(svc.Name), Content: appstack.SecretEnv(values), Mode: 0o600, Secret: true}
		if c, m := fileState(f, r.facts.Path(f.Path)); !c || !m {
			envFiles = append(envFiles, f)
			changes = append(changes, path.Base(f.Path))
		}
	}
	running, stopped := s.Running()
	containers := r.facts.Containers[s.Project]
	var start, stop []string
	for _, name := range running {
		if c, ok := containers[name]; !ok || c.State != "running" {
			start = append(start, name)
		}
	}
	for _, name := range stopped {
		if c, ok := containers[name]; ok && c.State == "running" {
			stop = append(stop, name)
		}
	}
	if len(start) > 0 {
		changes = append(changes, "start "+strings.Join(start, ", "))
	}
	if len(stop) > 0 {
		changes = append(changes, "stop "+strings.Join(stop, ", "))
	}
	db, hasDB := s.Service("database")
	initiate := hasDB && s.ReplicaSet != "" && db.State == "running" && !r.facts.Path(replicaSetMarker(s)).Exists()
	if initiate {
		changes = append(changes, "initiate replica set "+s.ReplicaSet)
	}
	if len(changes) == 0 {
		return task.Unchanged(), nil
	}
	res.Changed = true
	res.Message = strings.Join(changes, "; ")
	if env.Check {
		return res, nil
	}
	if _, err := r.ensureDir(ctx, env, Dir{Path: s.Dir, Mode: 0o755}); err != nil {
		return task.Result{}, err
	}
	if _, err := r.ensureDir(ctx, env, Dir{Path: path.Join(s.Dir, ".lghsctl"), Mode: 0o700}); err != nil {
		return task.Result{}, err
	}
	for _, f := range envFiles {
		if _, _, err := r.ensureFile(ctx, env, f); err != nil {
			return task.Result{}, err
		}
	}
	if !fileOK || !metaOK {
		if err := ops.Install(ctx, content); err != nil {
			return task.Result{}, err
		}
		r.facts.Paths[compose.Path] = PathFact{Type: "file", Mode: 0o644, Owner: "root", Group: "root", SHA256: digest(content)}
	}
	// up -d on the running services when the file changed or one of them
	// is not running: compose recreates only what changed.
	if (!fileOK || len(start) > 0 || len(envFiles) > 0) && len(running) > 0 {
		if err := ops.Up(ctx, running...); err != nil {
			return task.Result{}, err
		}
	}
	if len(stop) > 0 {
		if err := ops.Stop(ctx, stop...); err != nil {
			return task.Result{}, err
		}
	}
	if hasDB && db.State == "running" {
		if err := ops.WaitHealthy(ctx, r.cfg.AppTimeout, db.Name); err != nil {
			return task.Result{}, err
		}
	}
	if initiate {
		if err := ops.InitiateReplicaSet(ctx); err != nil {
			return task.Result{}, err
		}
		if err := r.host.WriteFile(ctx, replicaSetMarker(s), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644, "root", "root"); err != nil {
			return task.Result{}, err
		}
	}
	if app, ok := s.Service("app"); ok && app.State == "running" {
		if err := ops.WaitAnswers(ctx, app.Name, upstream, r.cfg.AppTimeout); err != nil {
			return task.Result{}, err
		}
	}
	return res, nil
}
