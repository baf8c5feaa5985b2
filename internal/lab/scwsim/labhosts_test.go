package scwsim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	iam "github.com/scaleway/scaleway-sdk-go/api/iam/v1alpha1"
	"github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"
	"golang.org/x/crypto/ssh"
)

// openLab opens a lab for a test, or skips (fails under CI=true) when the
// box cannot run one. The lab and everything in it go at cleanup.
func openLab(t *testing.T) *labhost.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("lab test: boots real Debian hosts (not in -short)")
	}
	err := labhost.CheckPrerequisites(labhost.Config{})
	labPrereq(t, err == nil, "lab hosts: "+errString(err))
	var logBuf bytes.Buffer
	lab, err := labhost.Open(t.Context(), labhost.Config{
		// The hosts need no packages; bases come straight from the Debian mirror.
		NoAptProxy: true,
		Logger:     slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if errors.Is(err, labhost.ErrPrerequisites) {
		labPrereq(t, false, err.Error())
	}
	if err != nil {
		t.Fatalf("open lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		if t.Failed() {
			t.Logf("lab log:\n%s", logBuf.String())
		}
	})
	return lab
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sshRun runs cmd as root on addr, checking the host key against the lab's.
func sshRun(t *testing.T, addr netip.Addr, signer ssh.Signer, hostKey ssh.HostKeyCallback, cmd string) string {
	t.Helper()
	cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey, Timeout: 15 * time.Second}
	client, err := ssh.Dial("tcp", netip.AddrPortFrom(addr, 22).String(), cfg)
	if err != nil {
		t.Fatalf("ssh root@%s: %v", addr, err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatalf("ssh session on %s: %v", addr, err)
	}
	defer sess.Close()
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	out, err := sess.Output(cmd)
	if err != nil {
		t.Fatalf("ssh root@%s %q: %v (%s)", addr, cmd, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// reachable dials addr:port from the box.
func reachable(addr netip.Addr, port uint16) bool {
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, port).String(), 3*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestLabEndToEndServersAreRealHosts(t *testing.T) {
	lab := openLab(t)
	machines, err := NewLabHosts(LabHostsConfig{Lab: lab, Dir: filepath.Join(t.TempDir(), "layers")})
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, func(c *Config) { c.Machines, c.Timings = machines, FastTimings() })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := env.sim.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})

	var rootLayer string
	p := runFlow(t, env, "debian_trixie", 5*time.Minute, flowHooks{
		afterBoot: func(t *testing.T, p *provisioned) {
			h := machines.Host(p.server.ID)
			if h == nil {
				t.Fatal("running server has no lab host")
			}
			rootLayer = h.LayerDir()
			v4, v6 := p.server.PublicIPs[0].Address, p.server.PublicIPs[1].Address
			a4, _ := netip.AddrFromSlice(v4.To4())
			a6, _ := netip.AddrFromSlice(v6.To16())
			if h.Addr4() != a4 || h.Addr6() != a6 {
				t.Fatalf("host addresses %s, %s; the API reports %s, %s", h.Addr4(), h.Addr6(), a4, a6)
			}
			if got := sshRun(t, a4, p.signer, h.HostKeyCallback(), "hostname; echo before-backup > /root/marker; sync"); got != "lghs-chat" {
				t.Errorf("hostname over IPv4 = %q, want lghs-chat", got)
			}
			if got := sshRun(t, a6, p.signer, h.HostKeyCallback(), "cat /root/marker"); got != "before-backup" {
				t.Errorf("marker over IPv6 = %q", got)
			}
			// The disk survives a power cycle.
			for _, a := range []instance.ServerAction{instance.ServerActionPoweroff, instance.ServerActionPoweron} {
				timeout := 3 * time.Minute
				if err := p.api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{ServerID: p.server.ID, Action: a,
					Timeout: &timeout, RetryInterval: &fastPoll}); err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
			h = machines.Host(p.server.ID)
			if got := sshRun(t, a4, p.signer, h.HostKeyCallback(), "cat /root/marker"); got != "before-backup" {
				t.Errorf("marker after poweroff and poweron = %q, want the file written before", got)
			}
			// A listener the security group does not allow.
			sshRun(t, a4, p.signer, h.HostKeyCallback(),
				"systemd-run --unit=probe8080 python3 -m http.server 8080 --bind :: && "+
					"for i in $(seq 50); do curl -fsS -o /dev/null http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1")
			for _, a := range []netip.Addr{a4, a6} {
				if !reachable(a, 22) {
					t.Errorf("%s:22 unreachable from the box, the group allows it", a)
				}
				if reachable(a, 8080) {
					t.Errorf("%s:8080 reachable from the box, the group (inbound drop) does not allow it", a)
				}
			}
		},
		checkClone: func(t *testing.T, p *provisioned) {
			h := machines.Host(p.clone.ID)
			if h == nil {
				t.Fatal("running clone has no lab host")
			}
			a4, _ := netip.AddrFromSlice(p.clone.PublicIPs[0].Address.To4())
			if h.Addr4() != a4 {
				t.Fatalf("clone address %s, the API reports %s", h.Addr4(), a4)
			}
			got := sshRun(t, a4, p.signer, h.HostKeyCallback(), "hostname; cat /root/marker")
			if got != "lghs-chat-clone\nbefore-backup" {
				t.Errorf("clone hostname and marker = %q, want lghs-chat-clone and the file written before the backup", got)
			}
		},
	})

	if err := env.sim.WaitIdle(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{p.server.ID, p.clone.ID} {
		if h := lab.Host(hostName(id)); h != nil {
			t.Errorf("host of terminated server %s still in the lab", id)
		}
	}
	if _, err := os.Stat(rootLayer); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root layer %s of the terminated server: %v, want deleted", rootLayer, err)
	}
	if _, err := p.api.GetImage(&instance.GetImageRequest{ImageID: p.imageID}); err != nil {
		t.Errorf("backup image after terminate: %v, want kept", err)
	}
}

func TestLabEndToEndBookwormServerBoots(t *testing.T) {
	lab := openLab(t)
	machines, err := NewLabHosts(LabHostsConfig{Lab: lab, Dir: filepath.Join(t.TempDir(), "layers")})
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, func(c *Config) { c.Machines, c.Timings = machines, FastTimings() })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := env.sim.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	signer, pub := newTestSSHKey(t)
	if _, err := iam.NewAPI(env.client).CreateSSHKey(&iam.CreateSSHKeyRequest{Name: "k", PublicKey: pub, ProjectID: testProject}); err != nil {
		t.Fatal(err)
	}
	api := instance.NewAPI(env.client)
	srv, err := api.CreateServer(&instance.CreateServerRequest{Name: "old-stable", CommercialType: "DEV1-M",
		Image: scw.StringPtr("debian_bookworm")})
	if err != nil {
		t.Fatal(err)
	}
	timeout := 5 * time.Minute
	if err := api.ServerActionAndWait(&instance.ServerActionAndWaitRequest{ServerID: srv.Server.ID,
		Action: instance.ServerActionPoweron, Timeout: &timeout, RetryInterval: &fastPoll}); err != nil {
		t.Fatalf("power on: %v", err)
	}
	got, err := api.GetServer(&instance.GetServerRequest{ServerID: srv.Server.ID})
	if err != nil || len(got.Server.PublicIPs) != 1 || !got.Server.PublicIPs[0].Dynamic {
		t.Fatalf("server: %+v, %v; want its dynamic IPv4", got, err)
	}
	a4, _ := netip.AddrFromSlice(got.Server.PublicIPs[0].Address.To4())
	h := machines.Host(srv.Server.ID)
	if v := sshRun(t, a4, signer, h.HostKeyCallback(), "cut -d. -f1 /etc/debian_version"); v != "12" {
		t.Errorf("debian_version major = %q, want 12 (bookworm)", v)
	}
}
