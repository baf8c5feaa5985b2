package remote

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runWriteScript runs WriteFile's remote side locally.
func runWriteScript(t *testing.T, p string, declared int, stdin []byte) (string, error) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", writeScript(p, declared, 0o600, "", ""))
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

func TestWriteScriptRefusesACutTransfer(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cert.pem")
	os.WriteFile(p, []byte("old"), 0o600)
	// The session died after 5 of 10 bytes: stdin just ends.
	stderr, err := runWriteScript(t, p, 10, []byte("12345"))
	if err == nil || !strings.Contains(stderr, "received 5 of 10 bytes") {
		t.Fatalf("err %v, stderr %q; want a refusal", err, stderr)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file = %q, want the old content", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary file left: %v", ents)
	}
	// The control: the declared size arrives, the file is replaced.
	if stderr, err := runWriteScript(t, p, 5, []byte("12345")); err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if b, _ := os.ReadFile(p); string(b) != "12345" {
		t.Errorf("file = %q, want the new content", b)
	}
}

func TestWriteScriptCleansUpWhenSignalledAtAnyPoint(t *testing.T) {
	// The signal lands at varying points of the script (before, during
	// and after mktemp, while receiving, after the rename): whatever the
	// point, the directory ends with either nothing or the complete file.
	for i := range 60 {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		cmd := exec.Command("/bin/sh", "-c", writeScript(p, 4, 0o600, "", ""))
		cmd.Stdin = strings.NewReader("data")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%20) * 150 * time.Microsecond)
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		ents, _ := os.ReadDir(dir)
		switch {
		case len(ents) == 0:
		case len(ents) == 1 && ents[0].Name() == "f":
			if b, _ := os.ReadFile(p); string(b) != "data" {
				t.Errorf("run %d: partial file %q", i, b)
			}
		default:
			t.Errorf("run %d: left %v", i, ents)
		}
	}
}

func TestParseStat(t *testing.T) {
	fi, err := parseStat("81a4 root www-data 7\ned7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73  -\n")
	if err != nil {
		t.Fatal(err)
	}
	want := FileInfo{Mode: 0o644, Owner: "root", Group: "www-data", Size: 7, SHA256: "ed7002b439e9ac845f22357d822bac1444730fbdb6016d3ec9432297b9ec9f73"}
	if fi != want {
		t.Errorf("got %+v, want %+v", fi, want)
	}
	if fi, _ := parseStat("45ed root root 4096\n"); fi.Mode != fs.ModeDir|fs.ModeSetgid|0o755 {
		t.Errorf("directory mode %v", fi.Mode)
	}
	if _, err := parseStat("garbage\n"); err == nil {
		t.Error("garbage parsed")
	}
}

func TestCommandErrorMessage(t *testing.T) {
	e := &CommandError{Host: "lghs-chat", Command: "apt-get install -y nginx\nsecond line", ExitCode: 100, Stderr: "E: Unable to locate package\n"}
	if got, want := e.Error(), `run "apt-get install -y nginx …" on lghs-chat: exit status 100: E: Unable to locate package`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e = &CommandError{Host: "h", Command: "x", ExitCode: -1, Signal: "KILL", op: "write /etc/x"}
	if got, want := e.Error(), "write /etc/x on h: killed by signal KILL"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
