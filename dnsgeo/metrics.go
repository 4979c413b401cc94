package dnsgeo

import (
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names are listed, with their labels, in README.md.
type metrics struct {
	reg *prometheus.Registry

	queries      *prometheus.CounterVec // type, rcode
	queryCache   [len(qtypeLabels) + 1][len(rcodeLabels) + 1]atomic.Pointer[prometheus.Counter]
	answers      *prometheus.CounterVec // region, source
	regionUp     *prometheus.GaugeVec
	probeLatency *prometheus.GaugeVec
	probes       *prometheus.CounterVec // region, result
	rrl          *prometheus.CounterVec // action
	rrlDropped   prometheus.Counter
	rrlSlipped   prometheus.Counter
	truncated    prometheus.Counter
	malformed    prometheus.Counter
	panics       prometheus.Counter
	ioErrors     *prometheus.CounterVec // op
	reloads      *prometheus.CounterVec // file, result
	prefixes     prometheus.Gauge
	lastReload   prometheus.Gauge
}

// The query types and rcodes that get their own label value; the rest
// are "other", so a client cannot grow the label set.
var qtypeLabels = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeCAA, dns.TypeCNAME, dns.TypeHTTPS,
	dns.TypeMX, dns.TypeNS, dns.TypePTR, dns.TypeSOA, dns.TypeSRV, dns.TypeSVCB, dns.TypeTXT,
}

var rcodeLabels = [...]int{
	dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers,
}

// rcodeNames are the label values of rcodeLabels. Not dns.RcodeToString:
// rcode 16 is BADVERS in an OPT record (RFC 6891) and BADSIG in a TSIG
// record (RFC 8945), and miekg/dns names it BADSIG; a server without
// TSIG only ever sends it as BADVERS.
var rcodeNames = [len(rcodeLabels)]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS"}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsgeo_queries_total", Help: "DNS responses sent, by query type and response code.",
	}, []string{"type", "rcode"})
	m.answers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsgeo_answers_total",
		Help: "Routed answers by region and by what decided them (table: latency table; default: no prefix matched; all_down: every region was down, all were given).",
	}, []string{"region", "source"})
	m.regionUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dnsgeo_region_up", Help: "1 when the region is healthy (answers go to it), 0 when down.",
	}, []string{"region"})
	m.probeLatency = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dnsgeo_region_probe_duration_seconds", Help: "Duration of the last health probe of the region.",
	}, []string{"region"})
	m.probes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsgeo_region_probes_total", Help: "Health probes by region and result (ok, fail).",
	}, []string{"region", "result"})
	m.rrl = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsgeo_rrl_responses_total", Help: "Responses over the rate limit: dropped, or slipped (sent truncated).",
	}, []string{"action"})
	m.rrlDropped = m.rrl.WithLabelValues("dropped")
	m.rrlSlipped = m.rrl.WithLabelValues("slipped")
	m.truncated = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dnsgeo_truncated_total", Help: "UDP responses sent with TC because they did not fit the client's buffer.",
	})
	m.malformed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dnsgeo_malformed_total", Help: "Packets that could not be parsed (answered FORMERR when the header was readable, else dropped).",
	})
	m.ioErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsgeo_io_errors_total", Help: "Failed socket operations: udp read, udp write, tcp accept.",
	}, []string{"op"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dnsgeo_panics_total", Help: "Queries whose handling panicked (answered SERVFAIL). Should stay 0.",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dnsgeo_reloads_total", Help: "Reloads of the config or latency file, by result (ok, error).",
	}, []string{"file", "result"})
	// Each series starts at 0, so that an alert on increase() sees the
	// first refused file (a series born at 1 shows no increase).
	for _, file := range []string{"config", "latency"} {
		for _, result := range []string{"ok", "error"} {
			m.reloads.WithLabelValues(file, result)
		}
	}
	m.prefixes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dnsgeo_latency_prefixes", Help: "Prefixes in the latency table in use.",
	})
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dnsgeo_last_reload_success_timestamp_seconds", Help: "When the config and table in use were loaded.",
	})
	for _, c := range []prometheus.Collector{
		m.queries, m.answers, m.regionUp, m.probeLatency, m.probes, m.rrl, m.truncated,
		m.malformed, m.panics, m.ioErrors, m.reloads, m.prefixes, m.lastReload,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		f(c)
	}
	return m
}

// query counts one response. The counters are looked up once per
// (type, rcode) and cached: WithLabelValues hashes strings.
func (m *metrics) query(qtype uint16, rcode int) {
	ti, ri := len(qtypeLabels), len(rcodeLabels)
	for i, t := range qtypeLabels {
		if t == qtype {
			ti = i
			break
		}
	}
	for i, r := range rcodeLabels {
		if r == rcode {
			ri = i
			break
		}
	}
	p := m.queryCache[ti][ri].Load()
	if p == nil {
		tl, rl := "other", "other"
		if ti < len(qtypeLabels) {
			tl = dns.TypeToString[qtypeLabels[ti]]
		}
		if ri < len(rcodeLabels) {
			rl = rcodeNames[ri]
		}
		c := m.queries.WithLabelValues(tl, rl)
		p = &c
		m.queryCache[ti][ri].Store(p)
	}
	(*p).Inc()
}

// probe records one health probe result.
func (m *metrics) probe(region string, ok bool, latency time.Duration, up bool) {
	m.probeLatency.WithLabelValues(region).Set(latency.Seconds())
	res := "ok"
	if !ok {
		res = "fail"
	}
	m.probes.WithLabelValues(region, res).Inc()
	m.setUp(region, up)
}

func (m *metrics) setUp(region string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.regionUp.WithLabelValues(region).Set(v)
}

// regionCounters returns, for each region index, its answer counters by
// source, created now so a reload does not pay for it per query.
func (m *metrics) regionCounters(names []string) [][3]prometheus.Counter {
	out := make([][3]prometheus.Counter, len(names))
	for i, n := range names {
		for s := sourceTable; s <= sourceAllDown; s++ {
			out[i][s] = m.answers.WithLabelValues(n, s.String())
		}
	}
	return out
}

// forgetRegions drops the gauges of regions no longer configured.
func (m *metrics) forgetRegions(old, cur []string) {
	for _, n := range old {
		found := false
		for _, c := range cur {
			if c == n {
				found = true
			}
		}
		if !found {
			m.regionUp.DeleteLabelValues(n)
			m.probeLatency.DeleteLabelValues(n)
		}
	}
}
