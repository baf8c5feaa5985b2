package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsAreRedactedEverywhereInTheLog(t *testing.T) {
	r := &Redactor{}
	r.Add("tok-0123456789", "abc") // "abc" is too short to redact safely
	dir := t.TempDir()
	var stderr bytes.Buffer
	f, err := Open(dir, "up", r, &stderr, slog.LevelDebug)
	if err != nil {
		t.Fatal(err)
	}
	log := f.Logger.With("header", "Authorization: Bearer tok-0123456789")
	log.Info("calling with tok-0123456789",
		"token", "tok-0123456789",
		"err", errors.New("401 for tok-0123456789"),
		slog.Group("req", "url", "https://x/?t=tok-0123456789"),
		"count", 3, "word", "abc")
	f.Close()
	b, _ := os.ReadFile(f.Path)
	for name, out := range map[string]string{"file": string(b), "stderr": stderr.String()} {
		if strings.Contains(out, "tok-0123456789") {
			t.Errorf("%s leaks the secret:\n%s", name, out)
		}
		if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "abc") {
			t.Errorf("%s lost non-secret content:\n%s", name, out)
		}
	}
	st, _ := os.Stat(f.Path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestOldLogsArePruned(t *testing.T) {
	dir := t.TempDir()
	for i := range keep + 5 {
		os.WriteFile(filepath.Join(dir, "2020010"+string(rune('A'+i))+"-x.log"), nil, 0o600)
	}
	f, err := Open(dir, "plan", &Redactor{}, nil, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) != keep {
		t.Errorf("%d logs kept, want %d", len(logs), keep)
	}
}
