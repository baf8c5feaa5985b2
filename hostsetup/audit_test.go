package hostsetup

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/inventory"
)

const sampleAudit = "sock\ttcp\t0.0.0.0:22\nsock\ttcp\t[::]:22\nsock\ttcp\t0.0.0.0:443\nsock\ttcp\t127.0.0.1:3000\nsock\ttcp\t0.0.0.0:27017\nsock\ttcp\t[::]:27017\nsock\tudp\t127.0.0.53%lo:53\nsock\tudp\t0.0.0.0:5353\n" +
	"proc\ttcp\t0.0.0.0:22\tusers:((\"sshd\",pid=1,fd=3))\nproc\ttcp\t0.0.0.0:443\tusers:((\"nginx\",pid=2,fd=6),(\"nginx\",pid=3,fd=6))\nproc\ttcp\t0.0.0.0:27017\tusers:((\"docker-proxy\",pid=9,fd=4))\n" +
	"pub\tchat-mongo-1\t0.0.0.0:27017->27017/tcp, :::27017->27017/tcp\npub\tchat-app-1\t127.0.0.1:3000->3000/tcp\npub\tchat-init-1\t27017/tcp\n"

func TestParseAuditOutput(t *testing.T) {
	ls, pubs := parseAudit(sampleAudit)
	if len(ls) != 8 {
		t.Fatalf("listeners = %+v", ls)
	}
	if ls[0].Process != "sshd" || ls[2].Process != "nginx" || !ls[3].Loopback() || !ls[6].Loopback() {
		t.Errorf("listeners = %+v", ls)
	}
	if len(pubs) != 3 || !pubs[0].Wildcard() || !pubs[1].Wildcard() || pubs[2].Wildcard() || pubs[2].Container != "chat-app-1" {
		t.Errorf("publishes = %+v", pubs)
	}
}

type auditHost struct{ out string }

func (h auditHost) Run(context.Context, string, io.Reader) ([]byte, error) { return []byte(h.out), nil }
func (h auditHost) ReadFile(context.Context, string) ([]byte, error) {
	return nil, errors.ErrUnsupported
}
func (h auditHost) WriteFile(context.Context, string, []byte, fs.FileMode, string, string) error {
	return errors.ErrUnsupported
}

// open dials succeed for the given "addr:port"s only.
func open(reachable ...string) Dialer {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		for _, r := range reachable {
			if r == addr {
				c1, c2 := net.Pipe()
				c2.Close()
				return c1, nil
			}
		}
		return nil, errors.New("connection refused")
	}
}

func lghsGroup() *inventory.SecurityGroup {
	f, err := inventory.Load("../inventory.yaml")
	if err != nil {
		panic(err)
	}
	return &f.SecurityGroups[0]
}

func TestAuditFailsOnAContainerPublishedToTheWorld(t *testing.T) {
	target := AuditTarget{Name: "h", IPv4: netip.MustParseAddr("192.0.2.10"), IPv6: netip.MustParseAddr("2001:db8::10"), Allowed: lghsGroup()}
	a, err := RunAudit(context.Background(), auditHost{sampleAudit}, target,
		open("192.0.2.10:22", "[2001:db8::10]:22", "192.0.2.10:443", "192.0.2.10:27017"))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Failed() {
		t.Fatal("audit passed with MongoDB open to the world")
	}
	var fails []string
	for _, f := range a.Findings {
		if f.Severity == "fail" {
			fails = append(fails, f.What)
		}
	}
	all := strings.Join(fails, "\n")
	for _, want := range []string{
		"container chat-mongo-1 publishes 27017/tcp on 0.0.0.0",
		"container chat-mongo-1's port 27017/tcp answers from outside over ipv4",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("findings lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "ipv6 (2001:db8::10)") {
		t.Errorf("27017 was not reachable over IPv6 but reported so:\n%s", all)
	}
}

func TestAuditPassesWithOnlySSHAndWeb(t *testing.T) {
	out := "sock\ttcp\t0.0.0.0:22\nsock\ttcp\t[::]:22\nsock\ttcp\t0.0.0.0:80\nsock\ttcp\t[::]:443\nsock\ttcp\t[::1]:3000\npub\tapp\t127.0.0.1:3000->3000/tcp\n"
	target := AuditTarget{Name: "h", IPv4: netip.MustParseAddr("192.0.2.10"), IPv6: netip.MustParseAddr("2001:db8::10"), Allowed: lghsGroup()}
	a, err := RunAudit(context.Background(), auditHost{out}, target,
		open("192.0.2.10:22", "[2001:db8::10]:22", "192.0.2.10:80", "[2001:db8::10]:80", "192.0.2.10:443", "[2001:db8::10]:443"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Failed() {
		t.Errorf("audit failed: %+v", a.Findings)
	}
}

func TestAuditFailsOnAPortTheInventoryDoesNotAllow(t *testing.T) {
	out := "sock\ttcp\t0.0.0.0:22\nsock\ttcp\t[::]:8080\n"
	target := AuditTarget{Name: "h", IPv6: netip.MustParseAddr("2001:db8::10"), Allowed: lghsGroup()}
	a, _ := RunAudit(context.Background(), auditHost{out}, target, open("[2001:db8::10]:8080"))
	if !a.Failed() || !strings.Contains(a.Findings[1].What, "port 8080/tcp") || a.Findings[1].Family != "ipv6" {
		t.Errorf("findings = %+v", a.Findings)
	}
}
