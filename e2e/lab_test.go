package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// site is the lab example's public site.
const site = "chat.lghs-be.test"

// rig is the built binary, a copy of the lab example inventory in a
// temporary directory, and the lab's environment once started.
type rig struct {
	t   *testing.T
	bin string
	dir string
	inv string
	env []string
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func newRig(t *testing.T) *rig {
	labtest.Require(t)
	root := repoRoot(t)
	dir := t.TempDir()
	r := &rig{t: t, bin: filepath.Join(dir, "lghsctl"), dir: dir, inv: filepath.Join(dir, "inventory.yaml")}
	build := exec.Command("go", "build", "-o", r.bin, "./cmd/lghsctl")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build lghsctl: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples/lab/inventory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.inv, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// run runs lghsctl with args and returns its stdout, stderr and exit code.
func (r *rig) run(args ...string) (string, string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append(args, "-i", r.inv)...)
	cmd.Env = append(os.Environ(), r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			r.t.Fatalf("lghsctl %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// start starts the lab and stops it when the test ends, failing the test
// if stopping fails.
func (r *rig) start() {
	r.t.Helper()
	r.t.Cleanup(func() {
		if _, errOut, code := r.run("lab", "stop"); code != 0 {
			r.t.Errorf("lab stop: exit %d\n%s", code, errOut)
		}
		r.leftovers()
	})
	if _, errOut, code := r.run("lab", "start"); code != 0 {
		r.t.Fatalf("lab start: exit %d\n%s", code, errOut)
	}
	out, errOut, code := r.run("lab", "env")
	if code != 0 {
		r.t.Fatalf("lab env: exit %d\n%s", code, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		r.env = append(r.env, k+"="+strings.Trim(v, "'"))
	}
}

// leftovers fails the test if the stopped lab left anything behind: its
// network namespaces (lgl<N>-*), mounts, or services answering on the box
// address.
func (r *rig) leftovers() {
	r.t.Helper()
	if len(r.env) == 0 {
		return
	}
	dnsAddr := strings.Split(r.getenv("LGHSCTL_DNS_RESOLVERS"), ",")[0]
	box, _, _ := net.SplitHostPort(dnsAddr)
	var n int
	if _, err := fmt.Sscanf(box, "10.%d.0.1", &n); err != nil {
		r.t.Errorf("box address %s: %v", box, err)
		return
	}
	prefix := fmt.Sprintf("lgl%d-", n-200)
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, prefix) {
			r.t.Errorf("network namespace left: %s", l)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, "/"+strings.TrimSuffix(prefix, "-")+"/") || strings.Contains(l, "/run/netns/"+prefix) {
			r.t.Errorf("mount left: %s", l)
		}
	}
	// Listening sockets on the box address (checked locally: once the lab
	// is gone, that address is not this machine's any more).
	ss, err := exec.Command("ss", "-Hltnu").Output()
	if err != nil {
		r.t.Errorf("ss: %v", err)
	}
	for _, l := range strings.Split(string(ss), "\n") {
		if strings.Contains(l, " "+box+":") {
			r.t.Errorf("still listening on the box address: %s", l)
		}
	}
}

func (r *rig) getenv(k string) string {
	for _, kv := range r.env {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v
		}
	}
	r.t.Fatalf("lab env has no %s", k)
	return ""
}

// recap is a run's summary line (--json).
type recap struct {
	Hosts []struct {
		Host    string `json:"host"`
		Changed int    `json:"changed"`
		Failed  int    `json:"failed"`
	} `json:"hosts"`
	ExitCode int `json:"exit_code"`
}

// up runs lghsctl up --json and returns the tasks that changed on the
// host, failing the test unless it succeeds.
func (r *rig) up() []string {
	r.t.Helper()
	out, errOut, code := r.run("up", "--json")
	var changed []string
	var failed []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			Type, Host, Task, Status, Message string
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Type != "task" {
			continue
		}
		switch ev.Status {
		case "changed":
			if ev.Host == "lghs-chat" {
				changed = append(changed, ev.Task)
			}
		case "failed", "unreachable":
			failed = append(failed, ev.Host+": "+ev.Task+": "+ev.Message)
		}
	}
	if code != 0 || len(failed) > 0 {
		r.t.Fatalf("up: exit %d, failed tasks:\n%s\nstderr:\n%s", code, strings.Join(failed, "\n"), errOut)
	}
	return changed
}

// ssh runs a shell command on the lab host as root.
func (r *rig) ssh(addr, command string) string {
	r.t.Helper()
	cmd := exec.Command("ssh", "-i", filepath.Join(r.dir, ".lab/id_ed25519"), "-o", "UserKnownHostsFile="+filepath.Join(r.dir, ".lab/known_hosts"),
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "root@"+addr, command)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("ssh %s: %v\n%s", command, err, out)
	}
	return string(out)
}

// containers maps the compose services to their start time ("" when not
// running).
func (r *rig) containers(addr string) map[string]string {
	r.t.Helper()
	out := r.ssh(addr, `docker ps -a --filter label=com.docker.compose.project --format '{{.Label "com.docker.compose.service"}} {{.ID}} {{.State}}' | while read s id st; do if [ "$st" = running ]; then echo "$s $(docker inspect -f '{{.State.StartedAt}}' $id)"; else echo "$s -"; fi; done`)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if s, at, ok := strings.Cut(l, " "); ok {
			if at == "-" {
				at = ""
			}
			m[s] = at
		}
	}
	return m
}

// https gets path from the site through the lab DNS, the chain checked
// against the lab CA, and returns the status and body.
func (r *rig) https(path string) (int, string) {
	r.t.Helper()
	pem, err := os.ReadFile(r.getenv("LGHSCTL_ACME_CA_BUNDLE"))
	if err != nil {
		r.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	dnsAddr := strings.Split(r.getenv("LGHSCTL_DNS_RESOLVERS"), ",")[0]
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext:     (&net.Dialer{Resolver: res}).DialContext,
	}}
	resp, err := c.Get("https://" + site + path)
	if err != nil {
		r.t.Fatalf("GET https://%s%s: %v", site, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// edit replaces old by new in the inventory copy.
func (r *rig) edit(old, new string) {
	r.t.Helper()
	b, err := os.ReadFile(r.inv)
	if err != nil {
		r.t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		r.t.Fatalf("inventory has no %q", old)
	}
	if err := os.WriteFile(r.inv, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// hostAddr is the lab host's IPv4 address, from the lab DNS.
func (r *rig) hostAddr() string {
	r.t.Helper()
	dnsAddr := strings.Split(r.getenv("LGHSCTL_DNS_RESOLVERS"), ",")[0]
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dnsAddr)
	}}
	addrs, err := res.LookupIPAddr(context.Background(), site)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return a.IP.String()
		}
	}
	r.t.Fatalf("%s has no IPv4 address: %v", site, addrs)
	return ""
}

// TestLabUpDeploysTheChatAndConverges is the README's main command and
// the app stack's acceptance on the lab, through the built binary: up on
// a fresh lab creates the server and serves the chat stand-in over HTTPS
// with a certificate of the lab CA; a second up changes nothing and
// restarts no container; a new app tag restarts only the app; the app
// held stopped leaves the database running; a compose file broken by
// hand is replaced without restarting anything; audit is green.
func TestLabUpDeploysTheChatAndConverges(t *testing.T) {
	r := newRig(t)
	r.start()

	r.up()
	if code, body := r.https("/"); code != 200 || !strings.Contains(body, "Rocket.Chat 3.0.12") {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if code, body := r.https("/api/info"); code != 200 || !strings.Contains(body, `"version":"3.0.12"`) {
		t.Errorf("GET /api/info = %d %q", code, body)
	}
	addr := r.hostAddr()
	first := r.containers(addr)
	if first["mongo"] == "" || first["rocketchat"] == "" {
		t.Fatalf("containers after up: %v", first)
	}
	published := r.ssh(addr, "docker ps --format '{{.Ports}}'")
	if strings.Contains(published, "0.0.0.0:") || strings.Contains(published, ":::") {
		t.Errorf("a container port is published on every address:\n%s", published)
	}

	if changed := r.up(); len(changed) != 0 {
		t.Errorf("second up changed %v", changed)
	}
	if again := r.containers(addr); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("second up restarted containers: %v, then %v", first, again)
	}

	// A new app version: only the app restarts (the registry builds the
	// new tag on demand).
	r.edit("lghs-lab/rocket.chat:3.0.12", "lghs-lab/rocket.chat:3.0.13")
	if changed := r.up(); strings.Join(changed, ",") != "app "+site {
		t.Errorf("tag change: changed %v, want only the app step", changed)
	}
	tagged := r.containers(addr)
	if tagged["mongo"] != first["mongo"] || tagged["rocketchat"] == first["rocketchat"] || tagged["rocketchat"] == "" {
		t.Errorf("tag change: containers %v, then %v (want only rocketchat restarted)", first, tagged)
	}
	if _, body := r.https("/api/info"); !strings.Contains(body, `"version":"3.0.13"`) {
		t.Errorf("after the tag change, /api/info = %q", body)
	}

	// The app held stopped (as during a data move): the database runs on.
	r.edit("              environment:\n", "              state: stopped\n              environment:\n")
	r.up()
	stopped := r.containers(addr)
	if stopped["rocketchat"] != "" || stopped["mongo"] != first["mongo"] {
		t.Errorf("app stopped: containers %v (want rocketchat stopped, mongo as before %s)", stopped, first["mongo"])
	}
	if changed := r.up(); len(changed) != 0 {
		t.Errorf("up with the app stopped changed %v on the next run", changed)
	}

	// A compose file broken by hand is replaced; nothing restarts.
	compose := "/srv/" + site + "/compose.yaml"
	good := r.ssh(addr, "cat "+compose)
	r.ssh(addr, "echo 'services: [' > "+compose)
	if changed := r.up(); strings.Join(changed, ",") != "app "+site {
		t.Errorf("broken compose file: changed %v, want only the app step", changed)
	}
	if got := r.ssh(addr, "cat "+compose); got != good {
		t.Errorf("compose file after up:\n%s\nwant:\n%s", got, good)
	}
	if after := r.containers(addr); fmt.Sprint(after) != fmt.Sprint(stopped) {
		t.Errorf("replacing the compose file restarted containers: %v, then %v", stopped, after)
	}

	if out, errOut, code := r.run("audit"); code != 0 {
		t.Errorf("audit: exit %d\n%s%s", code, out, errOut)
	}
}
