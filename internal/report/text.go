package report

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Text writes what a person reads on a terminal or in a CI log.
type Text struct {
	mu sync.Mutex
	w  io.Writer
	// Color turns on ANSI colours (only on a terminal, never with NO_COLOR).
	Color bool
	// Diff shows the diffs of changed tasks.
	Diff bool
	// Verbose shows ok tasks' messages too.
	Verbose bool
	// Live rewrites progress on one line (a terminal); otherwise progress
	// is printed as plain lines, at most one per host every few seconds.
	Live          bool
	lastProgress  map[string]time.Time
	progressShown bool
	now           func() time.Time
}

// NewText writes to w.
func NewText(w io.Writer) *Text {
	return &Text{w: w, lastProgress: map[string]time.Time{}, now: time.Now}
}

const (
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	red    = "\x1b[31m"
	cyan   = "\x1b[36m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

func (t *Text) paint(color, s string) string {
	if !t.Color {
		return s
	}
	return color + s + reset
}

func (t *Text) clearProgress() {
	if t.progressShown {
		fmt.Fprint(t.w, "\r\x1b[K")
		t.progressShown = false
	}
}

func banner(title string) string {
	line := title + " "
	if n := 79 - len(line); n > 3 {
		line += strings.Repeat("*", n)
	} else {
		line += "***"
	}
	return line
}

// Play prints a phase banner.
func (t *Text) Play(title string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearProgress()
	fmt.Fprintf(t.w, "\n%s\n", t.paint(bold, banner("PLAY ["+title+"]")))
}

func (t *Text) statusColor(s Status) string {
	switch s {
	case OK:
		return green
	case Changed:
		return yellow
	case Skipped:
		return cyan
	}
	return red
}

// Task prints one line per task, like "changed: [host] task (1.20s)".
func (t *Text) Task(r TaskResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearProgress()
	name := r.Task
	if r.Handler {
		name = "handler: " + name
	}
	line := fmt.Sprintf("%s: [%s] %s (%s)", r.Status, r.Host, name, fmtDuration(r.Duration))
	if r.Message != "" && (r.Status != OK || t.Verbose) {
		line += " - " + r.Message
	}
	fmt.Fprintln(t.w, t.paint(t.statusColor(r.Status), line))
	if t.Diff && r.Diff != "" {
		for _, l := range strings.SplitAfter(strings.TrimSuffix(r.Diff, "\n"), "\n") {
			c := ""
			switch {
			case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
				c = bold
			case strings.HasPrefix(l, "+"):
				c = green
			case strings.HasPrefix(l, "-"):
				c = red
			case strings.HasPrefix(l, "@@"):
				c = cyan
			}
			l = strings.TrimSuffix(l, "\n")
			if c != "" {
				l = t.paint(c, l)
			}
			fmt.Fprintln(t.w, l)
		}
	}
}

// Plan prints a Terraform-like list of changes.
func (t *Text) Plan(title string, changes []Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearProgress()
	add, change, destroy, blocked := CountPlan(changes)
	if len(changes) == 0 {
		fmt.Fprintf(t.w, "\n%s: no changes; the infrastructure matches the inventory.\n", title)
		return
	}
	fmt.Fprintf(t.w, "\n%s: lghsctl will make these changes:\n\n", title)
	for _, c := range changes {
		color := map[Action]string{Create: green, Update: yellow, Delete: red, Replace: yellow, Blocked: red}[c.Action]
		line := fmt.Sprintf("  %-3s %s %s", c.Action.Symbol(), c.Kind, c.Name)
		if c.Detail != "" {
			line += " (" + c.Detail + ")"
		}
		fmt.Fprintln(t.w, t.paint(color, line))
		for _, f := range c.Fields {
			fmt.Fprintf(t.w, "        %s: %q → %q\n", f.Name, f.Old, f.New)
		}
		if c.Note != "" {
			fmt.Fprintf(t.w, "        %s\n", c.Note)
		}
	}
	fmt.Fprintf(t.w, "\nPlan: %d to add, %d to change, %d to destroy", add, change, destroy)
	if blocked > 0 {
		fmt.Fprintf(t.w, ", %s", t.paint(red, fmt.Sprintf("%d blocked (see notes)", blocked)))
	}
	fmt.Fprintln(t.w, ".")
}

// Progress shows a long wait.
func (t *Text) Progress(host, text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	line := fmt.Sprintf("  ... [%s] %s", host, text)
	if t.Live {
		t.clearProgress()
		fmt.Fprint(t.w, line)
		t.progressShown = true
		return
	}
	now := t.now()
	if last, ok := t.lastProgress[host]; ok && now.Sub(last) < 5*time.Second {
		return
	}
	t.lastProgress[host] = now
	fmt.Fprintln(t.w, line)
}

// Message prints a line, with a prefix for warnings and errors.
func (t *Text) Message(level Level, text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearProgress()
	switch level {
	case Warning:
		text = t.paint(yellow, "warning: "+text)
	case Error:
		text = t.paint(red, "error: "+text)
	}
	fmt.Fprintln(t.w, text)
}

// Summary prints the PLAY RECAP.
func (t *Text) Summary(s Summary) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clearProgress()
	if len(s.Hosts) > 0 {
		fmt.Fprintf(t.w, "\n%s\n", t.paint(bold, banner("PLAY RECAP")))
		for _, h := range s.Hosts {
			color := green
			switch {
			case h.Failed > 0 || h.Unreachable > 0:
				color = red
			case h.Changed > 0:
				color = yellow
			}
			fmt.Fprintf(t.w, "%s : %s %s %s %s %s (%s)\n",
				t.paint(color, fmt.Sprintf("%-26s", h.Host)),
				t.paint(green, fmt.Sprintf("ok=%-4d", h.OK)),
				t.paint(yellow, fmt.Sprintf("changed=%-4d", h.Changed)),
				fmt.Sprintf("unreachable=%-4d", h.Unreachable),
				fmt.Sprintf("failed=%-4d", h.Failed),
				fmt.Sprintf("skipped=%-4d", h.Skipped),
				fmtDuration(h.Duration))
		}
	}
	var notes []string
	if s.Check {
		notes = append(notes, "check mode: nothing was changed")
	}
	if s.Interrupted {
		notes = append(notes, t.paint(red, "interrupted: later tasks did not run"))
	}
	line := fmt.Sprintf("\n%s finished in %s", s.Command, fmtDuration(s.Duration))
	if len(notes) > 0 {
		line += " (" + strings.Join(notes, "; ") + ")"
	}
	fmt.Fprintln(t.w, line)
	if s.ExitCode != 0 && s.LogFile != "" {
		fmt.Fprintf(t.w, "debug log: %s\n", s.LogFile)
	}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
