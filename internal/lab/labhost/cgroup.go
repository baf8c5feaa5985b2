package labhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupTree is where the lab puts its processes: a directory in the cgroup
// v2 (unified) hierarchy and, on hybrid boxes, the matching directory in the
// v1 name=systemd hierarchy. Each host gets its own sub-directory:
// systemd-nspawn --keep-unit otherwise puts every container in the same
// "payload" cgroup of the root, where one host's systemd could see and kill
// another's processes.
type cgroupTree struct {
	// unified is the cgroup2 mount point; v1 the name=systemd one ("" if
	// none).
	unified, v1 string
}

// cgroupRoot is the directory all labs' cgroups live in, below each
// hierarchy's mount point.
const cgroupRoot = "lghsctl-lab"

func findCgroupTree() (cgroupTree, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return cgroupTree{}, fmt.Errorf("find cgroups: %w", err)
	}
	defer f.Close()
	var t cgroupTree
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || fields[3] != "/" {
			continue
		}
		mp, fstype, super := unescapeMountField(fields[4]), fields[sep+1], fields[sep+3]
		switch {
		case fstype == "cgroup2" && t.unified == "":
			t.unified = mp
		case fstype == "cgroup" && strings.Contains(","+super+",", ",name=systemd,") && t.v1 == "":
			t.v1 = mp
		}
	}
	if t.unified == "" {
		return t, errors.New("find cgroups: no cgroup2 hierarchy mounted (the lab needs cgroup v2 or hybrid)")
	}
	return t, nil
}

// dirs returns the cgroup directories for rel (relative to cgroupRoot),
// unified first.
func (t cgroupTree) dirs(rel string) []string {
	out := []string{filepath.Join(t.unified, cgroupRoot, rel)}
	if t.v1 != "" {
		out = append(out, filepath.Join(t.v1, cgroupRoot, rel))
	}
	return out
}

func (t cgroupTree) create(rel string) error {
	for _, d := range t.dirs(rel) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
	}
	return nil
}

// procs lists the processes in rel's unified cgroup and all its children.
func (t cgroupTree) procs(rel string) ([]int, error) {
	var pids []int
	root := t.dirs(rel)[0]
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return pids, fmt.Errorf("list processes of cgroup %s: %w", root, err)
	}
	return pids, nil
}

// kill kills every process in rel's cgroup subtree (cgroup.kill where the
// kernel has it, SIGKILL one by one otherwise) and waits until it is empty.
func (t cgroupTree) kill(ctx context.Context, rel string) error {
	root := t.dirs(rel)[0]
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_ = os.WriteFile(filepath.Join(root, "cgroup.kill"), []byte("1"), 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := t.procs(rel)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill cgroup %s: %d processes survive SIGKILL: %v", root, len(pids), pids)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill cgroup %s: %w", root, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// remove removes rel's (empty) cgroup directories, children first. Missing
// directories are not an error.
func (t cgroupTree) remove(rel string) error {
	var errs []error
	for _, root := range t.dirs(rel) {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// freeze freezes (or thaws) every process in rel's cgroup subtree and waits
// until the kernel reports it done.
func (t cgroupTree) freeze(ctx context.Context, rel string, frozen bool) error {
	root := t.dirs(rel)[0]
	v := "0"
	if frozen {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.freeze"), []byte(v), 0); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", root, err)
	}
	want := "frozen " + v
	for {
		data, err := os.ReadFile(filepath.Join(root, "cgroup.events"))
		if err != nil {
			return fmt.Errorf("freeze cgroup %s: %w", root, err)
		}
		if strings.Contains(string(data), want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("freeze cgroup %s: %w", root, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
