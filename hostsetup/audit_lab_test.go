package hostsetup

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/inventory"
)

// auditInventory is a host with Docker and a site (nginx on 80 and 443).
const auditInventory = `
version: 1
name: lab
dns:
  zones: [{name: example.test}]
acme: {email: admin@example.test, directory: "https://acme.example.test/dir"}
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}}
    unattended_upgrades: false
    docker: {source: debian}
    sites:
      - name: chat.example.test
        upstream: "[::1]:3000"
`

// lghsSecurityGroup is the security group of the repository's
// inventory.yaml, the one the LgHS server runs behind.
func lghsSecurityGroup(t *testing.T) *inventory.SecurityGroup {
	t.Helper()
	f, err := inventory.Load(filepath.Join("..", "inventory.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.SecurityGroups {
		if f.SecurityGroups[i].Name == f.Hosts[0].SecurityGroup {
			return &f.SecurityGroups[i]
		}
	}
	t.Fatalf("no security group %q in inventory.yaml", f.Hosts[0].SecurityGroup)
	return nil
}

// labPolicy is a security group as the lab enforces it, with Scaleway's
// meaning: a rule without ranges applies to 0.0.0.0/0 and ::/0.
func labPolicy(sg *inventory.SecurityGroup) labhost.Policy {
	p := labhost.Policy{
		InboundDefault:  labhost.Action(sg.InboundDefault),
		OutboundDefault: labhost.Action(sg.OutboundDefault),
		Stateful:        sg.Stateful == nil || *sg.Stateful,
	}
	for _, r := range sg.Rules {
		ranges := r.IPRanges
		if len(ranges) == 0 {
			ranges = []string{"0.0.0.0/0", "::/0"}
		}
		for _, cidr := range ranges {
			lr := labhost.Rule{Direction: labhost.Inbound, Action: labhost.Accept, Protocol: labhost.Protocol(r.Protocol),
				IPRange: netip.MustParsePrefix(cidr), PortFrom: uint16(r.Ports.From), PortTo: uint16(r.Ports.To)}
			if r.Direction != "" {
				lr.Direction = labhost.Direction(r.Direction)
			}
			if r.Action != "" {
				lr.Action = labhost.Action(r.Action)
			}
			p.Rules = append(p.Rules, lr)
		}
	}
	return p
}

// httpdImage is a one-binary image (the lab's httpd test server).
func httpdImage(ctx context.Context, t *testing.T) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "httpd")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "../internal/lab/labhost/testdata/httpd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build httpd: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	img, err := labdb.RootFS(map[string][]byte{"/httpd": data}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestLabAuditFailsOnAContainerPublishedOnAllAddresses: on a host host
// setup configured (sshd, nginx, Docker) behind the LgHS security group,
// the exposure audit, probing from outside the host over IPv4 and IPv6:
//   - passes with only 22, 80 and 443 public;
//   - fails naming the container when one publishes 0.0.0.0:27017 (the
//     security group keeps it unreachable, but Docker's rules bypass the
//     host's own firewall, and a security group change would expose it);
//   - without the security group, also says the port answers from
//     outside;
//   - passes again once the container publishes on 127.0.0.1 only.
func TestLabAuditFailsOnAContainerPublishedOnAllAddresses(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 10*time.Minute)
	image := httpdImage(ctx, t)
	sg := lghsSecurityGroup(t)
	rig := newLabRig(t, lb, "audit", "")
	if err := rig.h.SetFirewall(ctx, labPolicy(sg)); err != nil {
		t.Fatal(err)
	}
	rig.mustRun(ctx, "host setup behind the LgHS security group", rig.config(rig.inventory(auditInventory)), false)
	if err := rig.h.ImportImage(ctx, bytes.NewReader(image), "lab/httpd:1", `ENTRYPOINT ["/httpd"]`); err != nil {
		t.Fatal(err)
	}
	c, err := rig.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := AuditTarget{Name: "h1", IPv4: rig.h.Addr4(), IPv6: rig.h.Addr6(), Allowed: sg}
	var d net.Dialer
	audit := func(what string) *Audit {
		t.Helper()
		a, err := RunAudit(ctx, c, target, d.DialContext)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, f := range a.Findings {
			lines = append(lines, f.Severity+": "+f.What)
		}
		t.Logf("audit, %s:\n  %s", what, strings.Join(lines, "\n  "))
		return a
	}
	fails := func(a *Audit) []string {
		var out []string
		for _, f := range a.Findings {
			if f.Severity == "fail" {
				out = append(out, f.What)
			}
		}
		return out
	}
	publicOK := func(a *Audit) {
		t.Helper()
		for _, port := range []string{"22", "80", "443"} {
			for _, fam := range []string{"ipv4", "ipv6"} {
				found := false
				for _, f := range a.Findings {
					if f.Severity == "ok" && strings.HasPrefix(f.What, "port "+port+"/tcp") && f.Family == fam && strings.Contains(f.What, "is public over "+fam+", as the inventory allows") {
						found = true
					}
				}
				if !found {
					t.Errorf("no finding that %s/tcp is public over %s as allowed", port, fam)
				}
			}
		}
	}

	a := audit("22/80/443 only")
	if a.Failed() {
		t.Errorf("the audit fails with only 22, 80 and 443 public: %q", fails(a))
	}
	publicOK(a)

	rig.sh(ctx, "docker run -d --name exposed-mongo -p 0.0.0.0:27017:8080 lab/httpd:1 >/dev/null")
	a = audit("a container on 0.0.0.0:27017, behind the security group")
	f := fails(a)
	if !a.Failed() || len(f) != 1 || !strings.Contains(f[0], "container exposed-mongo publishes 27017/tcp on 0.0.0.0 (all addresses)") {
		t.Errorf("want one failure naming exposed-mongo's 27017 published on all addresses, got %q", f)
	}
	publicOK(a)

	if err := rig.h.SetFirewall(ctx, labhost.Policy{}); err != nil {
		t.Fatal(err)
	}
	a = audit("the same without a security group")
	f = fails(a)
	if len(f) != 2 || !strings.Contains(strings.Join(f, "\n"), "container exposed-mongo's port 27017/tcp answers from outside over ipv4 ("+rig.h.Addr4().String()+")") {
		t.Errorf("want the publish and the reachable port named, got %q", f)
	}
	if err := rig.h.SetFirewall(ctx, labPolicy(sg)); err != nil {
		t.Fatal(err)
	}

	rig.sh(ctx, "docker rm -f exposed-mongo >/dev/null && docker run -d --name mongo -p 127.0.0.1:27017:8080 lab/httpd:1 >/dev/null")
	a = audit("the container on 127.0.0.1:27017 only")
	if a.Failed() {
		t.Errorf("the audit fails with the container on loopback: %q", fails(a))
	}
	if out := rig.sh(ctx, "curl -s http://127.0.0.1:27017/"); out != "hello from a lab container\n" {
		t.Errorf("the loopback container does not answer on the host: %q", out)
	}
}
