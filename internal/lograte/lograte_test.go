package lograte

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// capture is a slog.Handler that keeps what it is given.
type capture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r)
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

func (c *capture) take() []slog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.records
	c.records = nil
	return r
}

func suppressed(r slog.Record) int {
	n := 0
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			n = int(a.Value.Int64())
		}
		return true
	})
	return n
}

type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

func TestOnePerKindPerInterval(t *testing.T) {
	sink := &capture{}
	clock := &testClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	log := slog.New(New(sink, time.Minute, clock.Now))

	// An outage: the same object fails 100 times, with a new error text
	// each time; another object fails too.
	for i := range 100 {
		log.Warn("origin failed", "key", "/a.js", "err", errors.New("dial tcp 10.0.0.1:"+string(rune('0'+i%10))))
	}
	log.Warn("origin failed", "key", "/b.json", "err", "refused")
	log.Info("serving", "key", "/a.js") // info passes, always
	log.Info("serving", "key", "/a.js")
	got := sink.take()
	if len(got) != 4 {
		t.Fatalf("%d records passed, want 4 (first of each kind, and the info ones)", len(got))
	}

	// The interval ends with nothing new: the next record (of any kind)
	// sweeps, and the count of /a.js's dropped records is reported.
	clock.now = clock.now.Add(time.Minute)
	log.Info("tick")
	got = sink.take()
	var summary *slog.Record
	for i := range got {
		if got[i].Message == "origin failed" {
			summary = &got[i]
		}
	}
	if summary == nil || suppressed(*summary) != 99 {
		t.Fatalf("after the interval: %v, want a summary of 99 dropped", got)
	}

	// A new interval: the first record passes again.
	log.Warn("origin failed", "key", "/a.js", "err", "x")
	log.Warn("origin failed", "key", "/a.js", "err", "y")
	if got := sink.take(); len(got) != 1 || suppressed(got[0]) != 0 {
		t.Fatalf("new interval: %v", got)
	}
	// Flush reports what is pending at once.
	New(sink, time.Minute, clock.Now).Flush(context.Background()) // another limiter: nothing pending
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("flush of an idle limiter: %v", got)
	}
	log.Handler().(*Handler).Flush(context.Background())
	if got := sink.take(); len(got) != 1 || suppressed(got[0]) != 1 {
		t.Fatalf("flush: %v", got)
	}
}

func TestBoundedKinds(t *testing.T) {
	sink := &capture{}
	clock := &testClock{now: time.Unix(0, 0)}
	h := New(sink, time.Minute, clock.Now)
	log := slog.New(h)
	for i := range maxKinds + 500 {
		log.Warn("origin failed", "key", i)
	}
	if n := len(h.st.kinds); n > maxKinds+1 {
		t.Fatalf("%d kinds kept, bound %d", n, maxKinds)
	}
	if got := len(sink.take()); got != maxKinds+1 {
		t.Fatalf("%d records passed, want %d (one per kind, then one for the overflow)", got, maxKinds+1)
	}
}

func TestLoggerWrapsOnce(t *testing.T) {
	l := Logger(slog.New(&capture{}), time.Second, nil)
	if Logger(l, time.Second, nil) != l {
		t.Error("a limited logger was wrapped again")
	}
	Logger(nil, time.Second, nil).Error("discarded") // must not panic
}

// notify is a capture that also signals each record.
type notify struct {
	capture
	got chan struct{}
}

func (n *notify) Handle(ctx context.Context, r slog.Record) error {
	n.capture.Handle(ctx, r)
	n.got <- struct{}{}
	return nil
}

// TestCountReportedWithoutAnotherRecord: when a failure stops, the count
// of its dropped records still reaches the log, by a timer.
func TestCountReportedWithoutAnotherRecord(t *testing.T) {
	sink := &notify{got: make(chan struct{}, 10)}
	log := slog.New(New(sink, 20*time.Millisecond, nil))
	for range 5 {
		log.Error("origin failed", "key", "/a.js")
	}
	<-sink.got // the first
	select {
	case <-sink.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the count was never reported")
	}
	got := sink.take()
	if n := suppressed(got[len(got)-1]); n != 4 {
		t.Fatalf("reported %d dropped, want 4", n)
	}
}
