// Package lograte keeps a failure that repeats from flooding the log: a
// slog.Handler that passes on the first record of each kind, then drops
// the same kind of record for an interval and reports how many it
// dropped.
//
// An S3 outage makes every request for every object fail the same way,
// hundreds of times a second; the log should say so once per object and
// per interval, with a count, not hundreds of times.
//
// A record's kind is its message and its attributes, except those whose
// key is "err" or "error": the same failure of the same object is one
// kind, whatever the error text (a new port number, a new request id).
// Records below slog.LevelWarn are never limited.
package lograte

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxKinds bounds the memory the limiter keeps; past it, records of new
// kinds are limited as one kind per message.
const maxKinds = 10000

// Handler limits the records it passes to the next handler: at most one
// of each kind per interval. Records dropped are counted, and the count
// is reported as the attribute "suppressed" on the next record of that
// kind, or, when none comes, on a copy of the last dropped record once
// the interval is over (checked as records arrive, by a timer while
// counts are pending, and by Flush).
type Handler struct {
	next   slog.Handler
	prefix string // the kind of this handler's own attributes
	st     *state
}

type state struct {
	every time.Duration
	now   func() time.Time

	mu        sync.Mutex
	kinds     map[string]*kind
	nextSweep time.Time
	timer     *time.Timer // pending while records are dropped: reports them when nothing else comes
}

type kind struct {
	until      time.Time   // records of this kind are dropped until then
	suppressed int         // dropped since the last record passed
	last       slog.Record // the last dropped, for the summary
	next       slog.Handler
}

// New returns a Handler that passes at most one record of each kind per
// interval every to next. now is the clock; nil means time.Now.
func New(next slog.Handler, every time.Duration, now func() time.Time) *Handler {
	if now == nil {
		now = time.Now
	}
	return &Handler{next: next, st: &state{every: every, now: now, kinds: map[string]*kind{}}}
}

// Logger wraps l's handler in a Handler; a nil l gives a logger that
// discards everything.
func Logger(l *slog.Logger, every time.Duration, now func() time.Time) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	if _, ok := l.Handler().(*Handler); ok {
		return l
	}
	return slog.New(New(l.Handler(), every, now))
}

// Enabled reports whether the next handler takes records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r on, or drops and counts it when a record of its kind
// passed less than the interval ago.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	h.sweep(ctx)
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	key := h.kindOf(r)
	st := h.st
	now := st.now()
	st.mu.Lock()
	k := st.kinds[key]
	if k == nil && len(st.kinds) >= maxKinds {
		key = "\x00" + r.Message // too many kinds: one per message
		k = st.kinds[key]
	}
	if k != nil && now.Before(k.until) {
		k.suppressed++
		k.last = r.Clone()
		if st.timer == nil {
			// Report the count even if no record comes to sweep it.
			st.timer = time.AfterFunc(st.every, func() { h.sweepLater(ctx) })
		}
		st.mu.Unlock()
		return nil
	}
	dropped := 0
	if k != nil {
		dropped = k.suppressed
	}
	st.kinds[key] = &kind{until: now.Add(st.every), next: h.next}
	st.mu.Unlock()
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

// sweep, at most once per interval, reports the counts of kinds whose
// interval is over and forgets them, so memory stays bounded and no
// count is lost when a failure stops.
func (h *Handler) sweep(ctx context.Context) {
	st := h.st
	now := st.now()
	st.mu.Lock()
	if now.Before(st.nextSweep) {
		st.mu.Unlock()
		return
	}
	st.nextSweep = now.Add(st.every)
	due := st.takeDue(now, false)
	st.mu.Unlock()
	report(ctx, due)
}

// sweepLater is the timer's sweep: it reports what is due and, while
// counts are still pending, comes back after another interval.
func (h *Handler) sweepLater(ctx context.Context) {
	st := h.st
	st.mu.Lock()
	st.timer = nil
	due := st.takeDue(st.now(), false)
	for _, k := range st.kinds {
		if k.suppressed > 0 {
			st.timer = time.AfterFunc(st.every, func() { h.sweepLater(ctx) })
			break
		}
	}
	st.mu.Unlock()
	report(context.WithoutCancel(ctx), due)
}

// Flush reports the count of every kind with records dropped, whether or
// not its interval is over. Call it before the process exits.
func (h *Handler) Flush(ctx context.Context) {
	st := h.st
	st.mu.Lock()
	due := st.takeDue(time.Time{}, true)
	st.mu.Unlock()
	report(ctx, due)
}

// takeDue removes the kinds whose interval ended before now (all of
// them, with all) and returns those with records dropped.
func (st *state) takeDue(now time.Time, all bool) []*kind {
	var due []*kind
	for key, k := range st.kinds {
		if !all && now.Before(k.until) {
			continue
		}
		delete(st.kinds, key)
		if k.suppressed > 0 {
			due = append(due, k)
		}
	}
	return due
}

func report(ctx context.Context, due []*kind) {
	for _, k := range due {
		r := k.last
		r.AddAttrs(slog.Int("suppressed", k.suppressed))
		// A failing log sink has nowhere to report to.
		_ = k.next.Handle(ctx, r)
	}
}

// kindOf is the key records of one kind share: the handler's attributes,
// the message and the record's attributes but errors.
func (h *Handler) kindOf(r slog.Record) string {
	var b strings.Builder
	b.WriteString(h.prefix)
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "err" && a.Key != "error" {
			b.WriteByte(0)
			b.WriteString(a.String())
		}
		return true
	})
	return b.String()
}

// WithAttrs returns a Handler for next.WithAttrs(attrs) that shares this
// one's limits.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range attrs {
		b.WriteString(a.String())
		b.WriteByte(0)
	}
	return &Handler{next: h.next.WithAttrs(attrs), prefix: b.String(), st: h.st}
}

// WithGroup returns a Handler for next.WithGroup(name) that shares this
// one's limits.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), prefix: h.prefix + name + "\x01", st: h.st}
}
