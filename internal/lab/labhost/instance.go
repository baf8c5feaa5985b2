package labhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A lab instance owns slot N on the box: the name lgl<N> (prefix of all its
// network namespaces, its box-side link and its cgroup), the address ranges
// of netPlan{N}, and the directory RunDir/inst/N. The owner holds an flock
// on RunDir/inst/N.lock for its whole life; the lock is the only liveness
// proof (a dead process's locks are released by the kernel, so pid reuse
// cannot fool it). Lock files are never deleted, so two processes can never
// lock different files for the same slot.

// instanceName is the resource prefix of slot n.
func instanceName(n int) string { return "lgl" + strconv.Itoa(n) }

// instanceState is what a slot's owner records for whoever reaps it.
type instanceState struct {
	Name    string    `json:"name"`
	PID     int       `json:"pid"`
	WorkDir string    `json:"work_dir"`
	Started time.Time `json:"started"`
}

func slotLock(runDir string, n int) string {
	return filepath.Join(runDir, "inst", strconv.Itoa(n)+".lock")
}

func slotDir(runDir string, n int) string {
	return filepath.Join(runDir, "inst", strconv.Itoa(n))
}

func readInstanceState(runDir string, n int) (instanceState, bool) {
	data, err := os.ReadFile(filepath.Join(slotDir(runDir, n), "state.json"))
	if err != nil {
		return instanceState{}, false
	}
	var st instanceState
	if json.Unmarshal(data, &st) != nil {
		return instanceState{}, false
	}
	return st, true
}

// Instance describes a lab slot on the box.
type Instance struct {
	// Name is the slot's resource prefix (lgl<N>).
	Name string
	// PID is the owner's process id as it recorded it (0 if unknown).
	PID int
	// Live says an owner holds the slot's lock right now.
	Live bool
	// Started is when the owner opened it.
	Started time.Time
}

// Instances lists the slots of runDir that are in use or hold leftovers of
// a dead owner (Live false). `lghsctl lab stop` can signal a live owner's
// PID; ReapDead cleans the others.
func Instances(runDir string) ([]Instance, error) {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	var out []Instance
	for n := range maxInstances {
		st, hasState := readInstanceState(runDir, n)
		if _, err := os.Stat(slotLock(runDir, n)); err != nil {
			continue
		}
		f, free, err := tryLockFile(slotLock(runDir, n))
		if err != nil {
			return out, err
		}
		if free {
			f.Close()
			if !hasState {
				continue
			}
		}
		out = append(out, Instance{Name: instanceName(n), PID: st.PID, Live: !free, Started: st.Started})
	}
	return out, nil
}

// ReapDead cleans up every slot of cfg.RunDir whose owner died, as the next
// Open would. It never touches a live lab.
func ReapDead(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	cg, err := findCgroupTree()
	if err != nil {
		return err
	}
	var errs []error
	for n := range maxInstances {
		if _, err := os.Stat(slotLock(cfg.RunDir, n)); err != nil {
			continue
		}
		f, free, err := tryLockFile(slotLock(cfg.RunDir, n))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !free {
			continue
		}
		errs = append(errs, reapInstance(ctx, runner{log: cfg.Logger}, cg, cfg.RunDir, n))
		f.Close()
	}
	return errors.Join(errs...)
}

// reapInstance removes everything slot n may have left: processes (by
// cgroup), network namespaces and the box link (by name), the apt proxy
// registration, the work directory and the slot's state. The caller holds
// the slot's lock. It is idempotent and works from names alone when the
// state file is missing.
func reapInstance(ctx context.Context, run runner, cg cgroupTree, runDir string, n int) error {
	name := instanceName(n)
	st, hasState := readInstanceState(runDir, n)
	var errs []error
	if err := cg.kill(ctx, name); err != nil {
		errs = append(errs, err)
	}
	if err := cg.remove(name); err != nil {
		errs = append(errs, err)
	}
	if linkExists(name + "-box") {
		if _, err := run.run(ctx, nil, "ip", "link", "del", name+"-box"); err != nil && linkExists(name+"-box") {
			errs = append(errs, fmt.Errorf("reap %s: %w", name, err))
		}
	}
	nss, _ := filepath.Glob("/run/netns/" + name + "-*")
	for _, ns := range nss {
		if _, err := run.run(ctx, nil, "ip", "netns", "del", filepath.Base(ns)); err != nil {
			if _, statErr := os.Stat(ns); statErr == nil {
				errs = append(errs, fmt.Errorf("reap %s: %w", name, err))
			}
		}
	}
	if err := releaseAptProxyUser(ctx, runDir, name); err != nil {
		errs = append(errs, err)
	}
	if hasState && st.WorkDir != "" && strings.HasSuffix(filepath.Clean(st.WorkDir), "/"+name) {
		if err := removeTree(st.WorkDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reap lab %s: %w", name, err)
	}
	if err := os.RemoveAll(slotDir(runDir, n)); err != nil {
		return fmt.Errorf("reap lab %s: %w", name, err)
	}
	if hasState && st.PID != os.Getpid() {
		run.log.Info("reaped dead lab", slog.String("lab", name), slog.Int("owner_pid", st.PID))
	}
	return nil
}

func linkExists(name string) bool {
	_, err := os.Lstat(filepath.Join("/sys/class/net", name))
	return err == nil
}

// claimSlot takes the first free slot, reaping dead owners' leftovers on
// the way (every free slot with leftovers is reaped, not just the one
// taken). It returns the slot number and its held lock.
func claimSlot(ctx context.Context, run runner, cg cgroupTree, runDir string) (int, *os.File, error) {
	if err := os.MkdirAll(filepath.Join(runDir, "inst"), 0o755); err != nil {
		return 0, nil, fmt.Errorf("claim lab slot: %w", err)
	}
	alloc, err := lockFile(ctx, filepath.Join(runDir, "alloc.lock"))
	if err != nil {
		return 0, nil, fmt.Errorf("claim lab slot: %w", err)
	}
	defer alloc.Close()
	chosen, slotFile := -1, (*os.File)(nil)
	for n := range maxInstances {
		f, free, err := tryLockFile(slotLock(runDir, n))
		if err != nil {
			return 0, nil, fmt.Errorf("claim lab slot: %w", err)
		}
		if !free {
			continue
		}
		if err := reapInstance(ctx, run, cg, runDir, n); err != nil {
			run.log.Warn("cannot reap dead lab; slot skipped", slog.String("lab", instanceName(n)), slog.Any("err", err))
			f.Close()
			continue
		}
		if chosen < 0 {
			chosen, slotFile = n, f
			continue
		}
		f.Close()
	}
	if chosen < 0 {
		return 0, nil, fmt.Errorf("claim lab slot: all %d slots of %s are in use", maxInstances, runDir)
	}
	return chosen, slotFile, nil
}

func writeInstanceState(runDir string, n int, st instanceState) error {
	dir := slotDir(runDir, n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record lab %s: %w", st.Name, err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "state.json"), data, 0o644)
}

// watchdogScript runs (through flock(1)) once the owner's slot lock is
// released, i.e. when the owner died without closing the lab: it stops
// everything that runs (hosts, by cgroup; the apt proxy when no other lab
// uses it) and deletes the network, so a killed test leaves nothing
// running. Files are left to the next Open or ReapDead.
const watchdogScript = `
set +e
for d in $LAB_CGDIRS; do [ -e "$d/cgroup.kill" ] && echo 1 > "$d/cgroup.kill"; done
i=0
while [ $i -lt 100 ]; do
  pids=$(for d in $LAB_CGDIRS; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done)
  [ -z "$pids" ] && break
  kill -9 $pids 2>/dev/null
  sleep 0.1
  i=$((i+1))
done
for d in $LAB_CGDIRS; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
ip link del "$LAB_NAME-box" 2>/dev/null
for f in /run/netns/"$LAB_NAME"-*; do [ -e "$f" ] && ip netns del "${f##*/}"; done
if [ -d "$LAB_APTDIR" ]; then
  exec 9>>"$LAB_APTDIR/lock"
  flock 9
  rm -f "$LAB_APTDIR/users/$LAB_NAME.lock"
  live=0
  for u in "$LAB_APTDIR"/users/*.lock; do
    [ -e "$u" ] || continue
    if flock -n "$u" true; then rm -f "$u"; else live=1; fi
  done
  if [ $live = 0 ] && [ -s "$LAB_APTDIR/pid" ]; then
    pid=$(cat "$LAB_APTDIR/pid")
    [ "$(cat /proc/$pid/comm 2>/dev/null)" = apt-cacher-ng ] && kill "$pid"
  fi
fi
`

// startWatchdog starts the dead man's switch of slot n: flock(1) waits for
// the slot's lock, which it gets only when the owner is gone. It runs in
// its own session with no stdio, so terminal signals and `go test`'s
// output pipes do not involve it.
func startWatchdog(runDir string, n int, cg cgroupTree) (*exec.Cmd, error) {
	name := instanceName(n)
	cmd := exec.Command("flock", slotLock(runDir, n), "sh", "-c", watchdogScript)
	cmd.Env = append(boxEnv(),
		"LAB_NAME="+name,
		"LAB_CGDIRS="+strings.Join(cg.dirs(name), " "),
		"LAB_APTDIR="+aptProxyDir(runDir),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start watchdog of lab %s: %w", name, err)
	}
	return cmd, nil
}

// stopWatchdog kills a watchdog that is still waiting for the lock.
func stopWatchdog(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Wait()
}

// errNotExist reports fs.ErrNotExist-like errors.
func errNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
