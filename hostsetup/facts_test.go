package hostsetup

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shellHost runs commands with the local /bin/sh: enough to prove the
// facts script is valid shell and parses, without a remote host.
type shellHost struct{ runs int }

func (h *shellHost) Run(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	h.runs++
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdin = stdin
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, &exec.ExitError{}
	}
	return out, nil
}
func (h *shellHost) ReadFile(ctx context.Context, p string) ([]byte, error) { return os.ReadFile(p) }
func (h *shellHost) WriteFile(ctx context.Context, p string, b []byte, m fs.FileMode, o, g string) error {
	return os.WriteFile(p, b, m)
}

func TestGatherReadsEveryKindOfFactInOneCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "conf with space")
	os.WriteFile(file, []byte("hello\n"), 0o640)
	os.Mkdir(filepath.Join(dir, "d"), 0o750)
	os.Symlink(file, filepath.Join(dir, "l"))
	h := &shellHost{}
	f, err := Gather(context.Background(), h, FactsRequest{
		Paths:    []string{file, filepath.Join(dir, "d"), filepath.Join(dir, "l"), filepath.Join(dir, "missing")},
		Packages: []string{"dpkg", "no-such-package-xyz"},
		Units:    []string{"no-such-unit.service"},
		Users:    []string{"root", "no-such-user-xyz"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.runs != 1 {
		t.Errorf("gathering took %d commands, want 1", h.runs)
	}
	if f.OSID != "debian" {
		t.Errorf("OS = %q", f.OSID)
	}
	got := f.Path(file)
	// sha256("hello\n")
	if got.Type != "file" || got.Mode != 0o640 || got.SHA256 != "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" {
		t.Errorf("file fact = %+v", got)
	}
	if d := f.Path(filepath.Join(dir, "d")); d.Type != "dir" || d.Mode != 0o750 {
		t.Errorf("dir fact = %+v", d)
	}
	if l := f.Path(filepath.Join(dir, "l")); l.Type != "link" || l.Target != file {
		t.Errorf("link fact = %+v", l)
	}
	if f.Path(filepath.Join(dir, "missing")).Exists() {
		t.Error("missing path reported as existing")
	}
	if f.Packages["dpkg"] == "" || f.Packages["no-such-package-xyz"] != "" {
		t.Errorf("packages = %v", f.Packages)
	}
	if !f.Users["root"] || f.Users["no-such-user-xyz"] {
		t.Errorf("users = %v", f.Users)
	}
}

func TestParseUnitsBlocksInAnyPropertyOrder(t *testing.T) {
	out := "os\tdebian\t13\ttrixie\nunit\tActiveState=active\nunit\tUnitFileState=enabled\nunit\tId=nginx.service\nunit\t\nunit\tId=docker.service\nunit\tActiveState=failed\nunit\tUnitFileState=disabled\n"
	f, err := parseFacts([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if f.Units["nginx.service"] != (UnitFact{"enabled", "active"}) || f.Units["docker.service"] != (UnitFact{"disabled", "failed"}) {
		t.Errorf("units = %+v", f.Units)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/nginx/x.conf": "/etc/nginx/x.conf",
		"a b":               "'a b'",
		"it's":              `'it'\''s'`,
		"":                  "''",
		"$(reboot)":         "'$(reboot)'",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
		if in != "" && !strings.Contains(in, "'") {
			out, _ := exec.Command("/bin/sh", "-c", "printf %s "+quote(in)).Output()
			if string(out) != in {
				t.Errorf("sh saw %q for %q", out, in)
			}
		}
	}
}
