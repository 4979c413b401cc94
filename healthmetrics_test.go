package edge

import (
	"context"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// healthGauges gathers edge_healthy, edge_draining and the edge_must_serve
// series from reg: "healthy", "draining", and "PATH STATE" for each path.
func healthGauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "edge_healthy":
				out["healthy"] = m.GetGauge().GetValue()
			case "edge_draining":
				out["draining"] = m.GetGauge().GetValue()
			case "edge_must_serve":
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				out[l["path"]+" "+l["state"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// edge_healthy, edge_draining and edge_must_serve say what /healthz says,
// through a path's life: never fetched, fresh, stale within
// stale-if-error, past it, recovered, and the edge draining.
func TestHealthMetrics(t *testing.T) {
	te := newTestEdge(t, Site{
		TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour,
		MustServe: []string{"/widget/v1/login.js", "/missing.js"},
	}, cache.Config{})
	te.org.put("/widget/v1/login.js", memObject{body: text(5000)})
	reg := te.h.metrics.reg
	want := func(step string, healthy, draining float64, widget string) {
		t.Helper()
		g := healthGauges(t, reg)
		if g["healthy"] != healthy || g["draining"] != draining {
			t.Errorf("%s: edge_healthy %v, edge_draining %v; want %v, %v", step, g["healthy"], g["draining"], healthy, draining)
		}
		for _, st := range pathStates {
			want := 0.0
			if st == widget {
				want = 1
			}
			if v, ok := g["/widget/v1/login.js "+st]; !ok || v != want {
				t.Errorf("%s: edge_must_serve{path=/widget/v1/login.js,state=%s} = %v (present %v), want %v", step, st, v, ok, want)
			}
		}
		res := te.get(t, "GET", "/healthz")
		readBody(t, res)
		if (res.StatusCode == 200) != (healthy == 1) {
			t.Errorf("%s: /healthz %d but edge_healthy %v", step, res.StatusCode, healthy)
		}
	}
	// Only the widget decides health here: drop the missing path from
	// the site once it has shown its state.
	g := healthGauges(t, reg)
	if g["/missing.js not_cached"] != 1 {
		t.Fatalf("never fetched: %v", g)
	}
	te.h.warm(context.Background())
	te.cache.Wait()
	if g := healthGauges(t, reg); g["/missing.js not_found"] != 1 || g["healthy"] != 0 {
		t.Fatalf("origin answers 404 for a must-serve path: %v", g)
	}
	te.h.sites[0].MustServe = []string{"/widget/v1/login.js"}

	want("warm", 1, 0, PathFresh)
	te.org.down.Store(true)
	te.clock.Advance(30 * time.Minute)
	te.h.warm(context.Background())
	want("origin down, within stale-if-error", 1, 0, PathStale)
	te.clock.Advance(time.Hour)
	want("past stale-if-error", 0, 0, PathPastStaleIfError)
	te.org.down.Store(false)
	te.h.warm(context.Background())
	te.cache.Wait()
	want("recovered", 1, 0, PathFresh)
	te.h.Drain()
	want("draining", 0, 1, PathFresh)
}

// Two sites on one origin may name the same must-serve path: one series,
// never a duplicate (which would fail the whole scrape).
func TestHealthMetricsSharedPath(t *testing.T) {
	org := newMemOrigin()
	org.put("/a.js", memObject{body: text(100)})
	c, err := cache.New(cache.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, err := NewHandler(Options{Cache: c, Sites: []Site{
		withDefaults(Site{Hosts: []string{"a.example"}, Origin: org, MustServe: []string{"/a.js"}}),
		withDefaults(Site{Hosts: []string{"b.example"}, Origin: org, MustServe: []string{"/a.js"}}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.metrics.reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	if g := healthGauges(t, h.metrics.reg); g["/a.js not_cached"] != 1 {
		t.Fatalf("%v", g)
	}
}
