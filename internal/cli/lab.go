package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lghs/lghsctl/certs"
	"github.com/lghs/lghsctl/internal/lab/labd"
	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labreg"
	"github.com/lghs/lghsctl/inventory"
)

type labOptions struct {
	*Globals
	StateDir string
}

// newLab is `lghsctl lab`: the local lab (real Debian hosts, cloud
// stand-ins, DNS, Pebble) as one background process.
func newLab(g *Globals) *cobra.Command {
	o := &labOptions{Globals: g}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "The local lab: real Debian hosts and stand-ins for Scaleway, Cloudflare, DNS and Let's Encrypt",
		Long: `lab runs a rehearsal of the real thing on this machine (as root): servers
created through the Scaleway stand-in are Debian hosts booted with
systemd-nspawn in their own network namespaces, DNS records written through
the Cloudflare stand-in are served by a real DNS server, and certificates come
from Pebble, Let's Encrypt's test CA.

  lghsctl lab start -i examples/lab/inventory.yaml
  eval "$(lghsctl lab env -i examples/lab/inventory.yaml)"
  lghsctl up -i examples/lab/inventory.yaml
  lghsctl lab stop -i examples/lab/inventory.yaml

The lab serves the DNS zones of the inventory and makes a token for each
zone's acme_token variable. Its state (the operator's SSH key, logs) lives in
.lab next to the inventory. Stopping the lab deletes its servers and records.`,
		Args: noArgs,
	}
	cmd.PersistentFlags().StringVar(&o.StateDir, "state", "", "lab state directory (default: .lab next to the inventory)")
	cmd.AddCommand(
		&cobra.Command{Use: "start", Short: "Start the lab in the background and print its environment", Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error { return o.start(c.Context()) }},
		&cobra.Command{Use: "run", Hidden: true, Short: "Run the lab in the foreground (what start runs)", Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error { return o.runForeground(c.Context()) }},
		&cobra.Command{Use: "env", Short: "Print the environment that points lghsctl at the lab (for eval)", Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error { return o.env() }},
		&cobra.Command{Use: "status", Short: "Say whether the lab runs, where its services are, and its servers", Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error { return o.status(c.Context()) }},
		&cobra.Command{Use: "stop", Short: "Stop the lab: servers, stand-ins, network; nothing is left behind", Args: noArgs,
			RunE: func(c *cobra.Command, _ []string) error { return o.stop(c.Context()) }},
	)
	return cmd
}

func (o *labOptions) dir() string {
	if o.StateDir != "" {
		return o.StateDir
	}
	return filepath.Join(filepath.Dir(o.Inventory), ".lab")
}

func (o *labOptions) pidFile() string { return filepath.Join(o.dir(), "lab.pid") }
func (o *labOptions) envFile() string { return filepath.Join(o.dir(), "lab.env") }
func (o *labOptions) logFile() string { return filepath.Join(o.dir(), "lab.log") }

// running returns the lab process's pid, or 0.
func (o *labOptions) running() int {
	b, err := os.ReadFile(o.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0
	}
	return pid
}

// start launches `lab run` detached and waits until it is ready.
func (o *labOptions) start(ctx context.Context) error {
	if pid := o.running(); pid != 0 {
		fmt.Fprintf(o.Err, "the lab already runs (pid %d)\n", pid)
		return o.env()
	}
	f, err := o.loadInventory()
	if err != nil {
		return o.reportProblems(err)
	}
	if err := labhost.CheckPrerequisites(labhost.Config{}); err != nil {
		return fmt.Errorf("the lab cannot run here: %w (run scripts/setup.sh as root)", err)
	}
	if err := os.MkdirAll(o.dir(), 0o700); err != nil {
		return err
	}
	os.Remove(o.envFile())
	logf, err := os.OpenFile(o.logFile(), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"lab", "run", "-i", f.Path, "--state", o.dir()}
	if o.Verbose > 0 {
		args = append(args, "-v")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the lab: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(o.Err, "starting the lab (log: %s); the first start builds a Debian base (about a minute)\n", o.logFile())
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the lab did not start (%v); its log:\n%s", err, tail(o.logFile(), 30))
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return ctx.Err()
		case <-tick.C:
			if _, err := os.Stat(o.envFile()); err == nil {
				fmt.Fprintf(o.Err, "the lab runs (pid %d); stop it with: lghsctl lab stop -i %s\n", cmd.Process.Pid, f.Path)
				return o.env()
			}
		}
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// runForeground runs the lab until SIGTERM or SIGINT.
func (o *labOptions) runForeground(ctx context.Context) error {
	f, err := o.loadInventory()
	if err != nil {
		return o.reportProblems(err)
	}
	dir, err := filepath.Abs(o.dir())
	if err != nil {
		return err
	}
	log := o.stderrLog()
	var zones []labd.Zone
	for _, z := range f.DNS.Zones {
		zones = append(zones, labd.Zone{Name: z.Name, TokenEnv: z.ACMEToken.Env})
	}
	gopath := o.Getenv("GOPATH")
	if gopath == "" {
		gopath = filepath.Join(o.Getenv("HOME"), "go")
	}
	pebbleDirs := []string{filepath.Join(gopath, "bin")}
	if gobin := o.Getenv("GOBIN"); gobin != "" {
		pebbleDirs = append([]string{gobin}, pebbleDirs...)
	}
	// A fresh lab has fresh hosts and a fresh CA: pins and the ACME
	// account of an earlier lab must go.
	os.Remove(filepath.Join(dir, "known_hosts"))
	runCtx, stop := signal.NotifyContext(context.WithoutCancel(ctx), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	images, bins, err := labImages(runCtx, f)
	if err != nil {
		return err
	}
	lab, err := labd.Start(runCtx, labd.Config{
		StateDir:     dir,
		ProjectName:  f.Scaleway.Project,
		Zones:        zones,
		MainTokenEnv: f.DNS.Token.Env,
		PebbleDirs:   pebbleDirs,
		Images:       images,
		Binaries:     bins,
		Log:          log,
	})
	if err != nil {
		return err
	}
	os.RemoveAll(certs.AccountDir(filepath.Join(filepath.Dir(f.Path), ".lghsctl"), lab.Pebble.DirectoryURL))
	var b strings.Builder
	for _, kv := range lab.Environment() {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	if err := os.WriteFile(o.pidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		lab.Close(context.Background())
		return err
	}
	if err := writeAtomic(o.envFile(), []byte(b.String()), 0o600); err != nil {
		lab.Close(context.Background())
		return err
	}
	log.Info("lab ready", "box", lab.Hosts.BoxAddr4().String(), "scaleway", lab.Environment())
	<-runCtx.Done()
	log.Info("stopping the lab")
	os.Remove(o.envFile())
	err = lab.Close(context.Background())
	os.Remove(o.pidFile())
	if left := labhost.Leftovers(lab.Hosts.Name()); len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("left behind: %s", strings.Join(left, ", ")))
	}
	if err != nil {
		log.Error("lab stopped with errors", "err", err)
		return err
	}
	log.Info("lab stopped")
	return nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// env prints the lab's environment for eval. The values are the lab's own
// throw-away credentials.
func (o *labOptions) env() error {
	b, err := os.ReadFile(o.envFile())
	if err != nil {
		if o.running() != 0 {
			return fmt.Errorf("the lab is starting; try again in a moment")
		}
		return fmt.Errorf("the lab does not run (start it with: lghsctl lab start -i %s)", o.Inventory)
	}
	_, err = o.Out.Write(b)
	return err
}

func (o *labOptions) labEnv() map[string]string {
	m := map[string]string{}
	b, _ := os.ReadFile(o.envFile())
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	return m
}

func (o *labOptions) status(ctx context.Context) error {
	pid := o.running()
	if pid == 0 {
		fmt.Fprintln(o.Out, "the lab does not run")
		return silentError{ExitFailure, errors.New("lab not running")}
	}
	env := o.labEnv()
	fmt.Fprintf(o.Out, "the lab runs (pid %d, state %s)\n", pid, o.dir())
	for _, k := range []string{"SCW_API_URL", "CLOUDFLARE_BASE_URL", "LGHSCTL_DNS_RESOLVERS", "LGHSCTL_ACME_DIRECTORY"} {
		fmt.Fprintf(o.Out, "  %-24s %s\n", k, env[k])
	}
	servers, err := labServers(ctx, env)
	if err != nil {
		return err
	}
	if len(servers) == 0 {
		fmt.Fprintln(o.Out, "no servers")
	}
	for _, s := range servers {
		fmt.Fprintf(o.Out, "server %-20s %-9s %s\n", s.Name, s.State, strings.Join(s.addrs(), " "))
	}
	return nil
}

type labServer struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	PublicIPs []struct {
		Address string `json:"address"`
	} `json:"public_ips"`
}

func (s labServer) addrs() []string {
	var out []string
	for _, ip := range s.PublicIPs {
		out = append(out, ip.Address)
	}
	return out
}

// labServers lists the lab's servers through its Scaleway API.
func labServers(ctx context.Context, env map[string]string) ([]labServer, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", env["SCW_API_URL"]+"/instance/v1/zones/fr-par-1/servers?per_page=100", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Auth-Token", env["SCW_SECRET_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list the lab's servers: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var list struct {
		Servers []labServer `json:"servers"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil {
		return nil, fmt.Errorf("list the lab's servers: %s", resp.Status)
	}
	return list.Servers, nil
}

// stop signals the lab process and waits until it is gone.
func (o *labOptions) stop(ctx context.Context) error {
	pid := o.running()
	if pid == 0 {
		fmt.Fprintln(o.Err, "the lab does not run")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the lab (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab (pid %d) did not stop within 5 minutes; its log: %s", pid, o.logFile())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if strings.Contains(tail(o.logFile(), 5), "lab stopped with errors") {
		return fmt.Errorf("the lab stopped with errors; its log:\n%s", tail(o.logFile(), 20))
	}
	fmt.Fprintln(o.Err, "the lab stopped")
	return nil
}

// labImages builds the images the inventory names under the lab registry
// (its app services and the upgrade ladder's rungs): the lab's MongoDB and
// Rocket.Chat stand-ins, which hosts pull as they would from Docker Hub.
// The binaries they are made of are returned too: the registry builds
// other versions on demand.
func labImages(ctx context.Context, f *inventory.File) ([]labreg.Image, *labd.ImageBinaries, error) {
	var refs []string
	for _, h := range f.Hosts {
		for _, s := range h.Sites {
			if s.App == nil {
				continue
			}
			for _, svc := range s.App.Services {
				refs = append(refs, svc.Image)
			}
		}
	}
	if f.Migrate != nil {
		for _, r := range f.Migrate.Ladder {
			refs = append(refs, r.App, r.Database)
		}
	}
	if len(labd.LabRefs(refs)) == 0 {
		return nil, nil, nil
	}
	var b labd.ImageBinaries
	var err error
	if b.Database, err = labdb.Binary(ctx); err != nil {
		return nil, nil, err
	}
	if b.Tools, err = labdb.Program(ctx, labdb.ToolsPackage, "mongotools"); err != nil {
		return nil, nil, err
	}
	if b.App, err = labdb.Program(ctx, labdb.AppPackage, "labapp"); err != nil {
		return nil, nil, err
	}
	imgs, err := labd.ImagesFor(refs, b)
	return imgs, &b, err
}
