package hostsetup

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
)

// markerCommand is the forced command of lghsctl's key in these tests: it
// logs every command the key runs on the host, then runs it.
const markerCommand = `#!/bin/sh
printf '%s\n' "$SSH_ORIGINAL_COMMAND" | head -1 >> /run/lghsctl-commands
exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
`

// TestLabChangedHostKeyStopsTheRunBeforeAnyCommand: once lghsctl has
// pinned a host's key, a host presenting another key (re-keyed, or an
// impostor at its address) is refused during the SSH handshake: the run
// reports the host unreachable with the key change, runs no step, and not
// a single command reaches the host, as a forced command that logs every
// command run with lghsctl's key proves (it logs the first run's).
func TestLabChangedHostKeyStopsTheRunBeforeAnyCommand(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 5*time.Minute)
	rig := newLabRig(t, lb, "rekey", "")
	rig.put(ctx, "/usr/local/bin/lghsctl-marker", 0o755, []byte(markerCommand))
	rig.sh(ctx, `sed -i 's|^ssh-ed25519 \(.*lghsctl-lab\)$|command="/usr/local/bin/lghsctl-marker" ssh-ed25519 \1|' /root/.ssh/authorized_keys && grep -c '^command=' /root/.ssh/authorized_keys`)
	commands := func() string {
		out, _ := rig.shErr(ctx, "cat /run/lghsctl-commands 2>/dev/null")
		return out
	}

	cfg := rig.sshdConfig()
	// The first run pins the host's key (known from the lab, as from the
	// cloud API) and reaches the host through the marker.
	rig.mustRun(ctx, "first run", cfg, false)
	if got := commands(); !strings.Contains(got, "LC_ALL=C; export LC_ALL") {
		t.Fatalf("the marker did not log the facts command of the first run: %q", got)
	}
	rig.sh(ctx, "rm -f /run/lghsctl-commands")

	rig.sh(ctx, "rm -f /etc/ssh/ssh_host_*_key* && ssh-keygen -A -q && systemctl restart ssh.service")
	for i := 0; !labtest.TCPAnswers(rig.h.SSHAddr()); i++ {
		if i == 50 {
			t.Fatal("sshd does not answer after its restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	lr := rig.run(ctx, "run after the host key changed", cfg, false)
	if lr.err == nil || lr.recap.Unreachable != 1 {
		t.Fatalf("recap %+v, err %v: want the host unreachable", lr.recap, lr.err)
	}
	if len(lr.res.list) != 1 || lr.res.list[0].Task != "connect" || lr.res.list[0].Status != report.Unreachable ||
		!strings.Contains(lr.res.list[0].Message, "changed: the server presented") {
		t.Errorf("want only connect unreachable naming the host key, got %+v", lr.res.list)
	}
	if len(lr.ops) != 0 {
		t.Errorf("operations reached the host: %q", lr.ops)
	}
	if got := commands(); got != "" {
		t.Errorf("commands ran on the host with lghsctl's key after its host key changed: %q", got)
	}
	_, err := rig.dial(ctx)
	var changed *remote.HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Errorf("dial after the change: %v, want a *remote.HostKeyChangedError", err)
	}
	if got := commands(); got != "" {
		t.Errorf("commands ran on the host: %q", got)
	}
}
