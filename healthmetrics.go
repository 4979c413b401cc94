package edge

import "github.com/prometheus/client_golang/prometheus"

// healthCollector reports at scrape time what /healthz says, so that
// alerts see the same truth as load balancers and DNS:
//
//	edge_healthy                          1 while /healthz answers 200
//	edge_draining                         1 once shutting down (/healthz is 503 for that reason)
//	edge_must_serve{site,path,state}      1 for each must-serve path's current state
//
// Health is cheap (a cache lookup per must-serve path), so it is computed
// on each scrape rather than kept up to date on the request path.
type healthCollector struct {
	h                            *Handler
	healthy, draining, mustServe *prometheus.Desc
}

// pathStates are the values of edge_must_serve's state label, each
// reported for every path (0 or 1), so that a query for one state never
// meets a missing series.
var pathStates = []string{PathFresh, PathStale, PathPastStaleIfError, PathNotCached, PathNotFound}

func newHealthCollector(h *Handler) *healthCollector {
	return &healthCollector{
		h: h,
		healthy: prometheus.NewDesc("edge_healthy",
			"1 while /healthz answers 200 (every must-serve path can be served and the edge is not draining), else 0.", nil, nil),
		draining: prometheus.NewDesc("edge_draining",
			"1 once the edge is shutting down (/healthz answers 503 for that reason), else 0.", nil, nil),
		mustServe: prometheus.NewDesc("edge_must_serve",
			"1 for the current state of each must-serve path: fresh, stale (expired, served within stale-if-error while the origin fails), past_stale_if_error (not served), not_cached, not_found (the origin answered 404).",
			[]string{"site", "path", "state"}, nil),
	}
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.healthy
	ch <- c.draining
	ch <- c.mustServe
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	hl := c.h.Health()
	ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, bool01(hl.OK))
	ch <- prometheus.MustNewConstMetric(c.draining, prometheus.GaugeValue, bool01(hl.Draining))
	// Two sites on one origin may name the same path: one object, one
	// series (a duplicate would fail the whole scrape), in the worse of
	// the two states (their stale-if-error windows may differ).
	paths := make([]PathHealth, 0, len(hl.Paths))
	seen := map[[2]string]int{}
	for _, p := range hl.Paths {
		k := [2]string{p.Site, p.Path}
		if i, ok := seen[k]; ok {
			if paths[i].OK && !p.OK {
				paths[i] = p
			}
			continue
		}
		seen[k] = len(paths)
		paths = append(paths, p)
	}
	for _, p := range paths {
		for _, st := range pathStates {
			ch <- prometheus.MustNewConstMetric(c.mustServe, prometheus.GaugeValue, bool01(p.Status == st), p.Site, p.Path, st)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
