package hostsetup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/lghs/lghsctl/internal/diff"
	"github.com/lghs/lghsctl/internal/task"
)

// File is a file lghsctl manages on a host.
type File struct {
	Path    string
	Content []byte
	Mode    fs.FileMode
	// Owner and Group default to root.
	Owner, Group string
	// Validate, if set, is a command run on the new content before it
	// replaces the file; %s stands for the temporary file's path (e.g.
	// "visudo -cf %s"). A failing validation leaves the file untouched.
	Validate string
	// Secret content is never shown in diffs.
	Secret bool
}

// Dir is a directory lghsctl manages.
type Dir struct {
	Path         string
	Mode         fs.FileMode
	Owner, Group string
}

func orRoot(s string) string {
	if s == "" {
		return "root"
	}
	return s
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileState compares a desired file with the facts.
func fileState(f File, fact PathFact) (contentOK, metaOK bool) {
	contentOK = fact.Type == "file" && fact.SHA256 == digest(f.Content)
	metaOK = fact.Type == "file" && fs.FileMode(fact.Mode) == f.Mode.Perm() && fact.Owner == orRoot(f.Owner) && fact.Group == orRoot(f.Group)
	return
}

// fileDiff renders what a file change does, reading the current content
// only when a diff is wanted.
func (r *Run) fileDiff(ctx context.Context, env task.Env, f File, fact PathFact) string {
	if !env.Diff {
		return ""
	}
	if f.Secret {
		return fmt.Sprintf("--- %s\n+++ %s\n(content hidden: secret)\n", f.Path, f.Path)
	}
	var old []byte
	if fact.Type == "file" {
		b, err := r.host.ReadFile(ctx, f.Path)
		if err == nil {
			old = b
		}
	}
	from := f.Path
	if fact.Type == "" {
		from = "/dev/null"
	}
	return diff.Unified(from, f.Path, string(old), string(f.Content))
}

// ensureFile makes a file have the desired content, mode and ownership.
// It reports whether anything changed (or would, in check mode).
func (r *Run) ensureFile(ctx context.Context, env task.Env, f File) (changed bool, d string, err error) {
	fact := r.facts.Path(f.Path)
	contentOK, metaOK := fileState(f, fact)
	if contentOK && metaOK {
		return false, "", nil
	}
	if fact.Type != "" && fact.Type != "file" {
		return false, "", fmt.Errorf("%s is a %s, not a file: refusing to replace it", f.Path, fact.Type)
	}
	if !contentOK {
		d = r.fileDiff(ctx, env, f, fact)
	} else {
		d = fmt.Sprintf("%s: mode %04o %s:%s → %04o %s:%s\n", f.Path, fact.Mode, fact.Owner, fact.Group, f.Mode.Perm(), orRoot(f.Owner), orRoot(f.Group))
	}
	if env.Check {
		return true, d, nil
	}
	owner, group := orRoot(f.Owner), orRoot(f.Group)
	switch {
	case !contentOK && f.Validate != "":
		dir, base := path.Split(f.Path)
		tmp := dir + "." + base + ".lghsctl-new"
		if err := r.host.WriteFile(ctx, tmp, f.Content, f.Mode.Perm(), owner, group); err != nil {
			return false, d, fmt.Errorf("write %s: %w", tmp, err)
		}
		check := strings.ReplaceAll(f.Validate, "%s", quote(tmp))
		cmd := fmt.Sprintf("if %s; then mv -f %s %s; else rm -f %s; exit 1; fi", check, quote(tmp), quote(f.Path), quote(tmp))
		if _, err := r.host.Run(ctx, cmd, nil); err != nil {
			return false, d, fmt.Errorf("new %s failed validation (%s); the file was not changed: %w", f.Path, f.Validate, err)
		}
	case !contentOK:
		if err := r.host.WriteFile(ctx, f.Path, f.Content, f.Mode.Perm(), owner, group); err != nil {
			return false, d, fmt.Errorf("write %s: %w", f.Path, err)
		}
	default:
		cmd := fmt.Sprintf("chown %s:%s %s && chmod %04o %s", quote(owner), quote(group), quote(f.Path), f.Mode.Perm(), quote(f.Path))
		if _, err := r.host.Run(ctx, cmd, nil); err != nil {
			return false, d, fmt.Errorf("set mode of %s: %w", f.Path, err)
		}
	}
	r.facts.Paths[f.Path] = PathFact{Type: "file", Mode: uint32(f.Mode.Perm()), Owner: owner, Group: group, SHA256: digest(f.Content)}
	return true, d, nil
}

// ensureDir makes a directory exist with the desired mode and ownership.
func (r *Run) ensureDir(ctx context.Context, env task.Env, d Dir) (bool, error) {
	fact := r.facts.Path(d.Path)
	owner, group := orRoot(d.Owner), orRoot(d.Group)
	if fact.Type == "dir" && fs.FileMode(fact.Mode) == d.Mode.Perm() && fact.Owner == owner && fact.Group == group {
		return false, nil
	}
	if fact.Type != "" && fact.Type != "dir" {
		return false, fmt.Errorf("%s is a %s, not a directory", d.Path, fact.Type)
	}
	if env.Check {
		return true, nil
	}
	cmd := fmt.Sprintf("mkdir -p %s && chown %s:%s %s && chmod %04o %s", quote(d.Path), quote(owner), quote(group), quote(d.Path), d.Mode.Perm(), quote(d.Path))
	if _, err := r.host.Run(ctx, cmd, nil); err != nil {
		return false, fmt.Errorf("create directory %s: %w", d.Path, err)
	}
	r.facts.Paths[d.Path] = PathFact{Type: "dir", Mode: uint32(d.Mode.Perm()), Owner: owner, Group: group}
	return true, nil
}

// ensureLink makes path a symlink to target.
func (r *Run) ensureLink(ctx context.Context, env task.Env, p, target string) (bool, error) {
	fact := r.facts.Path(p)
	if fact.Type == "link" && fact.Target == target {
		return false, nil
	}
	if fact.Type != "" && fact.Type != "link" {
		return false, fmt.Errorf("%s is a %s, not a symlink: refusing to replace it", p, fact.Type)
	}
	if env.Check {
		return true, nil
	}
	if _, err := r.host.Run(ctx, fmt.Sprintf("ln -sfn %s %s", quote(target), quote(p)), nil); err != nil {
		return false, fmt.Errorf("link %s: %w", p, err)
	}
	r.facts.Paths[p] = PathFact{Type: "link", Target: target}
	return true, nil
}

// ensureAbsent removes a file or symlink.
func (r *Run) ensureAbsent(ctx context.Context, env task.Env, p string) (bool, error) {
	fact := r.facts.Path(p)
	if !fact.Exists() {
		return false, nil
	}
	if fact.Type == "dir" {
		return false, fmt.Errorf("%s is a directory: refusing to remove it", p)
	}
	if env.Check {
		return true, nil
	}
	if _, err := r.host.Run(ctx, "rm -f "+quote(p), nil); err != nil {
		return false, fmt.Errorf("remove %s: %w", p, err)
	}
	delete(r.facts.Paths, p)
	return true, nil
}

// fileStep is a task step managing a set of directories and files.
func (r *Run) fileStep(name string, dirs []Dir, files []File, notify ...string) task.Step {
	return task.Step{Name: name, Notify: notify, Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		var changed []string
		var diffs bytes.Buffer
		for _, d := range dirs {
			c, err := r.ensureDir(ctx, env, d)
			if err != nil {
				return task.Result{}, err
			}
			if c {
				changed = append(changed, d.Path+"/")
			}
		}
		for _, f := range files {
			c, d, err := r.ensureFile(ctx, env, f)
			if err != nil {
				return task.Result{}, err
			}
			if c {
				changed = append(changed, f.Path)
				diffs.WriteString(d)
			}
		}
		if len(changed) == 0 {
			return task.Unchanged(), nil
		}
		res := task.Changedf("%s", strings.Join(changed, ", "))
		res.Diff = diffs.String()
		return res, nil
	}}
}

// isNotExist reports whether err says a remote file is missing.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
