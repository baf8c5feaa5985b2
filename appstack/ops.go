package appstack

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Runner runs a shell command on the stack's host (as root) and returns
// its stdout; a non-zero exit is an error carrying stderr. The SSH
// transport and hostsetup.Host satisfy it.
type Runner interface {
	Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error)
}

// Ops are the operations on a deployed stack that host setup and migrate
// share. Every command goes through docker compose with the project's
// file and name, so it acts on exactly this stack.
type Ops struct {
	Host  Runner
	Stack *Stack
}

func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (o Ops) compose(args string) string {
	return fmt.Sprintf("docker compose -p %s -f %s %s", q(o.Stack.Project), q(o.Stack.ComposeFile()), args)
}

// Container is a container of the project as docker sees it.
type Container struct {
	Service string
	State   string // running, exited, created, restarting, ...
	Health  string // healthy, unhealthy, starting, or "" without a check
	Image   string
}

// ContainersCommand lists the project's containers, one per line:
// "ctr<TAB>service<TAB>state<TAB>status<TAB>image". It uses docker ps
// (not compose), so it is cheap enough to be part of the facts script.
func ContainersCommand(project string) string {
	return fmt.Sprintf(`docker ps -a --filter label=com.docker.compose.project=%s --format 'ctr\t{{.Label "com.docker.compose.service"}}\t{{.State}}\t{{.Status}}\t{{.Image}}' 2>/dev/null`, q(project))
}

// ParseContainers reads ContainersCommand's output (other lines are
// ignored, so it can be mixed with other facts).
func ParseContainers(out []byte) map[string]Container {
	m := map[string]Container{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 5 || f[0] != "ctr" {
			continue
		}
		c := Container{Service: f[1], State: f[2], Image: f[4]}
		switch {
		case strings.Contains(f[3], "(healthy)"):
			c.Health = "healthy"
		case strings.Contains(f[3], "(unhealthy)"):
			c.Health = "unhealthy"
		case strings.Contains(f[3], "(health: starting)"):
			c.Health = "starting"
		}
		m[c.Service] = c
	}
	return m
}

// Containers reads the project's containers.
func (o Ops) Containers(ctx context.Context) (map[string]Container, error) {
	out, err := o.Host.Run(ctx, ContainersCommand(o.Stack.Project), nil)
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", o.Stack.Project, err)
	}
	return ParseContainers(out), nil
}

// Up creates or updates and starts the given services (all running ones
// when none are given), removing containers of services no longer in the
// file. Services whose configuration did not change are left running.
func (o Ops) Up(ctx context.Context, services ...string) error {
	if _, err := o.Host.Run(ctx, o.compose("up -d --remove-orphans "+quoteAll(services)), nil); err != nil {
		return fmt.Errorf("docker compose up %s: %w", strings.Join(services, " "), err)
	}
	return nil
}

// Stop stops services, leaving the others running.
func (o Ops) Stop(ctx context.Context, services ...string) error {
	if _, err := o.Host.Run(ctx, o.compose("stop "+quoteAll(services)), nil); err != nil {
		return fmt.Errorf("stop %s: %w", strings.Join(services, " "), err)
	}
	return nil
}

// Start starts one stopped service (its container must exist: after Up).
func (o Ops) Start(ctx context.Context, service string) error {
	return o.Up(ctx, service)
}

// Logs returns a service's log lines since t (all when t is zero), at most
// tail lines (0: all).
func (o Ops) Logs(ctx context.Context, service string, since time.Time, tail int) (string, error) {
	args := "logs --no-color --no-log-prefix"
	if !since.IsZero() {
		args += " --since " + since.UTC().Format(time.RFC3339)
	}
	if tail > 0 {
		args += fmt.Sprintf(" --tail %d", tail)
	}
	out, err := o.Host.Run(ctx, o.compose(args+" "+q(service))+" 2>&1", nil)
	if err != nil {
		return string(out), fmt.Errorf("logs of %s: %w", service, err)
	}
	return string(out), nil
}

// Exec runs a command inside a service's container (docker compose exec
// -T), with stdin if given, and returns its stdout.
func (o Ops) Exec(ctx context.Context, service string, argv []string, stdin io.Reader) ([]byte, error) {
	out, err := o.Host.Run(ctx, o.compose("exec -T "+q(service)+" "+quoteAll(argv)), stdin)
	if err != nil {
		return out, fmt.Errorf("exec in %s: %w", service, err)
	}
	return out, nil
}

// SetImage changes one service's image (a rung of an upgrade ladder):
// the compose file is rendered again with the new image, validated, and
// only that service is recreated. The caller records the change (the
// inventory still names the old tag until the operator updates it).
func (o Ops) SetImage(ctx context.Context, service, image string) error {
	found := false
	for i := range o.Stack.Services {
		if o.Stack.Services[i].Name == service {
			o.Stack.Services[i].Image = image
			found = true
		}
	}
	if !found {
		return fmt.Errorf("set image: no service %s in %s", service, o.Stack.Project)
	}
	content, err := o.Stack.Compose()
	if err != nil {
		return err
	}
	if err := o.Install(ctx, content); err != nil {
		return err
	}
	return o.Up(ctx, service)
}

// Install replaces the compose file with content, after docker compose
// has validated it; an invalid file leaves the previous one in place.
func (o Ops) Install(ctx context.Context, content []byte) error {
	file := o.Stack.ComposeFile()
	tmp := file + ".lghsctl-new"
	cmd := strings.Join([]string{
		"set -e",
		"mkdir -p " + q(o.Stack.Dir),
		"umask 022",
		"cat > " + q(tmp),
		fmt.Sprintf("if ! out=$(docker compose -p %s -f %s config -q 2>&1); then rm -f %s; echo \"$out\" >&2; exit 1; fi", q(o.Stack.Project), q(tmp), q(tmp)),
		fmt.Sprintf("if [ -f %s ]; then cp -p %s %s.previous; fi", q(file), q(file), q(file)),
		fmt.Sprintf("mv -f %s %s", q(tmp), q(file)),
	}, "\n")
	if _, err := o.Host.Run(ctx, cmd, bytes.NewReader(content)); err != nil {
		return fmt.Errorf("install %s (docker compose config rejected it; the previous file is unchanged): %w", file, err)
	}
	return nil
}

// WaitHealthy waits until each service is running and, when it has a
// health check, healthy. On timeout the error holds the service's last
// log lines.
func (o Ops) WaitHealthy(ctx context.Context, timeout time.Duration, services ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		cs, err := o.Containers(ctx)
		if err != nil {
			return err
		}
		var waiting string
		for _, s := range services {
			c, ok := cs[s]
			if !ok || c.State != "running" || (c.Health != "" && c.Health != "healthy") {
				waiting = s
				break
			}
		}
		if waiting == "" {
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := o.Logs(ctx, waiting, time.Time{}, 30)
			c := cs[waiting]
			return fmt.Errorf("%s is not healthy after %s (state %q, health %q); its last log lines:\n%s", waiting, timeout, c.State, c.Health, indent(logs))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func quoteAll(ss []string) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return strings.Join(out, " ")
}

// InitiateScript is the shell command, run in the database container,
// that initiates the one-node replica set unless it already is: the
// member's host is the compose service name, which the app resolves
// (the runbook's "localhost" member later needed an rs.reconfig).
func (s *Stack) InitiateScript() []string {
	db, _ := s.Service("database")
	js := fmt.Sprintf(`try { rs.status().ok } catch (e) { printjson(rs.initiate({_id: %q, members: [{_id: 0, host: %q}]})) }`, s.ReplicaSet, db.Name+":27017")
	return []string{"sh", "-c", `if command -v mongosh >/dev/null 2>&1; then m=mongosh; else m=mongo; fi; exec "$m" --quiet --eval "$0"`, js}
}

// InitiateReplicaSet initiates the replica set (idempotent on the
// server's side too: an initiated set is left alone).
func (o Ops) InitiateReplicaSet(ctx context.Context) error {
	db, ok := o.Stack.Service("database")
	if !ok || o.Stack.ReplicaSet == "" {
		return nil
	}
	if _, err := o.Exec(ctx, db.Name, o.Stack.InitiateScript(), nil); err != nil {
		return fmt.Errorf("initiate replica set %s: %w", o.Stack.ReplicaSet, err)
	}
	return nil
}

// WaitAnswers waits until something answers HTTP at addr (host:port, as
// nginx's upstream) on the host, whatever the status code. On timeout the
// error holds the service's last log lines.
func (o Ops) WaitAnswers(ctx context.Context, service, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	cmd := fmt.Sprintf("curl -s -o /dev/null -w '%%{http_code}' --max-time 5 %s || true", q("http://"+addr+"/"))
	for {
		out, err := o.Host.Run(ctx, cmd, nil)
		if err != nil {
			return fmt.Errorf("probe %s: %w", addr, err)
		}
		if code := strings.TrimSpace(string(out)); code != "" && code != "000" {
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := o.Logs(ctx, service, time.Time{}, 30)
			return fmt.Errorf("%s does not answer on %s after %s; its last log lines:\n%s", service, addr, timeout, indent(logs))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
