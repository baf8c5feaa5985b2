package labhost_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// TestHelperProcessOwnsALab is not a test: the killed-owner tests run the
// test binary again with LABHOST_HELPER_READY set, and this opens a lab,
// starts a host, reports the lab's name in that file and waits to be
// killed.
func TestHelperProcessOwnsALab(t *testing.T) {
	ready := os.Getenv("LABHOST_HELPER_READY")
	if ready == "" {
		t.Skip("helper process of the killed-owner tests")
	}
	ctx := context.Background()
	l, err := labhost.Open(ctx, labhost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Start(ctx, labhost.Spec{Name: "orphan"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ready, []byte(l.Name()), 0o644); err != nil {
		t.Fatal(err)
	}
	select {}
}

// startOwner runs the helper and returns it with its lab's name once its
// host is up.
func startOwner(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessOwnsALab$", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), "LABHOST_HELPER_READY="+ready)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if data, err := os.ReadFile(ready); err == nil && len(data) > 0 {
			name := string(data)
			if len(labhost.Leftovers(name)) == 0 {
				t.Fatalf("owner reported lab %s but nothing of it exists", name)
			}
			return cmd, name
		}
		if time.Now().After(deadline) {
			t.Fatal("helper owner did not start its host")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitNoLeftovers(t *testing.T, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := labhost.Leftovers(name)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab %s still has, %v after its owner died:\n%s", name, within, strings.Join(left, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKilledOwnerLeavesNothingRunning: SIGKILL the process that owns a lab
// with a running host; its watchdog stops the host and deletes the network
// within seconds, without anyone opening a lab.
func TestKilledOwnerLeavesNothingRunning(t *testing.T) {
	labtest.Require(t)
	cmd, name := startOwner(t)
	t0 := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitNoLeftovers(t, name, 15*time.Second)
	t.Logf("watchdog cleaned lab %s %v after its owner was killed", name, time.Since(t0).Round(time.Millisecond))
	if err := labhost.ReapDead(context.Background(), labhost.Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(labhost.DefaultCacheDir(), "instances", name)); !os.IsNotExist(err) {
		t.Errorf("work directory of the dead lab survived ReapDead: %v", err)
	}
}

// TestDeadOwnerWithoutWatchdogIsReaped: owner and watchdog both killed (an
// OOM kill, say): the host keeps running until ReapDead (or the next Open)
// removes it, and the live labs of other processes are not touched.
func TestDeadOwnerWithoutWatchdogIsReaped(t *testing.T) {
	live := labtest.Lab(t, labhost.Config{})
	liveHost := labtest.Host(t, live, labhost.Spec{Name: "bystander"})
	cmd, name := startOwner(t)
	n, err := strconv.Atoi(strings.TrimPrefix(name, "lgl"))
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(labhost.DefaultRunDir, "inst", strconv.Itoa(n)+".lock")
	watchdog := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		args := strings.Split(string(data), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "flock" && args[1] == lock {
			stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
			if f := strings.Fields(string(stat)); len(f) > 3 && f[3] == strconv.Itoa(cmd.Process.Pid) {
				watchdog, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
			}
		}
	}
	if watchdog == 0 {
		t.Fatalf("no watchdog of %s found", name)
	}
	if err := syscall.Kill(watchdog, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	time.Sleep(time.Second)
	if left := labhost.Leftovers(name); !strings.Contains(strings.Join(left, "\n"), "process") {
		t.Fatalf("with its watchdog dead too, the host should still run; left: %q", left)
	}
	if err := labhost.ReapDead(context.Background(), labhost.Config{}); err != nil {
		t.Fatal(err)
	}
	waitNoLeftovers(t, name, 5*time.Second)
	if !liveHost.Running() || !reach(liveHost.Addr4(), 22, "") {
		t.Error("reaping a dead lab disturbed a live one")
	}
}
