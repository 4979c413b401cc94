package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lineWriter records each write it gets; it fails while failing is set.
type lineWriter struct {
	mu      sync.Mutex
	writes  []string
	failing bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing {
		return 0, errors.New("write /var/log/edge/access.log: no space left on device")
	}
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *lineWriter) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func TestBufferedAccessLog(t *testing.T) {
	out := &lineWriter{}
	var errs bytes.Buffer
	tick := make(chan time.Time)
	b := newBufferedLogTicks(out, slog.New(slog.NewTextHandler(&errs, nil)), tick)

	b.Write([]byte("one\n"))
	b.Write([]byte("two\n"))
	if got := out.got(); len(got) != 0 {
		t.Fatalf("written before a flush: %q", got)
	}
	tick <- time.Time{} // the flusher's turn
	tick <- time.Time{} // it has finished the first
	if got := out.got(); len(got) != 1 || got[0] != "one\ntwo\n" {
		t.Fatalf("after a tick: %q, want both lines in one write", got)
	}

	// A line that does not fit is never split: what is buffered goes
	// out first, then the line whole.
	b.Write([]byte(strings.Repeat("a", accessLogBuffer-10) + "\n"))
	b.Write([]byte(strings.Repeat("b", 20) + "\n"))
	got := out.got()
	if len(got) != 2 || !strings.HasPrefix(got[1], "aaa") || strings.Contains(got[1], "b") {
		t.Fatalf("writes %d; the long line split or mixed", len(got))
	}

	// A failed write is logged, the buffered lines are lost, and the log
	// goes on.
	out.mu.Lock()
	out.failing = true
	out.mu.Unlock()
	tick <- time.Time{}
	tick <- time.Time{}
	if !strings.Contains(errs.String(), "access log: write failed") || !strings.Contains(errs.String(), "no space left") {
		t.Errorf("write error not logged: %q", errs.String())
	}
	out.mu.Lock()
	out.failing = false
	out.mu.Unlock()
	b.Write([]byte("after\n"))
	b.Close()
	if got := out.got(); got[len(got)-1] != "after\n" {
		t.Errorf("last write %q, want the line written after the failure, at Close", got[len(got)-1])
	}
}
