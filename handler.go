package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/internal/lograte"
	"github.com/prometheus/client_golang/prometheus"
)

// maxURILen bounds the request target; longer ones get 414.
const maxURILen = 8 << 10

// maxHeaderBlock bounds a request's header fields (each "Name: value"
// line with its CRLF, Host included, the request line not); larger ones
// get 431. The server's own limit (cmd/edge) is set above it, so this
// is the one clients meet, exactly, over HTTP/1.1 and HTTP/2 alike.
const maxHeaderBlock = 32 << 10

// DefaultFetchTimeout bounds one origin fetch, body included.
const DefaultFetchTimeout = 30 * time.Second

// logEvery is how often one kind of failure is logged per object (see
// lograte): an outage is told once a minute per object, with a count.
const logEvery = time.Minute

// Options configure a Handler.
type Options struct {
	Cache *cache.Cache
	Sites []Site
	// AccessLog, when set, gets one structured record per request.
	AccessLog *slog.Logger
	// ErrorLog gets every failure the handler meets and works around:
	// origin failures (a client got a 502 or a stale copy), failed
	// background revalidations and keep-warm fetches, objects that cannot
	// be served in a coding the client accepts. Each kind of failure of
	// one object is logged at most once a minute, with a count of the
	// rest. Nil discards them (as httputil.ReverseProxy's ErrorLog does
	// not: give one).
	ErrorLog *slog.Logger
	// FetchTimeout bounds one origin fetch. Zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MissConcurrency bounds the requests one client (an IPv4 address or
	// an IPv6 /64) may have waiting on the origin at once; more get 429.
	// Hits are never limited. Zero means DefaultMissConcurrency; negative
	// means no limit.
	MissConcurrency int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Registry receives the edge's metrics and is what the admin
	// listener's /metrics serves, so other parts of the process (TLS, the
	// purge journal) can register theirs beside them. Nil means a new,
	// private registry.
	Registry *prometheus.Registry
	// Components report the state of parts beyond the sites' origins
	// (certificates, the purge journal) on /healthz?verbose.
	Components []Component
	// Name and Region identify the edge in the purge API's answers
	// (cmd/edge: -name, default the host name, and -region). Empty means
	// none.
	Name, Region string
}

// Handler serves objects to browsers: route the Host to a site, clean
// the path into a cache key, look the object up (memory, disk, else one
// coalesced origin fetch), negotiate the content coding, open the variant
// in that coding (the cache derives it once), and answer with
// http.ServeContent semantics (conditional requests, Range, HEAD).
//
// Call Close when done: it stops the background work (revalidations,
// keep-warm) and waits for it.
type Handler struct {
	hosts        map[string]*site
	def          *site
	sites        []*site
	cache        *cache.Cache
	metrics      *metrics
	accessLog    *slog.Logger
	errorLog     *slog.Logger
	fetchTimeout time.Duration
	now          func() time.Time
	draining     chan struct{}
	misses       *missLimiter
	components   []Component
	revalidating sync.Map // key → struct{}: background revalidations in flight
	name, region string
	purgeMetrics *purgeMetrics

	// Background work (revalidations, keep-warm) runs under bg; Close
	// cancels it and waits on background.
	bg         context.Context
	stopBG     context.CancelFunc
	background sync.WaitGroup
}

// NewHandler returns a Handler for opts.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Cache == nil {
		return nil, errors.New("edge: no cache")
	}
	h := &Handler{
		hosts:        map[string]*site{},
		cache:        opts.Cache,
		metrics:      newMetrics(opts.Registry, opts.Cache),
		accessLog:    opts.AccessLog,
		fetchTimeout: opts.FetchTimeout,
		now:          opts.Now,
		draining:     make(chan struct{}),
		misses:       newMissLimiter(opts.MissConcurrency),
		components:   opts.Components,
		name:         opts.Name,
		region:       opts.Region,
	}
	if h.fetchTimeout == 0 {
		h.fetchTimeout = DefaultFetchTimeout
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.errorLog = lograte.Logger(opts.ErrorLog, logEvery, h.now)
	for i, s := range opts.Sites {
		st, err := newSite(s)
		if err != nil {
			return nil, fmt.Errorf("edge: site %d: %w", i, err)
		}
		if p := h.newPass(st); p != nil {
			st.pass = p
		}
		if len(s.Hosts) == 0 {
			if h.def != nil {
				return nil, errors.New("edge: more than one default site (a site without hosts)")
			}
			h.def = st
		}
		for _, host := range s.Hosts {
			h.hosts[strings.ToLower(host)] = st
		}
		h.sites = append(h.sites, st)
	}
	h.metrics.reg.MustRegister(newOriginCollector(h.sites))
	h.metrics.reg.MustRegister(newHealthCollector(h)) // edge_healthy, edge_must_serve: healthmetrics.go
	h.purgeMetrics = newPurgeMetrics(h.metrics.reg)
	h.bg, h.stopBG = context.WithCancel(context.Background())
	return h, nil
}

// Close stops the handler's background work, revalidations and
// keep-warm, and waits for it to return. Fetches it started finish (or
// time out) inside the cache; close the cache after the handler. Close is
// idempotent; requests served after it no longer revalidate in the
// background.
func (h *Handler) Close() error {
	h.stopBG()
	h.background.Wait()
	return nil
}

// goBackground runs f in the background under the handler's context,
// unless the handler is closed. It reports whether f was started.
func (h *Handler) goBackground(f func(ctx context.Context)) bool {
	if h.bg.Err() != nil {
		return false
	}
	h.background.Add(1)
	go func() {
		defer h.background.Done()
		f(h.bg)
	}()
	return true
}

// ServeHTTP answers GET and HEAD for objects, and /healthz. It reads as
// the request path: admit, route, look up (and fill), serve.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.accessLog != nil {
		rec := newRecorder(w)
		start := time.Now()
		w = rec
		defer func() { h.logAccess(r, rec, time.Since(start)) }()
	}
	if !h.admit(w, r) {
		return
	}
	if r.URL.Path == "/healthz" {
		h.health(w, r)
		return
	}
	s, p, ok := h.resolve(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.other(w, r, s, p)
		return
	}
	wt := wantFor(r, s, p)
	obj, res, err := h.lookup(wt)
	if err != nil {
		h.fillFailed(w, wt, err)
		return
	}
	h.serve(w, wt, obj, res)
}

// admit refuses requests the edge never serves: CONNECT and TRACE (an
// edge is no tunnel, and TRACE would echo to a page's script the fields
// the edge and the browser add), the server-wide "OPTIONS *", request
// targets and header blocks that are too long. It reports whether r may go
// on; when not, the answer is sent. Other methods than GET and HEAD are
// for the site to take or refuse (other).
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		w.Header()["Allow"] = allowGetHead
		h.reject(w, http.StatusMethodNotAllowed)
		return false
	}
	if r.RequestURI == "*" {
		w.Header()["Allow"] = allowGetHead
		h.reject(w, http.StatusMethodNotAllowed)
		return false
	}
	if len(r.RequestURI) > maxURILen {
		h.reject(w, http.StatusRequestURITooLong)
		return false
	}
	if headerBlockOver(r, maxHeaderBlock) {
		h.reject(w, http.StatusRequestHeaderFieldsTooLarge)
		return false
	}
	return true
}

// headerBlockOver reports whether r's header fields, written as HTTP/1.1
// lines ("Name: value\r\n", Host included), take more than limit bytes.
func headerBlockOver(r *http.Request, limit int) bool {
	n := len("Host: \r\n") + len(r.Host)
	for name, values := range r.Header {
		for _, v := range values {
			if n += len(name) + len(": \r\n") + len(v); n > limit {
				return true
			}
		}
	}
	return n > limit
}

// resolve routes r to its site and cleans its path into the object path.
// When it cannot (no site for the Host, a hostile or too long path), it
// answers and reports false.
func (h *Handler) resolve(w http.ResponseWriter, r *http.Request) (*site, string, bool) {
	s := h.route(r.Host)
	if s == nil {
		h.reject(w, http.StatusMisdirectedRequest)
		return nil, "", false
	}
	p, ok := s.requestPath(r.URL)
	if !ok {
		h.reject(w, http.StatusBadRequest)
		return nil, "", false
	}
	if len(p) > maxKeyLen {
		h.reject(w, http.StatusRequestURITooLong)
		return nil, "", false
	}
	return s, p, true
}

var allowGetHead = []string{"GET, HEAD"}

// other answers the methods but GET and HEAD: a CORS preflight where the
// path's policy has CORS; else, for an HTTP origin, the request passed
// through uncached (POST, PUT, DELETE, PATCH, OPTIONS, and extension
// methods such as PROPFIND, as nginx and Varnish pass them); else 405.
func (h *Handler) other(w http.ResponseWriter, r *http.Request, s *site, p string) {
	if pol := s.policy(p); r.Method == http.MethodOptions && pol.cors != nil && isPreflight(r) {
		h.metrics.preflights.Inc()
		pol.preflight(w, r)
		return
	}
	if s.pass != nil {
		h.metrics.passed.Inc()
		s.pass.ServeHTTP(w, r)
		return
	}
	w.Header()["Allow"] = allowGetHead
	h.reject(w, http.StatusMethodNotAllowed)
}

// reject answers a request refused before the cache.
func (h *Handler) reject(w http.ResponseWriter, status int) {
	h.metrics.rejected.WithLabelValues(strconv.Itoa(status)).Inc()
	http.Error(w, http.StatusText(status), status)
}
