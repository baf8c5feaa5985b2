package labhost

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers lists what of the lab instance name (e.g. "lgl3") still exists
// on the box: network namespaces, its box link, cgroups, processes in
// them or started as its hosts, and mounts. After Close (or after a dead
// owner was reaped) it must be empty; tests assert that.
func Leftovers(name string) []string {
	var out []string
	nss, _ := filepath.Glob("/run/netns/" + name + "-*")
	for _, ns := range nss {
		out = append(out, "network namespace "+filepath.Base(ns))
	}
	if linkExists(name + "-box") {
		out = append(out, "link "+name+"-box")
	}
	if cg, err := findCgroupTree(); err == nil {
		for _, d := range cg.dirs(name) {
			if _, err := os.Stat(d); err == nil {
				out = append(out, "cgroup "+d)
			}
		}
		if pids, _ := cg.procs(name); len(pids) > 0 {
			for _, pid := range pids {
				out = append(out, "process "+procDesc(pid)+" in the lab's cgroup")
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if bytes.Contains(data, []byte("--machine="+name+"-")) {
			out = append(out, "process "+procDesc(pidOf(p))+" (a host of the lab)")
		}
	}
	if mps, err := mountPoints(); err == nil {
		for _, m := range mps {
			if strings.Contains(m, "/instances/"+name+"/") || strings.HasPrefix(m, "/run/netns/"+name+"-") {
				out = append(out, "mount "+m)
			}
		}
	}
	return out
}

func pidOf(procPath string) int {
	var pid int
	for _, c := range strings.TrimPrefix(filepath.Dir(procPath), "/proc/") {
		pid = pid*10 + int(c-'0')
	}
	return pid
}

func procDesc(pid int) string {
	data, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	cmd := strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
	if len(cmd) > 120 {
		cmd = cmd[:120] + "…"
	}
	return strconv.Itoa(pid) + " (" + cmd + ")"
}
