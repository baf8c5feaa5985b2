package hostsetupbench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// lghsctlInventory does what ansible/site.yml does, as lghsctl's
// inventory says it.
const lghsctlInventory = `version: 1
name: bench
dns:
  zones: [{name: lghs.be}]
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}, identity_file: {{key}}}
    packages: [tmux, vim, rsync, ca-certificates, curl, gnupg]
    unattended_upgrades: false
    docker: {source: debian}
    directories:
      - {path: /srv/chat.lghs.be/data, mode: "0750"}
      - {path: /srv/chat.lghs.be/backups, mode: "0750"}
    sites:
      - name: chat.lghs.be
        upstream: "[::1]:3000"
        client_max_body_size: 200M
        tls: self-signed
`

const ansibleInventory = `[lab]
h1 ansible_host={{address}}

[lab:vars]
ansible_user=root
ansible_ssh_private_key_file={{key}}
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_common_args=-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
`

func here() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// bench is one side-by-side session.
type bench struct {
	b       *testing.B
	lab     *labhost.Lab
	release string
	work    string
	lghsctl string // the binary
	key     string // private key file
	authKey string
	ansible string // the playbook's directory
	env     []string
	n       int // hosts started
}

// host is a lab host and each tool's way to reach it.
type host struct {
	h          *labhost.Host
	dir        string
	inventory  string // lghsctl's
	ansibleIni string
	knownHosts string
}

func (bn *bench) newHost(ctx context.Context) *host {
	bn.b.Helper()
	bn.n++
	h := labtest.Host(bn.b, bn.lab, labhost.Spec{Name: fmt.Sprintf("bench%d", bn.n), Release: bn.release, AuthorizedKeys: []string{bn.authKey}})
	d := filepath.Join(bn.work, h.Name())
	if err := os.MkdirAll(d, 0o700); err != nil {
		bn.b.Fatal(err)
	}
	r := strings.NewReplacer("{{address}}", h.Addr4().String(), "{{key}}", bn.key)
	hs := &host{h: h, dir: d, inventory: filepath.Join(d, "inventory.yaml"), ansibleIni: filepath.Join(d, "inventory.ini"), knownHosts: filepath.Join(d, "known_hosts")}
	// known_hosts next to the inventory, as provision pins it when it
	// creates a server.
	for p, data := range map[string]string{
		hs.inventory:  r.Replace(lghsctlInventory),
		hs.ansibleIni: r.Replace(ansibleInventory),
		hs.knownHosts: strings.Join(h.KnownHosts(), "\n") + "\n",
	} {
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			bn.b.Fatal(err)
		}
	}
	return hs
}

// result of one timed command.
type result struct {
	took    time.Duration
	changed int // from the recap; -1 when the command has none
	out     string
	err     error
}

var changedRE = regexp.MustCompile(`changed=(\d+)`)

func (bn *bench) timed(ctx context.Context, dir string, stdin []byte, env []string, args ...string) result {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(slices.Clone(bn.env), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	r := result{took: time.Since(t0), changed: -1, out: out.String(), err: err}
	if m := changedRE.FindStringSubmatch(r.out); m != nil {
		r.changed, _ = strconv.Atoi(m[1])
	}
	return r
}

func (bn *bench) runLghsctl(ctx context.Context, h *host) result {
	return bn.timed(ctx, h.dir, nil, nil, bn.lghsctl, "up", "--phase", "hosts", "-i", h.inventory)
}

func (bn *bench) runValidate(ctx context.Context, h *host) result {
	return bn.timed(ctx, h.dir, nil, nil, bn.lghsctl, "validate", "-i", h.inventory)
}

// runAnsible runs the playbook with one of the two configurations
// (default, pipelining), each with its own ControlPersist socket
// directory.
func (bn *bench) runAnsible(ctx context.Context, h *host, config string) result {
	return bn.timed(ctx, bn.ansible, nil, []string{
		"ANSIBLE_CONFIG=" + filepath.Join(bn.ansible, "ansible-"+config+".cfg"),
		"ANSIBLE_SSH_CONTROL_PATH_DIR=" + filepath.Join(bn.work, "cp-"+config),
		"ANSIBLE_NOCOLOR=1",
	}, "ansible-playbook", "-i", h.ansibleIni, "site.yml")
}

func (bn *bench) sshArgs(h *host) []string {
	return []string{"ssh", "-F", "/dev/null", "-i", bn.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + h.knownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
		"root@" + h.h.Addr4().String()}
}

func (bn *bench) runSSHTrue(ctx context.Context, h *host, opts ...string) result {
	args := bn.sshArgs(h)
	args = append(args[:len(args)-1:len(args)-1], append(opts, args[len(args)-1], "true")...)
	return bn.timed(ctx, h.dir, nil, nil, args...)
}

func (bn *bench) runCheckNoop(ctx context.Context, h *host, script []byte) result {
	return bn.timed(ctx, h.dir, script, nil, append(bn.sshArgs(h), "bash", "-s", "--", "--no-upgrade-check")...)
}

// series is the timings of one kind of run.
type series struct {
	name  string
	times []time.Duration
}

func (s *series) add(d time.Duration) { s.times = append(s.times, d) }

func (s *series) median() time.Duration {
	t := slices.Clone(s.times)
	slices.Sort(t)
	if len(t) == 0 {
		return 0
	}
	if len(t)%2 == 1 {
		return t[len(t)/2]
	}
	return (t[len(t)/2-1] + t[len(t)/2]) / 2
}

func (s *series) String() string {
	if len(s.times) == 0 {
		return fmt.Sprintf("| %s | 0 | | | |", s.name)
	}
	return fmt.Sprintf("| %s | %d | %s | %s | %s |", s.name, len(s.times), secs(s.median()), secs(slices.Min(s.times)), secs(slices.Max(s.times)))
}

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func ratio(a, b *series) string {
	if b.median() == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", a.median().Seconds()/b.median().Seconds())
}

// BenchmarkLabHostSetupAgainstAnsible runs the side-by-side once (use
// -benchtime 1x): BENCH_FIRST rounds of first runs on fresh hosts (default
// 3), then BENCH_NOOP rounds of no-op runs on one converged host (default
// 10), on Debian BENCH_RELEASE (default bookworm, the playbook's target).
func BenchmarkLabHostSetupAgainstAnsible(b *testing.B) {
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		b.Fatal("ansible-playbook not found: run.sh installs Debian's ansible package")
	}
	release := os.Getenv("BENCH_RELEASE")
	if release == "" {
		release = labhost.Bookworm
	}
	firstRounds, noopRounds := envInt("BENCH_FIRST", 3), envInt("BENCH_NOOP", 10)
	lb := labtest.Lab(b, labhost.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	work := b.TempDir()
	bn := &bench{b: b, lab: lb, release: release, work: work, ansible: filepath.Join(here(), "ansible")}
	home := filepath.Join(work, "home")
	for _, d := range []string{home, filepath.Join(work, "cp-default"), filepath.Join(work, "cp-pipelining")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	// A clean environment: no agent, no ~/.ssh/config, no colours.
	bn.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "USER=root", "LANG=C.UTF-8", "NO_COLOR=1", "TERM=dumb"}
	b.Cleanup(func() { stopControlMasters(work) })

	bn.lghsctl = filepath.Join(work, "lghsctl")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bn.lghsctl, "./cmd/lghsctl")
	build.Dir, build.Env = filepath.Join(here(), "..", ".."), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build lghsctl: %v\n%s", err, out)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		b.Fatal(err)
	}
	bn.key = filepath.Join(work, "id_ed25519")
	if err := os.WriteFile(bn.key, pem.EncodeToMemory(blk), 0o600); err != nil {
		b.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	bn.authKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " bench"
	checkScript, err := os.ReadFile(filepath.Join(bn.ansible, "check-noop.sh"))
	if err != nil {
		b.Fatal(err)
	}

	must := func(what string, r result, wantChanged int) result {
		b.Helper()
		if r.err != nil || (wantChanged >= 0 && r.changed != wantChanged) {
			b.Fatalf("%s: %v (changed=%d, want %d)\n%s", what, r.err, r.changed, wantChanged, r.out)
		}
		return r
	}
	anyChange := -1

	// Warm-up, not measured: the apt proxy gets every package both tools
	// install (python3-apt for Ansible's apt module, say), so every
	// measured first run finds the same warm cache.
	for _, tool := range []string{"lghsctl", "ansible"} {
		h := bn.newHost(ctx)
		if tool == "lghsctl" {
			must("warm-up lghsctl", bn.runLghsctl(ctx, h), anyChange)
		} else {
			must("warm-up ansible", bn.runAnsible(ctx, h, "pipelining"), anyChange)
		}
		h.h.Remove(ctx)
	}

	first := map[string]*series{
		"lghsctl":    {name: "first run, lghsctl"},
		"default":    {name: "first run, Ansible defaults"},
		"pipelining": {name: "first run, Ansible pipelining + ControlPersist"},
	}
	order := []string{"lghsctl", "default", "pipelining"}
	for round := range firstRounds {
		for i := range order {
			tool := order[(i+round)%len(order)]
			h := bn.newHost(ctx)
			var r result
			if tool == "lghsctl" {
				r = must("first run, lghsctl", bn.runLghsctl(ctx, h), anyChange)
			} else {
				r = must("first run, ansible "+tool, bn.runAnsible(ctx, h, tool), anyChange)
			}
			first[tool].add(r.took)
			b.Logf("round %d: first run %s %v", round+1, tool, r.took.Round(10*time.Millisecond))
			h.h.Remove(ctx)
		}
	}

	// One host both tools converge; then each no-op must change nothing.
	h := bn.newHost(ctx)
	must("converge with lghsctl", bn.runLghsctl(ctx, h), anyChange)
	must("converge with ansible", bn.runAnsible(ctx, h, "default"), anyChange)
	must("lghsctl after ansible", bn.runLghsctl(ctx, h), 0)
	must("ansible after lghsctl", bn.runAnsible(ctx, h, "default"), 0)
	must("check-noop.sh", bn.runCheckNoop(ctx, h, checkScript), anyChange)

	noop := []*series{
		{name: "no-op, lghsctl (`up --phase hosts`)"},
		{name: "no-op, Ansible defaults"},
		{name: "no-op, Ansible pipelining + ControlPersist"},
		{name: "`ssh host true` (new connection)"},
		{name: "check-noop.sh over one new connection"},
		{name: "`lghsctl validate` (process + inventory, no SSH)"},
		{name: "`ssh host true`, curve25519-sha256 (lghsctl's key exchange on bookworm)"},
	}
	runs := []func() result{
		func() result { return must("no-op lghsctl", bn.runLghsctl(ctx, h), 0) },
		func() result { return must("no-op ansible default", bn.runAnsible(ctx, h, "default"), 0) },
		func() result { return must("no-op ansible pipelining", bn.runAnsible(ctx, h, "pipelining"), 0) },
		func() result { return must("ssh true", bn.runSSHTrue(ctx, h), anyChange) },
		func() result { return must("check-noop.sh", bn.runCheckNoop(ctx, h, checkScript), anyChange) },
		func() result { return must("lghsctl validate", bn.runValidate(ctx, h), anyChange) },
		// OpenSSH's client prefers sntrup761x25519-sha512, which Go's SSH
		// library lacks: the same round trip with the key exchange lghsctl
		// ends up with.
		func() result {
			return must("ssh true curve25519", bn.runSSHTrue(ctx, h, "-o", "KexAlgorithms=curve25519-sha256"), anyChange)
		},
	}
	for round := range noopRounds {
		for i := range runs {
			k := (i + round) % len(runs)
			noop[k].add(runs[k]().took)
		}
		b.Logf("no-op round %d/%d done", round+1, noopRounds)
	}

	var rep strings.Builder
	fmt.Fprintf(&rep, "\nlghsctl host setup against Ansible, one Debian %s lab host, %d CPUs, load %s\n", release, runtime.NumCPU(), loadAvg())
	fmt.Fprintf(&rep, "%s\n\n", versions(ctx, bn))
	fmt.Fprintf(&rep, "| run | n | median | min | max |\n|---|---|---|---|---|\n")
	for _, k := range order {
		fmt.Fprintln(&rep, first[k])
	}
	for _, s := range noop {
		fmt.Fprintln(&rep, s)
	}
	floor := &series{name: "ssh true + check-noop.sh"}
	floor.times = []time.Duration{noop[3].median() + noop[4].median()}
	fmt.Fprintf(&rep, "\nratios of medians:\n")
	fmt.Fprintf(&rep, "  no-op: Ansible defaults / lghsctl = %s, Ansible pipelining / lghsctl = %s (target ≥ 20×)\n", ratio(noop[1], noop[0]), ratio(noop[2], noop[0]))
	fmt.Fprintf(&rep, "  no-op: lghsctl / check-noop.sh over one connection = %s, lghsctl / (ssh true + check-noop.sh) = %s (target ≤ 2×)\n", ratio(noop[0], noop[4]), ratio(noop[0], floor))
	fmt.Fprintf(&rep, "  first run: lghsctl / Ansible defaults = %s, lghsctl / Ansible pipelining = %s (target ≤ 1×)\n", ratio(first["lghsctl"], first["default"]), ratio(first["lghsctl"], first["pipelining"]))
	fmt.Print(rep.String())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func versions(ctx context.Context, bn *bench) string {
	line := func(args ...string) string {
		out, _ := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return l
	}
	return fmt.Sprintf("%s; %s; box %s", line(bn.lghsctl, "version"), line("ansible-playbook", "--version"), line("ssh", "-V"))
}

// stopControlMasters ends the SSH control masters Ansible left behind
// (ControlPersist keeps them up to 10 minutes).
func stopControlMasters(work string) {
	socks, _ := filepath.Glob(filepath.Join(work, "cp-*", "*"))
	for _, s := range socks {
		exec.Command("ssh", "-F", "/dev/null", "-o", "ControlPath="+s, "-O", "exit", "lab").Run()
	}
}
