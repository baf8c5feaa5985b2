package hostsetup

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
)

// adminInventory has the admin alice (the rig's key); {{user}} is how
// lghsctl logs in and {{root_login}} root's SSH login.
const adminInventory = `
version: 1
name: lab
dns:
  zones: [{name: example.test}]
ssh_keys:
  - name: alice
    public_key: "{{key}}"
admins:
  - name: alice
    ssh_keys: [alice]
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}, user: {{user}}}
    root_login: {{root_login}}
    unattended_upgrades: false
`

func (r *labRig) adminConfig(user, rootLogin string) Config {
	return r.config(r.inventory(strings.NewReplacer("{{user}}", user, "{{root_login}}", rootLogin).Replace(adminInventory)))
}

// TestLabRootLoginNoOnlyOnceTheAdminLogsIn: (the inventory refuses
// root_login: no while lghsctl logs in as root.) Once host setup has made
// the admin, a run logging in as the admin (through sudo: facts, file writes,
// sshd) proves the admin gets in, forbids root, proves it again, and root
// is then refused while the admin still gets in; the next run changes
// nothing in one remote command.
func TestLabRootLoginNoOnlyOnceTheAdminLogsIn(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 5*time.Minute)
	rig := newLabRig(t, lb, "rootlogin", "")

	rig.mustRun(ctx, "admin made, root still allowed", rig.adminConfig("root", "prohibit-password"), false)

	asRoot := rig.rcfg
	rig.rcfg.User, rig.rcfg.Sudo = "alice", true
	cfg := rig.adminConfig("alice", "no")
	var verified []string
	cfg.VerifyLogin = func(ctx context.Context, user string) error {
		verified = append(verified, user)
		return rig.verifyLogin(ctx, user)
	}
	lr := rig.mustRun(ctx, "root_login: no, logging in as alice", cfg, false)
	if got := lr.res.changed(); len(got) != 1 || got[0] != "sshd: hardening" {
		t.Errorf("changed %q, want sshd: hardening alone", got)
	}
	if strings.Join(verified, ",") != "alice,alice" {
		t.Errorf("logins verified: %q, want alice before and after the change", verified)
	}
	if got := strings.TrimSpace(rig.sh(ctx, "sshd -T | grep '^permitrootlogin '")); got != "permitrootlogin no" {
		t.Errorf("sshd: %q", got)
	}
	err := login(ctx, asRoot)
	var auth *remote.AuthError
	if !errors.As(err, &auth) {
		t.Errorf("root login after root_login: no: %v, want refused", err)
	}
	if err := rig.loginWorks(ctx); err != nil {
		t.Errorf("alice cannot log in: %v", err)
	}
	if lr := rig.mustRun(ctx, "again as alice", cfg, false); lr.recap.Changed != 0 || len(lr.ops) != 1 {
		t.Errorf("again: changed %v, %d remote operations", lr.res.changed(), len(lr.ops))
	}
}
