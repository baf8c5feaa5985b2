package remote_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/remote"
	"github.com/lghs/lghsctl/internal/remote/remotetest"
)

// TestFakeAndClientKeepTheSameContract runs the same checks against the
// SSH client and the fake, so tests written against the fake hold for
// the real thing.
func TestFakeAndClientKeepTheSameContract(t *testing.T) {
	type subject struct {
		host remote.Host
		dir  string // a directory where files may be written
	}
	subjects := map[string]func(t *testing.T) subject{
		"client": func(t *testing.T) subject {
			l := newLab(t, remotetest.ServerOptions{})
			return subject{dial(t, l.config()), t.TempDir()}
		},
		"fake": func(t *testing.T) subject {
			h := remotetest.NewHost("lab")
			h.On(remotetest.Exact("echo out; echo boom >&2; exit 3"), func(context.Context, remotetest.Call) remotetest.Response {
				return remotetest.Response{Stdout: "out\n", Stderr: "boom\n", Exit: 3}
			})
			h.On(remotetest.Exact("cat"), func(_ context.Context, c remotetest.Call) remotetest.Response {
				return remotetest.Response{Stdout: string(c.Stdin)}
			})
			return subject{h, "/srv"}
		},
	}
	for name, mk := range subjects {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			ctx := context.Background()

			out, err := s.host.Run(ctx, "cat", strings.NewReader("stdin data"))
			if err != nil || string(out) != "stdin data" {
				t.Errorf("Run(cat) = %q, %v", out, err)
			}

			out, err = s.host.Run(ctx, "echo out; echo boom >&2; exit 3", nil)
			var ce *remote.CommandError
			if !errors.As(err, &ce) || ce.ExitCode != 3 || strings.TrimSpace(ce.Stderr) != "boom" || ce.Host != "lab" {
				t.Errorf("failing Run: %v (%+v), want CommandError status 3 with stderr", err, ce)
			}
			if string(out) != "out\n" {
				t.Errorf("failing Run returned stdout %q, want what was printed", out)
			}

			ctx2, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.host.Run(ctx2, "true", nil); !errors.Is(err, context.Canceled) {
				t.Errorf("Run with a cancelled ctx: %v", err)
			}

			p := filepath.Join(s.dir, "conf")
			if _, err := s.host.ReadFile(ctx, p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile before writing: %v, want fs.ErrNotExist", err)
			}
			if _, err := s.host.Stat(ctx, p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat before writing: %v, want fs.ErrNotExist", err)
			}
			owner, group := currentOwner(t)
			if err := s.host.WriteFile(ctx, p, []byte("v1"), 0o640, owner, group); err != nil {
				t.Fatal(err)
			}
			if b, err := s.host.ReadFile(ctx, p); err != nil || string(b) != "v1" {
				t.Errorf("ReadFile = %q, %v", b, err)
			}
			fi, err := s.host.Stat(ctx, p)
			if err != nil || fi.Mode != 0o640 || fi.Owner != owner || fi.Group != group || fi.Size != 2 || len(fi.SHA256) != 64 {
				t.Errorf("Stat = %+v, %v", fi, err)
			}
			if err := s.host.WriteFile(ctx, "not/absolute", nil, 0o644, "", ""); err == nil {
				t.Error("WriteFile accepted a relative path")
			}
		})
	}
}
