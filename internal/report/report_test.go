package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func feed(r Reporter) {
	r.Play("hosts")
	r.Task(TaskResult{Host: "lghs-chat", Task: "apt packages", Status: Changed, Duration: 1200 * time.Millisecond, Message: "installed tmux", Diff: "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n"})
	r.Task(TaskResult{Host: "lghs-chat", Task: "sshd hardening", Status: OK, Duration: 30 * time.Millisecond})
	r.Task(TaskResult{Host: "lghs-chat", Task: "reload nginx", Status: Failed, Handler: true, Message: "nginx -t failed"})
	r.Plan("cloud", []Change{
		{Action: Create, Kind: "server", Name: "lghs-chat", Detail: "DEV1-M fr-par-1"},
		{Action: Update, Kind: "AAAA", Name: "chat.lghs.be", Fields: []FieldChange{{"content", "2001:db8::1", "2001:db8::2"}}},
		{Action: Blocked, Kind: "server", Name: "old", Note: "commercial type cannot change while running"},
	})
	r.Summary(Summary{Command: "up", Hosts: []HostRecap{{Host: "lghs-chat", OK: 1, Changed: 1, Failed: 1, Duration: 2 * time.Second}}, Duration: 3 * time.Second, ExitCode: 1, LogFile: "/tmp/x.log"})
}

func TestTextIsAnsibleLikeAndPlainWithoutColor(t *testing.T) {
	var b bytes.Buffer
	tx := NewText(&b)
	tx.Diff = true
	feed(tx)
	out := b.String()
	for _, want := range []string{
		"PLAY [hosts] ***",
		"changed: [lghs-chat] apt packages (1.2s) - installed tmux",
		"+y",
		"ok: [lghs-chat] sshd hardening (0.03s)\n",
		"failed: [lghs-chat] handler: reload nginx (0.00s) - nginx -t failed",
		"  +   server lghs-chat (DEV1-M fr-par-1)",
		"  ~   AAAA chat.lghs.be",
		`content: "2001:db8::1" → "2001:db8::2"`,
		"Plan: 1 to add, 1 to change, 0 to destroy, 1 blocked (see notes).",
		"PLAY RECAP ***",
		"lghs-chat                  : ok=1    changed=1    unreachable=0    failed=1    skipped=0    (2.0s)",
		"debug log: /tmp/x.log",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes written with Color off")
	}
}

func TestTextColorsOnlyWhenAsked(t *testing.T) {
	var b bytes.Buffer
	tx := NewText(&b)
	tx.Color = true
	feed(tx)
	if !strings.Contains(b.String(), "\x1b[33mchanged: [lghs-chat]") {
		t.Errorf("no colour:\n%q", b.String())
	}
}

// TestJSONEventsShape checks every line is a JSON object with a type and
// time, in order, ending with the summary.
func TestJSONEventsShape(t *testing.T) {
	var b bytes.Buffer
	feed(NewJSON(&b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var types []string
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		if _, ok := m["time"].(string); !ok {
			t.Errorf("no time in %s", l)
		}
		types = append(types, m["type"].(string))
	}
	if got := strings.Join(types, ","); got != "play,task,task,task,plan,summary" {
		t.Errorf("types = %s", got)
	}
	var sum struct {
		Hosts []struct {
			Host       string `json:"host"`
			Changed    int    `json:"changed"`
			DurationMS int64  `json:"duration_ms"`
		} `json:"hosts"`
		ExitCode int  `json:"exit_code"`
		Changed  bool `json:"changed"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.ExitCode != 1 || !sum.Changed || sum.Hosts[0].Changed != 1 || sum.Hosts[0].DurationMS != 2000 {
		t.Errorf("summary = %+v", sum)
	}
}
