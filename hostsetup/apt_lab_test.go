package hostsetup

import (
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// pendingUpgrade makes a package upgrade pending on a host: lab-dummy 1
// installed, lab-dummy 2 in a local repository apt knows (the lab's
// mirror is whatever Debian has today, so it may have nothing to
// upgrade). The package lists are made two hours old, as on a server
// lghsctl has not touched for a while.
const pendingUpgrade = `set -e
mk() {
  d=$(mktemp -d); mkdir "$d/DEBIAN"
  printf 'Package: lab-dummy\nVersion: %s\nArchitecture: all\nMaintainer: lab <lab@example.test>\nDescription: lab package\n' "$1" > "$d/DEBIAN/control"
  dpkg-deb --build "$d" "$2" >/dev/null; rm -r "$d"
}
mkdir -p /srv/labrepo
mk 1 /root/lab-dummy_1_all.deb
dpkg -i /root/lab-dummy_1_all.deb >/dev/null
mk 2 /srv/labrepo/lab-dummy_2_all.deb
cd /srv/labrepo
{ dpkg-deb -f lab-dummy_2_all.deb
  echo "Filename: ./lab-dummy_2_all.deb"
  echo "Size: $(stat -c %s lab-dummy_2_all.deb)"
  echo "SHA256: $(sha256sum lab-dummy_2_all.deb | cut -d' ' -f1)"
  echo; } > Packages
echo 'deb [trusted=yes] file:/srv/labrepo ./' > /etc/apt/sources.list.d/labrepo.list
apt-get update -q >/dev/null
touch -d '2 hours ago' /var/lib/apt/lists/*Packages*
`

// TestLabFirstRunInstallsAndUpgradesOnAHostWithoutSites: with
// dist_upgrade on, the first run on a host without sites (so without
// nginx) installs the packages and upgrades what is pending, although the
// packages step already refreshed the lists; the second run, lists fresh,
// changes nothing in one remote command (no upgrade simulation).
func TestLabFirstRunInstallsAndUpgradesOnAHostWithoutSites(t *testing.T) {
	lb := labtest.Lab(t, labhost.Config{})
	ctx := labCtx(t, 10*time.Minute)
	rig := newLabRig(t, lb, "dist", "")
	rig.sh(ctx, pendingUpgrade)
	if out := rig.sh(ctx, "apt-get -s dist-upgrade | grep '^Inst'"); !strings.HasPrefix(out, "Inst lab-dummy [1] (2 ") {
		t.Fatalf("no pending upgrade: %q", out)
	}
	cfg := rig.config(rig.inventory(`
version: 1
name: lab
dns:
  zones: [{name: example.test}]
hosts:
  - name: h1
    provider: none
    ssh: {address: {{address}}}
    unattended_upgrades: false
    dist_upgrade: true
    packages: [tmux]
`))
	lr := rig.mustRun(ctx, "first run", cfg, false)
	if x, _ := lr.task("apt: packages"); x.Message != "installed tmux" {
		t.Errorf("apt: packages says %q", x.Message)
	}
	if x, _ := lr.task("apt: dist-upgrade"); x.Message != "upgraded 1 packages" {
		t.Errorf("apt: dist-upgrade %s %q, want the pending upgrade made", x.Status, x.Message)
	}
	if got := rig.sh(ctx, "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' lab-dummy; dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' tmux"); got != "lab-dummy 2 ii \ntmux ii \n" {
		t.Errorf("installed: %q, want lab-dummy 2 and tmux", got)
	}
	lr = rig.mustRun(ctx, "second run", cfg, false)
	if lr.recap.Changed != 0 || len(lr.ops) != 1 {
		t.Errorf("second run: changed %v with %d remote operations %q", lr.res.changed(), len(lr.ops), lr.ops)
	}
}
