// Package appstack is a site's application as a Docker Compose project:
// the compose.yaml rendered from the inventory (pure, golden-tested), and
// the small operations on a host that host setup and migrate share: stop
// or start one service, swap its image, read its logs, run a command in
// it.
package appstack

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lghs/lghsctl/inventory"
)

// Stack is one compose project.
type Stack struct {
	// Inventory names the inventory in the file's header.
	Inventory  string
	Site       string
	Project    string
	Dir        string
	ReplicaSet string
	Services   []inventory.Service
}

// FromSite builds the stack of a site that has an app.
func FromSite(inv *inventory.File, site *inventory.Site) *Stack {
	a := site.App
	return &Stack{Inventory: inv.Name, Site: site.Name, Project: a.Project, Dir: a.Dir, ReplicaSet: a.ReplicaSet, Services: a.Services}
}

// ComposeFile is the path of the project's compose file.
func (s *Stack) ComposeFile() string { return path.Join(s.Dir, "compose.yaml") }

// EnvFile is the path of a service's secret environment file.
func (s *Stack) EnvFile(service string) string {
	return path.Join(s.Dir, ".lghsctl", service+".env")
}

// Service returns the service with the given role, if any.
func (s *Stack) Service(role string) (inventory.Service, bool) {
	for _, svc := range s.Services {
		if svc.Role == role {
			return svc, true
		}
	}
	return inventory.Service{}, false
}

// composeService is one service in compose.yaml, fields in the order
// people expect to read them.
type composeService struct {
	Image       string            `yaml:"image"`
	Restart     string            `yaml:"restart"`
	Command     []string          `yaml:"command,omitempty,flow"`
	Environment map[string]string `yaml:"environment,omitempty"`
	EnvFile     []string          `yaml:"env_file,omitempty"`
	Volumes     []string          `yaml:"volumes,omitempty"`
	Ports       []string          `yaml:"ports,omitempty"`
	Healthcheck *healthcheck      `yaml:"healthcheck,omitempty"`
	DependsOn   map[string]dep    `yaml:"depends_on,omitempty"`
}

type healthcheck struct {
	Test        []string `yaml:"test,flow"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type dep struct {
	Condition string `yaml:"condition"`
}

// Compose renders compose.yaml. A service's state is not in the file: it
// is applied with docker compose up/stop, so stopping the app does not
// change the file.
func (s *Stack) Compose() ([]byte, error) {
	services := map[string]composeService{}
	db, hasDB := s.Service("database")
	for _, svc := range s.Services {
		cs := composeService{
			Image:       svc.Image,
			Restart:     "unless-stopped",
			Command:     svc.Command,
			Environment: svc.Environment,
			Ports:       svc.Ports,
		}
		for _, v := range svc.Volumes {
			host, rest, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(host, "/") {
				host = path.Join(s.Dir, host)
			}
			cs.Volumes = append(cs.Volumes, host+":"+rest)
		}
		if len(svc.SecretEnvironment) > 0 {
			cs.EnvFile = []string{s.EnvFile(svc.Name)}
		}
		if len(svc.Healthcheck) > 0 {
			cs.Healthcheck = &healthcheck{
				Test: append([]string{"CMD"}, svc.Healthcheck...), Interval: "10s", Timeout: "5s", Retries: 30, StartPeriod: "10s",
			}
		}
		if svc.Role == "app" && hasDB {
			cs.DependsOn = map[string]dep{db.Name: {Condition: "service_started"}}
		}
		services[svc.Name] = cs
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Managed by lghsctl (%s) for %s: rendered from the inventory, changes here are overwritten.\n", s.Inventory, s.Site)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(struct {
		Name     string                    `yaml:"name"`
		Services map[string]composeService `yaml:"services"`
	}{s.Project, services}); err != nil {
		return nil, fmt.Errorf("render compose file for %s: %w", s.Site, err)
	}
	return b.Bytes(), nil
}

// SecretEnv renders a service's secret environment file from resolved
// values (KEY=value lines, sorted), or nil when it has none.
func SecretEnv(values map[string]string) []byte {
	if len(values) == 0 {
		return nil
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, values[k])
	}
	return b.Bytes()
}

// Running lists the services whose desired state is running, and Stopped
// the others.
func (s *Stack) Running() (running, stopped []string) {
	for _, svc := range s.Services {
		if svc.State == "stopped" {
			stopped = append(stopped, svc.Name)
		} else {
			running = append(running, svc.Name)
		}
	}
	return
}
