package labhost_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/lab/labhost"
	"github.com/lghs/lghsctl/internal/lab/labtest"
)

// TestInterruptedBaseBuildLeavesNoCacheEntry cancels a build half-way: no
// base appears in the cache, and the next build of the recipe starts from
// scratch and removes the interrupted one's directory.
func TestInterruptedBaseBuildLeavesNoCacheEntry(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	cache := t.TempDir()
	r := labhost.DefaultRecipe(labhost.Bookworm)
	opts := labhost.BuildOptions{CacheDir: cache, HTTPProxy: l.BoxProxyURL(), Logger: labtest.Logger(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	_, err := labhost.EnsureBase(ctx, opts, r)
	if err == nil {
		t.Fatal("a 4 s build finished; cannot test interruption")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("build error: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "base"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("interrupted build left %s in the cache", e.Name())
		}
	}
	// A build killed without cleanup (SIGKILL) leaves its temporary
	// directory: the next build removes it.
	stale := filepath.Join(cache, "base", ".build-"+r.Key()+"-999999", "rootfs", "etc")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	_, _ = labhost.EnsureBase(ctx2, opts, r)
	if _, err := os.Stat(filepath.Dir(filepath.Dir(stale))); !os.IsNotExist(err) {
		t.Errorf("stale build directory survived the next build: %v", err)
	}
}

// TestBookwormHostBootsAndRunsSystemd keeps Debian 12 working next to the
// trixie default (building its base on first use).
func TestBookwormHostBootsAndRunsSystemd(t *testing.T) {
	l := labtest.Lab(t, labhost.Config{})
	ctx := ctxFor(t, 15*time.Minute)
	base, err := l.EnsureBase(ctx, labhost.Bookworm)
	if err != nil {
		t.Fatal(err)
	}
	if base.Built {
		t.Logf("built the bookworm base in %v", base.BuildTime.Round(time.Second))
	}
	signer, key := labtest.Key(t)
	h := labtest.Host(t, l, labhost.Spec{Name: "old", Release: labhost.Bookworm, AuthorizedKeys: []string{key}})
	c := labtest.Dial(t, h, signer)
	if v := labtest.SSH(t, c, "cat /etc/debian_version"); !strings.HasPrefix(v, "12.") {
		t.Errorf("debian_version %q", v)
	}
	state, _ := labtest.SSHOutput(c, "systemctl is-system-running --wait")
	failed, _ := labtest.SSHOutput(c, "systemctl list-units --failed --plain --no-legend | awk '{print $1}'")
	checkBooted(t, h.Name(), state, failed)
	if got := labtest.SSH(t, c, "apt-get update -q >/dev/null && apt-cache policy nginx | grep Candidate"); !strings.Contains(got, "1.22") {
		t.Errorf("bookworm nginx candidate through the proxy: %q", got)
	}
	// A bookworm layer refuses to boot as trixie.
	if _, err := l.Start(ctx, labhost.Spec{Name: "mixed", Release: labhost.Trixie, LayerDir: h.LayerDir()}); err == nil {
		t.Error("booting a bookworm layer as trixie succeeded")
	}
}

// TestTwoLabsInOneProcessGetSeparateNetworks: instances are independent.
func TestTwoLabsInOneProcessGetSeparateNetworks(t *testing.T) {
	a := labtest.Lab(t, labhost.Config{})
	b := labtest.Lab(t, labhost.Config{})
	if a.Name() == b.Name() || a.BoxAddr4() == b.BoxAddr4() || a.BoxAddr6() == b.BoxAddr6() {
		t.Fatalf("labs share %s/%s %v/%v", a.Name(), b.Name(), a.BoxAddr4(), b.BoxAddr4())
	}
	ha := labtest.Host(t, a, labhost.Spec{Name: "same"})
	hb := labtest.Host(t, b, labhost.Spec{Name: "same"})
	if ha.Netns() == hb.Netns() || ha.Addr4() == hb.Addr4() {
		t.Fatalf("hosts of two labs collide: %s %s", ha.Netns(), hb.Netns())
	}
	for _, h := range []*labhost.Host{ha, hb} {
		if !reach(h.Addr4(), 22, "") {
			t.Errorf("%s in %s unreachable", h.Name(), h.Netns())
		}
	}
}
