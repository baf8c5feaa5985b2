package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

func TestWriteFileReplacesAtomicallyWithModeAndOwner(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "site.conf")
	owner, group := currentOwner(t)
	a := bytes.Repeat([]byte("a"), 4<<20)
	b := bytes.Repeat([]byte("b"), 4<<20)
	if err := c.WriteFile(ctx, p, a, 0o640, owner, group); err != nil {
		t.Fatal(err)
	}

	// A reader polls the file while it is rewritten: every read must be
	// one whole version.
	var stop atomic.Bool
	var reads, torn atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			got, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("reader: %v", err)
				return
			}
			reads.Add(1)
			if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
				torn.Add(1)
			}
		}
	}()
	for i := range 6 {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := c.WriteFile(ctx, p, data, 0o640, owner, group); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if torn.Load() > 0 {
		t.Errorf("%d of %d reads saw a partial file", torn.Load(), reads.Load())
	}
	if reads.Load() < 3 {
		t.Errorf("only %d reads: the test proved little", reads.Load())
	}

	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %o, want 640", st.Mode().Perm())
	}
	if sys := st.Sys().(*syscall.Stat_t); int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid() {
		t.Errorf("owner %d:%d, want %d:%d", sys.Uid, sys.Gid, os.Getuid(), os.Getgid())
	}
	assertOnly(t, dir, "site.conf")
}

func TestWriteFileModeIgnoresUmaskAndKeepsSpecialBits(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	ctx := context.Background()
	dir := t.TempDir()
	for _, mode := range []fs.FileMode{0o777, 0o600, 0o755 | fs.ModeSetgid} {
		p := filepath.Join(dir, "f")
		if err := c.WriteFile(ctx, p, []byte("x"), mode, "", ""); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		if got := st.Mode() & (fs.ModePerm | fs.ModeSetgid); got != mode {
			t.Errorf("mode %v, want %v", got, mode)
		}
	}
}

func TestFailedWriteFileLeavesTheOldFileAndNoTemporaryFile(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	dir := t.TempDir()
	p := filepath.Join(dir, "keep")
	os.WriteFile(p, []byte("old"), 0o644)
	err := c.WriteFile(context.Background(), p, []byte("new"), 0o644, "no-such-user-lghsctl", "")
	var ce *remote.CommandError
	if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "write "+p+" on lab: exit status 1: chown: ") {
		t.Fatalf("WriteFile: %v, want a CommandError about chown", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file now %q, want the old content", b)
	}
	assertOnly(t, dir, "keep")

	if err := c.WriteFile(context.Background(), filepath.Join(dir, "nodir", "f"), []byte("x"), 0o644, "", ""); err == nil {
		t.Error("WriteFile into a missing directory succeeded; it must create nothing but the file")
	}
	if err := c.WriteFile(context.Background(), dir, []byte("x"), 0o644, "", ""); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("WriteFile over a directory: %v", err)
	}
	if err := c.WriteFile(context.Background(), "relative/path", []byte("x"), 0o644, "", ""); err == nil {
		t.Error("WriteFile accepted a relative path")
	}
	assertOnly(t, dir, "keep")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %q, want %q (temporary files left?)", dir, got, names)
	}
}

func TestReadFileOverSFTPAndShell(t *testing.T) {
	for _, tc := range []struct {
		name   string
		noSFTP bool
	}{{"sftp", false}, {"shell fallback", true}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, remotetest.ServerOptions{NoSFTP: tc.noSFTP})
			c := dial(t, l.config())
			ctx := context.Background()
			p := filepath.Join(t.TempDir(), "bin")
			data := []byte("line\n\x00\xffbinary")
			os.WriteFile(p, data, 0o600)
			got, err := c.ReadFile(ctx, p)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("ReadFile = %q, %v; want %q", got, err, data)
			}
			_, err = c.ReadFile(ctx, p+".missing")
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p+".missing on lab") {
				t.Errorf("ReadFile of a missing file: %v, want fs.ErrNotExist naming path and host", err)
			}
			viaShell := len(l.srv.Execs()) > 0
			if viaShell != tc.noSFTP {
				t.Errorf("commands run: %q; the read should go through %s", l.srv.Execs(), tc.name)
			}
		})
	}
}

func TestStatDescribesModeOwnerAndDigest(t *testing.T) {
	l := newLab(t, remotetest.ServerOptions{})
	c := dial(t, l.config())
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("content"), 0o600)
	os.Chmod(p, 0o640)
	os.Symlink(p, filepath.Join(dir, "link"))
	owner, group := currentOwner(t)

	fi, err := c.Stat(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("content"))
	want := remote.FileInfo{Mode: 0o640, Owner: owner, Group: group, Size: 7, SHA256: hex.EncodeToString(sum[:])}
	if fi != want {
		t.Errorf("Stat = %+v, want %+v", fi, want)
	}
	if fi, err := c.Stat(ctx, dir); err != nil || !fi.Mode.IsDir() || fi.SHA256 != "" {
		t.Errorf("Stat(dir) = %+v, %v", fi, err)
	}
	if fi, err := c.Stat(ctx, filepath.Join(dir, "link")); err != nil || fi.Mode&fs.ModeSymlink == 0 {
		t.Errorf("Stat(link) = %+v, %v; want the link itself", fi, err)
	}
	if _, err := c.Stat(ctx, filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(missing): %v, want fs.ErrNotExist", err)
	}
}
