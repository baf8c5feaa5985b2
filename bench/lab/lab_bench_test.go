package labbench

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// BenchmarkHostStartToSSHReady times Lab.Start of a trixie host (bases
// cached, lab open) until its sshd answers, then verifies it with an SSH
// login; Remove is not timed.
func BenchmarkHostStartToSSHReady(b *testing.B) {
	l := labtest.Lab(b, labhost.Config{})
	ctx := context.Background()
	if _, err := l.EnsureBase(ctx, labhost.Trixie); err != nil {
		b.Fatal(err)
	}
	signer, key := labtest.Key(b)
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		h, err := l.Start(ctx, labhost.Spec{Name: fmt.Sprintf("bench%d", i), AuthorizedKeys: []string{key}})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		worst = max(worst, took)
		b.StopTimer()
		c, err := labtest.DialAddr(h.SSHAddr(), h, signer)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
		if err := h.Remove(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(worst.Seconds(), "worst-s")
}

// BenchmarkTwoHostsInParallel times two Starts at once (2 cores here).
func BenchmarkTwoHostsInParallel(b *testing.B) {
	l := labtest.Lab(b, labhost.Config{})
	ctx := context.Background()
	if _, err := l.EnsureBase(ctx, labhost.Trixie); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		errs := make(chan error, 2)
		hosts := make(chan *labhost.Host, 2)
		for j := range 2 {
			go func() {
				h, err := l.Start(ctx, labhost.Spec{Name: fmt.Sprintf("par%d-%d", i, j)})
				hosts <- h
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for range 2 {
			if h := <-hosts; h != nil {
				_ = h.Remove(ctx)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkBaseBuildCold builds the trixie base into an empty cache straight
// from the mirror (no apt proxy): the first run on a fresh box.
func BenchmarkBaseBuildCold(b *testing.B) {
	labtest.Require(b)
	benchBuild(b, "")
}

// BenchmarkBaseBuildWarmProxy builds it into an empty cache through the
// lab's apt proxy, whose cache already has the packages: a recipe change.
func BenchmarkBaseBuildWarmProxy(b *testing.B) {
	l := labtest.Lab(b, labhost.Config{})
	if _, err := l.EnsureBase(context.Background(), labhost.Trixie); err != nil { // warms the proxy
		b.Fatal(err)
	}
	benchBuild(b, l.BoxProxyURL())
}

func benchBuild(b *testing.B, proxy string) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cache := b.TempDir()
		b.StartTimer()
		base, err := labhost.EnsureBase(context.Background(), labhost.BuildOptions{CacheDir: cache, HTTPProxy: proxy}, labhost.DefaultRecipe(labhost.Trixie))
		if err != nil {
			b.Fatal(err)
		}
		if !base.Built {
			b.Fatal("an empty cache had a base")
		}
	}
}

// BenchmarkCopyLayerAfterNginx copies the layer of a host with nginx
// installed (a typical snapshot) while it runs (frozen during the copy).
func BenchmarkCopyLayerAfterNginx(b *testing.B) {
	l := labtest.Lab(b, labhost.Config{})
	ctx := context.Background()
	h := labtest.Host(b, l, labhost.Spec{Name: "snap"})
	if _, err := h.Output(ctx, "bash", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx"); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.CopyLayer(ctx, h.LayerDir(), filepath.Join(dir, fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if c, err := net.DialTimeout("tcp", h.SSHAddr(), time.Second); err != nil {
		b.Fatalf("host dead after copies: %v", err)
	} else {
		c.Close()
	}
}
