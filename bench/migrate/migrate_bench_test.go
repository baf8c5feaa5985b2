package migratebench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/lghs/lghsctl/internal/lab/labdb"
	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
	"github.com/lghs/lghsctl/internal/remote"
)

const (
	linkRate = 100_000_000 // bit/s, each host, each direction
	delay    = 5 * time.Millisecond
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// timed runs fn and returns its duration.
func timed(fn func() error) (time.Duration, error) {
	t0 := time.Now()
	err := fn()
	return time.Since(t0), err
}

// BenchmarkLabMoveAgainstTheRunbook runs the side-by-side once (use
// -benchtime 1x) on the LgHS-proportioned data set; see the package doc
// and run.sh.
func BenchmarkLabMoveAgainstTheRunbook(b *testing.B) { sideBySide(b, labdb.BenchShape) }

// BenchmarkLabMoveAgainstTheRunbookDocHeavy is the same with six times
// more small documents per megabyte than the LgHS database.
func BenchmarkLabMoveAgainstTheRunbookDocHeavy(b *testing.B) { sideBySide(b, labdb.DocHeavyShape) }

func sideBySide(b *testing.B, shape labdb.Shape) {
	l := labtest.Lab(b, labhost.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	work := b.TempDir()

	// lghsctl, built like a release.
	lghsctl := filepath.Join(work, "lghsctl")
	build := exec.Command("go", "build", "-trimpath", "-o", lghsctl, "./cmd/lghsctl")
	build.Dir, build.Env = repoRoot(), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build lghsctl: %v\n%s", err, out)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	keyPEM := pem.EncodeToMemory(block)
	keyFile := filepath.Join(work, "id_ed25519")
	os.WriteFile(keyFile, keyPEM, 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	authKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))

	files, err := labdb.OldHostFiles(ctx, work)
	if err != nil {
		b.Fatal(err)
	}
	files = append(files, labhost.File{Path: "/root/.ssh/id_ed25519", Mode: 0o600, Data: keyPEM})
	image, err := labdb.Image(ctx, work)
	if err != nil {
		b.Fatal(err)
	}
	var old, nw *labhost.Host
	var errOld, errNew error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if old, errOld = l.Start(ctx, labhost.Spec{Name: "escandalo", AuthorizedKeys: []string{authKey}, Files: files}); errOld == nil {
			if errOld = labdb.StartOldService(ctx, old); errOld == nil {
				errOld = old.Run(ctx, labhost.Cmd{Args: []string{"sh", "-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rsync >/dev/null"}})
			}
		}
	}()
	go func() {
		defer wg.Done()
		if nw, errNew = l.Start(ctx, labhost.Spec{Name: "lghs-chat", AuthorizedKeys: []string{authKey}}); errNew == nil {
			errNew = labdb.PrepareNewHost(ctx, nw, image, "rsync")
		}
	}()
	wg.Wait()
	for _, h := range []*labhost.Host{old, nw} {
		if h != nil {
			h := h
			b.Cleanup(func() { h.Remove(context.Background()) })
		}
	}
	if errOld != nil || errNew != nil {
		b.Fatalf("lab hosts: old %v; new %v", errOld, errNew)
	}

	// SSH paths with 10 ms more round trip: box → old, box → new, and old →
	// new for rsync (through the box's lab address).
	proxy := func(listen string, h *labhost.Host) *labhost.DelayProxy {
		p, err := labhost.StartDelayProxy(ctx, listen, h.SSHAddr(), delay)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		return p
	}
	toOld, toNew := proxy("127.0.0.1:0", old), proxy("127.0.0.1:0", nw)
	oldToNew := proxy(netip.AddrPortFrom(l.BoxAddr4(), 0).String(), nw)
	known := filepath.Join(work, "known_hosts")
	var kh bytes.Buffer
	for _, x := range []struct {
		p *labhost.DelayProxy
		h *labhost.Host
	}{{toOld, old}, {toNew, nw}} {
		for _, k := range x.h.HostKeys() {
			kh.WriteString(knownhosts.Line([]string{x.p.Addr().String()}, k) + "\n")
		}
	}
	os.WriteFile(known, kh.Bytes(), 0o600)

	// The data set, generated through a tunnel before the link is shaped.
	oc, err := remote.Dial(ctx, remote.Config{Name: "escandalo", Address: old.Addr4().String(), User: "root", IdentityFiles: []string{keyFile},
		KnownHostsFile: filepath.Join(work, "known_hosts_gen"), ExpectedKeys: old.HostKeys()})
	if err != nil {
		b.Fatal(err)
	}
	tun, err := remote.Forward(ctx, oc, "127.0.0.1:27017")
	if err != nil {
		b.Fatal(err)
	}
	var gerr error
	for range 30 {
		var mc *mongo.Client
		if mc, gerr = mongo.Connect(options.Client().ApplyURI("mongodb://" + tun.Addr()).SetDirect(true)); gerr == nil {
			if gerr = mc.Ping(ctx, nil); gerr == nil {
				genStart := time.Now()
				gerr = labdb.Generate(ctx, mc, "rocketchat", shape)
				b.Logf("generated the data set in %v", time.Since(genStart).Round(time.Second))
				mc.Disconnect(ctx)
				break
			}
			mc.Disconnect(ctx)
		}
		time.Sleep(time.Second)
	}
	tun.Close()
	oc.Close()
	if gerr != nil {
		b.Fatal(gerr)
	}

	for _, h := range []*labhost.Host{old, nw} {
		if err := h.Shape(ctx, labhost.Shape{Rate: linkRate}); err != nil {
			b.Fatal(err)
		}
	}
	sh := func(h *labhost.Host, script string) error {
		var stderr bytes.Buffer
		err := h.Run(ctx, labhost.Cmd{Args: []string{"sh", "-c", script}, Stderr: &stderr})
		if err != nil {
			return fmt.Errorf("%s: %v: %s", h.Name(), err, stderr.String())
		}
		return nil
	}

	// The runbook's way.
	tDump, err := timed(func() error {
		return sh(old, "mongodump --host 127.0.0.1 --port 27017 --db rocketchat --archive > /root/dump.archive")
	})
	if err != nil {
		b.Fatal(err)
	}
	out, _ := old.Output(ctx, "stat", "-c", "%s", "/root/dump.archive")
	size, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	sh(nw, "mkdir -p /srv/chat.lghs.be/backups")
	tRsync, err := timed(func() error {
		return sh(old, fmt.Sprintf("rsync -a -e 'ssh -p %d -i /root/.ssh/id_ed25519 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR' /root/dump.archive root@%s:/srv/chat.lghs.be/backups/",
			int(oldToNew.Addr().Port()), l.BoxAddr4()))
	})
	if err != nil {
		b.Fatal(err)
	}
	tRestore, err := timed(func() error {
		return sh(nw, "docker exec -i mongo mongorestore --archive --drop --nsInclude 'rocketchat.*' < /srv/chat.lghs.be/backups/dump.archive")
	})
	if err != nil {
		b.Fatal(err)
	}
	runbook := tDump + tRsync + tRestore

	// lghsctl's way, the real binary.
	inv := filepath.Join(work, "inventory.yaml")
	os.WriteFile(inv, []byte(fmt.Sprintf(`version: 1
name: bench
dns:
  zones: [{name: lghs.be}]
hosts:
  - name: lghs-chat
    provider: none
    ssh: {address: 127.0.0.1, port: %d, user: root, identity_file: id_ed25519, known_hosts: known_hosts}
    sites:
      - name: chat.lghs.be
        upstream: "[::1]:3000"
        tls: self-signed
        app: {dir: /srv/chat.lghs.be, preset: rocketchat, services: [{name: rocketchat, image: "rocketchat/rocket.chat:3.0.12"}]}
migrate:
  from:
    name: escandalo
    ssh: {address: 127.0.0.1, port: %d, user: root, identity_file: id_ed25519, known_hosts: known_hosts}
  to: lghs-chat
`, int(toNew.Addr().Port()), int(toOld.Addr().Port()))), 0o644)
	cli := func(args ...string) (time.Duration, int64, string, error) {
		cmd := exec.CommandContext(ctx, lghsctl, append(args, "-i", inv)...)
		cmd.Env = []string{"HOME=" + work, "PATH=" + os.Getenv("PATH"), "USER=root"}
		var outb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outb, &outb
		// Peak RSS from the child's own VmHWM: the rusage of a child started
		// with vfork+exec also counts the parent's memory at exec time.
		var rss int64
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, "", err
		}
		done, exited := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); err == nil {
					for _, line := range strings.Split(string(b), "\n") {
						if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
							kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
							rss = max(rss, kb*1024)
						}
					}
				}
				select {
				case <-exited:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		err := cmd.Wait()
		close(exited)
		d := time.Since(t0)
		<-done
		return d, rss, outb.String(), err
	}
	tMove, rssMove, outMove, err := cli("migrate", "data", "--drop", "--restart", "--no-verify")
	if err != nil {
		b.Fatalf("lghsctl migrate data: %v\n%s", err, outMove)
	}
	tVerify, rssVerify, outVerify, err := cli("migrate", "verify", "--recorded")
	if err != nil {
		b.Fatalf("lghsctl migrate verify: %v\n%s", err, outVerify)
	}

	mib := func(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
	local := mib(size, tRestore)
	b.ReportMetric(runbook.Seconds(), "runbook-s")
	b.ReportMetric(tMove.Seconds(), "lghsctl-move-s")
	b.ReportMetric(tVerify.Seconds(), "lghsctl-verify-s")
	b.ReportMetric(tMove.Seconds()/runbook.Seconds(), "move/runbook")
	b.ReportMetric(mib(size, tMove)/local, "move/local-write")
	b.ReportMetric(float64(max(rssMove, rssVerify))/(1<<20), "peak-rss-MiB")
	b.Logf(`data set: %s archive (%d bytes), link %d Mbit/s per host, +%v RTT on SSH
runbook: dump %v + rsync %v + restore %v = %v
lghsctl: migrate data %v (%.1f MiB/s, peak RSS %.0f MiB), migrate verify --recorded %v (peak RSS %.0f MiB), together %v
database stand-in writing locally (restore from a local file): %.1f MiB/s
lghsctl/runbook: %.2f (move), %.2f (move+verify); lghsctl transfer / local write: %.0f%%
%s`,
		humanMiB(size), size, linkRate/1_000_000, 2*delay,
		tDump.Round(time.Millisecond), tRsync.Round(time.Millisecond), tRestore.Round(time.Millisecond), runbook.Round(time.Millisecond),
		tMove.Round(time.Millisecond), mib(size, tMove), float64(rssMove)/(1<<20), tVerify.Round(time.Millisecond), float64(rssVerify)/(1<<20), (tMove + tVerify).Round(time.Millisecond),
		local, tMove.Seconds()/runbook.Seconds(), (tMove+tVerify).Seconds()/runbook.Seconds(), 100*mib(size, tMove)/local,
		lastLines(outMove, 12))
}

func humanMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
