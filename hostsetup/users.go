package hostsetup

import (
	"context"
	"fmt"
	"strings"

	"github.com/lghs/lghsctl/internal/task"
)

type adminFiles struct {
	name  string
	dirs  []Dir
	files []File
}

// adminFiles describes each admin's account files: ~/.ssh/authorized_keys
// and a sudoers drop-in (validated with visudo before it is installed).
func (r *Run) adminFiles() []adminFiles {
	var out []adminFiles
	for _, a := range r.cfg.Inventory.Admins {
		home := "/home/" + a.Name
		var keys strings.Builder
		fmt.Fprintf(&keys, "# Managed by lghsctl (%s): keys of admin %s.\n", r.cfg.Inventory.Name, a.Name)
		for _, k := range a.SSHKeys {
			fmt.Fprintf(&keys, "%s\n", strings.TrimSpace(r.cfg.AuthorizedKeys[k]))
		}
		af := adminFiles{
			name: a.Name,
			dirs: []Dir{{Path: home + "/.ssh", Mode: 0o700, Owner: a.Name, Group: a.Name}},
			files: []File{{
				Path: home + "/.ssh/authorized_keys", Content: []byte(keys.String()),
				Mode: 0o600, Owner: a.Name, Group: a.Name,
			}},
		}
		if *a.Sudo {
			af.files = append(af.files, File{
				Path:     "/etc/sudoers.d/lghsctl-" + a.Name,
				Content:  []byte(fmt.Sprintf("# Managed by lghsctl (%s).\n%s ALL=(ALL:ALL) NOPASSWD: ALL\n", r.cfg.Inventory.Name, a.Name)),
				Mode:     0o440,
				Validate: "visudo -cqf %s",
			})
		}
		out = append(out, af)
	}
	return out
}

func (r *Run) adminSteps() []task.Step {
	var steps []task.Step
	for _, af := range r.adminFiles() {
		files := r.fileStep("", af.dirs, af.files)
		steps = append(steps, task.Step{Name: "admin " + af.name, Run: func(ctx context.Context, env task.Env) (task.Result, error) {
			created := false
			if !r.facts.Users[af.name] {
				created = true
				if env.Check {
					return task.Changedf("would create account %s", af.name), nil
				}
				cmd := fmt.Sprintf("useradd --create-home --shell /bin/bash --user-group %s", quote(af.name))
				if _, err := r.host.Run(ctx, cmd, nil); err != nil {
					return task.Result{}, fmt.Errorf("create account %s: %w", af.name, err)
				}
				r.facts.Users[af.name] = true
			}
			res, err := files.Run(ctx, env)
			if err != nil || !created {
				return res, err
			}
			res.Changed = true
			msg := "created account " + af.name
			if res.Message != "" {
				msg += "; " + res.Message
			}
			res.Message = msg
			return res, nil
		}})
	}
	return steps
}
