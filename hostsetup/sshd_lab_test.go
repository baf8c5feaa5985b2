package hostsetup

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/report"
)

// sshdState is what the lockout tests look at on the host, read without
// SSH: the drop-in's digest ("" when absent), whether a staged copy was
// left behind, whether the rollback timer is armed, how many times sshd
// reloaded, and the login-relevant part of sshd's effective configuration.
type sshdState struct {
	dropIn    string
	staged    bool
	timer     bool
	reloads   int
	effective string
}

func (r *labRig) sshdState(ctx context.Context) sshdState {
	r.t.Helper()
	var s sshdState
	s.dropIn = r.fileDigest(ctx, sshdDropIn)
	s.staged = r.fileDigest(ctx, sshdStaged) != ""
	out, _ := r.shErr(ctx, "systemctl is-active "+rollbackUnit+".timer")
	s.timer = strings.TrimSpace(out) == "active"
	// sshd logs the signal when it handles it, after systemctl reload
	// returned: let it, and journald, catch up.
	time.Sleep(300 * time.Millisecond)
	n := strings.TrimSpace(r.sh(ctx, "journalctl --sync; journalctl -u ssh.service --no-pager -o cat | grep -c 'Received SIGHUP' || true"))
	s.reloads, _ = strconv.Atoi(n)
	s.effective = r.sh(ctx, "sshd -T | grep -E '^(allowusers|subsystem|maxauthtries|passwordauthentication) ' | sort")
	return s
}

// loginWorks proves that a new connection with lghsctl's key still gets in
// and runs a command. sshd re-executes itself on a reload and refuses
// connections meanwhile, so connection errors are retried for a few
// seconds; an authentication or host key error is the answer.
func (r *labRig) loginWorks(ctx context.Context) error {
	return login(ctx, r.rcfg)
}

func login(ctx context.Context, cfg remote.Config) error {
	var err error
	for range 20 {
		var c *remote.Client
		if c, err = remote.Dial(ctx, cfg); err == nil {
			_, err = c.Run(ctx, "true", nil)
			c.Close()
			return err
		}
		var auth *remote.AuthError
		var changed *remote.HostKeyChangedError
		if errors.As(err, &auth) || errors.As(err, &changed) || ctx.Err() != nil {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

func (r *labRig) sshdConfig(extra ...string) Config {
	cfg := r.config(r.inventory(sshOnlyInventory))
	cfg.SSHDExtra = extra
	return cfg
}

// TestLabSSHDConfigThatSSHDTRejectsIsNeverInstalled: a hardening drop-in
// that sshd -t refuses never becomes sshd's configuration, on a fresh
// host (nothing installed) and over a converged one (the installed file
// stays as it was), sshd is never reloaded with it, no staged copy or
// armed timer is left behind, and lghsctl still logs in. On bookworm a
// drop-in that passes sshd -t alone but breaks the whole configuration
// (a second Subsystem sftp: OpenSSH 9.2 refuses it, 10.0 keeps the first)
// is caught by the check after it is moved into place and put back before
// any reload.
func TestLabSSHDConfigThatSSHDTRejectsIsNeverInstalled(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	for _, release := range []string{labhost.Trixie, labhost.Bookworm} {
		t.Run(release, func(t *testing.T) {
			ctx := labCtx(t, 5*time.Minute)
			rig := newLabRig(t, lb, "sshdt-"+release, release)
			// reloadOK: the whole-configuration check restores the file
			// and reloads sshd with the previous one (harmless).
			rejected := func(what string, cfg Config, before sshdState, wantErr string, reloadOK bool) {
				t.Helper()
				lr := rig.run(ctx, what, cfg, false)
				x, _ := lr.task("sshd: hardening")
				if lr.err == nil || x.Status != report.Failed || !strings.Contains(x.Message, wantErr) {
					t.Fatalf("%s: sshd: hardening %s %q, want failed with %q", what, x.Status, x.Message, wantErr)
				}
				after := rig.sshdState(ctx)
				if reloadOK {
					after.reloads = before.reloads
				}
				if after != before {
					t.Errorf("%s: sshd state changed:\nbefore %+v\nafter  %+v", what, before, after)
				}
				if err := rig.loginWorks(ctx); err != nil {
					t.Errorf("%s: lghsctl cannot log in any more: %v", what, err)
				}
			}
			fresh := rig.sshdState(ctx)
			if fresh.dropIn != "" {
				t.Fatalf("a fresh host has %s", sshdDropIn)
			}
			rejected("bad directive on a fresh host", rig.sshdConfig("NoSuchKeyword yes"), fresh, "sshd -t rejected the new hardening configuration; nothing was installed", false)

			rig.mustRun(ctx, "hardening", rig.sshdConfig(), false)
			converged := rig.sshdState(ctx)
			if converged.dropIn == "" || !strings.Contains(converged.effective, "maxauthtries 3") {
				t.Fatalf("hardening not in effect: %+v", converged)
			}
			rejected("bad directive over the installed hardening", rig.sshdConfig("NoSuchKeyword yes"), converged, "sshd -t rejected the new hardening configuration; nothing was installed", false)

			if release == labhost.Bookworm {
				rejected("a second Subsystem sftp (valid alone, not in the whole configuration)", rig.sshdConfig("Subsystem sftp internal-sftp"), converged,
					"install sshd hardening (the previous configuration is back in place)", true)
			}
		})
	}
}

// TestLabSSHDChangeThatLocksTheKeyOutIsRolledBack: a drop-in that sshd -t
// accepts but that shuts lghsctl's key out (AllowUsers nobody) is
// installed and reloaded, the second login fails, and host setup restores
// the previous drop-in over the connection it still has: a new connection
// works afterwards, the previous file is back, the timer is disarmed.
func TestLabSSHDChangeThatLocksTheKeyOutIsRolledBack(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	for _, release := range []string{labhost.Trixie, labhost.Bookworm} {
		t.Run(release, func(t *testing.T) {
			ctx := labCtx(t, 5*time.Minute)
			rig := newLabRig(t, lb, "lock-"+release, release)
			rig.mustRun(ctx, "hardening", rig.sshdConfig(), false)
			before := rig.sshdState(ctx)

			var verifyErr error
			cfg := rig.sshdConfig("AllowUsers nobody")
			cfg.VerifyLogin = func(ctx context.Context, user string) error {
				verifyErr = rig.verifyLogin(ctx, user)
				return verifyErr
			}
			lr := rig.run(ctx, "AllowUsers nobody", cfg, false)
			x, _ := lr.task("sshd: hardening")
			if lr.err == nil || !strings.Contains(x.Message, "new logins failed after the sshd change, so it was rolled back") {
				t.Fatalf("sshd: hardening %s %q", x.Status, x.Message)
			}
			var auth *remote.AuthError
			if !errors.As(verifyErr, &auth) {
				t.Errorf("the second login should have failed to authenticate (the lockout), got %v", verifyErr)
			}
			after := rig.sshdState(ctx)
			if after.dropIn != before.dropIn || after.staged || after.timer || after.effective != before.effective {
				t.Errorf("not rolled back:\nbefore %+v\nafter  %+v", before, after)
			}
			if after.reloads <= before.reloads {
				t.Errorf("sshd did not reload (%d → %d): the lockout was never in effect", before.reloads, after.reloads)
			}
			if err := rig.loginWorks(ctx); err != nil {
				t.Errorf("host unreachable after the rollback: %v", err)
			}
			if lr := rig.mustRun(ctx, "hardening again", rig.sshdConfig(), false); lr.recap.Changed != 0 {
				t.Errorf("the restored hardening is not the converged one: %v", lr.res.changed())
			}
		})
	}
}

// TestLabSSHDTimerRestoresAccessWhenTheConnectionDiesAfterTheReload: the
// controlling connection is closed right after sshd reloads a drop-in
// that locks the key out, so host setup can neither confirm nor restore;
// the timer armed on the host before the change puts the previous drop-in
// back by itself within RollbackAfter, and a new connection gets in again.
func TestLabSSHDTimerRestoresAccessWhenTheConnectionDiesAfterTheReload(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	for _, release := range []string{labhost.Trixie, labhost.Bookworm} {
		t.Run(release, func(t *testing.T) {
			ctx := labCtx(t, 5*time.Minute)
			rig := newLabRig(t, lb, "timer-"+release, release)
			rig.mustRun(ctx, "hardening", rig.sshdConfig(), false)
			before := rig.sshdState(ctx)

			const rollbackAfter = 5 * time.Second
			var reloaded time.Time
			var verifyErr error
			var armed bool
			cfg := rig.sshdConfig("AllowUsers nobody")
			cfg.RollbackAfter = rollbackAfter
			cfg.VerifyLogin = func(ctx context.Context, user string) error {
				// One attempt, right away: the lockout is in effect.
				verifyErr = rig.loginWorks(ctx)
				return verifyErr
			}
			lr := rig.run(ctx, "AllowUsers nobody, connection killed after the reload", cfg, false, func(hs *Run, c *remote.Client) {
				hs.cfg.afterSSHDReload = func() {
					reloaded = time.Now()
					c.Close()
					out, _ := rig.shErr(ctx, "systemctl is-active "+rollbackUnit+".timer")
					armed = strings.TrimSpace(out) == "active"
				}
			})
			if reloaded.IsZero() {
				t.Fatalf("sshd never reloaded: %v", lr.err)
			}
			x, _ := lr.task("sshd: hardening")
			if lr.err == nil || !strings.Contains(x.Message, "the host's timer restores the previous configuration within 5s") {
				t.Errorf("sshd: hardening %s %q", x.Status, x.Message)
			}
			var auth *remote.AuthError
			if !errors.As(verifyErr, &auth) {
				t.Fatalf("the second login should have been locked out, got %v", verifyErr)
			}
			if !armed {
				t.Error("no rollback timer armed on the host when the connection died")
			}
			var err error
			for time.Since(reloaded) < rollbackAfter+30*time.Second {
				if err = rig.loginWorks(ctx); err == nil {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("host still unreachable %v after the reload: %v", time.Since(reloaded).Round(time.Second), err)
			}
			back := time.Since(reloaded)
			if back < rollbackAfter-time.Second {
				t.Errorf("reachable again after %v, before the timer could fire: was it locked out at all?", back)
			}
			t.Logf("reachable again %v after the reload (timer %v)", back.Round(100*time.Millisecond), rollbackAfter)
			after := rig.sshdState(ctx)
			if after.dropIn != before.dropIn || after.effective != before.effective || after.timer {
				t.Errorf("not restored:\nbefore %+v\nafter  %+v", before, after)
			}
			if lr := rig.mustRun(ctx, "hardening again", rig.sshdConfig(), false); lr.recap.Changed != 0 {
				t.Errorf("the restored hardening is not the converged one: %v", lr.res.changed())
			}
		})
	}
}

// TestLabSSHDChangeTheTimerRevertedBeforeTheConfirmationIsNotReported:
// when verifying the new login takes longer than RollbackAfter, the
// on-host timer restores the previous drop-in before host setup confirms;
// the step must then fail saying so, not report the change as made (the
// host has the previous configuration), and the next run installs it.
func TestLabSSHDChangeTheTimerRevertedBeforeTheConfirmationIsNotReported(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 5*time.Minute)
	rig := newLabRig(t, lb, "slowverify", "")
	rig.mustRun(ctx, "hardening", rig.sshdConfig(), false)
	before := rig.sshdState(ctx)

	cfg := rig.sshdConfig("ClientAliveInterval 300")
	cfg.RollbackAfter = time.Second
	cfg.VerifyLogin = func(ctx context.Context, user string) error {
		time.Sleep(3 * time.Second) // a slow link, a loaded host
		return rig.verifyLogin(ctx, user)
	}
	lr := rig.run(ctx, "verification slower than the rollback timer", cfg, false)
	after := rig.sshdState(ctx)
	if after.dropIn != before.dropIn {
		t.Fatalf("the timer did not restore the previous drop-in: %+v", after)
	}
	x, _ := lr.task("sshd: hardening")
	if x.Status != report.Failed || !strings.Contains(x.Message, "the rollback timer fired before the change was confirmed") {
		t.Errorf("sshd: hardening %s %q, but the host has the previous drop-in", x.Status, x.Message)
	}
	lr = rig.mustRun(ctx, "again with the default timer", rig.sshdConfig("ClientAliveInterval 300"), false)
	if got := lr.res.changed(); len(got) != 1 || got[0] != "sshd: hardening" {
		t.Errorf("changed %q, want sshd: hardening", got)
	}
	if got := rig.sshdState(ctx); !strings.Contains(rig.sh(ctx, "sshd -T | grep ^clientaliveinterval"), "300") || got.timer {
		t.Errorf("not installed: %+v", got)
	}
}
