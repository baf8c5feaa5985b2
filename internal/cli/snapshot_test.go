package cli

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/lghs/lghsctl/provision"
)

// serverOf returns the lab's server named name.
func (l *cloudLab) serverOf(name string) provision.Server {
	l.t.Helper()
	for _, s := range l.world().servers {
		if s.Name == name {
			return s
		}
	}
	l.t.Fatalf("no server %s", name)
	return provision.Server{}
}

func (l *cloudLab) backups() []provision.Backup {
	l.t.Helper()
	r := l.mustRun(0, "snapshot", "list", "--json")
	var out struct {
		Backups []provision.Backup `json:"backups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		l.t.Fatalf("snapshot list --json: %v\n%s", err, r)
	}
	return out.Backups
}

func TestSnapshotCreateListRestorePrune(t *testing.T) {
	l := newCloudLab(t, labInventory)
	l.mustRun(0, "up")
	orig := l.serverOf("lghs-chat")
	root := orig.Volumes[0].ID
	if err := l.machines.WriteFile(root, "/srv/chat/marker", "before the upgrade"); err != nil {
		t.Fatal(err)
	}

	// create waits for the snapshots, not only the image.
	r := l.mustRun(0, "snapshot", "create", "--name", "before-upgrade")
	if !strings.Contains(r.stdout, "changed: [lghs-chat] backup") || !strings.Contains(r.stdout, "image before-upgrade") {
		t.Errorf("snapshot create:\n%s", r)
	}
	ims, err := l.api().Images(context.Background(), "fr-par-1", nil)
	if err != nil || len(ims) != 1 {
		t.Fatalf("images %v %v", ims, err)
	}
	im := ims[0]
	if !slices.Contains(im.Tags, "lghsctl=lghs-lab") || !slices.Contains(im.Tags, "lghsctl-host=lghs-chat") || !slices.Contains(im.Tags, "lghsctl-backup") {
		t.Errorf("image tags %v", im.Tags)
	}
	for _, ref := range im.Snapshots {
		sn, err := l.api().Snapshot(context.Background(), "fr-par-1", ref)
		if err != nil || sn.State != provision.SnapshotAvailable || !slices.Contains(sn.Tags, "lghsctl-host=lghs-chat") {
			t.Errorf("snapshot %s when create returned: %+v %v; want available and tagged", ref.ID, sn, err)
		}
	}

	// The server lives on; a second, default-named backup.
	if err := l.machines.WriteFile(root, "/srv/chat/marker", "after the upgrade"); err != nil {
		t.Fatal(err)
	}
	l.mustRun(0, "snapshot", "create")
	bs := l.backups()
	if len(bs) != 2 || bs[1].Name != "before-upgrade" || !strings.HasPrefix(bs[0].Name, "lghs-chat-") || bs[0].Size != 40e9 || bs[0].State != "available" {
		t.Fatalf("backups %+v", bs)
	}
	list := l.mustRun(0, "snapshot", "list")
	if !strings.Contains(list.stdout, "before-upgrade") || !strings.Contains(list.stdout, "40.0 GB") || !strings.Contains(list.stdout, "NAME") {
		t.Errorf("snapshot list:\n%s", list.stdout)
	}

	// Restore the first backup as a clone, like the runbook's lghs-chat-test.
	r = l.mustRun(0, "snapshot", "restore", "before-upgrade", "--as", "lghs-chat-test")
	for _, want := range []string{"+   server lghs-chat-test (DEV1-M fr-par-1, image " + im.ID, "clone of lghs-chat",
		"+   A lghs-chat-test.lghs-space.test", "+   ip lghs-chat-test"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("restore lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "chat.lghs-be.test") {
		t.Errorf("the clone took the public name:\n%s", r.stdout)
	}
	clone := l.serverOf("lghs-chat-test")
	if clone.State != provision.StateRunning || clone.SecurityGroup != orig.SecurityGroup || !slices.Contains(clone.Tags, "lghsctl-clone-of=lghs-chat") {
		t.Errorf("clone %+v", clone)
	}
	got, ok := l.machines.ReadFile(clone.Volumes[0].ID, "/srv/chat/marker")
	if !ok || got != "before the upgrade" {
		t.Errorf("the clone's root has marker %q (%v), want the content at backup time", got, ok)
	}
	var cloneV4 string
	for _, ip := range clone.IPs {
		if ip.Address.Is4() {
			cloneV4 = ip.Address.String()
		}
		for _, oip := range orig.IPs {
			if oip.Address == ip.Address {
				t.Errorf("the clone shares address %s with the original", ip.Address)
			}
		}
	}
	if a := l.resolve("lghs-chat-test.lghs-space.test", dns.TypeA); !slices.Equal(a, []string{cloneV4}) {
		t.Errorf("A lghs-chat-test.lghs-space.test = %v, want [%s]", a, cloneV4)
	}
	if aaaa := l.resolve("lghs-chat-test.lghs-space.test", dns.TypeAAAA); len(aaaa) != 1 {
		t.Errorf("AAAA lghs-chat-test.lghs-space.test = %v", aaaa)
	}

	// Restoring again converges; up leaves the clone alone.
	l.resetCalls()
	l.mustRun(0, "snapshot", "restore", "before-upgrade", "--as", "lghs-chat-test")
	l.mustRun(0, "up")
	if s, c := l.writes(); s+c != 0 {
		t.Errorf("restore again and up made %d+%d writes", s, c)
	}

	// Prune keeps the newest.
	l.mustRun(ExitUsage, "snapshot", "prune", "--keep", "0")
	r = l.mustRun(0, "snapshot", "prune", "--keep", "1", "--check")
	if !strings.Contains(r.stdout, "-   image before-upgrade") || len(l.backups()) != 2 {
		t.Errorf("prune --check:\n%s", r.stdout)
	}
	l.mustRun(0, "snapshot", "prune", "--keep", "1")
	bs = l.backups()
	if len(bs) != 1 || bs[0].Name == "before-upgrade" {
		t.Errorf("after prune: %+v", bs)
	}
	for _, ref := range im.Snapshots {
		if _, err := l.api().Snapshot(context.Background(), "fr-par-1", ref); err == nil {
			t.Errorf("snapshot %s of the pruned image is still there", ref.ID)
		}
	}

	// The clone goes with destroy; the group stays for the original.
	r = l.mustRun(0, "destroy", "lghs-chat-test", "--yes")
	if !strings.Contains(r.stdout, "left behind: security group hardened-conf kept: 1 other server(s) use it") {
		t.Errorf("destroy of the clone:\n%s", r.stdout)
	}
	w := l.world()
	if len(w.servers) != 1 || len(w.ips) != 2 || len(w.groups) != 1 || len(w.records) != 4 {
		t.Errorf("after destroying the clone: %d servers, %d IPs, %d groups, %d records", len(w.servers), len(w.ips), len(w.groups), len(w.records))
	}
	l.checkConverged()
}
