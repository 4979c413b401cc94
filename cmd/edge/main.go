// Command edge serves objects from S3 (or a directory) to browsers
// through a memory and disk cache, in the content coding each browser
// accepts.
//
//	edge                                   # the bundled demo site on http://127.0.0.1:8080/
//	edge -origin s3://bucket/prefix?region=us-west-2
//	edge -origin dir:/srv/assets -config edge.yaml
//
// Run edge -h for every flag.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/internal/lograte"
	"github.com/edgecdn/edge/origin"
	"github.com/prometheus/client_golang/prometheus"
)

// demo is the bundled demo site served when no origin is given.
//
//go:embed demo
var demo embed.FS

// demoRules are the demo site's rules: a versioned widget cached for a
// year, tenant configs for a minute, as a real deployment would set.
var demoRules = []edge.Rule{
	{Prefix: "/widget/", CacheControl: "public, max-age=31536000, immutable", TTL: edge.DurationOf(24 * time.Hour)},
	{Prefix: "/tenants/", CacheControl: "public, max-age=60", TTL: edge.DurationOf(time.Minute)},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	bridgeLogPackage(os.Stderr)
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, hooks{}))
}

// bridgeLogPackage sends what libraries write through the standard log
// package (quic-go's warning that the kernel caps its UDP buffers, for
// one) to w as JSON records at level WARN, like the edge's own, so that
// no plain-text line breaks a log pipeline.
func bridgeLogPackage(w io.Writer) {
	slog.SetDefault(slog.New(slog.NewJSONHandler(w, nil)))
	slog.SetLogLoggerLevel(slog.LevelWarn)
}

// options are the command line.
type options struct {
	httpAddr, adminAddr string
	origins             stringList
	attemptTimeout      time.Duration
	cacheDir            string
	mem, disk, maxObj   byteSize
	config              string
	adminTokenFile      string
	accessLog           bool
	ttl, negativeTTL    time.Duration
	swr, sie            time.Duration
	mustServe           string
	missConcurrency     int
	fetchTimeout        time.Duration
	shutdownTimeout     time.Duration
	version             bool
	tls                 tlsOptions   // HTTPS flags: tls.go
	purge               purgeOptions // identity and purge journal flags: purge.go
}

// onLoopback reports whether a listen address binds loopback only.
func onLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stringList is a flag.Value for a repeatable flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// durationFlag is a flag.Value for the durations a site's config file
// may set too: parsed by edge.ParseDuration, so a value the file refuses
// is refused here, with the same message.
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(s string) error {
	v, err := edge.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

// byteSize is a flag.Value for sizes such as 512MiB, 2GB or 1048576.
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n > 1<<62 {
		return fmt.Errorf("%q is not a size (e.g. 512MiB, 2GiB, 1048576)", s)
	}
	*b = byteSize(n)
	return nil
}

func defaultCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "edge")
	}
	return filepath.Join(os.TempDir(), "edge-cache")
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{mem: cache.DefaultMemoryBytes, disk: 1 << 30, maxObj: cache.DefaultMaxMemoryObject}
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.httpAddr, "http", "127.0.0.1:8080", "public HTTP `address` (HTTP/1.1 and cleartext HTTP/2)")
	fs.StringVar(&o.adminAddr, "admin", "127.0.0.1:9080", "admin `address`: /metrics, /stats, /healthz, /debug/pprof/; keep it private")
	fs.Var(&o.origins, "origin", "origin `URL`: s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=2s&header_timeout=5s] or dir:PATH; repeat for failover origins, tried in order; none serves the bundled demo site")
	fs.DurationVar(&o.attemptTimeout, "origin-attempt-timeout", 5*time.Second, "bound on one origin attempt up to its response headers; a failed attempt is retried, then the next -origin is tried")
	fs.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), "disk cache `directory`")
	fs.Var(&o.mem, "mem", "memory tier bound in `bytes` (e.g. 512MiB)")
	fs.Var(&o.disk, "disk", "disk tier bound in `bytes` (e.g. 20GiB); 0 means unbounded")
	fs.Var(&o.maxObj, "max-mem-object", "largest body held in memory, in `bytes`; larger objects are served from disk")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "`file` holding the bearer token the admin listener requires (all but /healthz); required when -admin is not on loopback")
	fs.StringVar(&o.config, "config", "", "YAML `file` with sites and per-path rules (optional)")
	fs.BoolVar(&o.accessLog, "access-log", false, "write a JSON access log line per request to stdout (buffered: out within a second, and at exit)")
	o.ttl, o.negativeTTL, o.swr, o.sie = edge.DefaultTTL, edge.DefaultNegativeTTL, edge.DefaultStaleWhileRevalidate, edge.DefaultStaleIfError
	fs.Var((*durationFlag)(&o.ttl), "ttl", "freshness when neither the origin's Cache-Control nor a rule sets one; 0: revalidate before every use")
	fs.Var((*durationFlag)(&o.negativeTTL), "negative-ttl", "how long a 404 from the origin is cached; 0: not at all")
	fs.Var((*durationFlag)(&o.swr), "stale-while-revalidate", "after expiry, how long a copy is served at once while one background request revalidates it (unless the origin's Cache-Control says); 0: never")
	fs.Var((*durationFlag)(&o.sie), "stale-if-error", "after expiry, how long a copy is served when the origin fails (unless the origin's Cache-Control says); 0: never")
	fs.StringVar(&o.mustServe, "must-serve", "", "comma-separated `paths` the edge must be able to serve; /healthz fails without a usable copy of each")
	fs.IntVar(&o.missConcurrency, "miss-concurrency", edge.DefaultMissConcurrency, "requests one client (IPv4 address, IPv6 /64) may have waiting on the origin; -1 is unlimited")
	fs.DurationVar(&o.fetchTimeout, "fetch-timeout", edge.DefaultFetchTimeout, "bound on one origin fetch, body included")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may run after SIGTERM")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	o.tls.register(fs)   // HTTPS flags: tls.go
	o.purge.register(fs) // identity and purge journal: purge.go
	// The flag package prints an error and then the whole usage; an
	// error is printed alone by run (with a hint), the usage only for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: edge [flags]\n\nServes objects from S3 or a directory through a memory and disk cache.\nWith no -origin and no -config it serves a bundled demo site.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.mem < 1<<20 {
		return nil, fmt.Errorf("-mem %s: at least 1MiB", o.mem.String())
	}
	if o.maxObj <= 0 || o.maxObj > o.mem {
		return nil, fmt.Errorf("-max-mem-object %s: between 1 byte and -mem", o.maxObj.String())
	}
	if o.cacheDir == "" {
		return nil, errors.New("-cache-dir: empty")
	}
	if o.missConcurrency == 0 || o.missConcurrency < -1 {
		return nil, fmt.Errorf("-miss-concurrency %d: a positive number of requests, or -1 for no limit", o.missConcurrency)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"-origin-attempt-timeout", o.attemptTimeout}, {"-fetch-timeout", o.fetchTimeout}, {"-shutdown-timeout", o.shutdownTimeout}} {
		if d.v <= 0 {
			return nil, fmt.Errorf("%s %s: must be positive", d.name, d.v)
		}
	}
	if err := o.tls.validate(); err != nil { // HTTPS flags: tls.go
		return nil, err
	}
	if err := o.purge.validate(); err != nil { // purge.go
		return nil, err
	}
	if o.adminTokenFile == "" && !onLoopback(o.adminAddr) {
		return nil, fmt.Errorf("-admin %s is not on loopback: give -admin-token-file, or keep it on 127.0.0.1", o.adminAddr)
	}
	return o, nil
}

// hooks let tests follow run. Nil fields are skipped.
type hooks struct {
	ready        func(httpAddr, adminAddr net.Addr) // serving
	httpsReady   func(httpsAddr net.Addr)           // serving HTTPS (-https), before ready
	shuttingDown func()                             // listeners closed, in-flight requests still running
	terminal     bool                               // print the human "serving" line as if stderr were a terminal
}

// isTerminal reports whether w is a terminal (a character device that
// is not /dev/null).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && fi.Name() != "null" // Stat names /dev/null "null"
}

// run is main, made testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, hk hooks) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "edge: %v\nRun edge -h for the flags.\n", err)
		return 2
	}
	if o.version {
		fmt.Fprintln(stdout, "edge", buildVersion())
		return 0
	}
	var adminToken string
	if o.adminTokenFile != "" {
		b, err := os.ReadFile(o.adminTokenFile)
		if err == nil {
			adminToken, err = edge.ParseAdminToken(string(b))
		}
		if err != nil {
			fmt.Fprintf(stderr, "edge: -admin-token-file: %v\n", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads certificates and ticket keys, and never stops the
	// edge (Go's default): an operator used to nginx's reload must not
	// take a region down with it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	sites, closeOrigins, err := loadSites(ctx, o, log)
	if err != nil {
		fmt.Fprintf(stderr, "edge: %v\n", err)
		return 2
	}
	defer closeOrigins()
	c, err := cache.New(cache.Config{
		Dir:             o.cacheDir,
		DiskBytes:       int64(o.disk),
		MemoryBytes:     int64(o.mem),
		MaxMemoryObject: int64(o.maxObj),
		Log:             log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "edge: %v\n", err)
		return 1
	}
	var accessLog *slog.Logger
	if o.accessLog {
		// Buffered (accesslog.go); written out at the latest a second
		// after a request, and at exit.
		// Its write errors come per flush: rate-limited, or a full disk
		// would get an error line a second from every edge.
		buf := newBufferedLog(stdout, lograte.Logger(log, time.Minute, time.Now))
		defer buf.Close()
		accessLog = slog.New(slog.NewJSONHandler(buf, nil))
	}
	// HTTPS (tls.go): certificates and ticket keys report through the
	// handler's registry and /healthz?verbose.
	reg := prometheus.NewRegistry()
	tside, err := setupTLS(ctx, &o.tls, o.cacheDir, reg, log)
	if err != nil {
		c.Close()
		fmt.Fprintf(stderr, "edge: %v\n", err)
		return 2
	}
	var components []edge.Component
	if tside != nil {
		components = append(components, tside.component())
	}
	// The purge journal (purge.go): read before the listeners open.
	pside, err := setupJournal(ctx, &o.purge, c, o.cacheDir, reg, log)
	if err != nil {
		c.Close()
		fmt.Fprintf(stderr, "edge: %v\n", err)
		return 2
	}
	if pside != nil {
		components = append(components, pside.component())
		if adminToken == "" {
			log.Warn("-purge-journal without -admin-token-file: the purge API (POST /purge, /warm, GET /cache) is off; purges reach this edge through the journal only, within -purge-poll")
		}
	}
	h, err := edge.NewHandler(edge.Options{
		Cache:           c,
		Sites:           sites,
		AccessLog:       accessLog,
		ErrorLog:        log,
		FetchTimeout:    o.fetchTimeout,
		MissConcurrency: o.missConcurrency,
		Registry:        reg,
		Components:      components,
		Name:            o.purge.name,
		Region:          o.purge.region,
	})
	if err != nil {
		fmt.Fprintf(stderr, "edge: %v\n", err)
		return 1
	}
	pside.catchUp(ctx, h) // purge.go: at most 2 s

	public := &http.Server{
		Handler:           tside.plainHandler(h), // ACME HTTP-01, -redirect-https (tls.go)
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for a slow mobile client to take a large object;
		// short enough that stalled clients cannot hold connections.
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// "OPTIONS *" reaches the handler (405) instead of net/http's 200.
		DisableGeneralOptionsHandler: true,
	}
	public.Protocols = new(http.Protocols)
	public.Protocols.SetHTTP1(true)
	public.Protocols.SetUnencryptedHTTP2(true)
	admin := &http.Server{Handler: h.AdminHandler(adminToken), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	pl, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		fmt.Fprintf(stderr, "edge: -http: %v\n", err)
		return 1
	}
	al, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		pl.Close()
		fmt.Fprintf(stderr, "edge: -admin: %v\n", err)
		return 1
	}
	// The must-serve paths are fetched before the listeners open, for at
	// most warmAtStart: an edge that can reach its origin comes up healthy
	// at once; one that cannot serves anyway (from disk) and says so.
	select {
	case <-h.KeepWarm(keepWarmInterval):
	case <-time.After(warmAtStart):
		log.Warn("edge: the must-serve paths are not all fetched yet; serving anyway", "waited", warmAtStart.String())
	}
	pside.start(ctx, al.Addr()) // purge.go: registers, then polls the journal
	errc := make(chan error, 4)
	go func() { errc <- public.Serve(pl) }()
	go func() { errc <- admin.Serve(al) }()
	if err := tside.serve(ctx, h, errc); err != nil { // HTTPS and HTTP/3 (tls.go)
		fmt.Fprintf(stderr, "edge: %v\n", err)
		public.Close()
		admin.Close()
		pside.stop()
		h.Close()
		c.Close()
		return 1
	}
	if tside != nil && hk.httpsReady != nil {
		hk.httpsReady(tside.addr)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if tside == nil {
					log.Warn("SIGHUP: nothing to reload; flags and -config are read at start (restart the edge to apply a change)")
					continue
				}
				if err := tside.reload(); err != nil {
					log.Error("SIGHUP: not everything reloaded; what failed keeps what it had", "err", err)
					continue
				}
				log.Info("SIGHUP: certificates and ticket keys re-read")
			}
		}
	}()
	for _, s := range sites {
		if len(s.MustServe) == 0 {
			log.Warn("site has no must-serve paths: /healthz cannot tell whether it can serve; set -must-serve or must_serve", "origin", s.Origin.String(), "hosts", s.Hosts)
		}
	}
	serving := []any{"http", pl.Addr().String(), "admin", al.Addr().String()}
	if tside != nil {
		serving = append(serving, "https", tside.addr.String())
	}
	log.Info("edge serving", append(serving, "version", buildVersion(), "sites", len(sites), "cache_dir", o.cacheDir)...)
	if hk.terminal || isTerminal(stderr) {
		// For a person at a terminal (make run); log pipelines get JSON only.
		what := fmt.Sprintf("%d site(s)", len(sites))
		if len(o.origins) == 0 && o.config == "" {
			what = "the demo site"
		}
		fmt.Fprintf(stderr, "edge %s: serving %s at http://%s/ (admin: http://%s/healthz?verbose)\n", buildVersion(), what, pl.Addr(), al.Addr())
	}
	if hk.shuttingDown != nil {
		public.RegisterOnShutdown(hk.shuttingDown)
	}
	if hk.ready != nil {
		hk.ready(pl.Addr(), al.Addr())
	}

	status := 0
	select {
	case <-ctx.Done():
		log.Info("edge shutting down", "timeout", o.shutdownTimeout.String())
	case err := <-errc:
		log.Error("edge listener failed", "err", err)
		status = 1
	}
	h.Drain()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	if err := public.Shutdown(sctx); err != nil {
		log.Warn("edge: in-flight requests cut off", "err", err)
	}
	tside.shutdown(sctx) // HTTPS and HTTP/3 (tls.go)
	if err := admin.Shutdown(sctx); err != nil {
		log.Warn("edge: admin requests cut off", "err", err)
	}
	// Background revalidations, keep-warm and the journal's poller stop;
	// fills and derivations in flight finish writing to disk before we
	// exit.
	pside.stop()
	h.Close()
	c.Close()
	log.Info("edge stopped")
	return status
}

// maxHeaderBytes is net/http's bound on a request's head (line and
// fields; it reads 4 KiB more). The handler bounds the parts exactly, the
// target to 8 KiB (414) and the fields to 32 KiB (431); this is set
// above their sum so that the server's own, rougher limit (431 too) is
// only met by heads the handler would refuse anyway.
const maxHeaderBytes = 48 << 10

// keepWarmInterval is how often the must-serve paths are checked and
// refreshed when missing or expired; warmAtStart bounds the wait for the
// first pass at start.
const (
	keepWarmInterval = 5 * time.Second
	warmAtStart      = 2 * time.Second
)

// demoMustServe are the demo site's must-serve paths.
var demoMustServe = []string{"/widget/v1/login.js", "/tenants/acme.json"}

// loadSites builds the sites from -config and the flags. closeOrigins
// stops the origins' background probes; call it at shutdown.
func loadSites(ctx context.Context, o *options, log *slog.Logger) (sites []edge.Site, closeOrigins func(), err error) {
	var failovers []*origin.Failover
	closeAll := func() {
		for _, f := range failovers {
			f.Close()
		}
	}
	open := func(specs, mustServe []string) (origin.Origin, string, error) {
		f, namespace, err := openOrigins(ctx, specs, mustServe, o, log)
		if err == nil {
			failovers = append(failovers, f)
		}
		return f, namespace, err
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	base := edge.Site{
		TTL:                  o.ttl,
		NegativeTTL:          o.negativeTTL,
		StaleWhileRevalidate: o.swr,
		StaleIfError:         o.sie,
		MustServe:            splitList(o.mustServe),
	}
	if len(o.origins) > 0 {
		if base.Origin, base.CacheNamespace, err = open(o.origins, base.MustServe); err != nil {
			return nil, nil, fmt.Errorf("-origin: %w", err)
		}
	} else {
		sub, err := fs.Sub(demo, "demo")
		if err != nil {
			return nil, nil, err
		}
		base.Origin, base.Rules = origin.NewFS(sub, "embed:demo"), demoRules
		base.CacheNamespace = base.Origin.String()
		if base.MustServe == nil {
			base.MustServe = demoMustServe
		}
	}
	for _, p := range base.MustServe {
		if !strings.HasPrefix(p, "/") {
			return nil, nil, fmt.Errorf("-must-serve: %q does not start with /", p)
		}
	}
	if o.config == "" {
		return []edge.Site{base}, closeAll, nil
	}
	cfg, err := edge.LoadConfig(o.config)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Sites) == 0 {
		return []edge.Site{base}, closeAll, nil
	}
	sites = make([]edge.Site, 0, len(cfg.Sites))
	for i, sc := range cfg.Sites {
		s := base
		s.Hosts, s.Index, s.Rules = sc.Hosts, sc.Index, sc.Rules
		s.CORS, s.Headers, s.RemoveHeaders = sc.CORS, sc.Headers, sc.RemoveHeaders
		s.Query = edge.QueryMode(sc.Query)
		for _, v := range []struct {
			dst *time.Duration
			src *edge.Duration
		}{{&s.TTL, sc.TTL}, {&s.NegativeTTL, sc.NegativeTTL}, {&s.StaleWhileRevalidate, sc.StaleWhileRevalidate}, {&s.StaleIfError, sc.StaleIfError}} {
			if v.src != nil { // unset: the flag's value
				*v.dst = time.Duration(*v.src)
			}
		}
		if sc.MustServe != nil {
			s.MustServe = sc.MustServe
		}
		if specs := sc.OriginList(); len(specs) > 0 {
			if s.Origin, s.CacheNamespace, err = open(specs, s.MustServe); err != nil {
				return nil, nil, fmt.Errorf("config %s: sites[%d].origin: %w", o.config, i, err)
			}
		}
		sites = append(sites, s)
	}
	return sites, closeAll, nil
}

// openOrigins opens the origin specs, tried in order with retries and
// circuit breakers. A down origin is probed with the first must-serve
// path: an object that exists, so a 200 proves the origin and its
// credentials work (S3 answers 403 for a missing key without
// s3:ListBucket). Every circuit change is logged.
//
// namespace names the site's objects in the cache: the first origin's
// name, "s3://bucket/prefix", taken from the configuration, so adding
// replicas behind it (or wrapping the origins) keeps the cache.
func openOrigins(ctx context.Context, specs, mustServe []string, o *options, log *slog.Logger) (f *origin.Failover, namespace string, err error) {
	var list []origin.Origin
	for _, spec := range specs {
		org, err := origin.Parse(ctx, spec)
		if err != nil {
			return nil, "", err
		}
		list = append(list, org)
	}
	cfg := origin.FailoverConfig{AttemptTimeout: o.attemptTimeout}
	if len(mustServe) > 0 {
		cfg.ProbeKey = mustServe[0]
	}
	cfg.OnStateChange = func(name string, state origin.State) {
		lastErr := ""
		for _, st := range f.States() {
			if st.Name == name {
				lastErr = st.LastError
			}
		}
		switch state {
		case origin.Closed:
			log.Warn("origin circuit closed: the origin answers again", "origin", name, "state", state.String())
		default:
			log.Error("origin circuit "+state.String()+": the origin is skipped while it fails", "origin", name, "state", state.String(), "err", lastErr)
		}
	}
	f = origin.NewFailover(list, cfg)
	return f, list[0].String(), nil
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

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "-dirty"
		}
		if rev != "" {
			return rev
		}
		return bi.Main.Version
	}
	return "devel"
}
