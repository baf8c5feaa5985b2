package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
	"github.com/lghs/lghsctl/internal/lab/cfsim/cfdns"
	"github.com/lghs/lghsctl/internal/lab/labdns"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/lab/scwsim"
	"github.com/lghs/lghsctl/provision"
	"github.com/lghs/lghsctl/provision/scaleway"
)

// Credentials of the stand-ins (formats the SDK accepts).
const (
	labAccessKey = "SCWXXXXXXXXXXXXXXXXX"
	labSecretKey = "11111111-1111-4111-8111-111111111111"
	labProject   = "22222222-2222-4222-8222-222222222222"
)

// labInventory is the LgHS setup on the lab's zones; %s is the SSH key file.
const labInventory = `version: 1
name: lghs-lab
scaleway:
  zone: fr-par-1
dns:
  token: {env: CLOUDFLARE_API_TOKEN}
  ttl: 300
  zones:
    - name: lghs-space.test
    - name: lghs-be.test
ssh_keys:
  - name: lab-operator
    public_key_file: id_ed25519.pub
security_groups:
  - name: hardened-conf
    inbound_default: drop
    outbound_default: accept
    allow_smtp: true
    rules:
      - {protocol: TCP, ports: 22}
      - {protocol: TCP, ports: 80}
      - {protocol: UDP, ports: 80}
      - {protocol: TCP, ports: 443}
      - {protocol: UDP, ports: 443}
      - {protocol: ICMP}
hosts:
  - name: lghs-chat
    type: DEV1-M
    image: debian_trixie
    root_volume: {name: lghs-chat}
    security_group: hardened-conf
    dns:
      - {name: lghs-chat-prod.lghs-space.test, role: technical}
      - {name: chat.lghs-be.test, role: public}
`

// cloudLab is the Scaleway and Cloudflare stand-ins and the lab DNS on
// 127.0.0.1, with an inventory pointing at them, for driving the real CLI
// in-process.
type cloudLab struct {
	t        *testing.T
	sim      *scwsim.Sim
	machines *scwsim.FakeMachines
	scwURL   string
	cf       *cfsim.Server
	cfHTTP   *cfsim.HTTPServer
	cfURL    string
	token    cfsim.Token
	zones    map[string]cfsim.Zone
	dns      *labdns.Server
	dir      string
	inv      string
	pubKey   string
	signer   ssh.Signer
	env      map[string]string
	// lastRun is when each command last started: the debug log is named
	// after the second, so the same command is not started twice in one
	// second (see .notes/provision-requests.md).
	lastRun map[string]time.Time
	// scwFaults and cfFaults inject faults in front of the stand-ins.
	scwFaults, cfFaults *faultyHandler
}

// newCloudLab starts the stand-ins with in-memory machines, or with
// machines (real lab hosts) when given.
func newCloudLab(t *testing.T, inventoryYAML string, machines ...scwsim.Machines) *cloudLab {
	t.Helper()
	l := &cloudLab{t: t, dir: t.TempDir(), zones: map[string]cfsim.Zone{}, lastRun: map[string]time.Time{}}
	var m scwsim.Machines
	if len(machines) > 0 {
		m = machines[0]
	} else {
		l.machines = scwsim.NewFakeMachines()
		m = l.machines
	}
	sim, err := scwsim.New(scwsim.Config{
		SecretKeys: []string{labSecretKey},
		Projects:   []scwsim.Project{{ID: labProject}},
		Machines:   m,
		Timings:    scwsim.FastTimings(),
		Seed:       uint64(len(t.Name())),
	})
	if err != nil {
		t.Fatal(err)
	}
	l.sim = sim
	l.scwFaults = &faultyHandler{next: sim, scaleway: true}
	srv := httptest.NewServer(l.scwFaults)
	l.scwURL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sim.Close(ctx); err != nil {
			t.Errorf("close scwsim: %v", err)
		}
	})

	l.cf, err = cfsim.New(cfsim.Options{Quota: -1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, name := range []string{"lghs-space.test", "lghs-be.test"} {
		z, err := l.cf.AddZone(cfsim.Zone{Name: name, NameServers: []string{"ns1." + name}})
		if err != nil {
			t.Fatal(err)
		}
		l.zones[name] = z
		ids = append(ids, z.ID)
	}
	l.token, err = l.cf.AddToken(cfsim.Token{Permissions: []cfsim.Permission{cfsim.ZoneRead, cfsim.DNSEdit}, ZoneIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	l.cfFaults = &faultyHandler{next: l.cf.Handler()}
	cfSrv := httptest.NewServer(l.cfFaults)
	l.cfURL = cfSrv.URL + "/client/v4"
	t.Cleanup(cfSrv.Close)

	l.dns, err = labdns.Start(context.Background(), labdns.Config{Addr: "127.0.0.1:0", Source: cfdns.Source(l.cf)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dns.Close() })

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if l.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	l.pubKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " operator@lab"
	l.write("id_ed25519.pub", l.pubKey+"\n")
	l.inv = l.write("inventory.yaml", inventoryYAML)
	l.env = map[string]string{
		"HOME":                   l.dir,
		"SCW_CONFIG_PATH":        filepath.Join(l.dir, "no-scw-config.yaml"),
		"SCW_ACCESS_KEY":         labAccessKey,
		"SCW_SECRET_KEY":         labSecretKey,
		"SCW_DEFAULT_PROJECT_ID": labProject,
		"SCW_API_URL":            l.scwURL,
		"CLOUDFLARE_API_TOKEN":   l.token.Value,
		"CLOUDFLARE_BASE_URL":    l.cfURL,
		"NO_COLOR":               "1",
	}
	return l
}

func (l *cloudLab) write(name, content string) string {
	l.t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// result is one lghsctl run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// run runs lghsctl with the lab's environment and inventory.
func (l *cloudLab) run(args ...string) result {
	l.t.Helper()
	return l.runCtx(context.Background(), "", args...)
}

func (l *cloudLab) runCtx(ctx context.Context, stdin string, args ...string) result {
	l.t.Helper()
	l.pace(args)
	return l.exec(ctx, stdin, args...)
}

// pace waits, if the same command started less than a second ago, for the
// next second: the debug log is named after the second (see
// .notes/provision-requests.md).
func (l *cloudLab) pace(args []string) {
	key := args[0]
	if args[0] == "snapshot" && len(args) > 1 {
		key += " " + args[1]
	}
	if last, ok := l.lastRun[key]; ok && time.Now().Unix() == last.Unix() {
		time.Sleep(time.Until(last.Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	}
	l.lastRun[key] = time.Now()
}

func (l *cloudLab) exec(ctx context.Context, stdin string, args ...string) result {
	l.t.Helper()
	var out, errb bytes.Buffer
	io := IO{In: strings.NewReader(stdin), Out: &out, Err: &errb, Getenv: func(k string) string { return l.env[k] }}
	if args[0] == "up" {
		// These are the cloud phase's tests (host setup has its own).
		args = append(args, "--phase", "cloud")
	}
	code := Main(ctx, append(args, "-i", l.inv), io)
	return result{code, out.String(), errb.String()}
}

// mustRun runs lghsctl and fails the test unless it exits with want.
func (l *cloudLab) mustRun(want int, args ...string) result {
	l.t.Helper()
	r := l.run(args...)
	if r.code != want {
		l.t.Fatalf("lghsctl %s: want exit %d, got %s", strings.Join(args, " "), want, r)
	}
	return r
}

// api is the Scaleway adapter, for looking at what lghsctl made.
func (l *cloudLab) api() *scaleway.Client {
	l.t.Helper()
	creds, err := scaleway.LoadCredentials("", func(k string) string { return l.env[k] })
	if err != nil {
		l.t.Fatal(err)
	}
	c, err := scaleway.New(scaleway.Config{Credentials: creds})
	if err != nil {
		l.t.Fatal(err)
	}
	return c
}

// writes counts the write calls both stand-ins received since the last
// resetCalls.
func (l *cloudLab) writes() (scw int, cf int) {
	return len(l.sim.WriteCalls()), l.cf.Counters().Writes
}

func (l *cloudLab) resetCalls() {
	l.sim.ResetCalls()
	l.cf.ResetRequests()
}

// world is what exists in the stand-ins, in provision's terms.
type world struct {
	servers []provision.Server
	ips     []provision.IP
	groups  []provision.SecurityGroup
	keys    []provision.SSHKey
	records []cfsim.Record
}

func (l *cloudLab) world() world {
	l.t.Helper()
	ctx := context.Background()
	c := l.api()
	var w world
	var err error
	if w.servers, err = c.Servers(ctx, "fr-par-1", nil); err != nil {
		l.t.Fatal(err)
	}
	if w.ips, err = c.IPs(ctx, "fr-par-1", nil); err != nil {
		l.t.Fatal(err)
	}
	groups, err := c.SecurityGroups(ctx, "fr-par-1")
	if err != nil {
		l.t.Fatal(err)
	}
	for _, g := range groups {
		if !g.ProjectDefault {
			w.groups = append(w.groups, g)
		}
	}
	if w.keys, err = c.SSHKeys(ctx); err != nil {
		l.t.Fatal(err)
	}
	for _, z := range l.zones {
		recs, err := l.cf.Records(z.ID)
		if err != nil {
			l.t.Fatal(err)
		}
		w.records = append(w.records, recs...)
	}
	return w
}

// resolve asks the lab DNS for name's records of type qtype.
func (l *cloudLab) resolve(name string, qtype uint16) []string {
	l.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	in, err := dns.Exchange(m, l.dns.Addr())
	if err != nil {
		l.t.Fatalf("query %s: %v", name, err)
	}
	var out []string
	for _, rr := range in.Answer {
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

// checkConverged checks the lab holds exactly what the inventory asks
// for, once: one running server with its named root volume, one IPv4 and
// one IPv6 attached to it, one security group with the inventory's 12
// rules and SMTP unblocked, the project key, and A/AAAA for both names
// answered by the lab DNS.
func (l *cloudLab) checkConverged() world {
	l.t.Helper()
	w := l.world()
	if len(w.servers) != 1 {
		l.t.Fatalf("%d servers, want 1: %+v", len(w.servers), w.servers)
	}
	s := w.servers[0]
	if s.Name != "lghs-chat" || s.State != provision.StateRunning || s.CommercialType != "DEV1-M" {
		l.t.Errorf("server %s %s %s, want lghs-chat running DEV1-M", s.Name, s.State, s.CommercialType)
	}
	if !slices.Contains(s.Tags, "lghsctl=lghs-lab") || !slices.Contains(s.Tags, "lghsctl-host=lghs-chat") {
		l.t.Errorf("server tags %v lack the ownership tags", s.Tags)
	}
	if len(s.Volumes) != 1 || s.Volumes[0].Name != "lghs-chat" || s.Volumes[0].Type != "l_ssd" {
		l.t.Errorf("server volumes %+v, want one l_ssd named lghs-chat", s.Volumes)
	}
	var v4, v6 []provision.IP
	for _, ip := range w.ips {
		if ip.Family == provision.IPv4 {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
		if ip.Server != s.ID {
			l.t.Errorf("IP %s is attached to %q, not to the server", ip, ip.Server)
		}
	}
	if len(v4) != 1 || len(v6) != 1 {
		l.t.Fatalf("%d IPv4 and %d IPv6, want one of each", len(v4), len(v6))
	}
	var addr4, addr6 string
	for _, sip := range s.IPs {
		if sip.Dynamic {
			l.t.Errorf("server has a dynamic IP %s", sip.Address)
		}
		switch sip.ID {
		case v4[0].ID:
			addr4 = sip.Address.String()
		case v6[0].ID:
			addr6 = sip.Address.String()
			if !v6[0].Prefix.Contains(sip.Address) {
				l.t.Errorf("IPv6 %s is not in the routed prefix %s", sip.Address, v6[0].Prefix)
			}
		}
	}
	if len(w.groups) != 1 {
		l.t.Fatalf("%d security groups, want 1: %+v", len(w.groups), w.groups)
	}
	g := w.groups[0]
	if g.ID != s.SecurityGroup || g.InboundDefault != "drop" || g.OutboundDefault != "accept" || g.EnableDefaultSecurity || !g.Stateful {
		l.t.Errorf("security group %+v, want the server's, drop/accept, stateful, SMTP unblocked", g)
	}
	rules, err := l.api().Rules(context.Background(), "fr-par-1", g.ID)
	if err != nil {
		l.t.Fatal(err)
	}
	if len(rules) != 12 {
		l.t.Errorf("%d rules, want 12 (6 rules × IPv4 and IPv6)", len(rules))
	}
	if n := len(w.keys); n != 1 || strings.Fields(w.keys[0].PublicKey)[1] != strings.Fields(l.pubKey)[1] {
		l.t.Errorf("SSH keys %+v, want the operator's", w.keys)
	}
	if l.machines != nil {
		m, ok := l.machines.Machine(s.ID)
		if !ok || !m.Running {
			l.t.Errorf("the lab machine of %s is not running", s.ID)
		} else if len(m.Spec.AuthorizedKeys) != 1 || strings.Fields(m.Spec.AuthorizedKeys[0])[1] != strings.Fields(l.pubKey)[1] {
			l.t.Errorf("machine authorized keys %v, want the project key injected at boot", m.Spec.AuthorizedKeys)
		}
	}
	for _, name := range []string{"lghs-chat-prod.lghs-space.test", "chat.lghs-be.test"} {
		if got := l.resolve(name, dns.TypeA); !slices.Equal(got, []string{addr4}) {
			l.t.Errorf("A %s = %v, want [%s]", name, got, addr4)
		}
		if got := l.resolve(name, dns.TypeAAAA); !slices.Equal(got, []string{addr6}) {
			l.t.Errorf("AAAA %s = %v, want [%s]", name, got, addr6)
		}
	}
	if len(w.records) != 4 {
		l.t.Errorf("%d DNS records, want 4", len(w.records))
	}
	for _, r := range w.records {
		if r.Comment == nil || *r.Comment != "managed by lghsctl: lghs-lab/lghs-chat" || r.Proxied || r.TTL != 300 {
			l.t.Errorf("record %s %s: comment %v proxied %v ttl %d", r.Type, r.Name, r.Comment, r.Proxied, r.TTL)
		}
	}
	return w
}

func TestUpFromAnEmptyLabCreatesEverythingAndASecondUpOnlyReads(t *testing.T) {
	l := newCloudLab(t, labInventory)

	plan := l.mustRun(0, "plan")
	for _, want := range []string{"+   ssh key lab-operator", "+   security group hardened-conf", "+   server lghs-chat (DEV1-M fr-par-1, debian_trixie",
		"+   ip lghs-chat", "+   A chat.lghs-be.test (address known after apply, ttl 300, DNS only)", "+   AAAA lghs-chat-prod.lghs-space.test", "Plan: 9 to add, 0 to change, 0 to destroy."} {
		if !strings.Contains(plan.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan.stdout)
		}
	}
	if s, c := l.writes(); s+c != 0 {
		t.Fatalf("plan made %d Scaleway and %d Cloudflare writes", s, c)
	}

	up := l.mustRun(0, "up")
	for _, want := range []string{"changed: [cloud] ssh keys", "changed: [cloud] security group hardened-conf", "changed: [lghs-chat] server",
		"changed: [lghs-chat] dns records", "changed: [lghs-chat] wait running", "PLAY RECAP"} {
		if !strings.Contains(up.stdout, want) {
			t.Errorf("up output lacks %q:\n%s", want, up.stdout)
		}
	}
	l.checkConverged()

	l.resetCalls()
	again := l.mustRun(0, "up")
	if !strings.Contains(again.stdout, "cloud: no changes") || strings.Contains(again.stdout, "changed:") {
		t.Errorf("second up is not a no-op:\n%s", again.stdout)
	}
	if !strings.Contains(again.stdout, "changed=0") {
		t.Errorf("recap of the second up:\n%s", again.stdout)
	}
	if s, c := l.writes(); s+c != 0 {
		t.Errorf("the second up made %d Scaleway and %d Cloudflare write calls, want 0: %+v", s, c, l.sim.WriteCalls())
	}
	if len(l.sim.Calls()) == 0 || l.cf.Counters().Reads == 0 {
		t.Error("the second up made no read call either: the counters do not count")
	}
	l.mustRun(0, "plan", "--detailed-exitcode")
}

// faultyHandler injects faults in front of a stand-in: a fraction of
// requests get a 429 (never processed) and as many get a 5xx, half of
// those after the request was processed (the answer is lost). scaleway
// selects Scaleway's shapes (429 with an empty body, no Retry-After),
// otherwise Cloudflare's (JSON envelope, Retry-After: 1).
type faultyHandler struct {
	next     http.Handler
	scaleway bool
	mu       sync.Mutex
	rng      *mrand.Rand
	rate     float64
	n429     int
	n5xx     int
	lost     int
	// lostPosts answers every POST with a 5xx after processing it.
	lostPosts bool
}

func (f *faultyHandler) set(rate float64, seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate, f.rng = rate, mrand.New(mrand.NewPCG(seed, 7))
}

func (f *faultyHandler) counts() (n429, n5xx, lost int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n429, f.n5xx, f.lost
}

func (f *faultyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	draw, kind := 1.0, 0.0
	if f.rng != nil {
		draw, kind = f.rng.Float64(), f.rng.Float64()
	}
	rate := f.rate
	lostPost := f.lostPosts && r.Method == http.MethodPost
	if lostPost {
		draw, kind = 0, 0.6
	}
	f.mu.Unlock()
	if (draw >= rate && !lostPost) || strings.HasPrefix(r.URL.Path, "/_scwsim/") {
		f.next.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	limited := kind < 0.5
	if limited {
		f.n429++
	} else {
		f.n5xx++
	}
	f.mu.Unlock()
	if !limited && kind < 0.75 {
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		f.mu.Lock()
		f.lost++
		f.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r.Body)
	switch {
	case limited && f.scaleway:
		w.Header().Set("X-Envoy-Ratelimited", "true")
		w.WriteHeader(http.StatusTooManyRequests)
	case limited:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"success":false,"errors":[{"code":971,"message":"Please wait and consider throttling your request speed"}],"messages":[],"result":null}`)
	case f.scaleway:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"message":"service unavailable","type":"internal_error"}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"success":false,"errors":[{"code":10000,"message":"internal error"}],"messages":[],"result":null}`)
	}
}

func TestUpConvergesWith429sAnd5xxOnAFifthOfTheCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("several runs with rate-limit waits (a few seconds)")
	}
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			l := newCloudLab(t, labInventory)
			l.scwFaults.set(0.2, seed)
			l.cfFaults.set(0.2, seed)
			for i := range 3 {
				r := l.run("up")
				if r.code != 0 {
					t.Fatalf("up #%d under faults: %s", i+1, r)
				}
			}
			a, b, c := l.scwFaults.counts()
			d, e, f := l.cfFaults.counts()
			t.Logf("injected: Scaleway %d×429 %d×5xx (%d processed), Cloudflare %d×429 %d×5xx (%d processed)", a, b, c, d, e, f)
			if a == 0 || b == 0 || c == 0 || d+e == 0 {
				t.Errorf("the faults did not bite: Scaleway %d/%d/%d, Cloudflare %d/%d/%d", a, b, c, d, e, f)
			}
			l.scwFaults.set(0, 0)
			l.cfFaults.set(0, 0)
			l.checkConverged()
			l.resetCalls()
			l.mustRun(0, "up")
			if s, c := l.writes(); s+c != 0 {
				t.Errorf("up after the faulty runs wrote: %d Scaleway, %d Cloudflare", s, c)
			}
		})
	}
}

func TestAmbiguousCreatesAreLookedUpNotRepeated(t *testing.T) {
	l := newCloudLab(t, labInventory)
	// Every create is made, and its answer lost.
	l.scwFaults.lostPosts = true
	l.cfFaults.lostPosts = true
	r := l.mustRun(0, "up")
	l.scwFaults.lostPosts = false
	l.cfFaults.lostPosts = false
	l.checkConverged()
	posts := map[string]int{}
	for _, c := range l.sim.Calls() {
		if c.Method == http.MethodPost {
			posts[c.Route]++
		}
	}
	for route, want := range map[string]int{
		"POST /instance/v1/zones/{zone}/servers":         1,
		"POST /instance/v1/zones/{zone}/ips":             2,
		"POST /instance/v1/zones/{zone}/security_groups": 1,
		"POST /iam/v1alpha1/ssh-keys":                    1,
	} {
		if posts[route] != want {
			t.Errorf("%d calls to %s, want %d (a lost answer must be followed by a lookup, not a second create)\n%s", posts[route], route, want, r.stdout)
		}
	}
	creates := 0
	for _, q := range l.cf.Requests() {
		if q.Method == http.MethodPost {
			creates++
		}
	}
	if creates != 4 {
		t.Errorf("%d record creates for 4 records", creates)
	}
}

func TestInterruptedUpIsConvergedByTheNextOne(t *testing.T) {
	l := newCloudLab(t, labInventory)

	// Ctrl-C while the server is being created: the request never lands.
	l.sim.SetFaults(scwsim.FaultConfig{Latency: scwsim.LatencyFault{Delay: scwsim.Duration{Duration: 5 * time.Second},
		Match: scwsim.Match{Method: http.MethodPost, PathContains: "/servers"}}})
	r := l.interruptAfter(300*time.Millisecond, "up")
	if r.code != ExitInterrupted || !strings.Contains(r.stdout, "interrupted") {
		t.Fatalf("interrupted up: %s", r)
	}
	if w := l.world(); len(w.servers) != 0 || len(w.ips) != 2 {
		t.Fatalf("after the first interruption: %d servers, %d IPs; want the IPs only", len(w.servers), len(w.ips))
	}

	// Ctrl-C while the server boots.
	l.sim.SetFaults(scwsim.FaultConfig{})
	// (StartDelay is read by the stand-in's workers: set once, never reset.)
	l.machines.StartDelay = 1500 * time.Millisecond
	r = l.interruptAfter(600*time.Millisecond, "up")
	if r.code != ExitInterrupted || !strings.Contains(r.stdout, "changed: [lghs-chat] server") {
		t.Fatalf("second interrupted up: %s", r)
	}

	plan := l.mustRun(0, "plan")
	if strings.Contains(plan.stdout, "+   server") || strings.Contains(plan.stdout, "+   ip") {
		t.Errorf("the plan after the interruptions recreates things:\n%s", plan.stdout)
	}
	l.mustRun(0, "up")
	l.checkConverged()
}

// interruptAfter runs lghsctl and cancels its context (Ctrl-C) after d.
func (l *cloudLab) interruptAfter(d time.Duration, args ...string) result {
	l.t.Helper()
	l.pace(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(d, cancel)
	return l.exec(ctx, "", args...)
}

// TestLabUpMakesARunningHostReachableBySSH is the end-to-end lab test: the
// servers up creates are real Debian hosts (systemd-nspawn, their security
// group enforced), reachable over IPv4 and IPv6 as root with the project
// key that IAM injected at boot; a backup restored as a clone boots with
// the files the original had when the backup was taken; destroy removes
// it all.
func TestLabUpMakesARunningHostReachableBySSH(t *testing.T) {
	lab := labtest.Lab(t, labhost.Config{NoAptProxy: true})
	machines, err := scwsim.NewLabHosts(scwsim.LabHostsConfig{Lab: lab, Dir: filepath.Join(t.TempDir(), "layers"), Log: labtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l := newCloudLab(t, labInventory, machines)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := l.sim.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	l.mustRun(0, "up")
	w := l.checkConverged()
	s := w.servers[0]
	h := machines.Host(s.ID)
	if h == nil {
		t.Fatal("the running server has no lab host")
	}
	run := func(host *labhost.Host, addr netip.Addr, cmd string) string {
		t.Helper()
		c, err := labtest.DialAddr(netip.AddrPortFrom(addr, 22).String(), host, l.signer)
		if err != nil {
			t.Fatalf("ssh root@%s with the project key: %v", addr, err)
		}
		defer c.Close()
		return strings.TrimSpace(labtest.SSH(t, c, cmd))
	}
	var v4, v6 netip.Addr
	for _, ip := range s.IPs {
		if ip.Address.Is4() {
			v4 = ip.Address
		} else {
			v6 = ip.Address
		}
	}
	if got := run(h, v4, "hostname"); got != "lghs-chat" {
		t.Errorf("hostname over IPv4 = %q", got)
	}
	run(h, v6, "mkdir -p /srv/chat && echo before-upgrade > /srv/chat/marker && sync")

	l.mustRun(0, "snapshot", "create", "--name", "before-upgrade")
	run(h, v4, "echo after-upgrade > /srv/chat/marker && sync")
	l.mustRun(0, "snapshot", "restore", "before-upgrade", "--as", "lghs-chat-test")
	clone := l.serverOf("lghs-chat-test")
	ch := machines.Host(clone.ID)
	if ch == nil {
		t.Fatal("the clone has no lab host")
	}
	for _, ip := range clone.IPs {
		if got := run(ch, ip.Address, "cat /srv/chat/marker"); got != "before-upgrade" {
			t.Errorf("the clone's marker over %s = %q, want the content at backup time", ip.Address, got)
		}
	}
	l.mustRun(0, "destroy", "lghs-chat-test", "--yes")
	l.mustRun(0, "destroy", "--yes", "--with-backups", "--force")
	if w := l.world(); len(w.servers)+len(w.ips)+len(w.groups) != 0 {
		t.Errorf("left after destroy: %+v", w)
	}
}

// twoHosts adds a second host sharing the security group and the zones.
var twoHosts = labInventory + `  - name: lghs-chat2
    type: DEV1-S
    image: debian_bookworm
    security_group: hardened-conf
    ipv6: false
    dns:
      - {name: lghs-chat2.lghs-space.test, role: technical}
`

func TestLimitCheckModeAndHostsInParallel(t *testing.T) {
	l := newCloudLab(t, twoHosts)

	// --check: the plan, no change, exit 3 with --detailed-exitcode.
	r := l.mustRun(ExitChanges, "up", "--check", "--detailed-exitcode")
	if !strings.Contains(r.stdout, "+   server lghs-chat2 (DEV1-S fr-par-1, debian_bookworm") || !strings.Contains(r.stdout, "check mode: nothing was changed") {
		t.Errorf("up --check:\n%s", r.stdout)
	}
	if s, c := l.writes(); s+c != 0 {
		t.Fatalf("up --check wrote: %d Scaleway, %d Cloudflare", s, c)
	}

	// --limit: only that host (and what it needs).
	r = l.mustRun(0, "up", "--limit", "lghs-chat2")
	if strings.Contains(r.stdout, "[lghs-chat]") {
		t.Errorf("up --limit lghs-chat2 touched lghs-chat:\n%s", r.stdout)
	}
	w := l.world()
	if len(w.servers) != 1 || w.servers[0].Name != "lghs-chat2" || len(w.ips) != 1 || len(w.records) != 1 {
		t.Fatalf("after --limit: %d servers, %d IPs, %d records", len(w.servers), len(w.ips), len(w.records))
	}

	// Both hosts, in parallel; then nothing to do.
	l.mustRun(0, "up")
	w = l.world()
	if len(w.servers) != 2 || len(w.ips) != 3 || len(w.groups) != 1 || len(w.records) != 5 {
		t.Errorf("after up: %d servers, %d IPs, %d groups, %d records", len(w.servers), len(w.ips), len(w.groups), len(w.records))
	}
	l.resetCalls()
	l.mustRun(0, "plan", "--detailed-exitcode")
	l.mustRun(0, "up", "--check", "--detailed-exitcode")

	// Destroying one host keeps the group the other uses.
	r = l.mustRun(0, "destroy", "lghs-chat2", "--yes")
	if !strings.Contains(r.stdout, "left behind: security group hardened-conf kept") {
		t.Errorf("destroy lghs-chat2:\n%s", r.stdout)
	}
	if s, c := l.writes(); s == 0 || c == 0 {
		t.Errorf("destroy made %d Scaleway and %d Cloudflare writes", s, c)
	}
	l.mustRun(0, "plan", "--detailed-exitcode", "--limit", "lghs-chat")
}
