package remote

import (
	"os/exec"
	"testing"
)

func TestQuoteSurvivesTheShellLiterally(t *testing.T) {
	words := []string{"", "plain", "two words", "it's", `"double"`, "$HOME", "`id`", "a\nb", "*", "~root", "-n", "x=1", "back\\slash", "ünïcode", "'", "%s", "a;b|c&d"}
	for _, w := range words {
		// printf prints its argument between markers; the shell must
		// hand it over unchanged.
		out, err := exec.Command("/bin/sh", "-c", "printf '[%s]' "+Quote(w)).Output()
		if err != nil {
			t.Fatalf("%q: %v", w, err)
		}
		if string(out) != "["+w+"]" {
			t.Errorf("Quote(%q) = %s; the shell saw %q", w, Quote(w), out)
		}
	}
}

func TestQuoteLeavesSafeWordsReadable(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/nginx/sites-available/chat.lghs.be": "/etc/nginx/sites-available/chat.lghs.be",
		"root:root": "root:root",
		"x=1":       "'x=1'", // would be an assignment as a first word
		"a b":       "'a b'",
		"it's":      `'it'\''s'`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := ShellJoin("systemctl", "restart", "nginx.service", "x y"); got != "systemctl restart nginx.service 'x y'" {
		t.Errorf("ShellJoin = %s", got)
	}
}
