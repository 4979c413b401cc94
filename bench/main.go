// Command bench runs the edge side by side with nginx (proxy_cache) and
// Varnish, in front of one origin holding the same objects, drives all
// three with the same load, and reports the figures as ratios measured in
// the same run.
//
//	go run ./bench          # full mode, for the record (make bench)
//	go run ./bench -quick   # under two minutes, for development (make bench-quick)
//
// A run installs what is missing (nginx, varnish, wrk from Debian's
// packages, as root), builds ./cmd/edge, starts a fake S3 origin and the
// three servers pinned to one core, with the load generator on the other,
// and measures:
//
//  1. hits on a small tenant config,
//  2. hits on the login widget, compressed and plain,
//  3. a miss stampede: 500 concurrent requests for a cold object,
//  4. resident memory after caching 1 GiB of objects.
//
// It writes bench/results/DATE-SHA.md and a PNG chart beside it, and
// prints the tables. bench/README.md explains the method and why each
// peer setting is fair.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	quick          bool
	duration       time.Duration // one measured run
	warmup         time.Duration // unmeasured load before a scenario's runs
	runs           int           // measured runs per scenario and server, interleaved
	conns          int
	stampedeN      int
	originLatency  time.Duration
	memTotal       int64
	memObject      int
	servers        []string
	scenarios      []string
	outDir         string
	install        bool
	profile        string // auto, always, never
	profileSeconds int
	serverCPU      int
	loadCPU        int
}

// Scenario IDs, for -scenarios.
const (
	scHitSmall       = "hit-small"
	scHitWidget      = "hit-widget"
	scHitWidgetPlain = "hit-widget-plain"
	scHit404         = "hit-404"
	scStampede       = "stampede"
	scStampedeSmall  = "stampede-small"
	scMemory         = "memory"
)

var allScenarios = []string{scHitSmall, scHitWidget, scHitWidgetPlain, scHit404, scStampede, scStampedeSmall, scMemory, scHTTPSHitSmall, scHTTPSHandshake, scHTTPSResumed}

// quickSkips are the scenarios -quick leaves out unless asked for.
var quickSkips = []string{scHit404, scStampedeSmall}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.quick, "quick", false, "short mode for development: fewer, shorter runs (under two minutes)")
	fs.DurationVar(&c.duration, "duration", 0, "length of one measured run (default 10s; 2s with -quick)")
	fs.DurationVar(&c.warmup, "warmup", 0, "unmeasured load on each server before a scenario's runs (default 3s; 1s with -quick)")
	fs.IntVar(&c.runs, "runs", 0, "measured runs per scenario and server, interleaved across servers (default 5; 3 with -quick)")
	fs.IntVar(&c.conns, "conns", 64, "keep-alive connections for the hit scenarios")
	fs.IntVar(&c.stampedeN, "stampede", 500, "concurrent requests in the miss stampede")
	fs.DurationVar(&c.originLatency, "origin-latency", 50*time.Millisecond, "latency the origin adds to each request during the stampede")
	memTotal := fs.String("mem-total", "", "bytes of objects cached in the memory scenario (default 1GiB; 256MiB with -quick)")
	fs.IntVar(&c.memObject, "mem-object", 256<<10, "size of each object in the memory scenario, in bytes")
	servers := fs.String("servers", "edge,edge-log,nginx,varnish", "servers to compare (edge, edge-log: the edge with -access-log, nginx, varnish)")
	scenarios := fs.String("scenarios", "", "scenarios to run, comma-separated (default all; -quick leaves out "+strings.Join(quickSkips, " and ")+"): "+strings.Join(allScenarios, ", "))
	fs.StringVar(&c.outDir, "out", "", "directory for the report and chart (default bench/results under the module root)")
	fs.BoolVar(&c.install, "install", true, "install missing peers and wrk with apt-get (root only)")
	fs.StringVar(&c.profile, "profile", "", "CPU-profile the edge under a hit scenario's load: auto (when it misses a target), always, never (default auto; never with -quick)")
	fs.IntVar(&c.profileSeconds, "profile-seconds", 0, "length of a CPU profile (default 10; 4 with -quick)")
	fs.IntVar(&c.serverCPU, "server-cpu", 0, "core the servers are pinned to")
	fs.IntVar(&c.loadCPU, "load-cpu", 1, "core the load generator and origin are pinned to")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./bench [-quick] [flags]\n\nRuns the edge, nginx and Varnish side by side and writes a report to bench/results/.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	def := func(d *time.Duration, full, quick time.Duration) {
		if *d == 0 {
			*d = full
			if c.quick {
				*d = quick
			}
		}
	}
	def(&c.duration, 10*time.Second, 2*time.Second)
	def(&c.warmup, 3*time.Second, time.Second)
	if c.runs == 0 {
		c.runs = 5
		if c.quick {
			c.runs = 3
		}
	}
	if c.profileSeconds == 0 {
		c.profileSeconds = 10
		if c.quick {
			c.profileSeconds = 4
		}
	}
	if c.profile == "" {
		c.profile = "auto"
		if c.quick {
			c.profile = "never"
		}
	}
	c.memTotal = 1 << 30
	if c.quick {
		c.memTotal = 256 << 20
	}
	if *memTotal != "" {
		n, err := parseBytes(*memTotal)
		if err != nil {
			return nil, fmt.Errorf("-mem-total: %w", err)
		}
		c.memTotal = n
	}
	switch {
	case c.duration < time.Second || c.duration%time.Second != 0:
		return nil, fmt.Errorf("-duration %s: whole seconds, at least 1s (wrk's resolution)", c.duration)
	case c.runs < 1:
		return nil, errors.New("-runs: at least 1")
	case c.conns < 1 || c.stampedeN < 1:
		return nil, errors.New("-conns and -stampede: at least 1")
	case c.memObject < 1024 || int64(c.memObject) > c.memTotal:
		return nil, errors.New("-mem-object: between 1KiB and -mem-total")
	case c.profile != "auto" && c.profile != "always" && c.profile != "never":
		return nil, fmt.Errorf("-profile %q: auto, always or never", c.profile)
	}
	for _, s := range splitList(*servers) {
		if s != nameEdge && s != nameEdgeLog && s != nameNginx && s != nameVarnish {
			return nil, fmt.Errorf("-servers: unknown server %q (edge, edge-log, nginx, varnish)", s)
		}
		if !slices.Contains(c.servers, s) {
			c.servers = append(c.servers, s)
		}
	}
	if len(c.servers) == 0 {
		return nil, errors.New("-servers: none")
	}
	if *scenarios == "" {
		for _, s := range allScenarios {
			if !c.quick || !slices.Contains(quickSkips, s) {
				c.scenarios = append(c.scenarios, s)
			}
		}
	} else {
		for _, s := range splitList(*scenarios) {
			if !slices.Contains(allScenarios, s) {
				return nil, fmt.Errorf("-scenarios: unknown scenario %q (%s)", s, strings.Join(allScenarios, ", "))
			}
			c.scenarios = append(c.scenarios, s)
		}
	}
	return c, nil
}

// shellJoin quotes argv for a shell, for the report.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"$&;|<>*?()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseBytes reads 1073741824, 512MiB, 1GiB, 64KiB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			var n int64
			if _, err := fmt.Sscanf(num, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != num {
				return 0, fmt.Errorf("%q is not a size (e.g. 512MiB, 1GiB)", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size", s)
}

func (c *config) has(scenario string) bool { return slices.Contains(c.scenarios, scenario) }

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	b := &bench{cfg: cfg, out: stdout, log: stderr, procs: &procs{}, started: time.Now()}
	err = b.run(ctx)
	b.cleanup()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "bench: interrupted; every process stopped, temporary files removed")
			return 130
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// bench is one run of the harness.
type bench struct {
	cfg     *config
	out     io.Writer
	log     io.Writer
	procs   *procs
	started time.Time
	tmp     string
	env     *env
	origin  *originServer
	corpus  *corpus
	wrk     *wrk
	res     *results
	roots   *x509.CertPool // trusts the HTTPS scenarios' certificate
}

// cleanup stops every process the run started and removes its files.
func (b *bench) cleanup() {
	b.procs.stopAll()
	if b.origin != nil {
		b.origin.close()
	}
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench %5.1fs: %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) run(ctx context.Context) error {
	cfg := b.cfg
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if cfg.outDir == "" {
		cfg.outDir = filepath.Join(root, "bench", "results")
	}
	missing := ensureTools(b.log, cfg.install)
	if slices.Contains(missing, "wrk") {
		return errors.New("wrk is required (apt-get install wrk)")
	}
	b.res = newResults(cfg)
	var servers []string
	for _, s := range cfg.servers {
		bin := map[string]string{nameEdge: "", nameEdgeLog: "", nameNginx: "nginx", nameVarnish: "varnishd"}[s]
		if bin != "" && slices.Contains(missing, bin) {
			b.res.Skipped[s] = bin + " is not installed"
			b.logf("skipping %s: %s is not installed", s, bin)
			continue
		}
		servers = append(servers, s)
	}
	b.res.Servers = servers

	if b.tmp, err = os.MkdirTemp("", "edge-bench-"); err != nil {
		return err
	}
	if err := os.Chmod(b.tmp, 0o755); err != nil {
		return err
	}
	b.logf("building ./cmd/edge")
	edgeBin, err := buildEdge(ctx, root, b.tmp, gitSHA(ctx, root))
	if err != nil {
		return err
	}

	// Pin (after the build, which may use every core): servers on one
	// core, this process (origin, stampede and memory clients) and wrk
	// on the other.
	pinned := runtime.NumCPU() >= 2 && !slices.Contains(missing, "taskset")
	if !pinned {
		cfg.serverCPU, cfg.loadCPU = -1, -1
		b.res.Notes = append(b.res.Notes, "Not pinned: fewer than two cores, or no taskset. Figures mix server and generator CPU contention.")
	} else if err := pinSelf(cfg.loadCPU); err != nil {
		return err
	}
	if b.corpus, err = loadCorpus(root); err != nil {
		return err
	}
	memObjects := int(cfg.memTotal / int64(cfg.memObject))
	b.origin = newOriginServer(b.corpus.objects(), b.corpus.widget, b.corpus.config, cfg.memObject)
	if err := b.origin.start(); err != nil {
		return err
	}
	if b.wrk, err = newWrk(b.tmp, cfg.loadCPU); err != nil {
		return err
	}
	b.env = &env{root: root, tmp: b.tmp, edgeBin: edgeBin, origin: b.origin.addr(), cpu: cfg.serverCPU, procs: b.procs, isRoot: os.Geteuid() == 0}
	if b.env.certFile, b.env.keyFile, b.roots, err = writeBenchCert(b.tmp); err != nil {
		return err
	}
	b.res.Meta = collectMeta(ctx, root, edgeBin, b.corpus, cfg, pinned)

	// Hits and the stampede share one instance of each server.
	if slices.ContainsFunc(cfg.scenarios, func(s string) bool { return s != scMemory }) {
		b.logf("starting %s", strings.Join(servers, ", "))
		running, err := b.startServers(ctx, servers)
		if err != nil {
			return err
		}
		for _, name := range servers {
			b.res.Commands[name] = strings.ReplaceAll(running[name].proc.commandLine(), b.tmp, "$TMP")
		}
		b.res.Commands["wrk"] = strings.ReplaceAll(shellJoin(b.wrk.args("http://127.0.0.1:PORT"+pathConfig, cfg.conns, cfg.duration, hitScenarios[0].headers)), b.tmp, "$TMP")
		for _, name := range servers {
			pr, err := probe(ctx, running[name], b.corpus)
			if err != nil {
				return err
			}
			b.res.Probes[name] = pr
		}
		for _, sc := range hitScenarios {
			if cfg.has(sc.id) {
				if err := b.runHit(ctx, sc, servers, running); err != nil {
					return err
				}
			}
		}
		for _, sc := range stampedeScenarios {
			if cfg.has(sc.id) {
				if err := b.runStampede(ctx, sc, servers, running); err != nil {
					return err
				}
			}
		}
		for _, sc := range []string{scHTTPSHandshake, scHTTPSResumed} {
			if cfg.has(sc) {
				if err := b.runHandshakes(ctx, sc, servers, running); err != nil {
					return err
				}
			}
		}
		if err := b.runProfiles(ctx, running); err != nil {
			return err
		}
		for _, s := range running {
			s.proc.stop()
		}
	}
	if cfg.has(scMemory) {
		if err := b.runMemory(ctx, servers, memObjects); err != nil {
			return err
		}
	}
	b.res.Meta.Wall = time.Since(b.started)
	return b.writeReport()
}

// hitScenario is a scenario of cache hits driven by wrk at full speed.
type hitScenario struct {
	id, title string
	short     string // for the chart
	path      string
	headers   []string
	expect404 bool
	https     bool // over keep-alive HTTPS, on the servers that terminate TLS
}

var hitScenarios = []hitScenario{
	{scHitSmall, "1. Hit, small: the tenant config (1 KiB JSON), browser Accept-Encoding", "1 KiB config, browser AE", pathConfig, []string{"Accept-Encoding: " + acceptBrowser}, false, false},
	{scHitWidget, "2a. Hit, widget (175 KB JS), browser Accept-Encoding: served compressed", "widget, browser AE", pathWidget, []string{"Accept-Encoding: " + acceptBrowser}, false, false},
	{scHitWidgetPlain, "2b. Hit, widget, no Accept-Encoding: served plain", "widget, no AE", pathWidget, nil, false, false},
	{scHit404, "Hit, 404: a missing path, negatively cached", "404", pathMissing, []string{"Accept-Encoding: " + acceptBrowser}, true, false},
	{scHTTPSHitSmall, "1h. Hit, small, over keep-alive HTTPS (TLS 1.3, same certificate and suites)", "1 KiB config, HTTPS", pathConfig, []string{"Accept-Encoding: " + acceptBrowser}, false, true},
}

// order rotates the servers for run i (A B C, B C A, C A B, ...) so that
// no server always runs first or last after another's load.
func order(servers []string, i int) []string {
	n := len(servers)
	out := make([]string, n)
	for j := range n {
		out[j] = servers[(i+j)%n]
	}
	return out
}

func (b *bench) runHit(ctx context.Context, sc hitScenario, servers []string, running map[string]*server) error {
	cfg := b.cfg
	if sc.https {
		// The same servers, through their HTTPS listeners.
		var tlsServers []string
		tlsRunning := map[string]*server{}
		for _, name := range servers {
			if s := running[name]; s.tlsAddr != "" {
				c := *s
				c.addr, c.scheme = s.tlsAddr, "https"
				tlsServers, tlsRunning[name] = append(tlsServers, name), &c
			}
		}
		servers, running = tlsServers, tlsRunning
	}
	b.logf("%s: warm-up %s per server", sc.id, cfg.warmup)
	for _, name := range servers {
		if _, err := b.wrk.run(ctx, running[name], b.origin, sc.path, cfg.conns, max(cfg.warmup, time.Second), sc.headers, sc.expect404); err != nil {
			return err
		}
	}
	for i := range cfg.runs {
		for _, name := range order(servers, i) {
			cpu0 := coreTimes(cfg.serverCPU)
			m, err := b.wrk.run(ctx, running[name], b.origin, sc.path, cfg.conns, cfg.duration, sc.headers, sc.expect404)
			if err != nil {
				return err
			}
			if cfg.serverCPU >= 0 {
				m.Other = max(0, coreTimes(cfg.serverCPU).busySince(cpu0)-m.serverUtil())
			}
			b.res.Hits[sc.id][name] = append(b.res.Hits[sc.id][name], m)
			b.logf("%s run %d %-7s %8.0f req/s  %.3f CPU-s/100k  p99 %s  server %3.0f%%  wrk %3.0f%%  origin %d",
				sc.id, i+1, name, m.rps(), m.cpuPer100k(), fmtDur(m.at(99)), 100*m.serverUtil(), 100*m.genUtil(), m.OriginReqs)
		}
	}
	return nil
}

// stampedeScenario is a burst of concurrent requests for a cold object.
type stampedeScenario struct {
	id, title string
	ext       string // .js: the widget; .json: the tenant config
}

var stampedeScenarios = []stampedeScenario{
	{scStampede, "3. Miss stampede: a cold widget (175 KB JS)", ".js"},
	{scStampedeSmall, "3b. Miss stampede: a cold tenant config (1 KiB JSON)", ".json"},
}

func (b *bench) runStampede(ctx context.Context, sc stampedeScenario, servers []string, running map[string]*server) error {
	cfg := b.cfg
	b.origin.setLatency(cfg.originLatency)
	defer b.origin.setLatency(0)
	headers := []string{"Accept-Encoding: " + acceptBrowser}
	for i := range cfg.runs {
		for _, name := range order(servers, i) {
			path := fmt.Sprintf("/%s%s-%d-%d%s", coldPrefix, name, i, time.Now().UnixNano(), sc.ext)
			r, err := stampede(ctx, running[name], b.origin, path, pathConfig, cfg.stampedeN, headers)
			if err != nil {
				return err
			}
			r.OriginReqs = b.origin.count(key(path)) // this object's, not the warm-up's
			b.res.Stampede[sc.id][name] = append(b.res.Stampede[sc.id][name], r)
			b.logf("%s run %d %-7s origin %d  first response %s  p50 %s  p99 %s  max %s  first byte p99 %s  statuses %v errors %d",
				sc.id, i+1, name, r.OriginReqs, fmtDur(quantile(r.TTFB, 0)), fmtDur(quantile(r.Latencies, 50)), fmtDur(quantile(r.Latencies, 99)),
				fmtDur(quantile(r.Latencies, 100)), fmtDur(quantile(r.TTFB, 99)), r.Statuses, r.Errors)
		}
	}
	return nil
}

// startServers starts fresh instances of servers at once.
func (b *bench) startServers(ctx context.Context, servers []string) (map[string]*server, error) {
	type started struct {
		s   *server
		err error
	}
	ch := make(map[string]chan started)
	for _, name := range servers {
		ch[name] = make(chan started, 1)
		go func() {
			s, err := b.env.startServer(ctx, name)
			ch[name] <- started{s, err}
		}()
	}
	running := map[string]*server{}
	var errs []error
	for _, name := range servers {
		st := <-ch[name]
		if st.err != nil {
			errs = append(errs, st.err)
			continue
		}
		running[name] = st.s
	}
	if err := errors.Join(errs...); err != nil {
		for _, s := range running {
			s.proc.stop()
		}
		return nil, err
	}
	return running, nil
}

func (b *bench) runMemory(ctx context.Context, servers []string, n int) error {
	cfg := b.cfg
	// Resident memory varies little between runs, and each run caches
	// the whole set again: at most 3 runs (quick: 1).
	runs, settle := min(cfg.runs, 3), memorySettle(cfg)
	if cfg.quick {
		runs = 1
	}
	for i := range runs {
		// Fresh servers, so with empty caches; started together, measured
		// one after the other.
		running, err := b.startServers(ctx, servers)
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		for _, name := range order(servers, i) {
			s := running[name]
			r := &memoryResult{Objects: n, RSSStart: rss(s.pids())}
			t := time.Now()
			if r.Bytes, err = fillObjects(ctx, s, n, nil); err != nil {
				return err
			}
			r.Fill = time.Since(t)
			time.Sleep(settle) // background stores and GC settle
			r.RSSAfter = rss(s.pids())
			org0 := b.origin.countPrefix(memPrefix)
			if _, err := fillObjects(ctx, s, n, func(h http.Header) {
				if s.cached(h) {
					r.SecondHits++
				}
			}); err != nil {
				return err
			}
			r.SecondOrigin = b.origin.countPrefix(memPrefix) - org0
			if name != nameVarnish {
				r.DiskBytes = dirSize(filepath.Join(s.dir, "cache"))
			}
			s.proc.stop()
			b.res.Memory[name] = append(b.res.Memory[name], r)
			b.logf("memory run %d %-7s %d objects, %s: RSS %s → %s; second pass: %d hits, %d origin requests (fill %s)",
				i+1, name, n, fmtBytes(r.Bytes), fmtBytes(r.RSSStart), fmtBytes(r.RSSAfter), r.SecondHits, r.SecondOrigin, r.Fill.Round(time.Millisecond))
			_ = os.RemoveAll(s.dir)
		}
	}
	return nil
}

// memorySettle is how long the memory scenario waits after caching
// before reading RSS.
func memorySettle(cfg *config) time.Duration {
	if cfg.quick {
		return time.Second
	}
	return 2 * time.Second
}

// moduleRoot finds the directory of go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from the module (go run ./bench)")
		}
		dir = parent
	}
}
