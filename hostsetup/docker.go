package hostsetup

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lghs/lghsctl/internal/task"
)

// Docker's apt repository, and the fingerprint its signing key must have
// (as published in Docker's install guide).
const (
	dockerRepo        = "https://download.docker.com/linux/debian"
	dockerKeyring     = "/etc/apt/keyrings/docker.asc"
	dockerFingerprint = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
	dockerSources     = "/etc/apt/sources.list.d/docker.sources"
)

func (r *Run) dockerPackages() []string {
	d := r.cfg.Host.Docker
	if d == nil {
		return nil
	}
	if d.Source == "docker" {
		return []string{"docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"}
	}
	// Debian's packages. Compose v2 (the docker compose plugin) is packaged
	// from trixie on as docker-compose; bookworm only has the old Python one.
	pkgs := []string{"docker.io"}
	if r.facts != nil && r.facts.Codename != "bookworm" {
		pkgs = append(pkgs, "docker-compose")
	}
	return pkgs
}

func (r *Run) dockerFiles() []File {
	d := r.cfg.Host.Docker
	if d == nil {
		return nil
	}
	conf, _ := json.MarshalIndent(map[string]any{
		"log-driver": "json-file",
		"log-opts":   map[string]string{"max-size": d.LogMaxSize, "max-file": fmt.Sprint(d.LogMaxFiles)},
	}, "", "  ")
	return []File{{Path: "/etc/docker/daemon.json", Content: append(conf, '\n'), Mode: 0o644}}
}

// dockerSteps: the daemon configuration (log rotation) and the service.
// With source "docker", the repository and its key are set up before the
// packages step (see aptSteps).
func (r *Run) dockerSteps() []task.Step {
	if r.cfg.Host.Docker == nil {
		return nil
	}
	return []task.Step{
		r.fileStep("docker: daemon.json", []Dir{{Path: "/etc/docker", Mode: 0o755}}, r.dockerFiles(), "restart docker"),
		r.ensureUnit("docker.service"),
	}
}

func (r *Run) dockerRepoFile() File {
	return File{Path: dockerSources, Mode: 0o644, Content: []byte(fmt.Sprintf(
		"# Managed by lghsctl: Docker's official packages.\nTypes: deb\nURIs: %s\nSuites: %s\nComponents: stable\nSigned-By: %s\n",
		dockerRepo, r.facts.Codename, dockerKeyring))}
}

// dockerRepoStep sets up Docker's apt repository: its signing key, fetched
// on the host and accepted only with the published fingerprint, and a
// deb822 sources file.
func (r *Run) dockerRepoStep() task.Step {
	return task.Step{Name: "docker: apt repository", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		src := r.dockerRepoFile()
		srcOK, srcMeta := fileState(src, r.facts.Path(dockerSources))
		keyOK := r.facts.Path(dockerKeyring).Type == "file"
		if srcOK && srcMeta && keyOK {
			return task.Unchanged(), nil
		}
		if env.Check {
			return task.Changedf("would add Docker's apt repository (%s)", dockerRepo), nil
		}
		if !keyOK {
			var missing []string
			for _, p := range []string{"ca-certificates", "curl", "gnupg"} {
				if _, ok := r.facts.Packages[p]; !ok {
					missing = append(missing, p)
				}
			}
			if len(missing) > 0 {
				if _, err := r.aptUpdate(ctx); err != nil {
					return task.Result{}, err
				}
				if _, err := r.host.Run(ctx, aptEnv+" apt-get install "+aptOpts+" "+quoteAll(missing), nil); err != nil {
					return task.Result{}, fmt.Errorf("install %v for Docker's repository key: %w", missing, err)
				}
			}
			fetch := strings.Join([]string{
				"set -e",
				"tmp=$(mktemp)",
				"trap 'rm -f \"$tmp\"' EXIT",
				fmt.Sprintf("curl -fsSL %s/gpg -o \"$tmp\"", dockerRepo),
				fmt.Sprintf("fpr=$(gpg --show-keys --with-colons \"$tmp\" | awk -F: '$1==\"fpr\"{print $10; exit}')"),
				fmt.Sprintf("if [ \"$fpr\" != %s ]; then echo \"Docker's key has fingerprint $fpr, expected %s\" >&2; exit 1; fi", dockerFingerprint, dockerFingerprint),
				"install -d -m 0755 /etc/apt/keyrings",
				fmt.Sprintf("install -m 0644 \"$tmp\" %s", dockerKeyring),
			}, "\n")
			if _, err := r.host.Run(ctx, fetch, nil); err != nil {
				return task.Result{}, fmt.Errorf("fetch Docker's apt key: %w", err)
			}
		}
		if _, _, err := r.ensureFile(ctx, env, src); err != nil {
			return task.Result{}, err
		}
		r.facts.AptListsAge = 1 << 62 // the new repository's lists are not there yet
		return task.Changedf("added Docker's apt repository"), nil
	}}
}
