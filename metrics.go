package edge

import (
	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// result is how a request was answered, for metrics and Cache-Status.
type result uint8

const (
	resultHit          result = iota // fresh copy from cache
	resultMiss                       // fetched from the origin
	resultCollapsed                  // waited on another request's fetch
	resultRevalidated                // stale copy confirmed by the origin (304)
	resultStale                      // stale copy served: the origin failed
	resultRevalidating               // stale copy served while a background request revalidates it
	resultPass                       // origin forbids caching (no-store, private)
	resultError                      // no copy and the origin failed
	numResults
)

var resultNames = [numResults]string{"hit", "miss", "collapsed", "revalidated", "stale", "stale_while_revalidate", "pass", "error"}

// metrics are the edge's Prometheus metrics. Counters on the request path
// are resolved once here, so a request only does atomic adds: no label
// lookups, no locks.
type metrics struct {
	reg        *prometheus.Registry
	requests   [numResults][negotiate.NumCodings]prometheus.Counter
	notFound   prometheus.Counter
	preflights prometheus.Counter
	passed     prometheus.Counter
	rejected   *prometheus.CounterVec
	bodyBytes  [negotiate.NumCodings]prometheus.Counter
	originReqs *prometheus.CounterVec
	originSecs *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, c *cache.Cache) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{reg: reg}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_requests_total",
		Help: "Object requests answered, by cache result (hit, miss, collapsed, revalidated, stale, stale_while_revalidate, pass, error) and content coding served.",
	}, []string{"cache", "encoding"})
	m.notFound = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edge_not_found_total",
		Help: "Requests answered 404 (from a cached or fresh negative answer).",
	})
	m.preflights = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edge_cors_preflights_total",
		Help: "CORS preflight requests (OPTIONS) answered by the edge, allowed (204) or refused (403).",
	})
	m.passed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edge_passed_requests_total",
		Help: "Requests passed to an HTTP origin uncached (POST, PUT, DELETE, PATCH, OPTIONS).",
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_rejected_requests_total",
		Help: "Requests refused before reaching the cache, by status (400, 405, 414).",
	}, []string{"status"})
	bodyBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_response_body_bytes_total",
		Help: "Body bytes of full (200) object responses to GET, by content coding.",
	}, []string{"encoding"})
	m.originReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_origin_requests_total",
		Help: "Requests to origins, by origin and result (ok, not_modified, not_found, forbidden, error).",
	}, []string{"origin", "result"})
	m.originSecs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "edge_origin_request_seconds",
		Help:    "Time to the origin's response headers.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"origin"})
	for r := range numResults {
		for c := range negotiate.Coding(negotiate.NumCodings) {
			m.requests[r][c] = requests.WithLabelValues(resultNames[r], c.String())
		}
	}
	for c := range negotiate.Coding(negotiate.NumCodings) {
		m.bodyBytes[c] = bodyBytes.WithLabelValues(c.String())
	}
	m.reg.MustRegister(requests, m.notFound, m.preflights, m.passed, m.rejected, bodyBytes, m.originReqs, m.originSecs, newCacheCollector(c))
	return m
}

// cacheCollector reports the cache's counters at scrape time, from one
// Stats snapshot.
type cacheCollector struct {
	cache *cache.Cache
	descs map[string]*prometheus.Desc
}

// cacheMetrics are the cache's metrics: name, help, and whether each is
// labelled by coding ("encoding").
var cacheMetrics = []struct {
	name, help string
	byCoding   bool
}{
	{"edge_cache_memory_bytes", "Bytes held by the memory tier.", false},
	{"edge_cache_disk_bytes", "Bytes held by the disk tier.", false},
	{"edge_cache_disk_entries", "Files in the disk tier (object records and variants).", false},
	{"edge_cache_memory_evictions_total", "Objects evicted from the memory tier.", false},
	{"edge_cache_disk_evictions_total", "Files evicted from the disk tier.", false},
	{"edge_cache_disk_corrupt_total", "Disk files that failed their checksum and were dropped.", false},
	{"edge_cache_memory_hits_total", "Lookups answered by the memory tier.", false},
	{"edge_cache_disk_hits_total", "Lookups answered by the disk tier (then promoted to memory).", false},
	{"edge_cache_disk_write_errors_total", "Disk writes that failed (disk full, read-only, I/O errors). The edge then serves from memory and the origin.", false},
	{"edge_cache_disk_degraded", "1 while the disk tier takes no writes (after a failed write, until a retry succeeds), else 0.", false},
	{"edge_derivations_total", "Variants computed (compressed or decompressed) from a stored object, by the coding produced. Each object version is transcoded once per coding; cache hits never add to this.", true},
	{"edge_derivation_failures_total", "Object versions whose stored body could not be transcoded (not valid in its own content coding), by the coding asked for. They are served only as stored, to clients that accept that coding.", true},
	{"edge_purged_entries_total", "Objects purged (each with every variant), by URL, prefix, tag or all, soft or hard.", false},
	{"edge_purge_rules", "Purges in force that the background pass has not yet applied to every cached object (0 when idle).", false},
}

func newCacheCollector(c *cache.Cache) *cacheCollector {
	cc := &cacheCollector{cache: c, descs: map[string]*prometheus.Desc{}}
	for _, m := range cacheMetrics {
		var labels []string
		if m.byCoding {
			labels = []string{"encoding"}
		}
		cc.descs[m.name] = prometheus.NewDesc(m.name, m.help, labels, nil)
	}
	return cc
}

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range cc.descs {
		ch <- d
	}
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := cc.cache.Stats()
	degraded := 0.0
	if s.DiskDegraded {
		degraded = 1
	}
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(cc.descs[name], prometheus.GaugeValue, v)
	}
	counter := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(cc.descs[name], prometheus.CounterValue, v, labels...)
	}
	gauge("edge_cache_memory_bytes", float64(s.MemoryBytes))
	gauge("edge_cache_disk_bytes", float64(s.Disk.Bytes))
	gauge("edge_cache_disk_entries", float64(s.Disk.Entries))
	counter("edge_cache_memory_evictions_total", float64(s.MemoryEvicted))
	counter("edge_cache_disk_evictions_total", float64(s.Disk.Evictions))
	counter("edge_cache_disk_corrupt_total", float64(s.Disk.Corrupt))
	counter("edge_cache_memory_hits_total", float64(s.MemoryHits))
	counter("edge_cache_disk_hits_total", float64(s.DiskHits))
	counter("edge_cache_disk_write_errors_total", float64(s.DiskWriteErrors))
	gauge("edge_cache_disk_degraded", degraded)
	counter("edge_purged_entries_total", float64(s.PurgedEntries))
	gauge("edge_purge_rules", float64(s.PurgeRules))
	for c := range negotiate.Coding(negotiate.NumCodings) {
		counter("edge_derivations_total", float64(s.Derivations[c]), c.String())
		counter("edge_derivation_failures_total", float64(s.DerivationFailures[c]), c.String())
	}
}

// originCollector reports each origin's circuit state at scrape time.
type originCollector struct {
	sites    []*site
	state    *prometheus.Desc
	failures *prometheus.Desc
}

func newOriginCollector(sites []*site) *originCollector {
	return &originCollector{
		sites: sites,
		state: prometheus.NewDesc("edge_origin_state",
			"Circuit state of each origin: 1 for the current state (closed = healthy, open = down and skipped, half-open = probing).",
			[]string{"origin", "state"}, nil),
		failures: prometheus.NewDesc("edge_origin_consecutive_failures",
			"Failures of each origin since its last success.", []string{"origin"}, nil),
	}
}

func (c *originCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.failures
}

func (c *originCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.sites {
		r, ok := s.Origin.(stateReporter)
		if !ok {
			continue
		}
		for _, st := range r.States() {
			for _, name := range []string{"closed", "open", "half-open"} {
				v := 0.0
				if st.State.String() == name {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.Name, name)
			}
			ch <- prometheus.MustNewConstMetric(c.failures, prometheus.GaugeValue, float64(st.ConsecutiveFailures), st.Name)
		}
	}
}
