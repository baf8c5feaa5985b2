package task

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lghs/lghsctl/internal/report"
)

// recorder is a report.Reporter keeping task results.
type recorder struct {
	mu      sync.Mutex
	results []report.TaskResult
}

func (r *recorder) Play(string)                  {}
func (r *recorder) Plan(string, []report.Change) {}
func (r *recorder) Progress(string, string)      {}
func (r *recorder) Message(report.Level, string) {}
func (r *recorder) Summary(report.Summary)       {}
func (r *recorder) Task(t report.TaskResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, t)
}

func (r *recorder) statuses() map[string]report.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]report.Status{}
	for _, t := range r.results {
		m[t.Host+"/"+t.Task] = t.Status
	}
	return m
}

// fileStep manages one value in a fake "host" as a real task would: it
// compares and, outside check mode, writes.
func fileStep(name string, host map[string]string, key, want string, notify ...string) Step {
	return Step{Name: name, Notify: notify, Run: func(ctx context.Context, env Env) (Result, error) {
		if host[key] == want {
			return Unchanged(), nil
		}
		if !env.Check {
			host[key] = want
		}
		return Changedf("%s: %q → %q", key, host[key], want), nil
	}}
}

func TestCheckModeChangesNothingButReportsTheChange(t *testing.T) {
	host := map[string]string{"motd": "old"}
	rec := &recorder{}
	r := &Runner{Check: true, Reporter: rec}
	err := r.Run(context.Background(), []Target{{Name: "h", Steps: []Step{fileStep("motd", host, "motd", "new")}}})
	if err != nil {
		t.Fatal(err)
	}
	if host["motd"] != "old" {
		t.Errorf("check mode changed the host: %v", host)
	}
	if got := rec.statuses()["h/motd"]; got != report.Changed {
		t.Errorf("status = %s, want changed", got)
	}
}

func TestConvergedStepReportsOKOnSecondRun(t *testing.T) {
	host := map[string]string{}
	targets := []Target{{Name: "h", Steps: []Step{fileStep("motd", host, "motd", "new")}}}
	first, second := &recorder{}, &recorder{}
	if err := (&Runner{Reporter: first}).Run(context.Background(), targets); err != nil {
		t.Fatal(err)
	}
	if err := (&Runner{Reporter: second}).Run(context.Background(), targets); err != nil {
		t.Fatal(err)
	}
	if first.statuses()["h/motd"] != report.Changed || second.statuses()["h/motd"] != report.OK {
		t.Errorf("first %v, second %v; want changed then ok", first.statuses(), second.statuses())
	}
}

// tracked appends the step's name to order each time it runs.
func tracked(order *[]string, s Step) Step {
	run := s.Run
	s.Run = func(ctx context.Context, env Env) (Result, error) {
		*order = append(*order, s.Name)
		return run(ctx, env)
	}
	return s
}

func TestHandlersRunOnceAfterTheStepsThatNotifyThem(t *testing.T) {
	host := map[string]string{}
	var order []string
	var reloads int
	reload := Step{Name: "reload nginx", Run: func(context.Context, Env) (Result, error) {
		reloads++
		order = append(order, "reload")
		return Changedf("reloaded"), nil
	}}
	unused := Step{Name: "restart docker", Run: func(context.Context, Env) (Result, error) {
		t.Error("a handler nobody notified ran")
		return Result{}, nil
	}}
	rec := &recorder{}
	err := (&Runner{Reporter: rec}).Run(context.Background(), []Target{{
		Name: "h",
		Steps: []Step{
			tracked(&order, fileStep("site a", host, "a", "1", "reload nginx")),
			tracked(&order, fileStep("site b", host, "b", "1", "reload nginx")),
			tracked(&order, fileStep("site c", host, "c", "", "restart docker")), // unchanged: no notification
		},
		Handlers: []Step{unused, reload},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if reloads != 1 {
		t.Errorf("handler ran %d times, want 1", reloads)
	}
	if want := []string{"site a", "site b", "site c", "reload"}; len(order) != len(want) || order[3] != "reload" {
		t.Errorf("order = %v, want %v", order, want)
	}
}

// TestFlushHandlersRunsWhatWasNotifiedBeforeTheNextSteps: a step that
// needs a restarted daemon comes after a flush; the handler runs there,
// once, and not again at the end unless notified again.
func TestFlushHandlersRunsWhatWasNotifiedBeforeTheNextSteps(t *testing.T) {
	host := map[string]string{}
	var order []string
	handler := func(name string) Step {
		return Step{Name: name, Run: func(context.Context, Env) (Result, error) {
			order = append(order, name)
			return Changedf("done"), nil
		}}
	}
	step := func(s Step) Step { return tracked(&order, s) }
	rec := &recorder{}
	err := (&Runner{Reporter: rec}).Run(context.Background(), []Target{{
		Name: "h",
		Steps: []Step{
			step(fileStep("daemon.json", host, "d", "1", "restart docker")),
			FlushHandlers(),
			step(fileStep("app", host, "a", "1")),
			FlushHandlers(), // nothing notified since: nothing runs
			step(fileStep("site", host, "s", "1", "reload nginx")),
		},
		Handlers: []Step{handler("restart docker"), handler("reload nginx")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, ","), "daemon.json,restart docker,app,site,reload nginx"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	for _, r := range rec.results {
		if r.Task == "flush handlers" {
			t.Error("the flush marker was reported as a task")
		}
	}
}

func TestFailedStepStopsTheHostButNotOthers(t *testing.T) {
	rec := &recorder{}
	boom := Step{Name: "boom", Run: func(context.Context, Env) (Result, error) { return Result{}, errors.New("disk full") }}
	after := Step{Name: "after", Run: func(context.Context, Env) (Result, error) { return Unchanged(), nil }}
	err := (&Runner{Reporter: rec}).Run(context.Background(), []Target{
		{Name: "bad", Steps: []Step{boom, after}},
		{Name: "good", Steps: []Step{after}},
	})
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("err = %v, want ErrFailed", err)
	}
	s := rec.statuses()
	if s["bad/boom"] != report.Failed || s["good/after"] != report.OK {
		t.Errorf("statuses = %v", s)
	}
	if _, ran := s["bad/after"]; ran {
		t.Error("a step after a failure ran")
	}
}

func TestUnreachableTargetRunsNoStep(t *testing.T) {
	rec := &recorder{}
	err := (&Runner{Reporter: rec}).Run(context.Background(), []Target{{
		Name:    "h",
		Connect: func(context.Context) error { return errors.New("connection refused") },
		Steps:   []Step{{Name: "x", Run: func(context.Context, Env) (Result, error) { t.Error("step ran"); return Result{}, nil }}},
	}})
	if !errors.Is(err, ErrFailed) || rec.statuses()["h/connect"] != report.Unreachable {
		t.Errorf("err = %v, statuses = %v", err, rec.statuses())
	}
}

func TestCancellationStopsTheRunAndReportsWhatRan(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	tally := report.NewTally(rec)
	slow := Step{Name: "slow", Run: func(ctx context.Context, env Env) (Result, error) {
		cancel() // Ctrl-C arrives while this step runs
		<-ctx.Done()
		return Result{}, ctx.Err()
	}}
	var laterRan atomic.Bool
	later := Step{Name: "later", Run: func(context.Context, Env) (Result, error) { laterRan.Store(true); return Unchanged(), nil }}
	done := make(chan error)
	go func() {
		done <- (&Runner{Reporter: tally}).Run(ctx, []Target{{Name: "h", Steps: []Step{fileStep("first", map[string]string{}, "k", "v"), slow, later}}})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop after cancellation")
	}
	if laterRan.Load() {
		t.Error("a step after the interruption ran")
	}
	recaps := tally.Recaps()
	if len(recaps) != 1 || recaps[0].Changed != 1 || recaps[0].Failed != 1 {
		t.Errorf("recap = %+v, want changed=1 failed=1", recaps)
	}
}

func TestParallelLimitIsRespected(t *testing.T) {
	var running, peak atomic.Int32
	step := Step{Name: "s", Run: func(context.Context, Env) (Result, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		return Unchanged(), nil
	}}
	var targets []Target
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		targets = append(targets, Target{Name: n, Steps: []Step{step}})
	}
	if err := (&Runner{Parallel: 2, Reporter: &recorder{}}).Run(context.Background(), targets); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 2 {
		t.Errorf("peak parallelism = %d, want 2", peak.Load())
	}
}
