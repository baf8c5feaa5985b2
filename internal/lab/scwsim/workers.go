package scwsim

import (
	"context"
	"sync"
)

// workers runs machine work in the background, in order within a lane: one
// lane per server ("server/<id>") and one lane for all disk layers
// ("layers"). Enqueueing never blocks, so handlers may enqueue while holding
// the state lock; jobs take the lock themselves to record their outcome.
type workers struct {
	mu      sync.Mutex
	idle    *sync.Cond
	pending int
	lanes   map[string]*lane
}

type lane struct {
	queue   []func()
	running bool
}

const layersLane = "layers"

func serverLane(id string) string { return "server/" + id }

func (w *workers) init() {
	w.lanes = map[string]*lane{}
	w.idle = sync.NewCond(&w.mu)
}

// enqueue runs job after every job queued before it on the same lane.
func (w *workers) enqueue(name string, job func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lanes[name]
	if l == nil {
		l = &lane{}
		w.lanes[name] = l
	}
	l.queue = append(l.queue, job)
	w.pending++
	if !l.running {
		l.running = true
		go w.run(name, l)
	}
}

func (w *workers) run(name string, l *lane) {
	for {
		w.mu.Lock()
		if len(l.queue) == 0 {
			l.running = false
			delete(w.lanes, name)
			w.mu.Unlock()
			return
		}
		job := l.queue[0]
		l.queue = l.queue[1:]
		w.mu.Unlock()

		job()

		w.mu.Lock()
		w.pending--
		if w.pending == 0 {
			w.idle.Broadcast()
		}
		w.mu.Unlock()
	}
}

// barrier returns a channel closed once every job queued on the lane so far
// has run.
func (w *workers) barrier(name string) <-chan struct{} {
	ch := make(chan struct{})
	w.enqueue(name, func() { close(ch) })
	return ch
}

// WaitIdle blocks until no machine work is pending or running, or ctx ends.
func (s *Sim) WaitIdle(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.work.mu.Lock()
		for s.work.pending > 0 {
			s.work.idle.Wait()
		}
		s.work.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// locked runs f with the state lock held (for jobs recording outcomes).
func (s *Sim) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}
