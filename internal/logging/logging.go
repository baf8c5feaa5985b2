// Package logging sets up lghsctl's debug log: one file per run with every
// remote command and API call, secrets redacted, whose path the command
// prints when something fails. It is separate from what users read
// (internal/report).
package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Redactor replaces known secret values with [redacted] wherever they
// appear in log records. Register each secret as soon as it is read.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// Add registers secret values; values shorter than 6 characters are ignored
// (they would redact ordinary words).
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		if len(v) >= 6 {
			r.secrets = append(r.secrets, v)
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

// Redact returns s with every registered secret replaced.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// Handler wraps a slog.Handler and redacts every string it passes on.
type Handler struct {
	next slog.Handler
	r    *Redactor
}

// NewHandler redacts r's secrets from records before next sees them.
func NewHandler(next slog.Handler, r *Redactor) *Handler { return &Handler{next, r} }

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *Handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.r.Redact(err.Error()))
		}
		return slog.String(a.Key, h.r.Redact(fmt.Sprint(v.Any())))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return &Handler{h.next.WithAttrs(red), h.r}
}

func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{h.next.WithGroup(name), h.r} }

// File is an open debug log.
type File struct {
	Logger *slog.Logger
	Path   string
	f      *os.File
}

// Close flushes and closes the log file.
func (f *File) Close() error {
	if f.f == nil {
		return nil
	}
	return f.f.Close()
}

// keep is how many run logs are kept in a log directory.
const keep = 30

// Open creates a new debug log file in dir (mode 0600, in a 0700 directory),
// named after the command and the time, and prunes old ones. extra, if not
// nil, also receives the log (for -v on stderr).
func Open(dir, command string, r *Redactor, extra io.Writer, level slog.Level) (*File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	// Nanoseconds and a counter keep names unique when one process runs
	// several commands (in-process tests, the lab daemon).
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	var path string
	var f *os.File
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%s-%d.log", stamp, command, os.Getpid())
		if i > 0 {
			name = fmt.Sprintf("%s-%s-%d-%d.log", stamp, command, os.Getpid(), i)
		}
		path = filepath.Join(dir, name)
		var err error
		f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return nil, fmt.Errorf("create log file: %w", err)
		}
	}
	var h slog.Handler = slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
	if extra != nil {
		h = tee{h, slog.NewTextHandler(extra, &slog.HandlerOptions{Level: level})}
	}
	prune(dir)
	return &File{Logger: slog.New(NewHandler(h, r)), Path: path, f: f}, nil
}

func prune(dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) <= keep {
		return
	}
	sort.Strings(logs) // names start with the UTC time
	for _, old := range logs[:len(logs)-keep] {
		os.Remove(old)
	}
}

// tee sends records to two handlers.
type tee struct{ a, b slog.Handler }

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t tee) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if t.a.Enabled(ctx, r.Level) {
		err = t.a.Handle(ctx, r.Clone())
	}
	if t.b.Enabled(ctx, r.Level) {
		if e := t.b.Handle(ctx, r.Clone()); err == nil {
			err = e
		}
	}
	return err
}

func (t tee) WithAttrs(attrs []slog.Attr) slog.Handler {
	return tee{t.a.WithAttrs(attrs), t.b.WithAttrs(attrs)}
}

func (t tee) WithGroup(name string) slog.Handler {
	return tee{t.a.WithGroup(name), t.b.WithGroup(name)}
}
