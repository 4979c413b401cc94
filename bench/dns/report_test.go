package main

import (
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestRatiosPairRounds: a server's ratio to Knot is taken within each
// round, and a round one of them missed is left out.
func TestRatiosPairRounds(t *testing.T) {
	w := workloads[0].name
	geo := &result{name: "dnsgeo", runs: map[string][]sample{w: {{qps: 100}, {qps: 300}, {qps: 90}}}, round: map[string][]int{w: {0, 1, 2}}}
	knot := &result{name: "Knot DNS", runs: map[string][]sample{w: {{qps: 50}, {qps: 100}}}, round: map[string][]int{w: {0, 2}}}
	got := ratios(geo, knot, w)
	if len(got) != 2 || got[0] != 2 || got[1] != 0.9 {
		t.Fatalf("ratios %v, want [2 0.9]", got)
	}
	// The report gives the median of those, and the median qps.
	geo.version, knot.version = "v", "v"
	for _, r := range []*result{geo, knot} {
		for i := range r.runs[w] {
			r.runs[w][i].seconds, r.runs[w][i].busy = 1, 0.5
		}
	}
	rep := renderReport(options{runs: 3, duration: time.Second, serverCPU: "0", skip: map[string]bool{"failover": true}},
		[]*result{geo, knot, {name: "NSD", skipped: "not installed"}}, nil, nil, "0 0 0", time.Minute)
	for _, want := range []string{
		"| dnsgeo | v | 100 | 90–300 | 1.45 | 50 % | 200 |",
		"| Knot DNS | v | 75 | 50–100 | 1.00 |",
		"| NSD | | skipped: not installed |",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
}
