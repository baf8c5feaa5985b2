package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lghs/lghsctl/internal/report"
)

// Progress keeps a move's counters (stream bytes, and per collection
// documents and bytes against the pre-flight's expectations) and shows
// them on one live line through the reporter: the total with its rate and
// ETA, then the collections being copied with theirs.
type Progress struct {
	rep  report.Reporter
	host string
	now  func() time.Time

	mu       sync.Mutex
	start    time.Time
	raw      int64
	expected int64
	colls    map[string]*collProgress
}

type collProgress struct {
	name              string
	docs, bytes       int64
	expDocs, expBytes int64
	start             time.Time
	done              bool
}

// NewProgress reports on behalf of host (the target's name). rep may be
// nil (counters only).
func NewProgress(rep report.Reporter, host string) *Progress {
	return &Progress{rep: rep, host: host, now: time.Now, colls: map[string]*collProgress{}}
}

func (p *Progress) coll(name string) *collProgress {
	c := p.colls[name]
	if c == nil {
		c = &collProgress{name: name}
		p.colls[name] = c
	}
	return c
}

// Expect records what the pre-flight found for a collection.
func (p *Progress) Expect(name string, docs, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.coll(name)
	p.expected += bytes - c.expBytes
	c.expDocs, c.expBytes = docs, bytes
}

// Begin marks the start of the move (and of each collection's clock when
// its first document arrives).
func (p *Progress) Begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		p.start = p.now()
	}
}

// Raw counts stream bytes.
func (p *Progress) Raw(n int) {
	p.mu.Lock()
	p.raw += int64(n)
	p.mu.Unlock()
}

// StreamBytes is the number of stream bytes read so far.
func (p *Progress) StreamBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw
}

// Doc counts one document of a collection.
func (p *Progress) Doc(name string, size int) {
	p.mu.Lock()
	c := p.coll(name)
	if c.start.IsZero() {
		c.start = p.now()
	}
	c.docs++
	c.bytes += int64(size)
	p.mu.Unlock()
}

// Done marks a collection finished (or skipped as already copied).
func (p *Progress) Done(name string) {
	p.mu.Lock()
	p.coll(name).done = true
	p.mu.Unlock()
}

// Counts returns the documents and bytes seen for a collection.
func (p *Progress) Counts(name string) (docs, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.coll(name)
	return c.docs, c.bytes
}

// Line renders the live line.
func (p *Progress) Line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	var moved int64
	active := []*collProgress{}
	done := 0
	for _, c := range p.colls {
		moved += c.bytes
		switch {
		case c.done:
			done++
		case c.docs > 0:
			active = append(active, c)
		}
	}
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(moved) / el
	}
	line := humanBytes(moved)
	if p.expected > 0 {
		line += "/" + humanBytes(p.expected)
	}
	line += fmt.Sprintf(" %s/s", humanBytes(int64(rate)))
	if p.expected > moved && rate > 0 {
		line += " ETA " + eta(float64(p.expected-moved)/rate)
	}
	line += fmt.Sprintf(" (stream %s)", humanBytes(p.raw))
	sort.Slice(active, func(i, j int) bool { return active[i].bytes > active[j].bytes })
	var parts []string
	for i, c := range active {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d more", len(active)-3))
			break
		}
		s := c.name
		if c.expBytes > 0 {
			s += fmt.Sprintf(" %d%%", min(99, c.bytes*100/c.expBytes))
		}
		s += fmt.Sprintf(" %d docs", c.docs)
		if cel := now.Sub(c.start).Seconds(); cel > 0 && c.expBytes > c.bytes {
			r := float64(c.bytes) / cel
			s += fmt.Sprintf(" %s/s", humanBytes(int64(r)))
			if r > 0 {
				s += " ETA " + eta(float64(c.expBytes-c.bytes)/r)
			}
		}
		parts = append(parts, s)
	}
	if len(parts) > 0 {
		line += " | " + strings.Join(parts, ", ")
	}
	if done > 0 {
		line += fmt.Sprintf(" | %d done", done)
	}
	return line
}

// Run shows the line every interval until ctx ends.
func (p *Progress) Run(ctx context.Context, interval time.Duration) {
	if p.rep == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.rep.Progress(p.host, p.Line())
		}
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func eta(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()+0.5))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}
