package main

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios returns, for each round in which both a and b ran workload w,
// a's qps over b's.
func ratios(a, b *result, w string) []float64 {
	var out []float64
	for i, ra := range a.round[w] {
		if j := slices.Index(b.round[w], ra); j >= 0 && b.runs[w][j].qps > 0 {
			out = append(out, a.runs[w][i].qps/b.runs[w][j].qps)
		}
	}
	return out
}

func renderReport(o options, rs []*result, fo []time.Duration, foErr error, load string, took time.Duration) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# DNS benchmark: dnsgeo vs Knot DNS vs NSD (%s)\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s*:\s*(.*)`).FindSubmatch(data); m != nil {
			cpu = string(m[1])
		}
	}
	p("Machine: %d CPUs (%s), load average at start %s. The machine is shared with other work, so the figures are medians of %d rounds. All servers run throughout; in each round every workload is run against each server in turn (the order rotating from round to round), so the runs compared follow one another within seconds, and each ratio to Knot is taken within one round; the median of those is given.\n", runtime.NumCPU(), cpu, load, o.runs)
	p("Servers pinned to CPU %s with one worker each (dnsgeo: GOMAXPROCS from the affinity mask, so one UDP socket and loop; Knot: udp-workers 1; NSD: server-count 1); dnsperf pinned to CPU %s, 1 thread, 4 sockets, up to 200 queries outstanding.\n", o.serverCPU, o.loadgenCPU)
	p("Same zone and answers on all three (`bench.test`: SOA, NS, glue, `www` CNAME to `cdn`, `cdn` A/AAAA); dnsgeo routes `cdn` with a %d-prefix latency table (the loopback client matches `127.0.0.0/8`, the ECS prefix `203.0.113.0/24`). Response rate limiting off on all three.\n\n", o.prefixes+3)

	var knot *result
	for _, r := range rs {
		if strings.HasPrefix(r.name, "Knot") && r.skipped == "" {
			knot = r
		}
	}
	if knot != nil {
		var parts []string
		for _, r := range rs {
			for _, w := range workloads {
				if rt := ratios(r, knot, w.name); r != knot && len(rt) > 0 {
					parts = append(parts, fmt.Sprintf("%s, %s: %.2f× (rounds %s)", r.name, w.name, median(rt), fmtRatios(rt)))
				}
			}
		}
		if len(parts) > 0 {
			p("**qps relative to Knot, median of the rounds:** %s.\n\n", strings.Join(parts, "; "))
		}
	}
	p("## Throughput\n\n")
	p("dnsperf as fast as it can for %v per run. *CPU %s busy* is the share of the run that the servers' CPU was busy (user, system, irq and softirq time from /proc/stat: it includes the kernel's network work for the server, which is not charged to its process, and anything else that ran there), and *queries per busy CPU-second* is qps over that: when the server's CPU is not saturated, qps is bounded by dnsperf or by other load, and this is the fairer measure of what a core does. *dnsperf CPU* shows how close the load generator was to its own limit (100 %%: it was the bottleneck).\n\n", o.duration, o.serverCPU)
	for _, w := range workloads {
		p("### %s\n\n%s.\n\n", w.name, strings.ToUpper(w.about[:1])+w.about[1:])
		p("| server | version | qps (median) | qps (min–max) | vs Knot | CPU %s busy | queries per busy CPU-second | dnsperf CPU | lost |\n", o.serverCPU)
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			smp := r.runs[w.name]
			if r.skipped != "" || len(smp) == 0 {
				why := r.skipped
				if why == "" {
					why = "no run succeeded"
				}
				p("| %s | | skipped: %s | | | | | | |\n", r.name, why)
				continue
			}
			var qps, busy, eff, lcpu, lost []float64
			for _, s := range smp {
				qps = append(qps, s.qps)
				busy = append(busy, s.busy/s.seconds)
				if s.busy > 0 {
					eff = append(eff, s.qps*s.seconds/s.busy)
				}
				lcpu = append(lcpu, s.loadgenCPU/s.seconds)
				lost = append(lost, s.lost)
			}
			ratio := "—"
			if knot != nil && r != knot {
				if rt := ratios(r, knot, w.name); len(rt) > 0 {
					ratio = fmt.Sprintf("%.2f", median(rt))
				}
			} else if r == knot {
				ratio = "1.00"
			}
			p("| %s | %s | %.0f | %.0f–%.0f | %s | %.0f %% | %.0f | %.0f %% | %.2f %% |\n", r.name, r.version, median(qps),
				slices.Min(qps), slices.Max(qps), ratio, 100*median(busy), median(eff), 100*median(lcpu), median(lost))
		}
		p("\n")
	}

	p("## Latency\n\n")
	p("The mixed workload at a fixed %d queries/s for %v (`dnsperf -v`, every response timed), after the throughput rounds.\n\n", o.rate, o.latencyDur)
	p("| server | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | lost |\n|---|---:|---:|---:|---:|---:|---:|\n")
	ms := func(s float64) string { return fmt.Sprintf("%.3f", s*1000) }
	for _, r := range rs {
		if r.skipped != "" || r.lat.p50 == 0 {
			continue
		}
		l := r.lat
		p("| %s | %s | %s | %s | %s | %s | %.2f %% |\n", r.name, ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max), l.lost)
	}

	p("\n## Every run\n\n")
	p("| round | workload | server | qps | CPU %s busy | server process CPU | dnsperf CPU | avg ms (flat out) |\n|---:|---|---|---:|---:|---:|---:|---:|\n", o.serverCPU)
	for round := range o.runs {
		for _, w := range workloads {
			for _, r := range rs {
				if i := slices.Index(r.round[w.name], round); i >= 0 {
					s := r.runs[w.name][i]
					p("| %d | %s | %s | %.0f | %.0f %% | %.0f %% | %.0f %% | %s |\n", round+1, w.name, r.name, s.qps, 100*s.busy/s.seconds, 100*s.serverCPU/s.seconds, 100*s.loadgenCPU/s.seconds, ms(s.avg))
				}
			}
		}
	}
	p("\nResponse codes (last round):\n\n")
	for _, r := range rs {
		for _, w := range workloads {
			if smp := r.runs[w.name]; len(smp) > 0 {
				p("- %s, %s: %s\n", r.name, w.name, smp[len(smp)-1].rcodes)
			}
		}
	}
	for _, r := range rs {
		for _, e := range r.errs {
			p("- %s: error: %s\n", r.name, e)
		}
	}

	p("\n## Failover (wall clock)\n\n")
	p("dnsgeo with two regions, health endpoints on loopback (HTTP), default health settings (interval 2 s, timeout 1 s, fall 2). The preferred region's endpoint is killed at a random point of the probe cycle; the figure is the time until dnsgeo's answers avoid it (and keep avoiding it). Bound: interval × fall = 4 s (+ timeout for an edge that hangs instead of refusing); resolvers holding the old answer keep it at most the answer TTL (20 s) longer.\n\n")
	if foErr != nil {
		p("Error: %v\n\n", foErr)
	}
	if len(fo) > 0 {
		var sum time.Duration
		worst := time.Duration(0)
		p("| run | failover |\n|---:|---:|\n")
		for i, d := range fo {
			p("| %d | %.2f s |\n", i+1, d.Seconds())
			sum += d
			worst = max(worst, d)
		}
		p("\nMean %.2f s, worst %.2f s (target: under 6 s).\n", (sum / time.Duration(len(fo))).Seconds(), worst.Seconds())
	} else if o.skip["failover"] {
		p("Skipped (-skip failover).\n")
	}
	p("\nWhole run: %v. Reproduce: `bench/dns/run.sh` (installs dnsperf, knot, nsd, dig when root) or `go run ./bench/dns -runs %d`.\n", took.Round(time.Second), o.runs)
	return b.String()
}

func fmtRatios(rt []float64) string {
	var out []string
	for _, r := range rt {
		out = append(out, fmt.Sprintf("%.2f", r))
	}
	return strings.Join(out, ", ")
}
