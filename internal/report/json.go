package report

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// JSON writes one JSON object per line per event; docs/json-output.md
// documents the shapes. Every object has "type" and "time".
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
	now func() time.Time
}

// NewJSON writes to w.
func NewJSON(w io.Writer) *JSON {
	return &JSON{enc: json.NewEncoder(w), now: time.Now}
}

func (j *JSON) emit(v any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(v) // a closed stdout leaves nothing to report to
}

type envelope struct {
	Type string    `json:"type"`
	Time time.Time `json:"time"`
}

func (j *JSON) env(typ string) envelope { return envelope{typ, j.now().UTC()} }

// Play emits {"type":"play","title":...}.
func (j *JSON) Play(title string) {
	j.emit(struct {
		envelope
		Title string `json:"title"`
	}{j.env("play"), title})
}

// Task emits {"type":"task",...}.
func (j *JSON) Task(r TaskResult) {
	j.emit(struct {
		envelope
		Host       string `json:"host"`
		Task       string `json:"task"`
		Status     Status `json:"status"`
		DurationMS int64  `json:"duration_ms"`
		Message    string `json:"message,omitempty"`
		Diff       string `json:"diff,omitempty"`
		Handler    bool   `json:"handler,omitempty"`
	}{j.env("task"), r.Host, r.Task, r.Status, r.Duration.Milliseconds(), r.Message, r.Diff, r.Handler})
}

// Plan emits {"type":"plan",...} with every change and the counts.
func (j *JSON) Plan(title string, changes []Change) {
	add, change, destroy, blocked := CountPlan(changes)
	if changes == nil {
		changes = []Change{}
	}
	j.emit(struct {
		envelope
		Title   string   `json:"title"`
		Changes []Change `json:"changes"`
		Add     int      `json:"add"`
		Change  int      `json:"change"`
		Destroy int      `json:"destroy"`
		Blocked int      `json:"blocked"`
	}{j.env("plan"), title, changes, add, change, destroy, blocked})
}

// Progress emits {"type":"progress",...}.
func (j *JSON) Progress(host, text string) {
	j.emit(struct {
		envelope
		Host string `json:"host"`
		Text string `json:"text"`
	}{j.env("progress"), host, text})
}

// Message emits {"type":"message","level":...,"text":...}.
func (j *JSON) Message(level Level, text string) {
	j.emit(struct {
		envelope
		Level Level  `json:"level"`
		Text  string `json:"text"`
	}{j.env("message"), level, text})
}

type jsonRecap struct {
	HostRecap
	DurationMS int64 `json:"duration_ms"`
}

// Summary emits {"type":"summary",...}, always the last line.
func (j *JSON) Summary(s Summary) {
	hosts := make([]jsonRecap, len(s.Hosts))
	for i, h := range s.Hosts {
		hosts[i] = jsonRecap{h, h.Duration.Milliseconds()}
	}
	j.emit(struct {
		envelope
		Command     string      `json:"command"`
		Hosts       []jsonRecap `json:"hosts"`
		DurationMS  int64       `json:"duration_ms"`
		Check       bool        `json:"check"`
		Changed     bool        `json:"changed"`
		Interrupted bool        `json:"interrupted"`
		ExitCode    int         `json:"exit_code"`
		LogFile     string      `json:"log_file,omitempty"`
	}{j.env("summary"), s.Command, hosts, s.Duration.Milliseconds(), s.Check, s.Changed(), s.Interrupted, s.ExitCode, s.LogFile})
}
