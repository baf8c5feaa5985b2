package labtest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lghs/lghsctl/internal/lab/labhost"
)

// TestHelperRequire is not a test: TestRequire runs the test binary again
// to call Require under chosen conditions.
func TestHelperRequire(t *testing.T) {
	if os.Getenv("LABTEST_HELPER") == "" {
		t.Skip("helper process of TestRequire")
	}
	Require(t)
	t.Log("REQUIRE-PASSED")
}

// TestRequireSkipsLocallyFailsInCIAndAlwaysSkipsUnderShort runs Require as
// an unprivileged user (a prerequisite missing) and under -short, with and
// without CI=true.
func TestRequireSkipsLocallyFailsInCIAndAlwaysSkipsUnderShort(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the helper as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not found")
	}
	// A copy of the test binary another user can execute.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "labtest.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()

	run := func(asNobody, short bool, ci string) (string, bool) {
		args := []string{bin, "-test.run=^TestHelperRequire$", "-test.v"}
		if short {
			args = append(args, "-test.short")
		}
		if asNobody {
			args = append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LABTEST_HELPER=1", "CI=" + ci, "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		return string(out), err == nil
	}
	for _, c := range []struct {
		name          string
		nobody, short bool
		ci            string
		wantOK        bool
		wantOut       string
	}{
		{"not root, local: skip", true, false, "", true, "lab test skipped: lab prerequisites missing: not root"},
		{"not root, CI: fail", true, false, "true", false, "lab test cannot run and CI=true: lab prerequisites missing: not root"},
		{"short, CI: skip", false, true, "true", true, "skipped under -short"},
	} {
		out, ok := run(c.nobody, c.short, c.ci)
		if ok != c.wantOK || !strings.Contains(out, c.wantOut) {
			t.Errorf("%s: ok=%v, output:\n%s\nwant ok=%v and %q", c.name, ok, out, c.wantOK, c.wantOut)
		}
	}
	if labhost.CheckPrerequisites(labhost.Config{}) == nil {
		if out, ok := run(false, false, "true"); !ok || !strings.Contains(out, "REQUIRE-PASSED") {
			t.Errorf("root with every prerequisite: Require stopped the test:\n%s", out)
		}
	}
}
