package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	out := `Running 2s test @ http://127.0.0.1:1234/tenants/acme.json
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
BENCHJSON {"requests":30000,"duration_us":2000000,"bytes":27000000,"connect":0,"read":1,"write":0,"status":2,"timeout":3,"min_us":40,"max_us":9000,"mean_us":500.5,"pct":[[50,400],[99,2500],[99.9,6000],[100,9000]]}
`
	m, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 30000 || m.Duration != 2*time.Second || m.Errors != 4 || m.BadStatus != 2 {
		t.Errorf("parsed %+v", m)
	}
	if m.rps() != 15000 {
		t.Errorf("rps %v", m.rps())
	}
	m.ServerCPU = 600 * time.Millisecond
	if got := m.cpuPer100k(); got < 1.999 || got > 2.001 {
		t.Errorf("cpuPer100k %v, want 2", got)
	}
	if m.at(99) != 2500*time.Microsecond || m.at(99.5) != 6000*time.Microsecond || m.at(100) != 9*time.Millisecond {
		t.Errorf("percentiles: %v %v %v", m.at(99), m.at(99.5), m.at(100))
	}
	if _, err := parseWrk("unable to connect"); err == nil {
		t.Error("no error for output without a summary")
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a parenthesis.
	st, err := parseStat("4242 (cache main) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 123 0 0")
	if err != nil {
		t.Fatal(err)
	}
	if st.ppid != 17 || st.utime != 250 || st.stime != 75 {
		t.Errorf("got %+v", st)
	}
	if cpuTime([]int{-1}) != 0 {
		t.Error("a missing process has CPU time")
	}
}

func TestParseVmRSS(t *testing.T) {
	if got := parseVmRSS("Name:\tnginx\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\n"); got != 2<<20 {
		t.Errorf("got %d", got)
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		in           []float64
		med, lo, hi  float64
		spreadApprox float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3, 1},
		{[]float64{4, 1, 2, 3}, 2.5, 1, 4, 1.2},
		{[]float64{5}, 5, 5, 5, 0},
	}
	for _, tt := range tests {
		s := statOf(tt.in)
		if s.med != tt.med || s.lo != tt.lo || s.hi != tt.hi || s.spread() != tt.spreadApprox {
			t.Errorf("statOf(%v) = %+v spread %v", tt.in, s, s.spread())
		}
	}
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if quantile(d, 50) != 5 || quantile(d, 99) != 10 || quantile(d, 100) != 10 || quantile(d, 0) != 1 {
		t.Errorf("quantile: %v %v %v", quantile(d, 50), quantile(d, 99), quantile(d, 100))
	}
	if !withinNoise(stat{med: 1, lo: 0.9, hi: 1.1}, stat{med: 1.05, lo: 1.0, hi: 1.2}) || withinNoise(stat{lo: 1, hi: 2}, stat{lo: 3, hi: 4}) {
		t.Error("withinNoise")
	}
}

func TestOrder(t *testing.T) {
	s := []string{"a", "b", "c"}
	got := strings.Join(order(s, 0), "") + " " + strings.Join(order(s, 1), "") + " " + strings.Join(order(s, 2), "")
	if got != "abc bca cab" {
		t.Errorf("order: %s", got)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "256MiB": 256 << 20, "4096": 4096, "64KiB": 64 << 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "1.5GiB", "-1", "1TB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		}
	}
}

func TestHitTargets(t *testing.T) {
	cfg, err := parseFlags([]string{"-quick"}, new(strings.Builder))
	if err != nil {
		t.Fatal(err)
	}
	r := newResults(cfg)
	r.Servers = []string{nameEdge, nameNginx, nameVarnish}
	mk := func(rps, cpuSecs float64, p99 time.Duration) []*measurement {
		m := &measurement{Requests: int64(rps), Duration: time.Second, ServerCPU: time.Duration(cpuSecs * float64(time.Second)),
			Latency: []pctValue{{50, p99 / 4}, {99, p99}}}
		return []*measurement{m, m, m}
	}
	r.Hits[scHitSmall][nameEdge] = mk(30000, 0.9, 2*time.Millisecond)
	r.Hits[scHitSmall][nameNginx] = mk(30000, 1.0, 3*time.Millisecond)
	r.Hits[scHitSmall][nameVarnish] = mk(20000, 0.8, time.Millisecond)
	v := r.hitTargets(hitScenarios[0])
	if len(v) != 3 {
		t.Fatalf("%d verdicts", len(v))
	}
	// Edge CPU per request: 30 µs vs nginx 33 µs (met) and Varnish 40 µs (met).
	if !v[0].met || !v[1].met || v[2].met {
		t.Errorf("verdicts: %+v", v)
	}
	if !r.missedHit(scHitSmall) || r.missedHit(scHitWidget) {
		t.Error("missedHit")
	}
	md := r.markdown(true, "")
	for _, want := range []string{"## Targets", "edge / nginx", "1. Hit, small", "**missed**"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"wrk", "-H", "Accept-Encoding: gzip, br", "it's"})
	if got != `wrk -H 'Accept-Encoding: gzip, br' 'it'\''s'` {
		t.Errorf("got %s", got)
	}
}
