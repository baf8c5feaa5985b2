package hostsetup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/lghs/lghsctl/internal/task"
)

// The hardening drop-in is named to sort before every other file of
// sshd_config.d: sshd keeps the first value it reads for most keywords, and
// Debian's sshd_config includes the directory at its top.
const (
	sshdDropIn    = "/etc/ssh/sshd_config.d/00-lghsctl-hardening.conf"
	sshdBackup    = "/var/lib/lghsctl/sshd-hardening.previous"
	sshdStaged    = "/etc/ssh/sshd_config.d/.00-lghsctl-hardening.conf.lghsctl-new"
	rollbackUnit  = "lghsctl-sshd-rollback"
	sshdUnit      = "ssh.service"
	sshdKexLegacy = "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512"
)

var opensshVersion = regexp.MustCompile(`^(?:\d+:)?(\d+)\.(\d+)p`)

// opensshAtLeast reads a Debian openssh-server version like 1:9.2p1-2.
func opensshAtLeast(v string, major, minor int) bool {
	m := opensshVersion.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return a > major || (a == major && b >= minor)
}

// sshdConfig renders the hardening drop-in for the host's OpenSSH.
func (r *Run) sshdConfig() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Managed by lghsctl (%s). Read before the other files of sshd_config.d: first match wins.\n", r.cfg.Inventory.Name)
	b.WriteString("PubkeyAuthentication yes\n")
	b.WriteString("PasswordAuthentication no\n")
	b.WriteString("KbdInteractiveAuthentication no\n")
	b.WriteString("PermitEmptyPasswords no\n")
	fmt.Fprintf(&b, "PermitRootLogin %s\n", r.cfg.Host.RootLogin)
	b.WriteString("MaxAuthTries 3\n")
	b.WriteString("LoginGraceTime 30\n")
	b.WriteString("X11Forwarding no\n")
	kex := sshdKexLegacy
	if opensshAtLeast(r.facts.Packages["openssh-server"], 9, 9) {
		kex = "mlkem768x25519-sha256," + kex // post-quantum hybrid, OpenSSH 9.9+
	}
	fmt.Fprintf(&b, "KexAlgorithms %s\n", kex)
	b.WriteString("Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr\n")
	b.WriteString("MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com\n")
	for _, extra := range r.cfg.SSHDExtra {
		b.WriteString(extra + "\n")
	}
	return b.Bytes()
}

// rollbackScript restores the previous drop-in (or removes ours when there
// was none) and reloads sshd.
const rollbackScript = "if [ -f " + sshdBackup + " ]; then cp -p " + sshdBackup + " " + sshdDropIn + "; else rm -f " + sshdDropIn + "; fi; " +
	"systemctl reload " + sshdUnit + " || systemctl restart " + sshdUnit

// sshdStep installs the hardening drop-in without ever locking lghsctl
// out: the new file is checked alone and as part of the whole
// configuration with sshd -t before sshd reloads it; a timer armed on the
// host beforehand restores the previous file unless lghsctl confirms, over
// a second, new SSH connection, that logging in still works.
func (r *Run) sshdStep() task.Step {
	return task.Step{Name: "sshd: hardening", Run: func(ctx context.Context, env task.Env) (task.Result, error) {
		f := File{Path: sshdDropIn, Content: r.sshdConfig(), Mode: 0o644}
		fact := r.facts.Path(sshdDropIn)
		contentOK, metaOK := fileState(f, fact)
		if contentOK && metaOK {
			return task.Unchanged(), nil
		}
		res := task.Changedf("installed %s and reloaded sshd", sshdDropIn)
		if env.Diff {
			res.Diff = r.fileDiff(ctx, env, f, fact)
		}
		if env.Check {
			res.Message = "would install " + sshdDropIn + " and reload sshd"
			return res, nil
		}
		if r.cfg.VerifyLogin == nil {
			return task.Result{}, errors.New("refusing to change sshd without a way to verify a new login (internal: VerifyLogin not set)")
		}
		login := r.cfg.Host.SSH.User
		if login == "" {
			login = "root"
		}
		if r.cfg.Host.RootLogin == "no" {
			// Only forbid root once a non-root admin is proven to get in.
			if login == "root" {
				return task.Result{}, errors.New("root_login: no needs ssh.user to be an admin, or lghsctl itself would be locked out")
			}
			if err := r.cfg.VerifyLogin(ctx, login); err != nil {
				return task.Result{}, fmt.Errorf("not disabling root login: admin %s cannot log in with a key yet: %w", login, err)
			}
		}
		if err := r.host.WriteFile(ctx, sshdStaged, f.Content, 0o644, "root", "root"); err != nil {
			return task.Result{}, fmt.Errorf("stage sshd configuration: %w", err)
		}
		if _, err := r.host.Run(ctx, fmt.Sprintf("sshd -t -f %s || { rm -f %s; exit 1; }", sshdStaged, sshdStaged), nil); err != nil {
			return task.Result{}, fmt.Errorf("sshd -t rejected the new hardening configuration; nothing was installed: %w", err)
		}
		install := strings.Join([]string{
			"set -e",
			"mkdir -p /var/lib/lghsctl",
			fmt.Sprintf("if [ -f %s ]; then cp -p %s %s; else rm -f %s; fi", sshdDropIn, sshdDropIn, sshdBackup, sshdBackup),
			fmt.Sprintf("systemctl stop %s.timer >/dev/null 2>&1 || true", rollbackUnit),
			fmt.Sprintf("systemctl reset-failed %s.service %s.timer >/dev/null 2>&1 || true", rollbackUnit, rollbackUnit),
			// Armed before anything changes: if this connection dies after
			// the reload, the host restores the previous file by itself.
			fmt.Sprintf("systemd-run --quiet --unit=%s --on-active=%d --timer-property=AccuracySec=1s /bin/sh -c %s",
				rollbackUnit, int(r.cfg.RollbackAfter.Seconds()), quote(rollbackScript)),
			fmt.Sprintf("mv -f %s %s", sshdStaged, sshdDropIn),
			fmt.Sprintf("if ! sshd -t; then %s; systemctl stop %s.timer; exit 3; fi", rollbackScript, rollbackUnit),
			"systemctl reload " + sshdUnit,
		}, "\n")
		if _, err := r.host.Run(ctx, install, nil); err != nil {
			return task.Result{}, fmt.Errorf("install sshd hardening (the previous configuration is back in place): %w", err)
		}
		if r.cfg.afterSSHDReload != nil {
			r.cfg.afterSSHDReload()
		}
		if err := r.cfg.VerifyLogin(ctx, login); err != nil {
			// Restore now, over the connection that is still open.
			_, rbErr := r.host.Run(ctx, rollbackScript+"; systemctl stop "+rollbackUnit+".timer", nil)
			if rbErr != nil {
				return task.Result{}, fmt.Errorf("new logins fail after the sshd change (%v), and restoring failed too (%v); the host's timer restores the previous configuration within %s", err, rbErr, r.cfg.RollbackAfter)
			}
			return task.Result{}, fmt.Errorf("new logins failed after the sshd change, so it was rolled back: %w", err)
		}
		// The timer may have fired while the login was being verified (a
		// slow link): the previous file is then back, and the change must
		// not be reported as made. A pending timer is "waiting"; a fired
		// one "elapsed" (or gone).
		confirm := fmt.Sprintf("if [ \"$(systemctl show -p SubState --value %s.timer)\" != waiting ]; then echo fired; exit 0; fi; systemctl stop %s.timer; rm -f %s",
			rollbackUnit, rollbackUnit, sshdBackup)
		out, err := r.host.Run(ctx, confirm, nil)
		if err != nil {
			return task.Result{}, fmt.Errorf("confirm sshd change (disarm rollback timer): %w", err)
		}
		if strings.TrimSpace(string(out)) == "fired" {
			return task.Result{}, fmt.Errorf("the new login was verified, but the rollback timer fired before the change was confirmed (after %s): the previous sshd configuration is back; run again", r.cfg.RollbackAfter)
		}
		r.facts.Paths[sshdDropIn] = PathFact{Type: "file", Mode: 0o644, Owner: "root", Group: "root", SHA256: digest(f.Content)}
		return res, nil
	}}
}
