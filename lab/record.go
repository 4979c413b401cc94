package lab

import (
	"slices"
	"sync"
	"time"
)

// record is one request of a simulated browser.
type record struct {
	Start, End time.Duration // since the run began
	Pop        int           // the browser's region
	Browser    int           // the browser, within its region
	Object     int           // index in World.objects
	Region     int           // region that answered; -1: none did
	Addr       int           // position in the DNS answer of the address that answered: 0 the first, more the next ones (fallback)
	Status     int           // HTTP status; 0: no response
	Version    int           // version of the object served; 0: no body, or none of the lab's versions
	Err        string        // why it failed; "" for a 200 carrying a known version
	Stale      bool          // Cache-Status said stale (stale-if-error, stale-while-revalidate)
}

func (r record) ok() bool { return r.Err == "" }

// event is something the lab did at a moment (a kill, a cut, a
// purge), for the report and the chart.
type event struct {
	At    time.Duration
	Label string
}

// span is a scenario's stretch of the run.
type span struct {
	Name     string
	From, To time.Duration
	Events   []event
}

// recorder collects the requests of every browser and the lab's events,
// on one clock: time since the run began.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	recs  []record
	spans []span
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

// now is the time since the run began.
func (r *recorder) now() time.Duration { return time.Since(r.start) }

// since is t on the run's clock.
func (r *recorder) since(t time.Time) time.Duration { return t.Sub(r.start) }

func (r *recorder) add(rec record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
}

// begin opens a scenario's span; end closes it.
func (r *recorder) begin(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans = append(r.spans, span{Name: name, From: r.now()})
}

func (r *recorder) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.spans); n > 0 {
		r.spans[n-1].To = r.now()
	}
}

// event notes what the lab does now, in the current span, and returns
// the time.
func (r *recorder) event(label string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := r.now()
	if n := len(r.spans); n > 0 {
		r.spans[n-1].Events = append(r.spans[n-1].Events, event{At: at, Label: label})
	}
	return at
}

// between returns the requests that started in [from, to), by start.
func (r *recorder) between(from, to time.Duration) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record
	for _, rec := range r.recs {
		if rec.Start >= from && rec.Start < to {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b record) int { return int(a.Start - b.Start) })
	return out
}

// all returns every request and span so far.
func (r *recorder) all() ([]record, []span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs), slices.Clone(r.spans)
}
