package labhost_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// TestTwoHostsBootInParallelServeSSHAptDockerReachEachOtherAndLeaveNothing
// is issue #3's acceptance test: two hosts boot in parallel; SSH with the
// host key the lab reported works on both; systemd is up; nginx installs
// through the apt proxy; a locally built image runs in Docker and answers
// inside its host; hosts reach each other and the box over IPv4 and IPv6;
// shaping slows a transfer measurably both ways; and closing the lab
// leaves no namespace, link, cgroup, process or mount behind.
func TestTwoHostsBootInParallelServeSSHAptDockerReachEachOtherAndLeaveNothing(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 15*time.Minute)
	signer, authKey := labtest.Key(t)
	image := httpdImage(t)

	hosts := make([]*labhost.Host, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i], errs[i] = l.Start(ctx, labhost.Spec{Name: fmt.Sprintf("web%d", i+1), AuthorizedKeys: []string{authKey}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start host %d: %v", i+1, err)
		}
		h := hosts[i]
		t.Cleanup(func() { _ = h.Remove(context.Background()) })
	}
	t.Logf("two hosts up in parallel in %v", time.Since(start).Round(time.Millisecond))
	a, b := hosts[0], hosts[1]

	clients := make([]*ssh.Client, 2)
	for i, h := range hosts {
		if fp := h.Fingerprint(); !strings.HasPrefix(fp, "SHA256:") || h.HostKey().Type() != ssh.KeyAlgoED25519 {
			t.Fatalf("%s: host key %s %s", h.Name(), h.HostKey().Type(), fp)
		}
		var seen ssh.PublicKey
		c, err := ssh.Dial("tcp", h.SSHAddr(), &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second,
			HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
			HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
				seen = key
				return ssh.FixedHostKey(h.HostKey())(host, remote, key)
			},
		})
		if err != nil {
			t.Fatalf("ssh to %s with its reported ed25519 key pinned: %v", h.Name(), err)
		}
		t.Cleanup(func() { c.Close() })
		if ssh.FingerprintSHA256(seen) != h.Fingerprint() {
			t.Fatalf("%s presented %s, lab reported %s", h.Name(), ssh.FingerprintSHA256(seen), h.Fingerprint())
		}
		clients[i] = c
		// Every other key the lab reported is the one sshd serves for
		// that algorithm.
		for _, k := range h.HostKeys() {
			c2, err := ssh.Dial("tcp", h.SSHAddr(), &ssh.ClientConfig{
				User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second,
				HostKeyAlgorithms: []string{algoFor(k)}, HostKeyCallback: ssh.FixedHostKey(k),
			})
			if err != nil {
				t.Fatalf("ssh to %s pinning its %s key: %v", h.Name(), k.Type(), err)
			}
			c2.Close()
		}
		state, _ := labtest.SSHOutput(c, "systemctl is-system-running --wait")
		failed, _ := labtest.SSHOutput(c, "systemctl list-units --failed --plain --no-legend | awk '{print $1}'")
		checkBooted(t, h.Name(), state, failed)
		if got := strings.TrimSpace(labtest.SSH(t, c, "hostname")); got != h.Hostname() {
			t.Errorf("%s: hostname %q", h.Name(), got)
		}
	}
	ca, cb := clients[0], clients[1]

	// apt through the lab's proxy, on both hosts at once.
	var aptErrs [2]error
	var aptTook [2]time.Duration
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			// docker.io as lghsctl installs it: with its recommends (on
			// trixie the docker CLI is one).
			cmd := "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx"
			if i == 0 {
				cmd += " docker.io"
			}
			_, aptErrs[i] = labtest.SSHOutput(c, cmd)
			aptTook[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	for i, err := range aptErrs {
		if err != nil {
			t.Fatalf("apt on %s: %v", hosts[i].Name(), err)
		}
	}
	t.Logf("apt install took %v (nginx + docker.io) and %v (nginx)", aptTook[0].Round(time.Millisecond), aptTook[1].Round(time.Millisecond))
	if got := labtest.SSH(t, ca, "cat /etc/apt/apt.conf.d/00lghsctl-lab-proxy"); !strings.Contains(got, l.AptProxyURL()) {
		t.Errorf("apt proxy configuration: %q, want %s", got, l.AptProxyURL())
	}
	if got := labtest.SSH(t, cb, "curl -sS http://127.0.0.1/"); !strings.Contains(got, "Welcome to nginx") {
		t.Errorf("nginx on %s answers %q", b.Name(), got)
	}

	// Docker: a locally built image, imported, published on loopback.
	if err := a.ImportImage(ctx, bytes.NewReader(image), "lab/httpd:1", `ENTRYPOINT ["/httpd"]`); err != nil {
		t.Fatal(err)
	}
	labtest.SSH(t, ca, "docker run -d --name web -p 127.0.0.1:3000:8080 lab/httpd:1")
	got, err := labtest.SSHOutput(ca, "for i in $(seq 50); do curl -sS http://127.0.0.1:3000/ && exit 0; sleep 0.2; done; exit 1")
	if err != nil || strings.TrimSpace(got) != "hello from a lab container" {
		t.Fatalf("container on %s: %q, %v", a.Name(), got, err)
	}
	if out, _ := a.Output(ctx, "docker", "info", "--format", "{{.Driver}}"); strings.TrimSpace(string(out)) != "overlay2" {
		t.Errorf("docker storage driver %q, want overlay2", out)
	}

	// Host to host, both families, and the box over IPv6.
	for _, target := range []netip.Addr{b.Addr4(), b.Addr6()} {
		cmd := fmt.Sprintf("timeout 5 bash -c 'exec 3<>/dev/tcp/%s/22; head -c 4 <&3'", target)
		if got := labtest.SSH(t, ca, cmd); got != "SSH-" {
			t.Errorf("%s -> %s:22: %q", a.Name(), target, got)
		}
	}
	if !labtest.TCPAnswers(netip.AddrPortFrom(a.Addr6(), 22).String()) {
		t.Errorf("box -> [%s]:22 does not answer", a.Addr6())
	}
	boxLn, err := net.Listen("tcp", netip.AddrPortFrom(l.BoxAddr4(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer boxLn.Close()
	go func() {
		for {
			c, err := boxLn.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("box"))
			c.Close()
		}
	}()
	port := boxLn.Addr().(*net.TCPAddr).Port
	if got := labtest.SSH(t, cb, fmt.Sprintf("timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d; cat <&3'", l.BoxAddr4(), port)); got != "box" {
		t.Errorf("%s -> box %s:%d: %q", b.Name(), l.BoxAddr4(), port, got)
	}

	// Shaping: 20 Mbit/s each way must show in both directions.
	const size = 6 << 20
	down := func() float64 {
		return mbps(t, size, func() { labtest.SSH(t, ca, fmt.Sprintf("head -c %d /dev/zero", size)) })
	}
	up := func() float64 {
		return mbps(t, size, func() {
			s, err := ca.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Stdin = bytes.NewReader(make([]byte, size))
			if err := s.Run("cat > /dev/null"); err != nil {
				t.Fatal(err)
			}
		})
	}
	freeDown, freeUp := down(), up()
	if err := a.Shape(ctx, labhost.Shape{Rate: 20_000_000}); err != nil {
		t.Fatal(err)
	}
	shapedDown, shapedUp := down(), up()
	t.Logf("throughput from/to %s: unshaped %.0f/%.0f Mbit/s, shaped at 20 Mbit/s %.1f/%.1f Mbit/s", a.Name(), freeDown, freeUp, shapedDown, shapedUp)
	for _, v := range []struct {
		what        string
		free, shape float64
	}{{"host to box", freeDown, shapedDown}, {"box to host", freeUp, shapedUp}} {
		if v.shape > 26 || v.shape < 8 {
			t.Errorf("%s shaped at 20 Mbit/s ran at %.1f Mbit/s", v.what, v.shape)
		}
		if v.free < 2*v.shape {
			t.Errorf("%s unshaped ran at %.1f Mbit/s, not clearly faster than shaped %.1f", v.what, v.free, v.shape)
		}
	}
	if err := a.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if restored := down(); restored < 2*shapedDown {
		t.Errorf("after Restore %.1f Mbit/s, still shaped", restored)
	}

	// Everything goes with the lab.
	name := l.Name()
	ca.Close()
	cb.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Close checked it under the slot's lock; check again from outside
	// unless another lab has taken the slot since.
	left := labhost.Leftovers(name)
	if insts, _ := labhost.Instances(""); slices.ContainsFunc(insts, func(i labhost.Instance) bool { return i.Name == name && i.Live }) {
		t.Logf("slot %s taken by another lab after Close; not checking from outside", name)
	} else if len(left) > 0 {
		t.Fatalf("left behind after Close:\n%s", strings.Join(left, "\n"))
	}
}

func algoFor(k ssh.PublicKey) string {
	if k.Type() == ssh.KeyAlgoRSA {
		return ssh.KeyAlgoRSASHA256
	}
	return k.Type()
}

// mbps times fn, which moves size bytes, in Mbit/s.
func mbps(t *testing.T, size int, fn func()) float64 {
	t.Helper()
	t0 := time.Now()
	fn()
	return float64(size) * 8 / time.Since(t0).Seconds() / 1e6
}
