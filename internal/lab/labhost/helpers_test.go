package labhost_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ctxFor is a context bounded by the test's deadline (less a margin for
// cleanups) or by d, whichever comes first.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	deadline := time.Now().Add(d)
	if td, ok := t.Deadline(); ok && td.Add(-30*time.Second).Before(deadline) {
		deadline = td.Add(-30 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// httpdImage builds testdata/httpd as a static binary and returns a root
// file system tarball holding it as /httpd.
func httpdImage(t *testing.T) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "httpd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/httpd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build httpd: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "httpd", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkBooted asserts `systemctl is-system-running --wait` output: running,
// or degraded because of systemd-modules-load alone (LAB.md).
func checkBooted(t *testing.T, name, state, failed string) {
	t.Helper()
	state = strings.TrimSpace(state)
	switch state {
	case "running":
	case "degraded":
		units := strings.Fields(failed)
		if len(units) != 1 || units[0] != "systemd-modules-load.service" {
			t.Errorf("%s: degraded, failed units: %q", name, failed)
		}
	default:
		t.Errorf("%s: systemctl is-system-running = %q", name, state)
	}
}
