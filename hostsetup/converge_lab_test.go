package hostsetup

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// TestLabHostSetupConvergesAndReportsDrift is issue #6's convergence
// acceptance on a real Debian host of each supported release, through
// lghsctl's SSH transport, one connection per run as up makes it:
//   - check mode on the fresh host plans every task with the facts
//     command alone, and the host stays as it was;
//   - a fresh host converges in one run (and the result is checked on the
//     host, not taken from the report);
//   - a second run reports changed=0 and costs at most two remote
//     commands;
//   - check mode on a drifted host (a managed file edited, a package
//     removed, a service stopped) reports exactly that drift, sends no
//     command that changes anything, and the host is still drifted after;
//   - applying then fixes exactly the drift, and the run after is a no-op.
func TestLabHostSetupConvergesAndReportsDrift(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	for _, release := range []string{labhost.Trixie, labhost.Bookworm} {
		t.Run(release, func(t *testing.T) { convergeAndDrift(t, lb, release) })
	}
}

func convergeAndDrift(t *testing.T, lb *labhost.Lab, release string) {
	ctx := labCtx(t, 15*time.Minute)
	rig := newLabRig(t, lb, "conv-"+release, release)
	cfg := rig.config(rig.inventory(labInventory))

	ok := t.Run("check mode on the fresh host plans every task and changes nothing", func(t *testing.T) {
		lr := rig.mustRun(ctx, "check mode on a fresh "+release+" host", cfg, true)
		want := []string{"apt: packages", "apt: unattended upgrades", "admin alice", "sshd: hardening", "docker: daemon.json", "service docker",
			"directories", "nginx: temporary certificates", "nginx: sites", "service nginx", "restart docker", "reload nginx"}
		if got := lr.res.changed(); !slices.Equal(got, want) {
			t.Errorf("check mode planned %q\nwant %q", got, want)
		}
		if len(lr.ops) != 1 {
			t.Errorf("check mode sent %q, want the facts command alone", lr.ops)
		}
		if got := rig.sh(ctx, "dpkg-query -W -f='${db:Status-Abbrev}\\n' nginx docker.io tmux 2>/dev/null | grep -c ^ii; getent passwd alice; find /etc/ssh/sshd_config.d /srv -mindepth 1"); got != "0\n" {
			t.Errorf("check mode changed the host: %q", got)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("fresh host converges in one run", func(t *testing.T) {
		lr := rig.mustRun(ctx, "first run on a fresh "+release+" host", cfg, false)
		if lr.recap.Changed == 0 || lr.recap.Failed != 0 {
			t.Fatalf("recap %+v", lr.recap)
		}
		// What the inventory asks for, as the host has it.
		checks := map[string]string{
			"packages":        "dpkg-query -W -f='${db:Status-Abbrev}\\n' tmux vim rsync nginx docker.io unattended-upgrades sudo | sort -u",
			"services":        "systemctl is-active ssh nginx docker | sort -u",
			"admin":           "id -un alice && stat -c '%U %a' /home/alice/.ssh/authorized_keys && grep -c lghsctl-lab /home/alice/.ssh/authorized_keys",
			"sudoers":         "visudo -cqf /etc/sudoers.d/lghsctl-alice && echo valid",
			"sshd":            "sshd -T | grep -E '^(passwordauthentication|permitrootlogin|maxauthtries) ' | sort",
			"directories":     "stat -c '%n %a %U' /srv/chat.example.test /srv/chat.example.test/data",
			"daemon.json":     "grep -c max-size /etc/docker/daemon.json",
			"site":            "readlink /etc/nginx/sites-enabled/chat.example.test.conf; [ ! -e /etc/nginx/sites-enabled/default ] && echo no-default",
			"nginx answers":   "curl -sk -o /dev/null -w '%{http_code}' --resolve chat.example.test:443:127.0.0.1 https://chat.example.test/",
			"docker log opts": "docker info --format '{{.LoggingDriver}}'",
		}
		want := map[string]string{
			"packages":        "ii",
			"services":        "active",
			"admin":           "alice\nalice 600\n1",
			"sudoers":         "valid",
			"sshd":            "maxauthtries 3\npasswordauthentication no\npermitrootlogin without-password",
			"directories":     "/srv/chat.example.test 755 root\n/srv/chat.example.test/data 750 root",
			"daemon.json":     "1",
			"site":            "/etc/nginx/sites-available/chat.example.test.conf\nno-default",
			"nginx answers":   "502", // nginx is up; nothing listens on [::1]:3000 yet
			"docker log opts": "json-file",
		}
		for name, cmd := range checks {
			got, err := rig.shErr(ctx, cmd)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if strings.TrimSpace(got) != want[name] {
				t.Errorf("%s: %q, want %q", name, strings.TrimSpace(got), want[name])
			}
		}
	})
	if !ok {
		return
	}

	ok = t.Run("second run changes nothing with at most two remote commands", func(t *testing.T) {
		lr := rig.mustRun(ctx, "second run", cfg, false)
		if lr.recap.Changed != 0 {
			t.Errorf("changed=%d on a converged host: %v", lr.recap.Changed, lr.res.changed())
		}
		if len(lr.ops) > 2 {
			t.Errorf("%d remote commands on a converged host, want at most 2: %q", len(lr.ops), lr.ops)
		}
	})
	if !ok {
		return
	}

	t.Run("check mode on a drifted host reports exactly the drift and changes nothing", func(t *testing.T) {
		rig.sh(ctx, `printf '{"log-driver": "journald"}\n' > /etc/docker/daemon.json`)
		rig.sh(ctx, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q rsync >/dev/null")
		rig.sh(ctx, "systemctl stop nginx")
		drifted := func() {
			t.Helper()
			if got := rig.sh(ctx, "cat /etc/docker/daemon.json"); got != "{\"log-driver\": \"journald\"}\n" {
				t.Errorf("daemon.json after check mode: %q", got)
			}
			if got := rig.sh(ctx, "dpkg-query -W -f='${db:Status-Abbrev}' rsync 2>/dev/null || true"); strings.HasPrefix(got, "ii") {
				t.Errorf("rsync installed again by check mode: %q", got)
			}
			if got, _ := rig.shErr(ctx, "systemctl is-active nginx"); strings.TrimSpace(got) == "active" {
				t.Error("nginx started by check mode")
			}
		}
		lr := rig.mustRun(ctx, "check mode on the drifted host", cfg, true)
		want := []string{"apt: packages", "docker: daemon.json", "service nginx", "restart docker"}
		if got := lr.res.changed(); !slices.Equal(got, want) {
			t.Errorf("check mode reported %q, want exactly %q", got, want)
		}
		if x, _ := lr.task("apt: packages"); !strings.Contains(x.Message, "rsync") || strings.Contains(x.Message, "tmux") {
			t.Errorf("apt: packages says %q, want rsync alone", x.Message)
		}
		if x, _ := lr.task("service nginx"); x.Message != "would start" {
			t.Errorf("service nginx says %q in check mode, want \"would start\"", x.Message)
		}
		if x, _ := lr.task("docker: daemon.json"); !strings.Contains(x.Diff, `-{"log-driver": "journald"}`) || !strings.Contains(x.Diff, `+  "log-driver": "json-file",`) {
			t.Errorf("daemon.json diff:\n%s", x.Diff)
		}
		// The facts command, then only reads (for the diff).
		for i, op := range lr.ops {
			if i > 0 && !strings.HasPrefix(op, "read ") {
				t.Errorf("check mode sent %q", op)
			}
		}
		drifted()

		lr = rig.mustRun(ctx, "apply on the drifted host", cfg, false)
		if got := lr.res.changed(); !slices.Equal(got, want) {
			t.Errorf("apply changed %q, want exactly %q", got, want)
		}
		if got := strings.TrimSpace(rig.sh(ctx, "systemctl is-active nginx docker | sort -u; dpkg-query -W -f='${db:Status-Abbrev}' rsync; grep -c json-file /etc/docker/daemon.json")); got != "active\nii 1" {
			t.Errorf("after apply: %q", got)
		}
		lr = rig.mustRun(ctx, "run after the fix", cfg, false)
		if lr.recap.Changed != 0 {
			t.Errorf("run after the fix changed %v", lr.res.changed())
		}
	})
}
