package migrate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/ssh"

	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
)

// remoteShell runs streamed commands over an SSH connection, as the CLI
// does.
type remoteShell struct{ c *remote.Client }

func (r remoteShell) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout io.Writer) error {
	return r.c.Exec(ctx, cmd, remote.Streams{Stdin: stdin, Stdout: stdout})
}

// labPair is an "old" lab host running the database as a service, with
// mongodump and uploaded files, and a "new" one running it in a Docker
// container (with mongorestore inside), both reached over SSH with
// lghsctl's transport.
type labPair struct {
	t        *testing.T
	old, new *labhost.Host
	keyFile  string
	known    string
	uploads  string
}

const labUploads = "/var/lib/rocketchat/uploads"

func startLabPair(t *testing.T) *labPair {
	t.Helper()
	l := labtest.Lab(t, labhost.Config{})
	ctx := testCtx(t)
	work := t.TempDir()
	p := &labPair{t: t, keyFile: filepath.Join(work, "id_ed25519"), known: filepath.Join(work, "known_hosts"), uploads: filepath.Join(work, "uploads")}
	authKey := writeKey(t, p.keyFile)

	files, err := labdb.OldHostFiles(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	if err := labdb.GenerateUploads(p.uploads, 10, 300<<10, 11); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(p.uploads, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			rel, _ := filepath.Rel(p.uploads, path)
			data, _ := os.ReadFile(path)
			files = append(files, labhost.File{Path: labUploads + "/" + rel, Mode: 0o644, Data: data})
		}
		return nil
	})
	image, err := labdb.Image(ctx, work)
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var errOld, errNew error
	wg.Add(2)
	go func() {
		defer wg.Done()
		if p.old, errOld = l.Start(ctx, labhost.Spec{Name: "escandalo", AuthorizedKeys: []string{authKey}, Files: files}); errOld != nil {
			return
		}
		errOld = labdb.StartOldService(ctx, p.old)
	}()
	go func() {
		defer wg.Done()
		if p.new, errNew = l.Start(ctx, labhost.Spec{Name: "lghs-chat", AuthorizedKeys: []string{authKey}}); errNew != nil {
			return
		}
		errNew = labdb.PrepareNewHost(ctx, p.new, image)
	}()
	wg.Wait()
	for _, h := range []*labhost.Host{p.old, p.new} {
		if h != nil {
			h := h
			t.Cleanup(func() { h.Remove(context.Background()) })
		}
	}
	if errOld != nil || errNew != nil {
		t.Fatalf("lab hosts: old %v; new %v", errOld, errNew)
	}
	return p
}

// writeKey writes a new SSH private key and returns its authorized_keys
// line.
func writeKey(t *testing.T, path string) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

// host dials a lab host with lghsctl's SSH transport (host key pinned
// from what the lab reported; short keepalives so that a cut link is
// noticed in seconds).
func (p *labPair) host(h *labhost.Host) Host {
	p.t.Helper()
	c, err := remote.Dial(testCtx(p.t), remote.Config{Name: h.Name(), Address: h.Addr4().String(), User: "root",
		IdentityFiles: []string{p.keyFile}, KnownHostsFile: p.known, ExpectedKeys: h.HostKeys(),
		KeepAlive: 2 * time.Second, KeepAliveMax: 2})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return Host{Name: h.Name(), Shell: remoteShell{c}, Dial: c}
}

const labURI = "mongodb://127.0.0.1:27017"

// waitDB waits until the database on h answers and returns a connection.
func waitDB(t *testing.T, h Host) *dbConn {
	t.Helper()
	ctx := testCtx(t)
	var err error
	for range 60 {
		var c *dbConn
		if c, err = connect(ctx, h, labURI, nil, connectOptions{}); err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
			return c
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("database on %s: %v", h.Name, err)
	return nil
}

// TestLabMoveFromAnOldServiceIntoANewContainerVerifiesThenSurvivesACut is
// the data move's acceptance on real lab hosts: the old host runs the
// database as a systemd service with its own mongodump and uploaded files
// on disk; the new host runs it in a Docker container. (1) lghsctl moves
// it (old mongodump over SSH, driver inserts through an SSH tunnel) and
// the files, and verify passes; one document changed on the target makes
// verify fail naming the collection. (2) Starting over into the container
// with mongorestore (docker exec -i), the old host's link, shaped to 8
// Mbit/s, is cut half way through the stream; the re-run after the link
// is back resumes per collection and ends verified with the same counts
// and hashes (no duplicates).
func TestLabMoveFromAnOldServiceIntoANewContainerVerifiesThenSurvivesACut(t *testing.T) {
	labtest.Require(t)
	p := startLabPair(t)
	ctx := testCtx(t)
	oldH, newH := p.host(p.old), p.host(p.new)
	src := waitDB(t, oldH)
	if err := labdb.Generate(ctx, src.client, rcDB, labdb.SmallShape); err != nil {
		t.Fatal(err)
	}
	dst := waitDB(t, newH)
	stateDir := "/var/lib/lghsctl/migrate"

	mv := &Move{Source: &MongodumpSource{Host: oldH, URI: labURI}, Target: &Target{Host: newH, URI: labURI},
		Databases: []string{rcDB}, StateDir: stateDir}
	res, err := mv.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copied) != 9 {
		t.Errorf("copied %v", res.Copied)
	}
	up := &Uploads{From: oldH, FromDir: labUploads, To: newH, ToDir: "/srv/chat.lghs.be/data/uploads", StateDir: stateDir}
	ur, err := up.Copy(ctx)
	if err != nil || ur.Sent != 10 {
		t.Fatalf("uploads: %+v %v", ur, err)
	}
	v := &Verify{Source: mv.Source, Target: mv.Target, Databases: mv.Databases, StateDir: stateDir, Uploads: up,
		App: &AppCheck{DB: rcDB, SiteURL: "https://chat.lghs.be"}}
	if _, err := v.Run(ctx); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if _, err := dst.client.Database(rcDB).Collection("rocketchat_room").UpdateOne(ctx, bson.D{{Key: "_id", Value: "GENERAL"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "topic", Value: "changed on the new host"}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = v.Run(ctx)
	var ve *VerifyError
	if !errors.As(err, &ve) || len(ve.Mismatches) != 1 || ve.Mismatches[0].Collection != "rocketchat.rocketchat_room" {
		t.Fatalf("verify after a change on the target: %v", err)
	}

	// (2) Start over with mongorestore in the container; cut half way.
	full, err := mv.Source.Dump(ctx, rcDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := io.Copy(io.Discard, full)
	full.Close()
	if err := p.old.Shape(ctx, labhost.Shape{Rate: 8_000_000}); err != nil {
		t.Fatal(err)
	}
	prog := NewProgress(nil, "lghs-chat")
	cut := &Move{Source: mv.Source, Target: &Target{Host: newH, URI: labURI, Mode: RestoreMongorestore, Exec: []string{"docker", "exec", "-i", "mongo"}},
		Databases: mv.Databases, StateDir: stateDir, Restart: true, Drop: true, Progress: prog}
	done := make(chan error, 1)
	go func() { _, err := cut.Run(ctx); done <- err }()
	cutAt := time.Time{}
	for cutAt.IsZero() {
		select {
		case err := <-done:
			t.Fatalf("the move ended before the cut: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if prog.StreamBytes() > size/2 {
			if err := p.old.Cut(ctx, labhost.CutLinkDown); err != nil {
				t.Fatal(err)
			}
			cutAt = time.Now()
		}
	}
	err = <-done
	t.Logf("cut after %d of %d bytes; the move failed %v later: %v", prog.StreamBytes(), size, time.Since(cutAt).Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("the move survived a cut link without an error")
	}
	if err := p.old.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := newStateStore(newH, stateDir).loadData(ctx)
	var copied []string
	for _, n := range st.names(rcDB) {
		if st.lookup(rcDB, n).Status == StatusCopied {
			copied = append(copied, n)
		}
	}
	t.Logf("finished before the cut: %v", copied)
	oldH = p.host(p.old) // the cut killed the old connection
	again := &Move{Source: &MongodumpSource{Host: oldH, URI: labURI}, Target: cut.Target, Databases: mv.Databases, StateDir: stateDir}
	res, err = again.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Resumed) != len(copied) || len(res.Copied)+len(res.Resumed) != 9 {
		t.Errorf("re-run copied %v, resumed %v (finished before the cut: %v)", res.Copied, res.Resumed, copied)
	}
	v.Source = again.Source
	v.Target = again.Target
	if _, err := v.Run(ctx); err != nil {
		t.Fatalf("verify after the resumed move: %v", err)
	}
}
