package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

// sshIdentity writes a private key file and returns its public key.
func sshIdentity(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := ssh.NewPublicKey(pub)
	return p
}

// TestMigrateDataAndVerifyOverSSHThroughTheCLI runs lghsctl migrate plan,
// data and verify in-process against two in-process SSH servers standing
// for the old and the new host (commands run on this machine, tunnels to
// loopback only), each with a FerretDB lab database; the old host has
// the stand-in mongodump, the new one a docker that lists no container.
// It proves the CLI's wiring end to end: SSH sessions streaming the dump,
// the driver through SSH tunnels, the state on the target, the report;
// then a document changed on the target fails verify naming its
// collection, and data copies that collection again.
func TestMigrateDataAndVerifyOverSSHThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("FerretDB lab databases; skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	src, dst := labdb.StartT(t), labdb.StartT(t)
	sc, err := mongo.Connect(options.Client().ApplyURI(src.URI).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Disconnect(ctx)
	if err := labdb.Generate(ctx, sc, "rocketchat", labdb.SmallShape); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin, err := labdb.BuildTools(ctx, filepath.Join(work, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	// The new host's docker: no container of the project exists.
	os.WriteFile(filepath.Join(bin, "docker"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	uploads := filepath.Join(work, "old-uploads")
	if err := labdb.GenerateUploads(uploads, 8, 64<<10, 3); err != nil {
		t.Fatal(err)
	}
	pub := sshIdentity(t, filepath.Join(work, "id_ed25519"))
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	oldSrv := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"root": {pub}}, Env: env})
	newSrv := remotetest.NewServer(t, remotetest.ServerOptions{Users: map[string][]ssh.PublicKey{"root": {pub}}, Env: env})
	os.WriteFile(filepath.Join(work, "known_hosts"), []byte(oldSrv.KnownHostsLine()+newSrv.KnownHostsLine()), 0o600)
	appDir := filepath.Join(work, "srv", "chat.lghs.be")
	inv := fmt.Sprintf(`version: 1
name: lghs
dns:
  zones: [{name: lghs.be}]
hosts:
  - name: chat
    provider: none
    ssh: {address: 127.0.0.1, port: %d, user: root, identity_file: id_ed25519}
    sites:
      - name: chat.lghs.be
        upstream: "[::1]:3000"
        tls: self-signed
        app: {dir: %s, preset: rocketchat, services: [{name: rocketchat, image: "rocketchat/rocket.chat:3.0.12"}]}
migrate:
  from:
    name: escandalo
    ssh: {address: 127.0.0.1, port: %d, user: root, identity_file: id_ed25519}
    mongo_uri: %s
    uploads_dir: %s
  to: chat
  target_mongo_uri: %s
  state_dir: %s
`, newSrv.Port(), appDir, oldSrv.Port(), strings.TrimSuffix(src.URI, "/"), uploads, strings.TrimSuffix(dst.URI, "/"), filepath.Join(work, "state"))
	invPath := filepath.Join(work, "inventory.yaml")
	os.WriteFile(invPath, []byte(inv), 0o644)
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(ctx, append(args, "-i", invPath), IO{In: strings.NewReader(""), Out: &out, Err: &errb,
			Getenv: func(k string) string {
				switch k {
				case "HOME":
					return work
				case "USER":
					return "root"
				}
				return ""
			}})
		return code, out.String() + errb.String()
	}

	code, out := run("migrate", "plan")
	if code != 0 || !strings.Contains(out, "ok     target rocketchat  empty") || !strings.Contains(out, "ok     app stopped") {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	code, out = run("migrate", "data")
	if code != 0 {
		t.Fatalf("data: exit %d\n%s", code, out)
	}
	for _, want := range []string{"changed: [chat] move rocketchat", "9 collections copied", "changed: [chat] uploads", "8 of 8 files sent", "ok: [chat] verify"} {
		if !strings.Contains(out, want) {
			t.Errorf("data output lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Join(oldSrv.Execs(), "\n"); !strings.Contains(got, "mongodump") || !strings.Contains(got, "--db") || !strings.Contains(got, "--archive") {
		t.Errorf("the old host never ran mongodump: %q", got)
	}
	if fw := newSrv.Forwards(); len(fw) == 0 || !strings.Contains(fw[0], dst.Addr) {
		t.Errorf("no tunnel to the new database: %q", fw)
	}
	if ents, err := os.ReadDir(filepath.Join(appDir, "data", "uploads")); err != nil || len(ents) != 8 {
		t.Errorf("uploads on the new host: %d entries, %v", len(ents), err)
	}

	dc, err := mongo.Connect(options.Client().ApplyURI(dst.URI).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Disconnect(ctx)
	if _, err := dc.Database("rocketchat").Collection("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: "rocket.cat"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	code, out = run("migrate", "verify")
	if code != 1 || !strings.Contains(out, "rocketchat.users: content hash differs (source ") {
		t.Fatalf("verify after a change: exit %d\n%s", code, out)
	}
	code, out = run("migrate", "data")
	if code != 0 || !strings.Contains(out, "1 collections copied") || !strings.Contains(out, "8 kept from an earlier run") {
		t.Fatalf("data again: exit %d\n%s", code, out)
	}
}
