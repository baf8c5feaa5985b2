package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/lghs/lghsctl/internal/lab/cfsim"
)

func TestDestroyRemovesExactlyWhatUpMadeAndNothingElse(t *testing.T) {
	l := newCloudLab(t, labInventory)
	before := l.world()
	l.mustRun(0, "up")
	// Someone else's records, at a managed name and elsewhere.
	comment := "the mail setup"
	if _, err := l.cf.AddRecord(l.zones["lghs-be.test"].ID, cfsim.Record{Name: "chat.lghs-be.test", Type: "TXT", Content: `"v=spf1 -all"`, TTL: 300, Comment: &comment}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.cf.AddRecord(l.zones["lghs-be.test"].ID, cfsim.Record{Name: "www.lghs-be.test", Type: "A", Content: "192.0.2.80", TTL: 300}); err != nil {
		t.Fatal(err)
	}
	l.mustRun(0, "snapshot", "create", "--name", "last-one")

	// The plan, then a wrong confirmation: nothing is deleted.
	r := l.runCtx(context.Background(), "lghs\n", "destroy", "lghs-chat")
	if r.code != ExitFailure || !strings.Contains(r.stdout, `Type "lghs-chat" to confirm`) || !strings.Contains(r.stdout, "not confirmed: nothing was deleted") {
		t.Fatalf("destroy with a wrong confirmation: %s", r)
	}
	for _, want := range []string{"-   A chat.lghs-be.test", "-   AAAA lghs-chat-prod.lghs-space.test", "-   server lghs-chat (DEV1-M fr-par-1, running",
		"-   volume lghs-chat (l_ssd 40.0 GB of lghs-chat)", "-   ip lghs-chat (ipv4 ", "-   ip lghs-chat (ipv6 ", "-   security group hardened-conf (fr-par-1)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("destroy plan lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "www.lghs-be.test") || strings.Contains(r.stdout, "-   TXT") {
		t.Errorf("destroy plans to delete someone else's record:\n%s", r.stdout)
	}

	// The last backup is not deleted without --force.
	l.resetCalls()
	r = l.runCtx(context.Background(), "", "destroy", "--with-backups", "--yes")
	if r.code != ExitFailure || !strings.Contains(r.stdout, "this would delete the last backup of lghs-chat") {
		t.Fatalf("destroy --with-backups: %s", r)
	}
	if s, c := l.writes(); s+c != 0 {
		t.Fatalf("refused destroys wrote: %d Scaleway, %d Cloudflare", s, c)
	}

	// The server's host keys, pinned by up's first login, next to another
	// host's.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(pub)
	var pins []string
	for _, srv := range l.world().servers {
		for _, ip := range srv.IPs {
			pins = append(pins, knownhosts.Line([]string{ip.Address.String()}, key))
		}
	}
	other := knownhosts.Line([]string{"escandalo.example.test"}, key)
	khFile := l.write("known_hosts", strings.Join(append(pins, other), "\n")+"\n")

	// Confirmed by typing the name.
	r = l.runCtx(context.Background(), "lghs-chat\n", "destroy", "lghs-chat")
	if r.code != 0 {
		t.Fatalf("destroy: %s", r)
	}
	// A new server given the same address must not meet the old key.
	if kh, _ := os.ReadFile(khFile); len(pins) != 2 || string(kh) != other+"\n" {
		t.Errorf("known_hosts after destroy (pinned %d addresses):\n%s", len(pins), kh)
	}
	for _, want := range []string{"changed: [lghs-chat] delete dns records", "changed: [lghs-chat] delete server", "changed: [lghs-chat] delete ips",
		"changed: [cloud] delete security group hardened-conf", "left behind: backups of lghs-chat kept: last-one",
		`left behind: TXT chat.lghs-be.test ("v=spf1 -all") is not managed by lghsctl: left as it is`, "left behind: project SSH keys kept"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("destroy output lacks %q:\n%s", want, r.stdout)
		}
	}
	after := l.world()
	if len(after.servers) != len(before.servers) || len(after.ips) != len(before.ips) || len(after.groups) != len(before.groups) {
		t.Errorf("after destroy: %d servers, %d IPs, %d groups; before up: %d, %d, %d", len(after.servers), len(after.ips), len(after.groups),
			len(before.servers), len(before.ips), len(before.groups))
	}
	if len(after.records) != 2 {
		t.Errorf("records after destroy: %+v, want only the two made by someone else", after.records)
	}
	for _, rec := range after.records {
		if rec.Name != "www.lghs-be.test" && rec.Type != "TXT" {
			t.Errorf("record %s %s left", rec.Type, rec.Name)
		}
	}
	if len(l.machines.Layers()) != 1 {
		t.Errorf("disk layers left: %v, want only the backup's snapshot", l.machines.Layers())
	}

	// A second destroy has nothing to do and writes nothing.
	l.resetCalls()
	r = l.mustRun(0, "destroy", "--yes")
	if !strings.Contains(r.stdout, "nothing to destroy") {
		t.Errorf("second destroy:\n%s", r.stdout)
	}
	if s, c := l.writes(); s+c != 0 {
		t.Errorf("second destroy wrote: %d Scaleway, %d Cloudflare", s, c)
	}

	// The backups go only when asked, with --force for the last one.
	l.mustRun(0, "destroy", "--with-backups", "--force", "--yes")
	if bs := l.backups(); len(bs) != 0 {
		t.Errorf("backups left: %+v", bs)
	}
	if len(l.machines.Layers()) != 0 {
		t.Errorf("disk layers left: %v", l.machines.Layers())
	}
}
