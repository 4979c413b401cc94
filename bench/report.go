package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// results is everything a run measured.
type results struct {
	Meta     meta
	Servers  []string          // the servers that ran, in report order
	Skipped  map[string]string // server → why it did not run
	Notes    []string
	Commands map[string]string // server → the command line it ran with
	Probes   map[string][]probeResult
	Hits     map[string]map[string][]*measurement    // scenario → server → runs
	Stampede map[string]map[string][]*stampedeResult // scenario → server → runs
	Memory   map[string][]*memoryResult
	TLS      map[string]map[string][]*tlsRun // scenario → server → runs
	Profiles []*profileResult
}

func newResults(cfg *config) *results {
	r := &results{
		Skipped:  map[string]string{},
		Commands: map[string]string{},
		Probes:   map[string][]probeResult{},
		Hits:     map[string]map[string][]*measurement{},
		Stampede: map[string]map[string][]*stampedeResult{},
		Memory:   map[string][]*memoryResult{},
		TLS:      map[string]map[string][]*tlsRun{},
	}
	for _, sc := range hitScenarios {
		r.Hits[sc.id] = map[string][]*measurement{}
	}
	for _, sc := range stampedeScenarios {
		r.Stampede[sc.id] = map[string][]*stampedeResult{}
	}
	r.Meta.Config = cfg
	return r
}

// meta describes the run and the machine.
type meta struct {
	Date                     time.Time
	SHA                      string
	Dirty                    bool
	CPU                      string
	Cores                    int
	Kernel, MemTotal         string
	Go, Nginx, Varnish, Wrk  string
	LoadAvg                  string
	Widget                   string
	Pinned                   bool
	Wall                     time.Duration
	Config                   *config
	Args                     []string
	EdgeVersion, EdgeBuildGo string
}

func collectMeta(ctx context.Context, root, edgeBin string, c *corpus, cfg *config, pinned bool) meta {
	m := meta{Date: time.Now().UTC(), Config: cfg, Pinned: pinned, Widget: c.widgetSource, Cores: runtime.NumCPU(), Args: os.Args[1:]}
	m.SHA = gitSHA(ctx, root)
	m.Dirty = git(ctx, root, "status", "--porcelain", "--untracked-files=no") != ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			m.MemTotal = fmtBytes(kb << 10)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	m.Go = versionOf("go", "version")
	m.Nginx = versionOf("nginx", "-v")
	m.Varnish = versionOf("varnishd", "-V")
	m.Wrk = versionOf("wrk", "-v")
	m.EdgeVersion = versionOf(edgeBin, "-version")
	return m
}

// git runs a read-only git command in root and returns its output.
func git(ctx context.Context, root string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	// No opportunistic index refresh in a checkout others work in.
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// gitSHA is HEAD's short hash, or "nogit".
func gitSHA(ctx context.Context, root string) string {
	if sha := git(ctx, root, "rev-parse", "--short=12", "HEAD"); sha != "" {
		return sha
	}
	return "nogit"
}

// stat is the median of a few runs and their range.
type stat struct{ med, lo, hi float64 }

func statOf(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med: med, lo: s[0], hi: s[len(s)-1]}
}

// spread is the range relative to the median.
func (s stat) spread() float64 {
	if s.med == 0 {
		return 0
	}
	return (s.hi - s.lo) / s.med
}

func collect[T any](xs []T, f func(T) float64) stat {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return statOf(v)
}

// hitStats are one server's medians in one hit scenario.
type hitStats struct {
	rps, cpu, p50, p99, p999, srv, gen, other, bytes, origin stat
	errors, bad                                              int64
}

func hitStatsOf(ms []*measurement) hitStats {
	var h hitStats
	h.rps = collect(ms, (*measurement).rps)
	h.cpu = collect(ms, (*measurement).cpuPer100k)
	h.p50 = collect(ms, func(m *measurement) float64 { return m.at(50).Seconds() })
	h.p99 = collect(ms, func(m *measurement) float64 { return m.at(99).Seconds() })
	h.p999 = collect(ms, func(m *measurement) float64 { return m.at(99.9).Seconds() })
	h.srv = collect(ms, (*measurement).serverUtil)
	h.gen = collect(ms, (*measurement).genUtil)
	h.other = collect(ms, func(m *measurement) float64 { return m.Other })
	h.bytes = collect(ms, func(m *measurement) float64 { return float64(m.Bytes) / float64(m.Requests) })
	h.origin = collect(ms, func(m *measurement) float64 { return float64(m.OriginReqs) })
	for _, m := range ms {
		h.errors += m.Errors
		h.bad += m.BadStatus
	}
	return h
}

// limit names what bounded a run's throughput.
func (h hitStats) limit() string {
	switch {
	case h.srv.med >= 0.9:
		return "server"
	case h.gen.med >= 0.9:
		return "generator"
	case h.other.med >= 0.2:
		return "contended"
	}
	return "neither"
}

// verdict is one target's outcome.
type verdict struct {
	target   string
	vsNginx  string
	vsVarnsh string
	met      bool
	noise    bool // missed, but by less than the runs' spread
	na       bool
}

// hitTargets checks the hit targets of one scenario: server CPU per
// request and p99 no more than each peer's, throughput at least each
// peer's.
func (r *results) hitTargets(sc hitScenario) []verdict {
	edge, ok := r.Hits[sc.id][nameEdge]
	if !ok || len(edge) == 0 {
		return nil
	}
	e := hitStatsOf(edge)
	type metric struct {
		name   string
		get    func(hitStats) stat
		higher bool // higher is better
	}
	metrics := []metric{
		{"server CPU per request ≤ 1.0×", func(h hitStats) stat { return h.cpu }, false},
		{"requests/s ≥ 1.0×", func(h hitStats) stat { return h.rps }, true},
		{"p99 latency ≤ 1.0×", func(h hitStats) stat { return h.p99 }, false},
	}
	var out []verdict
	for _, mt := range metrics {
		v := verdict{target: sc.id + ": " + mt.name, met: true, na: true}
		for _, peer := range []string{nameNginx, nameVarnish} {
			ms, ok := r.Hits[sc.id][peer]
			cell := "—"
			if ok && len(ms) > 0 {
				v.na = false
				p := hitStatsOf(ms)
				es, ps := mt.get(e), mt.get(p)
				ratio := es.med / ps.med
				ok := ratio <= 1.0
				if mt.higher {
					ok = ratio >= 1.0
				}
				cell = fmt.Sprintf("%.2f×", ratio)
				if !ok {
					v.met = false
					if withinNoise(es, ps) {
						v.noise = true
						cell += " (within noise)"
					}
				}
			}
			if peer == nameNginx {
				v.vsNginx = cell
			} else {
				v.vsVarnsh = cell
			}
		}
		out = append(out, v)
	}
	return out
}

// withinNoise reports whether two medians are closer than the runs'
// ranges overlap.
func withinNoise(a, b stat) bool { return a.lo <= b.hi && b.lo <= a.hi }

// stampedeTargets: exactly one origin request in every run; p99 within
// origin latency + 10 ms.
func (r *results) stampedeTargets(sc stampedeScenario) []verdict {
	runs, ok := r.Stampede[sc.id][nameEdge]
	if !ok || len(runs) == 0 {
		return nil
	}
	cfg := r.Meta.Config
	var counts []string
	one := true
	for _, s := range runs {
		counts = append(counts, strconv.FormatInt(s.OriginReqs, 10))
		one = one && s.OriginReqs == 1
	}
	p99 := collect(runs, func(s *stampedeResult) float64 { return quantile(s.Latencies, 99).Seconds() })
	bound := cfg.originLatency + 10*time.Millisecond
	return []verdict{
		{target: sc.id + ": exactly 1 origin request", vsNginx: "edge: " + strings.Join(counts, ", "), met: one},
		{target: fmt.Sprintf("%s: p99 ≤ origin latency + 10 ms (%s)", sc.id, fmtDur(bound)),
			vsNginx: "edge p99: " + fmtSecs(p99.med) + " (" + fmtSecs(p99.lo) + "–" + fmtSecs(p99.hi) + ")", met: p99.med <= bound.Seconds()},
	}
}

func (r *results) targets() []verdict {
	var out []verdict
	for _, sc := range hitScenarios {
		if sc.id == scHit404 {
			continue // no target: reported for information
		}
		out = append(out, r.hitTargets(sc)...)
	}
	for _, sc := range stampedeScenarios {
		out = append(out, r.stampedeTargets(sc)...)
	}
	return out
}

// missedHit reports whether the edge missed a target in scenario id.
func (r *results) missedHit(id string) bool {
	for _, sc := range hitScenarios {
		if sc.id == id {
			for _, v := range r.hitTargets(sc) {
				if !v.met && !v.na {
					return true
				}
			}
		}
	}
	return false
}

// markdown renders the report. full adds the machine, probe, profile and
// command sections the printed summary leaves out.
func (r *results) markdown(full bool, chart string) string {
	var b bytes.Buffer
	m := r.Meta
	cfg := m.Config
	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	dirty := ""
	if m.Dirty {
		dirty = " (with uncommitted changes)"
	}
	fmt.Fprintf(&b, "# edge vs nginx vs Varnish — %s, %s%s, %s mode\n\n", m.Date.Format("2006-01-02 15:04 UTC"), m.SHA, dirty, mode)
	fmt.Fprintf(&b, "%d measured runs of %s per server and scenario, interleaved across servers (rotating order), each after %s of unmeasured warm-up load. "+
		"Figures are medians, (min–max) over the runs. Servers on CPU %d, load generator and origin on CPU %d. Wall time %s.\n\n",
		cfg.runs, cfg.duration, cfg.warmup, cfg.serverCPU, cfg.loadCPU, m.Wall.Round(time.Second))
	for name, why := range r.Skipped {
		fmt.Fprintf(&b, "**%s skipped**: %s.\n\n", name, why)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "**Note**: %s\n\n", n)
	}

	if t := r.targets(); len(t) > 0 {
		b.WriteString("## Targets\n\n| target | edge / nginx | edge / Varnish | |\n|---|---|---|---|\n")
		for _, v := range t {
			res := "**met**"
			switch {
			case v.na:
				res = "n/a (no peer ran)"
			case !v.met && v.noise:
				res = "**missed** (within noise)"
			case !v.met:
				res = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", v.target, v.vsNginx, v.vsVarnsh, res)
		}
		b.WriteString("\n")
	}

	for _, sc := range hitScenarios {
		runs := r.Hits[sc.id]
		if len(runs) == 0 {
			continue
		}
		hdr := "no Accept-Encoding"
		if len(sc.headers) > 0 {
			hdr = strings.Join(sc.headers, ", ")
		}
		fmt.Fprintf(&b, "## %s\n\n`GET %s`, %s, %d keep-alive connections, wrk at full speed.\n\n", sc.title, sc.path, hdr, cfg.conns)
		b.WriteString("| server | req/s | CPU s / 100k req | p50 | p99 | p99.9 | server core | wrk core | other on server core | limit | origin req | bytes/resp | coding |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		stats := map[string]hitStats{}
		for _, name := range r.Servers {
			ms := runs[name]
			if len(ms) == 0 {
				continue
			}
			h := hitStatsOf(ms)
			stats[name] = h
			coding := r.probeCoding(name, sc.path, sc.headers)
			errs := ""
			if h.errors > 0 || h.bad > 0 {
				errs = fmt.Sprintf(" ⚠ %d errors, %d bad statuses", h.errors, h.bad)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.0f%% | %.0f%% | %.0f%% | %s | %.0f | %.0f | %s%s |\n",
				name,
				rangeOf(h.rps, fmtRate), rangeOf(h.cpu, func(x float64) string { return fmt.Sprintf("%.3f", x) }),
				fmtSecs(h.p50.med), rangeOf(h.p99, fmtSecs), fmtSecs(h.p999.med),
				100*h.srv.med, 100*h.gen.med, 100*h.other.med, h.limit(), h.origin.med, h.bytes.med, coding, errs)
		}
		b.WriteString("\n")
		if e, ok := stats[nameEdge]; ok {
			for _, peer := range []string{nameNginx, nameVarnish} {
				if p, ok := stats[peer]; ok {
					fmt.Fprintf(&b, "- **edge / %s**: CPU per request %.2f×, requests/s %.2f×, p99 %.2f×\n",
						peer, e.cpu.med/p.cpu.med, e.rps.med/p.rps.med, e.p99.med/p.p99.med)
				}
			}
			if l, ok := stats[nameEdgeLog]; ok {
				fmt.Fprintf(&b, "- **access log on / off** (edge-log / edge): CPU per request %.2f× (%s vs %s CPU-s per 100k requests)\n",
					l.cpu.med/e.cpu.med, fmt.Sprintf("%.3f", l.cpu.med), fmt.Sprintf("%.3f", e.cpu.med))
			}
			b.WriteString("\n")
		}
	}

	for _, sc := range stampedeScenarios {
		byServer := r.Stampede[sc.id]
		if len(byServer) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n%d requests sent at once, each on its own warm keep-alive connection, for an object no server has seen "+
			"(a new name each run), `Accept-Encoding: %s`; the origin adds %s to each request. "+
			"Latency is to the last byte of each response; first byte is to its headers. "+
			"The first response shows when the server had the object ready (origin, store, any compression); the rest is serving %d responses from one core.\n\n",
			sc.title, cfg.stampedeN, acceptBrowser, cfg.originLatency, cfg.stampedeN)
		b.WriteString("| server | origin requests (each run) | first response | p50 | p99 | p99.9 | max | first byte p50 | first byte p99 | server CPU s | statuses | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, name := range r.Servers {
			runs := byServer[name]
			if len(runs) == 0 {
				continue
			}
			var counts []string
			statuses := map[int]int{}
			errs := 0
			for _, s := range runs {
				counts = append(counts, strconv.FormatInt(s.OriginReqs, 10))
				for k, v := range s.Statuses {
					statuses[k] += v
				}
				errs += s.Errors
			}
			q := func(p float64) stat {
				return collect(runs, func(s *stampedeResult) float64 { return quantile(s.Latencies, p).Seconds() })
			}
			fb := func(p float64) stat {
				return collect(runs, func(s *stampedeResult) float64 { return quantile(s.TTFB, p).Seconds() })
			}
			cpu := collect(runs, func(s *stampedeResult) float64 { return s.ServerCPU.Seconds() })
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %d |\n", name, strings.Join(counts, ", "),
				fmtSecs(fb(0).med), fmtSecs(q(50).med), rangeOf(q(99), fmtSecs), fmtSecs(q(99.9).med), fmtSecs(q(100).med),
				fmtSecs(fb(50).med), fmtSecs(fb(99).med), cpu.med, fmtStatuses(statuses), errs)
		}
		b.WriteString("\n")
	}

	b.WriteString(r.tlsMarkdown())

	if len(r.Memory) > 0 {
		fmt.Fprintf(&b, "## 4. Memory\n\nA fresh server caches %d objects of %s (incompressible, `application/octet-stream`), %s in all, "+
			"fetched once each over 4 connections; resident memory (VmRSS of all its processes) is read %s later. "+
			"A second pass over the same objects shows how many the server kept.\n\n",
			r.firstMemory().Objects, fmtBytes(int64(cfg.memObject)), fmtBytes(r.firstMemory().Bytes), memorySettle(cfg))
		b.WriteString("| server | RSS at start | RSS after caching | growth | growth / bytes cached | second pass: hits | second pass: origin requests | cache on disk |\n|---|---|---|---|---|---|---|---|\n")
		for _, name := range r.Servers {
			runs := r.Memory[name]
			if len(runs) == 0 {
				continue
			}
			start := collect(runs, func(m *memoryResult) float64 { return float64(m.RSSStart) })
			after := collect(runs, func(m *memoryResult) float64 { return float64(m.RSSAfter) })
			growth := collect(runs, func(m *memoryResult) float64 { return float64(m.RSSAfter - m.RSSStart) })
			ratio := collect(runs, func(m *memoryResult) float64 { return float64(m.RSSAfter-m.RSSStart) / float64(m.Bytes) })
			hits := collect(runs, func(m *memoryResult) float64 { return float64(m.SecondHits) })
			org := collect(runs, func(m *memoryResult) float64 { return float64(m.SecondOrigin) })
			disk := collect(runs, func(m *memoryResult) float64 { return float64(m.DiskBytes) })
			diskS := fmtBytes(int64(disk.med))
			if name == nameVarnish {
				diskS = "— (malloc)"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %.0f | %.0f | %s |\n", name,
				fmtBytes(int64(start.med)), rangeOf(after, func(x float64) string { return fmtBytes(int64(x)) }),
				fmtBytes(int64(growth.med)), ratio.med, hits.med, org.med, diskS)
		}
		b.WriteString("\nnginx keeps its cache in files: the kernel's page cache holds them, which is not part of any process's RSS.\n\n")
	}

	if chart != "" {
		fmt.Fprintf(&b, "## Latency distributions\n\n![latency distributions](%s)\n\n", chart)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "## Edge CPU profile: %s\n\n%s. Profile file: `%s`.\n\n", p.Scenario, p.Why, p.File)
		fmt.Fprintf(&b, "Top 15 by flat time:\n\n```\n%s\n```\n\nTop 15 by cumulative time:\n\n```\n%s\n```\n\n", p.Flat, p.Cum)
	}
	if !full {
		return b.String()
	}

	if len(r.Probes) > 0 {
		b.WriteString("## What each server sends\n\nThe second of two requests (the first fills the cache); ✓ means the body decodes to the object's bytes.\n\n| request |")
		for _, name := range r.Servers {
			fmt.Fprintf(&b, " %s |", name)
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(r.Servers)) + "\n")
		for i, pc := range probeCases {
			ae := "no Accept-Encoding"
			if pc.accept != "" {
				ae = "AE: " + pc.accept
			}
			fmt.Fprintf(&b, "| `%s`, %s |", pc.path, ae)
			for _, name := range r.Servers {
				pr := r.Probes[name]
				if i >= len(pr) {
					b.WriteString(" — |")
					continue
				}
				p := pr[i]
				enc := p.Encoding
				if enc == "" {
					enc = "identity"
				}
				hit := "miss"
				if p.Hit {
					hit = "hit"
				}
				ok := "✓"
				if !p.Correct {
					ok = "✗ " + p.Problem
				}
				fmt.Fprintf(&b, " %d %s %d B, %s %s |", p.Status, enc, p.Bytes, hit, ok)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}

	b.WriteString("## Machine and versions\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d cores; memory %s; kernel %s; load average at start %s\n", m.CPU, m.Cores, m.MemTotal, m.Kernel, m.LoadAvg)
	fmt.Fprintf(&b, "- %s; edge %s\n- %s\n- %s\n- %s\n", m.Go, m.EdgeVersion, m.Nginx, m.Varnish, m.Wrk)
	fmt.Fprintf(&b, "- widget: %s (%d bytes)\n\n", m.Widget, widgetSize)
	b.WriteString("## Commands\n\n```\n")
	fmt.Fprintf(&b, "go run ./bench %s\n", strings.Join(m.Args, " "))
	for _, name := range r.Servers {
		if c, ok := r.Commands[name]; ok {
			fmt.Fprintf(&b, "%s\n", c)
		}
	}
	fmt.Fprintf(&b, "%s\n```\n\n", r.Commands["wrk"])
	b.WriteString("`$TMP` is the run's temporary directory; the configurations are `bench/nginx.conf.tmpl` and `bench/varnish.vcl.tmpl`. " +
		"Server CPU is utime+stime from /proc/PID/stat summed over the server's processes (nginx master and worker, varnishd manager and child, the edge); " +
		"see bench/README.md for the method.\n")
	return b.String()
}

func (r *results) firstMemory() *memoryResult {
	for _, name := range r.Servers {
		if rs := r.Memory[name]; len(rs) > 0 {
			return rs[0]
		}
	}
	return &memoryResult{}
}

// probeCoding is the Content-Encoding a server sent in the probe for the
// same path and Accept-Encoding as a scenario.
func (r *results) probeCoding(name, path string, headers []string) string {
	accept := ""
	for _, h := range headers {
		if v, ok := strings.CutPrefix(h, "Accept-Encoding: "); ok {
			accept = v
		}
	}
	for i, pc := range probeCases {
		if pc.path == path && pc.accept == accept && i < len(r.Probes[name]) {
			p := r.Probes[name][i]
			if p.Status != 200 {
				return strconv.Itoa(p.Status)
			}
			if p.Encoding == "" {
				return "identity"
			}
			return p.Encoding
		}
	}
	return "?"
}

func rangeOf(s stat, f func(float64) string) string {
	return fmt.Sprintf("%s (%s–%s)", f(s.med), f(s.lo), f(s.hi))
}

func fmtRate(x float64) string {
	if x >= 1000 {
		return fmt.Sprintf("%.1fk", x/1000)
	}
	return fmt.Sprintf("%.0f", x)
}

func fmtSecs(s float64) string { return fmtDur(time.Duration(s * float64(time.Second))) }

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 || n <= -1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 || n <= -1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 || n <= -1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func fmtStatuses(m map[int]int) string {
	var keys []int
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d×%d", m[k], k))
	}
	return strings.Join(parts, " ")
}

// writeReport writes the Markdown report and the chart, and prints the
// summary.
func (b *bench) writeReport() error {
	r := b.res
	if err := os.MkdirAll(b.cfg.outDir, 0o755); err != nil {
		return err
	}
	base := r.Meta.Date.Format("2006-01-02") + "-" + r.Meta.SHA
	if b.cfg.quick {
		base += "-quick"
	}
	chart := ""
	if err := writeChart(r, filepath.Join(b.cfg.outDir, base+".png")); err != nil {
		b.logf("chart: %v", err)
	} else {
		chart = base + ".png"
	}
	md := filepath.Join(b.cfg.outDir, base+".md")
	if err := os.WriteFile(md, []byte(r.markdown(true, chart)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\n%s", r.markdown(false, ""))
	fmt.Fprintf(b.out, "Report: %s\n", md)
	if chart != "" {
		fmt.Fprintf(b.out, "Chart:  %s\n", filepath.Join(b.cfg.outDir, chart))
	}
	return nil
}
