package hostsetup

import (
	"context"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/report"
	"github.com/lghs/lghsctl/internal/task"
	"github.com/lghs/lghsctl/inventory"
)

const testInventory = `
version: 1
name: lab
dns:
  zones: [{name: example.test}]
acme: {email: admin@example.test, directory: "https://acme.example.test/dir"}
ssh_keys:
  - name: alice
    public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJDiEe4pRdmYHz7CsTWLLV+oibV+y5v8p9RopY3pWbtH alice@laptop"
admins:
  - name: alice
    ssh_keys: [alice]
hosts:
  - name: h1
    provider: none
    ssh: {address: 192.0.2.10}
    packages: [tmux, vim, rsync]
    docker: {source: debian}
    directories:
      - {path: /srv/chat.example.test, mode: "0755"}
      - {path: /srv/chat.example.test/data, mode: "0750"}
    sites:
      - name: chat.example.test
        upstream: "[::1]:3000"
        client_max_body_size: 200M
        app:
          dir: /srv/chat.example.test
          preset: rocketchat
          services:
            - {name: rocketchat, image: "rocketchat/rocket.chat:6.5.4"}
`

func testRun(t *testing.T) *Run {
	t.Helper()
	f, err := inventory.Parse("inventory.yaml", []byte(testInventory))
	if err != nil {
		t.Fatal(err)
	}
	return NewRun(Config{
		Inventory:      f,
		Host:           &f.Hosts[0],
		AuthorizedKeys: map[string]string{"alice": f.SSHKeys[0].PublicKey},
		VerifyLogin:    func(context.Context, string) error { return nil },
	})
}

type results struct{ list []report.TaskResult }

func (r *results) Play(string)                  {}
func (r *results) Plan(string, []report.Change) {}
func (r *results) Progress(string, string)      {}
func (r *results) Message(report.Level, string) {}
func (r *results) Summary(report.Summary)       {}
func (r *results) Task(t report.TaskResult)     { r.list = append(r.list, t) }

func (r *results) changed() []string {
	var out []string
	for _, t := range r.list {
		if t.Status == report.Changed {
			out = append(out, t.Task)
		}
	}
	return out
}

func runOn(t *testing.T, r *Run, h Host, check, diff bool) *results {
	t.Helper()
	res := &results{}
	tgt := r.Target(func(context.Context) error { r.Attach(h); return nil }, nil)
	runner := &task.Runner{Check: check, Diff: diff, Reporter: res}
	if err := runner.Run(context.Background(), []task.Target{tgt}); err != nil {
		for _, x := range res.list {
			t.Logf("%s: %s %s", x.Status, x.Task, x.Message)
		}
		t.Fatal(err)
	}
	return res
}

// TestConvergedHostIsCheckedWithOneCommand is the fast path the benchmark
// measures: a host already as desired costs one remote command (the facts
// script) and nothing changes.
func TestConvergedHostIsCheckedWithOneCommand(t *testing.T) {
	r := testRun(t)
	h := newFakeHost()
	h.converge(r)
	res := runOn(t, r, h, false, false)
	if c := res.changed(); len(c) != 0 {
		t.Errorf("converged host reported changes: %v", c)
	}
	if len(h.commands) != 0 || len(h.writes) != 0 || len(h.reads) != 0 {
		t.Errorf("converged host got commands %q, writes %q, reads %q", h.commands, h.writes, h.reads)
	}
}

// TestCheckModeReportsExactlyTheDriftAndChangesNothing drifts three
// things and expects exactly those tasks to report a change, with diffs,
// and not a single command beyond the facts and the reads for the diffs.
func TestCheckModeReportsExactlyTheDriftAndChangesNothing(t *testing.T) {
	r := testRun(t)
	h := newFakeHost()
	h.converge(r)
	f := h.files["/etc/docker/daemon.json"]
	f.content = []byte(`{"log-driver":"journald"}`)
	h.files["/etc/docker/daemon.json"] = f
	delete(h.dirs, "/srv/chat.example.test/data")
	delete(h.packages, "rsync")
	res := runOn(t, r, h, true, true)
	got := strings.Join(res.changed(), ",")
	if want := "apt: packages,docker: daemon.json,directories,restart docker"; got != want {
		t.Errorf("changed tasks = %s, want %s", got, want)
	}
	if len(h.commands) != 0 || len(h.writes) != 0 {
		t.Errorf("check mode sent commands %q / writes %q", h.commands, h.writes)
	}
	for _, x := range res.list {
		if x.Task == "docker: daemon.json" && !strings.Contains(x.Diff, `-{"log-driver":"journald"}`) {
			t.Errorf("daemon.json diff = %q", x.Diff)
		}
		if x.Task == "apt: packages" && !strings.Contains(x.Message, "rsync") {
			t.Errorf("packages message = %q", x.Message)
		}
	}
}

func TestFreshHostPlansEveryTask(t *testing.T) {
	r := testRun(t)
	h := newFakeHost()
	res := runOn(t, r, h, true, false)
	// Docker's restart is flushed before the app starts its containers.
	want := []string{"apt: packages", "apt: unattended upgrades", "admin alice", "sshd: hardening", "docker: daemon.json", "service docker", "directories", "restart docker", "app chat.example.test", "nginx: temporary certificates", "nginx: sites", "service nginx", "reload nginx"}
	if got := strings.Join(res.changed(), ","); got != strings.Join(want, ",") {
		t.Errorf("changed = %s\nwant      %s", got, strings.Join(want, ","))
	}
	if len(h.commands) != 0 || len(h.writes) != 0 {
		t.Errorf("check mode sent commands %q / writes %q", h.commands, h.writes)
	}
}

func TestSSHDConfigFollowsOpenSSHVersion(t *testing.T) {
	r := testRun(t)
	r.facts = &Facts{Packages: map[string]string{"openssh-server": "1:9.2p1-2+deb12u3"}}
	if strings.Contains(string(r.sshdConfig()), "mlkem") {
		t.Error("bookworm's OpenSSH 9.2 does not know mlkem768x25519-sha256")
	}
	r.facts.Packages["openssh-server"] = "1:10.0p1-7"
	if !strings.Contains(string(r.sshdConfig()), "KexAlgorithms mlkem768x25519-sha256,") {
		t.Error("OpenSSH 10 should prefer mlkem768x25519-sha256")
	}
}

// TestAppStateDriftIsDetectedFromTheFacts: a stopped app container and a
// service desired stopped but running are found without extra commands.
func TestAppStateDriftIsDetectedFromTheFacts(t *testing.T) {
	r := testRun(t)
	h := newFakeHost()
	h.converge(r)
	h.containers["chatexampletest"]["rocketchat"] = appContainer("rocketchat", "exited", "rocketchat/rocket.chat:6.5.4")
	res := runOn(t, r, h, true, false)
	for _, x := range res.list {
		if x.Task == "app chat.example.test" && (x.Status != report.Changed || x.Message != "start rocketchat") {
			t.Errorf("app task = %s %q", x.Status, x.Message)
		}
	}
	if len(h.commands) != 0 {
		t.Errorf("commands = %q", h.commands)
	}
}
