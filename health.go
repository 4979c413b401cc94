package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/edgecdn/edge/origin"
)

// Health is what /healthz reports: whether the edge can serve every
// must-serve path of every site right now, and why not.
type Health struct {
	OK       bool
	Draining bool
	Paths    []PathHealth
	Origins  []origin.OriginState // of origins that report their state
	// Components are the states of the parts given in
	// Options.Components. They never make OK false: only the must-serve
	// paths decide whether the edge can serve.
	Components []ComponentHealth
}

// A Component is a part of the edge beyond its sites' origins (the disk
// tier, certificates, the purge journal) that reports its state on
// /healthz?verbose. A degraded component never fails /healthz by itself:
// an edge that can still serve its must-serve paths stays in DNS.
// Health is called on every /healthz?verbose and must be cheap and safe
// for concurrent use.
type Component interface {
	Health() []ComponentHealth
}

// ComponentHealth is one line of a Component's report.
type ComponentHealth struct {
	Name   string // what it is: "certificate cdn.example.com", "purge journal"
	OK     bool   // false shows as "degraded"
	Detail string // the state in words: "expires in 61d", "unreachable for 2m: ..."
}

// PathHealth is one must-serve path's state.
type PathHealth struct {
	Site, Path string
	OK         bool
	State      string // "fresh", "stale, within stale-if-error", "not cached", ...
	// Status is State in one word, for metrics (edge_must_serve): one of
	// the Path* constants.
	Status string
}

// The states of a must-serve path, as PathHealth.Status and the state
// label of edge_must_serve.
const (
	PathFresh            = "fresh"               // served from cache, fresh
	PathStale            = "stale"               // expired, within stale-if-error: served while the origin fails
	PathPastStaleIfError = "past_stale_if_error" // expired past stale-if-error: not served
	PathNotCached        = "not_cached"          // never fetched, or evicted
	PathNotFound         = "not_found"           // the origin answered 404
)

// stateReporter is an Origin that reports per-origin state
// (origin.Failover).
type stateReporter interface{ States() []origin.OriginState }

// Health checks every must-serve path: each must have a copy that is
// fresh or within its stale-if-error window. A path the edge has never
// fetched counts as unservable: an edge that has not shown it can reach
// its origin must not take traffic.
func (h *Handler) Health() Health {
	now := h.now()
	hl := Health{OK: true}
	select {
	case <-h.draining:
		hl.OK, hl.Draining = false, true
	default:
	}
	for _, s := range h.sites {
		for _, p := range s.MustServe {
			ph := PathHealth{Site: s.CacheNamespace, Path: p}
			obj := h.cache.Lookup(s.key(p))
			var win window
			if obj != nil {
				win = s.window(p, &obj.Meta)
			}
			switch {
			case obj == nil:
				ph.State, ph.Status = "not cached", PathNotCached
			case obj.Meta.Status != http.StatusOK:
				ph.State, ph.Status = fmt.Sprintf("origin answered %d", obj.Meta.Status), PathNotFound
			case win.fresh(now):
				ph.OK, ph.State, ph.Status = true, "fresh", PathFresh
			case win.usable(now):
				ph.OK, ph.State, ph.Status = true, fmt.Sprintf("stale for %s, within stale-if-error", now.Sub(win.expires).Round(time.Second)), PathStale
			default:
				ph.State, ph.Status = fmt.Sprintf("stale for %s, past stale-if-error", now.Sub(win.expires).Round(time.Second)), PathPastStaleIfError
			}
			hl.OK = hl.OK && ph.OK
			hl.Paths = append(hl.Paths, ph)
		}
		if r, ok := s.Origin.(stateReporter); ok {
			hl.Origins = append(hl.Origins, r.States()...)
		}
	}
	if ok, detail := h.cache.DiskHealth(); !ok {
		hl.Components = append(hl.Components, ComponentHealth{Name: "disk", Detail: detail})
	} else {
		hl.Components = append(hl.Components, ComponentHealth{Name: "disk", OK: true})
	}
	for _, c := range h.components {
		hl.Components = append(hl.Components, c.Health()...)
	}
	return hl
}

// health answers /healthz: 200 "ok" while every must-serve path can be
// served, else 503 with the first reason, so DNS and load balancers take
// the edge out. /healthz?verbose lists every path and origin.
func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	hl := h.Health()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !hl.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, verbose := r.URL.Query()["verbose"]
	switch {
	case verbose:
		fmt.Fprintf(w, "ok: %v\n", hl.OK)
		if hl.Draining {
			fmt.Fprintln(w, "draining: shutting down")
		}
		for _, p := range hl.Paths {
			fmt.Fprintf(w, "path %s%s: %s\n", p.Site, p.Path, p.State)
		}
		now := h.now()
		for _, o := range hl.Origins {
			fmt.Fprintf(w, "origin %s: %s\n", o.Name, originLine(o, now))
		}
		for _, c := range hl.Components {
			state := "ok"
			if !c.OK {
				state = "degraded"
			}
			fmt.Fprintf(w, "%s: %s", c.Name, state)
			if c.Detail != "" {
				fmt.Fprintf(w, " (%s)", c.Detail)
			}
			fmt.Fprintln(w)
		}
	case hl.OK:
		io.WriteString(w, "ok\n")
	case hl.Draining:
		io.WriteString(w, "draining\n")
	default:
		var bad []string
		for _, p := range hl.Paths {
			if !p.OK {
				bad = append(bad, p.Path+": "+p.State)
			}
		}
		io.WriteString(w, "unhealthy: "+strings.Join(bad, "; ")+"\n")
	}
}

// originLine says how an origin is, for /healthz?verbose: its circuit,
// and its last error with its age, told as history once it recovered.
func originLine(o origin.OriginState, now time.Time) string {
	ago := func(t time.Time) string { return now.Sub(t).Round(time.Second).String() + " ago" }
	switch {
	case o.LastError == "":
		return o.State.String()
	case o.ConsecutiveFailures == 0:
		return fmt.Sprintf("%s (answering; last failure %s: %s)", o.State, ago(o.LastErrorAt), o.LastError)
	case o.State == origin.Closed:
		return fmt.Sprintf("%s (%d failures in a row, the last %s: %s)", o.State, o.ConsecutiveFailures, ago(o.LastErrorAt), o.LastError)
	}
	return fmt.Sprintf("%s for %s (%d failures in a row, the last %s: %s)", o.State, now.Sub(o.LastChange).Round(time.Second), o.ConsecutiveFailures, ago(o.LastErrorAt), o.LastError)
}

// Drain makes /healthz answer 503 from now on, ahead of a shutdown.
func (h *Handler) Drain() {
	select {
	case <-h.draining:
	default:
		close(h.draining)
	}
}

// KeepWarm starts fetching every must-serve path at once and then every
// interval, whenever its copy is missing or expired, so that health
// reflects the origin and the paths browsers need are always cached. It
// runs in the background until Close; failures are logged. The channel
// it returns is closed when the first pass is done (a process can wait
// for it, for a while, before it takes traffic).
func (h *Handler) KeepWarm(interval time.Duration) <-chan struct{} {
	first := make(chan struct{})
	started := h.goBackground(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		done := first
		for {
			h.warm(ctx)
			if done != nil {
				close(done)
				done = nil
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	if !started {
		close(first)
	}
	return first
}

// warm makes one pass over the must-serve paths.
func (h *Handler) warm(ctx context.Context) {
	now := h.now()
	for _, s := range h.sites {
		for _, p := range s.MustServe {
			obj := h.cache.Lookup(s.key(p))
			if obj != nil && s.window(p, &obj.Meta).fresh(now) && !obj.SoftPurged() {
				continue
			}
			// An origin failure with the copy still usable is logged by fill.
			if _, _, err := h.fillCtx(ctx, wantFor(nil, s, p), obj, nil); err != nil && ctx.Err() == nil {
				h.errorLog.Error("keep-warm: cannot fetch a must-serve path", h.failure(s, p, err)...)
			}
		}
	}
}
