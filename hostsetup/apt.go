package hostsetup

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lghs/lghsctl/internal/task"
)

const aptEnv = "DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a"

// aptOpts keeps existing configuration files on upgrades (never prompt).
const aptOpts = "-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

// packages is every package the host needs, in one list.
func (r *Run) packages() []string {
	h := r.cfg.Host
	pkgs := append([]string{}, h.Packages...)
	if *h.UnattendedUpgrades {
		pkgs = append(pkgs, "unattended-upgrades")
	}
	if len(r.cfg.Inventory.Admins) > 0 {
		pkgs = append(pkgs, "sudo")
	}
	if len(h.Sites) > 0 {
		pkgs = append(pkgs, "nginx")
	}
	pkgs = append(pkgs, r.dockerPackages()...)
	return dedupe(pkgs)
}

func (r *Run) aptSteps() []task.Step {
	var steps []task.Step
	if d := r.cfg.Host.Docker; d != nil && d.Source == "docker" {
		steps = append(steps, r.dockerRepoStep())
	}
	steps = append(steps, task.Step{Name: "apt: packages", Run: r.installPackages})
	if r.cfg.Host.DistUpgrade {
		steps = append(steps, task.Step{Name: "apt: dist-upgrade", Run: r.distUpgrade})
	}
	if *r.cfg.Host.UnattendedUpgrades {
		steps = append(steps, r.fileStep("apt: unattended upgrades", nil, r.unattendedFiles()))
	}
	return steps
}

// aptUpdate refreshes the package lists when they are older than the
// threshold; it is only called when something is about to be installed.
func (r *Run) aptUpdate(ctx context.Context) (bool, error) {
	if r.facts.AptListsAge < r.cfg.AptMaxAge {
		return false, nil
	}
	if _, err := r.host.Run(ctx, aptEnv+" apt-get update -q", nil); err != nil {
		return false, fmt.Errorf("apt-get update: %w", err)
	}
	r.facts.AptListsAge = 0
	r.listsRefreshed = true
	return true, nil
}

func (r *Run) installPackages(ctx context.Context, env task.Env) (task.Result, error) {
	var missing []string
	for _, p := range r.packages() {
		name, _, _ := strings.Cut(p, "=")
		if _, ok := r.facts.Packages[name]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return task.Unchanged(), nil
	}
	msg := "install " + strings.Join(missing, ", ")
	if env.Check {
		return task.Changedf("would %s", msg), nil
	}
	if _, err := r.aptUpdate(ctx); err != nil {
		return task.Result{}, err
	}
	// One transaction, then read back what is installed so later steps
	// (nginx's version for its template) see it without another gathering.
	names := make([]string, len(missing))
	for i, p := range missing {
		names[i], _, _ = strings.Cut(p, "=")
	}
	// dpkg-query exits 1 when one of the packages is not installed (nginx
	// on a host without sites): only its exit 2 is a failure.
	cmd := fmt.Sprintf("%s apt-get install %s %s && { dpkg-query -W -f='${Package}\\t${Version}\\n' -- %s 2>/dev/null; [ $? -le 1 ]; }",
		aptEnv, aptOpts, quoteAll(missing), quoteAll(append(names, "openssh-server", "nginx")))
	out, err := r.host.Run(ctx, cmd, nil)
	if err != nil {
		return task.Result{}, fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, version, ok := strings.Cut(line, "\t"); ok && version != "" {
			r.facts.Packages[name] = version
		}
	}
	// Installing a service package starts it; refresh what the later
	// steps would otherwise think.
	for _, u := range []string{"nginx.service", "docker.service"} {
		if _, ok := r.facts.Units[u]; ok {
			continue
		}
		r.facts.Units[u] = UnitFact{}
	}
	if err := r.refreshUnits(ctx); err != nil {
		return task.Result{}, err
	}
	// Packages create files later steps manage (nginx's default site,
	// /etc/docker): read the paths again.
	paths, err := Gather(ctx, r.host, FactsRequest{Paths: r.request().Paths})
	if err != nil {
		return task.Result{}, err
	}
	r.facts.Paths = paths.Paths
	return task.Changedf("installed %s", strings.Join(missing, ", ")), nil
}

// refreshUnits re-reads the state of the units the steps manage.
func (r *Run) refreshUnits(ctx context.Context) error {
	var units []string
	for u := range r.facts.Units {
		units = append(units, u)
	}
	sort.Strings(units)
	out, err := r.host.Run(ctx, fmt.Sprintf("systemctl show --property=Id,UnitFileState,ActiveState -- %s 2>/dev/null | sed 's/^/unit\\t/'; printf 'os\\tdebian\\t\\t\\n'", quoteAll(units)), nil)
	if err != nil {
		return fmt.Errorf("read service states: %w", err)
	}
	f, err := parseFacts(out)
	if err != nil {
		return err
	}
	for u, st := range f.Units {
		r.facts.Units[u] = st
	}
	return nil
}

// distUpgrade upgrades every package when upgrades are pending. It looks
// only when the package lists are refreshed (older than the threshold, or
// refreshed earlier in this run by the packages step), so a converged host
// is not charged an apt simulation on every run.
func (r *Run) distUpgrade(ctx context.Context, env task.Env) (task.Result, error) {
	if !r.listsRefreshed && r.facts.AptListsAge < r.cfg.AptMaxAge && r.facts.Upgradable <= 0 {
		return task.Unchanged(), nil
	}
	if env.Check {
		return task.Changedf("would refresh the package lists and upgrade pending packages"), nil
	}
	if _, err := r.aptUpdate(ctx); err != nil {
		return task.Result{}, err
	}
	out, err := r.host.Run(ctx, "apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -c '^Inst' || true", nil)
	if err != nil {
		return task.Result{}, fmt.Errorf("simulate dist-upgrade: %w", err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if n == 0 {
		return task.Result{Message: "package lists refreshed, nothing to upgrade"}, nil
	}
	if _, err := r.host.Run(ctx, aptEnv+" apt-get dist-upgrade "+aptOpts, nil); err != nil {
		return task.Result{}, fmt.Errorf("apt-get dist-upgrade: %w", err)
	}
	return task.Changedf("upgraded %d packages", n), nil
}

func (r *Run) unattendedFiles() []File {
	if !*r.cfg.Host.UnattendedUpgrades {
		return nil
	}
	return []File{{
		Path:    "/etc/apt/apt.conf.d/20auto-upgrades",
		Content: []byte("// Managed by lghsctl: security updates are installed automatically.\nAPT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n"),
		Mode:    0o644,
	}}
}
