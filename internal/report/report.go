// Package report is what lghsctl's users read: Ansible-like task lines and
// a PLAY RECAP, a Terraform-like plan, and the same events as JSON lines
// for automation (--json). It is not logging: the debug log is separate.
//
// Reporters are safe for concurrent use, since hosts run in parallel.
package report

import (
	"sort"
	"sync"
	"time"
)

// Status is the outcome of a task.
type Status string

// Outcomes, as Ansible names them.
const (
	OK          Status = "ok"
	Changed     Status = "changed"
	Skipped     Status = "skipped"
	Failed      Status = "failed"
	Unreachable Status = "unreachable"
)

// TaskResult is one task's outcome on one host.
type TaskResult struct {
	Host     string
	Task     string
	Status   Status
	Duration time.Duration
	// Message says what changed, why it was skipped or what failed.
	Message string
	// Diff is a unified diff of what changed (or would change in check
	// mode); shown with --diff.
	Diff string
	// Handler marks a handler (run once after the tasks that notify it).
	Handler bool
}

// Action is what a plan does to one resource.
type Action string

// Plan actions with their Terraform-like symbols.
const (
	Create  Action = "create"  // +
	Update  Action = "update"  // ~
	Delete  Action = "delete"  // -
	Replace Action = "replace" // -/+
	// Blocked is drift the plan will not fix by itself (e.g. a commercial
	// type change needing a stop), or a conflict with something lghsctl
	// does not own; Note says what it would take.
	Blocked Action = "blocked" // !
)

// Symbol is the one-character mark of an action in a printed plan.
func (a Action) Symbol() string {
	switch a {
	case Create:
		return "+"
	case Update:
		return "~"
	case Delete:
		return "-"
	case Replace:
		return "-/+"
	case Blocked:
		return "!"
	}
	return "?"
}

// Change is one line of a plan.
type Change struct {
	Action Action `json:"action"`
	// Kind of resource: server, ip, security group, rule, ssh key, A,
	// AAAA, CAA, ...
	Kind string `json:"kind"`
	// Name of the resource (server name, record name, ...).
	Name string `json:"name"`
	// Detail is a short description (e.g. "DEV1-M fr-par-1").
	Detail string `json:"detail,omitempty"`
	// Fields lists attribute changes of an update.
	Fields []FieldChange `json:"fields,omitempty"`
	// Note explains a blocked change or a reason.
	Note string `json:"note,omitempty"`
}

// FieldChange is one attribute of an updated resource.
type FieldChange struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// Level of a message.
type Level string

// Message levels.
const (
	Info    Level = "info"
	Warning Level = "warning"
	Error   Level = "error"
)

// HostRecap counts one host's task outcomes.
type HostRecap struct {
	Host        string        `json:"host"`
	OK          int           `json:"ok"`
	Changed     int           `json:"changed"`
	Unreachable int           `json:"unreachable"`
	Failed      int           `json:"failed"`
	Skipped     int           `json:"skipped"`
	Duration    time.Duration `json:"-"`
}

// Summary ends a run.
type Summary struct {
	Command string
	Hosts   []HostRecap
	// Duration of the whole run.
	Duration time.Duration
	// Interrupted is set when the run was cancelled (Ctrl-C).
	Interrupted bool
	// ExitCode the command ends with.
	ExitCode int
	// LogFile is the debug log's path (shown when something failed).
	LogFile string
	// Check marks a check-mode run (nothing was changed).
	Check bool
}

// Changed reports whether any host changed (or would change).
func (s Summary) Changed() bool {
	for _, h := range s.Hosts {
		if h.Changed > 0 {
			return true
		}
	}
	return false
}

// Failed reports whether any host failed or was unreachable.
func (s Summary) Failed() bool {
	for _, h := range s.Hosts {
		if h.Failed > 0 || h.Unreachable > 0 {
			return true
		}
	}
	return false
}

// Reporter receives what happens during a command.
type Reporter interface {
	// Play starts a phase ("cloud", "hosts", ...).
	Play(title string)
	// Task reports a finished task.
	Task(TaskResult)
	// Plan shows the changes a phase will make (or would, in check mode).
	Plan(title string, changes []Change)
	// Progress tells that something long is under way (waiting for a
	// server to boot, copying data); it may be shown on one updating line.
	Progress(host, text string)
	// Message is a free-form line.
	Message(level Level, text string)
	// Summary ends the run.
	Summary(Summary)
}

// Tally is a Reporter that counts task outcomes per host and passes
// everything on; the command uses its Recaps for the summary.
type Tally struct {
	Reporter
	mu    sync.Mutex
	hosts map[string]*HostRecap
	start map[string]time.Time
	order []string
}

// NewTally wraps r.
func NewTally(r Reporter) *Tally {
	return &Tally{Reporter: r, hosts: map[string]*HostRecap{}, start: map[string]time.Time{}}
}

// Task counts the result and forwards it.
func (t *Tally) Task(r TaskResult) {
	t.mu.Lock()
	h := t.host(r.Host)
	switch r.Status {
	case OK:
		h.OK++
	case Changed:
		h.Changed++
	case Skipped:
		h.Skipped++
	case Failed:
		h.Failed++
	case Unreachable:
		h.Unreachable++
	}
	h.Duration += r.Duration
	t.mu.Unlock()
	t.Reporter.Task(r)
}

func (t *Tally) host(name string) *HostRecap {
	h, ok := t.hosts[name]
	if !ok {
		h = &HostRecap{Host: name}
		t.hosts[name] = h
		t.order = append(t.order, name)
	}
	return h
}

// Recaps returns the counts per host, sorted by host name.
func (t *Tally) Recaps() []HostRecap {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]HostRecap, 0, len(t.hosts))
	for _, name := range t.order {
		out = append(out, *t.hosts[name])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// CountPlan returns how many changes of each kind a plan has.
func CountPlan(changes []Change) (add, change, destroy, blocked int) {
	for _, c := range changes {
		switch c.Action {
		case Create:
			add++
		case Update:
			change++
		case Delete:
			destroy++
		case Replace:
			add++
			destroy++
		case Blocked:
			blocked++
		}
	}
	return
}
