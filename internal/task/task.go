// Package task is lghsctl's engine for idempotent steps, shared by the
// cloud, host, certificate and migration phases.
//
// A Step answers one question — is the target in the desired state? if
// not, and this is not check mode, make it so — and says whether it
// changed something. The Runner runs each target's steps in order, targets
// in parallel up to a limit, runs notified handlers once after the steps,
// times everything and reports each outcome. Cancelling the context stops
// the run: the running step sees the cancellation, later steps do not run,
// and what did run has been reported.
package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lghs/lghsctl/internal/report"
)

// Env is what a step knows about the run it is part of.
type Env struct {
	// Target is the name of the host (or other target) the step acts on.
	Target string
	// Check is check mode: compute what would change, change nothing.
	Check bool
	// Diff asks steps to describe file changes as unified diffs.
	Diff bool
	// Log is the debug log (never shown to users unless they ask).
	Log *slog.Logger
}

// Result is what a step found or did.
type Result struct {
	// Changed means the step changed the target (or, in check mode,
	// would have).
	Changed bool
	// Skipped means the step did not apply (Message says why).
	Skipped bool
	// Message is a short human description of the change or the skip.
	Message string
	// Diff is a unified diff of file content changes.
	Diff string
}

// Unchanged is the result of a step that found the target as desired.
func Unchanged() Result { return Result{} }

// Changedf is the result of a step that changed something.
func Changedf(format string, args ...any) Result {
	return Result{Changed: true, Message: fmt.Sprintf(format, args...)}
}

// Skipf is the result of a step that does not apply.
func Skipf(format string, args ...any) Result {
	return Result{Skipped: true, Message: fmt.Sprintf(format, args...)}
}

// Step is one idempotent unit of work.
//
// Contract: Run must be idempotent (running it again right after a
// successful run reports no change) and, when env.Check is set, must not
// change anything; it then reports what it would change. A returned error
// fails the step and stops the target's later steps.
type Step struct {
	Name string
	// Notify names handlers to run, once, after the target's steps, when
	// this step reports a change.
	Notify []string
	Run    func(ctx context.Context, env Env) (Result, error)
	// FlushHandlers makes this a marker, not a step (Run is not called):
	// the handlers notified so far run here, as Ansible's flush_handlers,
	// for steps that need their effect (containers started after the
	// Docker daemon's restart). A flushed handler runs again at the end
	// only if notified again.
	FlushHandlers bool
}

// FlushHandlers is the marker step that runs the handlers notified so far.
func FlushHandlers() Step { return Step{Name: "flush handlers", FlushHandlers: true} }

// Target is a host (or the cloud account) and the steps to run on it.
type Target struct {
	Name string
	// Connect, if set, prepares the target (e.g. opens the SSH connection)
	// before any step; its failure marks the target unreachable.
	Connect func(ctx context.Context) error
	Steps   []Step
	// Handlers run after the steps, in the order listed here, each at most
	// once, if a step notified it. They also run when a later step failed
	// (the change that notified them was made), but not when the run was
	// interrupted.
	Handlers []Step
	// Close, if set, runs when the target is done.
	Close func()
}

// ErrFailed is returned by Run when a step failed or a target was
// unreachable.
var ErrFailed = errors.New("one or more tasks failed")

// Runner runs targets' steps and reports them.
type Runner struct {
	// Parallel is how many targets run at once (0 means 5, like Ansible's
	// default forks).
	Parallel int
	Check    bool
	Diff     bool
	Reporter report.Reporter
	Log      *slog.Logger
	// now is the clock, replaced in tests.
	now func() time.Time
}

// Run runs all targets and returns nil, ErrFailed, or the context's error
// when interrupted (even if some tasks also failed).
func (r *Runner) Run(ctx context.Context, targets []Target) error {
	limit := r.Parallel
	if limit <= 0 {
		limit = 5
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if !r.runTarget(ctx, t) {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed {
		return ErrFailed
	}
	return nil
}

// runTarget reports whether the target finished without failure.
func (r *Runner) runTarget(ctx context.Context, t Target) bool {
	if t.Close != nil {
		defer t.Close()
	}
	log := r.Log.With("target", t.Name)
	if t.Connect != nil {
		start := r.now()
		if err := t.Connect(ctx); err != nil {
			log.Error("connect", "err", err)
			r.Reporter.Task(report.TaskResult{Host: t.Name, Task: "connect", Status: report.Unreachable, Duration: r.now().Sub(start), Message: err.Error()})
			return false
		}
	}
	env := Env{Target: t.Name, Check: r.Check, Diff: r.Diff, Log: log}
	notified := map[string]bool{}
	ok := true
	flush := func() {
		for _, h := range t.Handlers {
			if !notified[h.Name] || ctx.Err() != nil {
				continue
			}
			delete(notified, h.Name)
			if _, err := r.runStep(ctx, env, h, true); err != nil {
				ok = false
			}
		}
	}
	for _, s := range t.Steps {
		if ctx.Err() != nil {
			return false
		}
		if s.FlushHandlers {
			flush()
			if !ok {
				break
			}
			continue
		}
		res, err := r.runStep(ctx, env, s, false)
		if err != nil {
			ok = false
			break
		}
		if res.Changed {
			for _, h := range s.Notify {
				notified[h] = true
			}
		}
	}
	flush()
	for name := range notified {
		if !hasHandler(t.Handlers, name) {
			// A programming error: the step named a handler that does not
			// exist. Say it loudly rather than silently not reloading.
			r.Reporter.Task(report.TaskResult{Host: t.Name, Task: name, Handler: true, Status: report.Failed, Message: "no such handler"})
			ok = false
		}
	}
	return ok
}

func hasHandler(hs []Step, name string) bool {
	for _, h := range hs {
		if h.Name == name {
			return true
		}
	}
	return false
}

func (r *Runner) runStep(ctx context.Context, env Env, s Step, handler bool) (Result, error) {
	start := r.now()
	env.Log.Debug("step start", "step", s.Name, "check", env.Check)
	res, err := s.Run(ctx, env)
	d := r.now().Sub(start)
	tr := report.TaskResult{Host: env.Target, Task: s.Name, Duration: d, Message: res.Message, Handler: handler}
	if env.Diff {
		tr.Diff = res.Diff
	}
	switch {
	case err != nil:
		tr.Status = report.Failed
		tr.Message = err.Error()
		if ctx.Err() != nil {
			tr.Message = "interrupted: " + err.Error()
		}
		env.Log.Error("step failed", "step", s.Name, "err", err, "duration", d)
	case res.Skipped:
		tr.Status = report.Skipped
	case res.Changed:
		tr.Status = report.Changed
	default:
		tr.Status = report.OK
	}
	env.Log.Debug("step done", "step", s.Name, "status", tr.Status, "duration", d)
	r.Reporter.Task(tr)
	return res, err
}
