package labhost_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

func sameKeys(a, b []ssh.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Marshal(), b[i].Marshal()) {
			return false
		}
	}
	return true
}

// TestStopKeepsTheDiskAndStartBootsItWithTheSameKeysAndAddresses is a
// server's power cycle: what was written survives, the identity does not
// change, and while stopped nothing of the host runs.
func TestStopKeepsTheDiskAndStartBootsItWithTheSameKeysAndAddresses(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	signer, key := labtest.Key(t)
	h := labtest.Host(t, l, labhost.Spec{Name: "cycle", AuthorizedKeys: []string{key}})
	labtest.SSH(t, labtest.Dial(t, h, signer), "echo kept > /root/marker && sync")
	keys, v4, v6 := h.HostKeys(), h.Addr4(), h.Addr6()

	if err := h.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if h.Running() || h.PID() != 0 {
		t.Fatalf("stopped host: running %v, pid %d", h.Running(), h.PID())
	}
	if _, err := os.Stat("/run/netns/" + h.Netns()); !os.IsNotExist(err) {
		t.Errorf("network namespace of a stopped host: %v", err)
	}
	for _, left := range labhost.Leftovers(l.Name()) {
		if strings.Contains(left, "cycle") {
			t.Errorf("stopped host left %s", left)
		}
	}
	if reach(h.Addr4(), 22, "") {
		t.Error("a stopped host answers")
	}
	if err := h.Stop(ctx); err != nil {
		t.Errorf("stopping twice: %v", err)
	}

	t0 := time.Now()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("power-on from the kept layer took %v", time.Since(t0).Round(time.Millisecond))
	if err := h.Start(ctx); err != nil {
		t.Errorf("starting a running host: %v", err)
	}
	if !sameKeys(keys, h.HostKeys()) || h.Addr4() != v4 || h.Addr6() != v6 {
		t.Error("identity changed across a power cycle")
	}
	if got := labtest.SSH(t, labtest.Dial(t, h, signer), "cat /root/marker"); got != "kept\n" {
		t.Errorf("marker after power cycle: %q", got)
	}
}

// TestPoweroffAndRebootFromInsideBehaveLikeAServer: poweroff ends the boot
// (Done closes) and Start powers it on again; reboot comes back by itself.
func TestPoweroffAndRebootFromInsideBehaveLikeAServer(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	signer, key := labtest.Key(t)
	h := labtest.Host(t, l, labhost.Spec{Name: "inside", AuthorizedKeys: []string{key}})

	pid := h.PID()
	c := labtest.Dial(t, h, signer)
	_, _ = labtest.SSHOutput(c, "systemctl reboot")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p := h.PID(); p != 0 && p != pid && reach(h.Addr4(), 22, "") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host did not come back after reboot: %s", h.ConsoleLog())
		}
		time.Sleep(200 * time.Millisecond)
	}
	labtest.SSH(t, labtest.Dial(t, h, signer), "true")

	done := h.Done()
	if _, err := h.Output(ctx, "systemctl", "poweroff"); err != nil {
		t.Logf("poweroff: %v", err) // the command may die with the host
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("poweroff from inside did not end the boot")
	}
	time.Sleep(500 * time.Millisecond) // would a reboot follow? it must not
	if h.Running() {
		t.Fatal("host runs again after poweroff")
	}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	labtest.SSH(t, labtest.Dial(t, h, signer), "true")
}

// TestCallerOwnedLayerOutlivesItsHostAndBootsAnother is the Scaleway
// stand-in's volume: kept by Remove, booted again by a new host.
func TestCallerOwnedLayerOutlivesItsHostAndBootsAnother(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	signer, key := labtest.Key(t)
	dir := filepath.Join(t.TempDir(), "volume")
	a, err := l.Start(ctx, labhost.Spec{Name: "vol-a", LayerDir: dir, AuthorizedKeys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	labtest.SSH(t, labtest.Dial(t, a, signer), "echo persisted > /root/marker")
	keys := a.HostKeys()
	if err := a.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "layer.json")); err != nil {
		t.Fatalf("caller-owned layer gone after Remove: %v", err)
	}
	b := labtest.Host(t, l, labhost.Spec{Name: "vol-b", LayerDir: dir})
	if !sameKeys(keys, b.HostKeys()) {
		t.Error("same disk, different host keys")
	}
	if got := labtest.SSH(t, labtest.Dial(t, b, signer), "cat /root/marker"); got != "persisted\n" {
		t.Errorf("marker on the second host: %q", got)
	}
	if err := l.RemoveLayer(ctx, dir); err == nil {
		t.Error("RemoveLayer removed the layer of a running host")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "layer.json")); err != nil {
		t.Errorf("caller-owned layer gone after Close: %v", err)
	}
}

// TestCopyLayerOfARunningHostBootsACloneWithItsDataAndNewKeys is a hot
// snapshot turned into a new server.
func TestCopyLayerOfARunningHostBootsACloneWithItsDataAndNewKeys(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 10*time.Minute)
	signer, key := labtest.Key(t)
	a := labtest.Host(t, l, labhost.Spec{Name: "orig", AuthorizedKeys: []string{key}})
	ca := labtest.Dial(t, a, signer)
	labtest.SSH(t, ca, "echo snap > /root/marker")
	dst := filepath.Join(t.TempDir(), "clone")
	t0 := time.Now()
	if err := l.CopyLayer(ctx, a.LayerDir(), dst); err != nil {
		t.Fatal(err)
	}
	t.Logf("copying a running host's layer took %v", time.Since(t0).Round(time.Millisecond))
	if got := labtest.SSH(t, ca, "echo alive"); got != "alive\n" {
		t.Fatalf("original after the copy: %q", got)
	}
	if err := l.CopyLayer(ctx, a.LayerDir(), dst); err == nil {
		t.Error("copying onto an existing layer succeeded")
	}
	b := labtest.Host(t, l, labhost.Spec{Name: "clone", LayerDir: dst, NewHostKeys: true})
	if sameKeys(a.HostKeys(), b.HostKeys()) {
		t.Error("the clone kept the original's host keys despite NewHostKeys")
	}
	if got := labtest.SSH(t, labtest.Dial(t, b, signer), "cat /root/marker"); got != "snap\n" {
		t.Errorf("clone's marker: %q", got)
	}
}
