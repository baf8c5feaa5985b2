package labhost

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestRecipeKeyChangesWithEveryFieldButNotPackageOrder(t *testing.T) {
	base := DefaultRecipe(Trixie)
	same := DefaultRecipe(Trixie)
	same.Include = append([]string{same.Include[len(same.Include)-1]}, same.Include[:len(same.Include)-1]...)
	if base.Key() != same.Key() {
		t.Errorf("package order changed the key: %s vs %s", base.Key(), same.Key())
	}
	variants := map[string]func(*Recipe){
		"release": func(r *Recipe) { r.Release = Bookworm },
		"mirror":  func(r *Recipe) { r.Mirror = "http://mirror.test/debian" },
		"package": func(r *Recipe) { r.Include = append(r.Include, "less") },
		"version": func(r *Recipe) { r.Version++ },
	}
	for name, mutate := range variants {
		r := DefaultRecipe(Trixie)
		r.Include = append([]string(nil), r.Include...)
		mutate(&r)
		if r.Key() == base.Key() {
			t.Errorf("changing the %s kept key %s", name, base.Key())
		}
	}
	if !strings.HasPrefix(base.Key(), "trixie-") {
		t.Errorf("key %q does not start with the release", base.Key())
	}
}

func TestRecipeValidateRejectsUnknownReleaseAndBadPackages(t *testing.T) {
	for _, r := range []Recipe{
		{Release: "sid", Mirror: DefaultMirror},
		{Release: Trixie},
		{Release: Trixie, Mirror: DefaultMirror, Include: []string{"nginx;rm"}},
		{Release: Trixie, Mirror: DefaultMirror, Include: []string{"-x"}},
	} {
		if r.Validate() == nil {
			t.Errorf("%+v validated", r)
		}
	}
	if err := DefaultRecipe(Bookworm).Validate(); err != nil {
		t.Errorf("default bookworm recipe: %v", err)
	}
}

// The addresses of a server recorded on Scaleway (reference §3.4): MAC
// de:00:01:27:16:ab in 2001:bc8:711:4014::/64 has address
// ...:dc00:1ff:fe27:16ab and gateway fe80::dc00:1ff:fe27:16ac.
func TestEUI64AndGatewayMatchScalewayRecording(t *testing.T) {
	mac, _ := net.ParseMAC("de:00:01:27:16:ab")
	got := eui64(netip.MustParsePrefix("2001:bc8:711:4014::/64"), mac)
	if want := netip.MustParseAddr("2001:bc8:711:4014:dc00:1ff:fe27:16ab"); got != want {
		t.Errorf("eui64 = %v, want %v", got, want)
	}
	if gw, want := linkLocal(nextMAC(mac)), netip.MustParseAddr("fe80::dc00:1ff:fe27:16ac"); gw != want {
		t.Errorf("gateway = %v, want %v", gw, want)
	}
	if got := nextMAC(net.HardwareAddr{0xde, 0, 0, 0, 0xff, 0xff}).String(); got != "de:00:00:01:00:00" {
		t.Errorf("nextMAC carries wrong: %s", got)
	}
	m := newMAC()
	if m[0] != 0xde || checkMAC(m) != nil {
		t.Errorf("newMAC() = %v", m)
	}
}

func TestAddrPoolHandsOutUniqueAddressesAndTakesThemBack(t *testing.T) {
	p := newAddrPool(netPlan{n: 3})
	seen4, seen6 := map[netip.Addr]bool{}, map[netip.Prefix]bool{}
	for range 300 {
		a, err := p.alloc4()
		if err != nil {
			t.Fatal(err)
		}
		pr, err := p.alloc6()
		if err != nil {
			t.Fatal(err)
		}
		if seen4[a] || seen6[pr] {
			t.Fatalf("handed out %v / %v twice", a, pr)
		}
		seen4[a], seen6[pr] = true, true
		if err := checkHostAddrs(a, pr, eui64(pr, newMAC())); err != nil {
			t.Fatalf("allocated addresses rejected: %v", err)
		}
		if b := a.As4(); b[1] != 203 || b[3] == 0 || b[3] == 255 {
			t.Fatalf("address %v outside lab 3's host range", a)
		}
	}
	first := netip.MustParseAddr("10.203.1.1")
	p.release(netip.PrefixFrom(first, 32))
	if a, _ := p.alloc4(); a != first {
		t.Errorf("released %v, next allocation %v", first, a)
	}
	p.release(netip.MustParsePrefix("fd6c:6768:7303:1::/64"))
	if pr, _ := p.alloc6(); pr != netip.MustParsePrefix("fd6c:6768:7303:1::/64") {
		t.Errorf("released prefix not reused: %v", pr)
	}
}

func TestCheckHostAddrsRefusesPublicAndLabLinkAddresses(t *testing.T) {
	okV6 := netip.MustParsePrefix("fdaa:1::/64")
	okAddr := netip.MustParseAddr("fdaa:1::1")
	for _, c := range []struct {
		v4   string
		p6   string
		a6   string
		want string
	}{
		{"192.0.2.1", "fdaa:1::/64", "fdaa:1::1", "10.0.0.0/8"},
		{"10.201.0.7", "fdaa:1::/64", "fdaa:1::1", "reserved"},
		{"10.5.5.0", "fdaa:1::/64", "fdaa:1::1", "usable"},
		{"10.5.5.5", "fdaa:1::/48", "fdaa:1::1", "/64"},
		{"10.5.5.5", "2001:db8::/64", "2001:db8::1", "ULA"},
		{"10.5.5.5", "fd6c:6768:7300::/64", "fd6c:6768:7300::9", "reserved"},
		{"10.5.5.5", "fdaa:1::/64", "fdaa:2::1", "not in"},
	} {
		err := checkHostAddrs(netip.MustParseAddr(c.v4), netip.MustParsePrefix(c.p6), netip.MustParseAddr(c.a6))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s %s: %v, want error containing %q", c.v4, c.p6, c.a6, err, c.want)
		}
	}
	if err := checkHostAddrs(netip.MustParseAddr("10.5.5.5"), okV6, okAddr); err != nil {
		t.Errorf("good addresses rejected: %v", err)
	}
}

func TestRenderPolicyMatchesGolden(t *testing.T) {
	p := Policy{
		InboundDefault:  Drop,
		OutboundDefault: Accept,
		Stateful:        true,
		Rules: []Rule{
			{Direction: Inbound, Action: Accept, Protocol: TCP, IPRange: netip.MustParsePrefix("0.0.0.0/0"), PortFrom: 22},
			{Direction: Inbound, Action: Accept, Protocol: TCP, IPRange: netip.MustParsePrefix("::/0"), PortFrom: 22},
			{Direction: Inbound, Action: Accept, Protocol: TCP, PortFrom: 80, PortTo: 443},
			{Direction: Inbound, Action: Accept, Protocol: ICMP},
			{Direction: Outbound, Action: Drop, Protocol: UDP, IPRange: netip.MustParsePrefix("10.0.0.0/8"), PortFrom: 53},
			{Direction: Outbound, Action: Drop, Protocol: AnyProtocol, IPRange: netip.MustParsePrefix("fd00::/8")},
		},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	golden(t, "firewall-stateful.nft", renderPolicy("h7", p))
	p.Stateful = false
	p.OutboundDefault = Drop
	golden(t, "firewall-stateless.nft", renderPolicy("h7", p))
	golden(t, "firewall-zero.nft", renderPolicy("h7", Policy{}))
}

func TestPolicyValidateRejectsWhatCannotBeEnforced(t *testing.T) {
	for name, p := range map[string]Policy{
		"default":   {InboundDefault: "reject"},
		"direction": {Rules: []Rule{{Direction: "in", Action: Accept, Protocol: TCP}}},
		"action":    {Rules: []Rule{{Direction: Inbound, Action: "allow", Protocol: TCP}}},
		"protocol":  {Rules: []Rule{{Direction: Inbound, Action: Accept, Protocol: "SCTP"}}},
		"hostbits":  {Rules: []Rule{{Direction: Inbound, Action: Accept, Protocol: TCP, IPRange: netip.MustParsePrefix("10.1.2.3/8")}}},
		"reversed":  {Rules: []Rule{{Direction: Inbound, Action: Accept, Protocol: TCP, PortFrom: 90, PortTo: 80}}},
		"nostart":   {Rules: []Rule{{Direction: Inbound, Action: Accept, Protocol: TCP, PortTo: 80}}},
	} {
		if p.Validate() == nil {
			t.Errorf("%s: %+v validated", name, p)
		}
	}
}

func TestShapeScriptsAndValidation(t *testing.T) {
	if got := lossRules("h2", 0.0525); !strings.Contains(got, "numgen random mod 10000 < 525 drop") {
		t.Errorf("loss rules: %q", got)
	}
	if got := lossRules("h2", 1); !strings.HasSuffix(got, "add rule inet lab h2_shape drop\n") {
		t.Errorf("total loss: %q", got)
	}
	if got := lossRules("h2", 0); strings.Contains(got, "drop") {
		t.Errorf("zero loss drops: %q", got)
	}
	if got := strings.Join(tbfArgs(20_000_000), " "); got != "tbf rate 20000000bit burst 25000 latency 100ms" {
		t.Errorf("tbf: %s", got)
	}
	if got := strings.Join(tbfArgs(1_000_000), " "); got != "tbf rate 1000000bit burst 16384 latency 100ms" {
		t.Errorf("tbf at 1 Mbit/s: %s", got)
	}
	for _, s := range []Shape{{Loss: -0.1}, {Loss: 1.5}, {Rate: 100}} {
		if s.validate() == nil {
			t.Errorf("%+v validated", s)
		}
	}
}

func TestMergeAuthorizedKeysAddsMissingKeysOnlyAndKeepsOthers(t *testing.T) {
	k1 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDL3V3qVmGc7n0oUq0a1e3R0bUYtBvQ8mM8m3P2Q9rVd one"
	k1other := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDL3V3qVmGc7n0oUq0a1e3R0bUYtBvQ8mM8m3P2Q9rVd renamed"
	k2 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHf3aQm4J2hS2r6vJtE9bT9w0cKXxM8pQ1uY2nC6sLhE two"
	old := []byte("# owner's keys\n" + k1 + "\n")
	got := string(mergeAuthorizedKeys(old, []string{k1other, k2}))
	want := "# owner's keys\n" + k1 + "\n" + k2 + "\n"
	if got != want {
		t.Errorf("merged:\n%s\nwant:\n%s", got, want)
	}
	if again := string(mergeAuthorizedKeys([]byte(got), []string{k2})); again != got {
		t.Errorf("merging twice changed the file:\n%s", again)
	}
}

func TestParseMountInfoDecodesEscapes(t *testing.T) {
	in := "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n" +
		"37 35 98:0 / /run/netns/lgl1-r rw - nsfs nsfs rw\n"
	got, err := parseMountInfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "/mnt/a b" || got[1] != "/run/netns/lgl1-r" {
		t.Errorf("got %q", got)
	}
}

func TestEtcHostsAndResolvConf(t *testing.T) {
	if got := etcHosts("chat.lghs.test"); !strings.Contains(got, "127.0.1.1\tchat.lghs.test chat\n") || !strings.Contains(got, "127.0.0.1\tlocalhost\n") {
		t.Errorf("hosts:\n%s", got)
	}
	if got := resolvConf([]string{"10.200.0.1", "fd6c:6768:7300::1"}); !strings.Contains(got, "nameserver 10.200.0.1\nnameserver fd6c:6768:7300::1\n") {
		t.Errorf("resolv.conf:\n%s", got)
	}
	if got := resolvConf(nil); strings.Contains(got, "nameserver") {
		t.Errorf("resolv.conf without resolvers:\n%s", got)
	}
}

func TestShellScriptsParse(t *testing.T) {
	for name, script := range map[string]string{"watchdog": watchdogScript, "boot wrapper": bootWrapper} {
		cmd := exec.Command("sh", "-n", "-c", script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s script: %v\n%s", name, err, out)
		}
	}
}

// A fresh upper directory shadows the lower directory's owner and mode in
// the merged view, so the parents the lab creates must copy them.
func TestUpperWriteCopiesLowerDirectoryAttributes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create root-owned directories with another owner")
	}
	lower, up := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(lower, "root"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(lower, "var", "www"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(lower, "var", "www"), 33, 33); err != nil {
		t.Fatal(err)
	}
	u := upper{dir: up, lower: lower}
	if err := u.write("/root/.ssh/authorized_keys", []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := u.write("/var/www/site/index.html", []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(rel string, mode os.FileMode, uid uint32) {
		fi, err := os.Stat(filepath.Join(up, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || st.Uid != uid {
			t.Errorf("%s: mode %v uid %d, want %v uid %d", rel, fi.Mode().Perm(), st.Uid, mode, uid)
		}
	}
	check("root", 0o700, 0)
	check("root/.ssh", 0o755, 0)
	check("root/.ssh/authorized_keys", 0o600, 0)
	check("var/www", 0o750, 33)
	check("var/www/site", 0o755, 0)
	// A whiteout (the host deleted the directory) is replaced by a real
	// directory.
	if err := syscall.Mknod(filepath.Join(up, "etc"), syscall.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if u.exists("/etc") {
		t.Error("a whiteout counts as existing")
	}
	if err := u.write("/etc/hostname", []byte("h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !u.exists("/etc/hostname") {
		t.Error("written file missing")
	}
}

func TestRemoveTreeRefusesRelativeAndRootPaths(t *testing.T) {
	for _, p := range []string{"", "/", "relative/dir"} {
		if err := removeTree(p); err == nil {
			t.Errorf("removeTree(%q) succeeded", p)
		}
	}
	dir := filepath.Join(t.TempDir(), "x")
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeTree(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
	if err := removeTree(dir); err != nil {
		t.Errorf("removing a missing tree: %v", err)
	}
}
