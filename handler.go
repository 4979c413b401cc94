package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
	"github.com/edgecdn/edge/origin"
	"github.com/prometheus/client_golang/prometheus"
)

// maxURILen bounds the request target; longer ones get 414.
const maxURILen = 8 << 10

// DefaultFetchTimeout bounds one origin fetch, body included.
const DefaultFetchTimeout = 30 * time.Second

// Site is one site the Handler serves.
type Site struct {
	// Hosts the site answers (Host header without port, any case). Empty
	// means the default site, which answers any other host.
	Hosts []string
	// Origin holds the site's objects.
	Origin origin.Origin
	// Index is the object served for paths ending in "/". Empty means
	// DefaultIndex.
	Index string
	// TTL, NegativeTTL, StaleWhileRevalidate, StaleIfError: see
	// SiteConfig. Zero means the defaults.
	TTL, NegativeTTL, StaleWhileRevalidate, StaleIfError time.Duration
	// MustServe: see SiteConfig.
	MustServe []string
	// Rules apply per path; the first matching prefix wins.
	Rules []Rule
}

// site is a Site ready to serve.
type site struct {
	Site
	keyPrefix string      // the primary origin's name: keys of different origins never collide
	allDown   func() bool // every origin of the site is known down (circuits open)
}

// downReporter is an Origin that knows when all of its origins are down
// (origin.Failover).
type downReporter interface{ AllDown() bool }

// rule returns the first rule matching p, or nil.
func (s *site) rule(p string) *Rule {
	for i := range s.Rules {
		if strings.HasPrefix(p, s.Rules[i].Prefix) {
			return &s.Rules[i]
		}
	}
	return nil
}

// Options configure a Handler.
type Options struct {
	Cache *cache.Cache
	Sites []Site
	// AccessLog, when set, gets one structured record per request.
	AccessLog *slog.Logger
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
}

// Handler serves objects to browsers: route the Host to a site, clean
// the path into a cache key, look the object up (memory, disk, else one
// coalesced origin fetch), negotiate the content coding, derive that
// variant once if it is not cached yet, and answer with http.ServeContent
// semantics (conditional requests, Range, HEAD).
type Handler struct {
	hosts        map[string]*site
	def          *site
	cache        *cache.Cache
	metrics      *metrics
	accessLog    *slog.Logger
	fetchTimeout time.Duration
	now          func() time.Time
	draining     chan struct{}
	misses       *missLimiter
	sites        []*site
	components   []Component
	revalidating sync.Map // key → struct{}: background revalidations in flight

	// revalidated, when set (by tests), is called after each background
	// revalidation.
	revalidated func(key string)
}

// NewHandler returns a Handler for opts.
func NewHandler(opts Options) (*Handler, error) {
	h := &Handler{
		hosts:        map[string]*site{},
		cache:        opts.Cache,
		metrics:      newMetrics(opts.Registry, opts.Cache),
		components:   opts.Components,
		accessLog:    opts.AccessLog,
		fetchTimeout: opts.FetchTimeout,
		now:          opts.Now,
		draining:     make(chan struct{}),
		misses:       newMissLimiter(opts.MissConcurrency),
	}
	if h.cache == nil {
		return nil, errors.New("edge: no cache")
	}
	if h.fetchTimeout == 0 {
		h.fetchTimeout = DefaultFetchTimeout
	}
	if h.now == nil {
		h.now = time.Now
	}
	for i, s := range opts.Sites {
		if s.Origin == nil {
			return nil, fmt.Errorf("edge: site %d has no origin", i)
		}
		st := &site{Site: s, keyPrefix: primaryName(s.Origin), allDown: func() bool { return false }}
		if d, ok := s.Origin.(downReporter); ok {
			st.allDown = d.AllDown
		}
		if st.Index == "" {
			st.Index = DefaultIndex
		}
		if st.StaleWhileRevalidate == 0 {
			st.StaleWhileRevalidate = DefaultStaleWhileRevalidate
		}
		if st.StaleIfError == 0 {
			st.StaleIfError = DefaultStaleIfError
		}
		if st.TTL == 0 {
			st.TTL = DefaultTTL
		}
		if st.NegativeTTL == 0 {
			st.NegativeTTL = DefaultNegativeTTL
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
	return h, nil
}

// primaryName names the cache keys of a site's objects: its first
// origin's name, so that adding or removing replica origins keeps the
// cache (the objects are the same), while pointing a site at another
// primary bucket starts a new one.
func primaryName(o origin.Origin) string {
	if r, ok := o.(stateReporter); ok {
		if st := r.States(); len(st) > 0 {
			return st[0].Name
		}
	}
	return o.String()
}

// route picks the site for a Host header value.
func (h *Handler) route(host string) *site {
	if len(h.hosts) == 0 {
		return h.def
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if s, ok := h.hosts[strings.ToLower(host)]; ok {
		return s
	}
	return h.def
}

// ServeHTTP answers GET and HEAD for objects, and /healthz.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.accessLog != nil {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		w = rec
		defer func() { h.logAccess(r, rec, time.Since(start)) }()
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.reject(w, http.StatusMethodNotAllowed)
		return
	}
	if len(r.RequestURI) > maxURILen {
		h.reject(w, http.StatusRequestURITooLong)
		return
	}
	if r.URL.Path == "/healthz" {
		h.health(w, r)
		return
	}
	s := h.route(r.Host)
	if s == nil {
		h.reject(w, http.StatusMisdirectedRequest)
		return
	}
	p, ok := cleanPath(r.URL.Path)
	if !ok {
		h.reject(w, http.StatusBadRequest)
		return
	}
	if p[len(p)-1] == '/' {
		p += s.Index
	}
	if len(p) > maxKeyLen {
		h.reject(w, http.StatusRequestURITooLong)
		return
	}
	key := s.keyPrefix + p

	obj := h.cache.Lookup(key)
	res := resultHit
	now := h.now()
	switch {
	case obj != nil && obj.Meta.Fresh(now):
	case obj != nil && obj.Meta.Revalidating(now):
		// Answer at once; one background request refreshes the copy.
		res = resultRevalidating
		h.revalidate(s, key, p, obj)
	case obj != nil && obj.Meta.Usable(now) && s.allDown():
		// Every origin is known down: do not make the client wait for a
		// timeout to learn what we already know.
		res = resultStale
	default:
		var err error
		obj, res, err = h.fill(r.Context(), r.RemoteAddr, s, key, p, obj)
		if errors.Is(err, errTooManyMisses) {
			w.Header().Set("Retry-After", "1")
			h.reject(w, http.StatusTooManyRequests)
			return
		}
		if err != nil {
			h.originFailed(w, err)
			return
		}
	}
	h.serve(w, r, s, p, obj, res)
}

// errTooManyMisses: the client already has its share of requests
// waiting on the origin.
var errTooManyMisses = errors.New("edge: too many concurrent misses from one client")

// fill gets a fresh copy of key from the origin, coalesced with every
// concurrent request for it. stale is the copy the cache holds, if any: it
// makes the fetch conditional, and is served when the origin fails.
//
// client (the request's RemoteAddr; "" for the edge's own background
// work) is charged against the miss limiter only when its request starts
// a fetch: requests that join a fetch in flight cost the origin nothing.
func (h *Handler) fill(ctx context.Context, client string, s *site, key, p string, stale *cache.Object) (*cache.Object, result, error) {
	led := false
	fetch := func(ctx context.Context) (*cache.Object, error) {
		led = true
		if client != "" {
			release, ok := h.misses.acquire(client)
			if !ok {
				return nil, errTooManyMisses
			}
			defer release()
		}
		return h.fetch(ctx, s, key, p, stale)
	}
	obj, _, err := h.cache.Fill(ctx, key, h.fetchTimeout, fetch)
	if errors.Is(err, errTooManyMisses) && !led {
		// The fetch we joined was refused for its leader's client, not
		// ours: lead one of our own.
		obj, _, err = h.cache.Fill(ctx, key, h.fetchTimeout, fetch)
	}
	switch {
	case err != nil && stale != nil && stale.Meta.Usable(h.now()) && ctx.Err() == nil:
		return stale, resultStale, nil
	case err != nil:
		return nil, resultError, err
	case obj.Meta.Transient:
		return obj, resultPass, nil
	case !led:
		return obj, resultCollapsed, nil
	case stale != nil && obj.Meta.Version == stale.Meta.Version:
		return obj, resultRevalidated, nil
	}
	return obj, resultMiss, nil
}

// revalidate refreshes stale in the background, at most once at a time
// per key however many requests see it stale.
func (h *Handler) revalidate(s *site, key, p string, stale *cache.Object) {
	if _, busy := h.revalidating.LoadOrStore(key, struct{}{}); busy {
		return
	}
	go func() {
		defer h.revalidating.Delete(key)
		_, _, _ = h.fill(context.Background(), "", s, key, p, stale)
		if h.revalidated != nil {
			h.revalidated(key)
		}
	}()
}

// fetch asks the origin for p and caches what it answers. It runs once
// per key at a time (see fill).
func (h *Handler) fetch(ctx context.Context, s *site, key, p string, stale *cache.Object) (*cache.Object, error) {
	now := h.now()
	// A fill that finished just before this one began has the answer
	// (groupcache's Group.load makes the same check).
	if obj := h.cache.Lookup(key); obj != nil && obj.Meta.Fresh(now) {
		return obj, nil
	}
	var cond origin.Conditions
	if stale != nil && stale.Meta.Status == http.StatusOK && stale.Meta.ETag != "" {
		cond.IfNoneMatch = stale.Meta.ETag
	}
	start := time.Now()
	o, err := s.Origin.Get(ctx, p, cond)
	h.metrics.originSecs.WithLabelValues(s.keyPrefix).Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		h.metrics.originReqs.WithLabelValues(s.keyPrefix, "ok").Inc()
	case errors.Is(err, origin.ErrNotModified) && stale != nil:
		h.metrics.originReqs.WithLabelValues(s.keyPrefix, "not_modified").Inc()
		f := h.freshness(s, p, parseCacheControl(stale.Meta.CacheControl))
		return h.cache.Refresh(stale, now, now.Add(f.ttl), f.swr, f.sie)
	case errors.Is(err, origin.ErrNotFound), errors.Is(err, origin.ErrForbidden):
		status, label := http.StatusNotFound, "not_found"
		if errors.Is(err, origin.ErrForbidden) {
			status, label = http.StatusForbidden, "forbidden"
		}
		h.metrics.originReqs.WithLabelValues(s.keyPrefix, label).Inc()
		// S3 answers 403 to everything when credentials break, and a
		// misconfigured replica or prefix answers 404: neither may wipe a
		// good copy. A usable copy keeps being served (stale-if-error);
		// objects are removed on purpose by purging them.
		if stale != nil && stale.Meta.Status == http.StatusOK && stale.Meta.Usable(now) {
			return nil, err
		}
		return h.cache.StoreNegative(key, cache.Meta{Status: status, Fetched: now, Expires: now.Add(s.NegativeTTL), StaleIfError: s.StaleIfError})
	default:
		h.metrics.originReqs.WithLabelValues(s.keyPrefix, "error").Inc()
		return nil, err
	}
	cc := parseCacheControl(o.CacheControl)
	f := h.freshness(s, p, cc)
	ct := negotiate.ContentType(o.ContentType, p)
	stored, known := negotiate.ParseContentEncoding(o.ContentEncoding)
	meta := cache.Meta{
		Status:               http.StatusOK,
		ContentType:          ct,
		Coding:               strings.ToLower(strings.TrimSpace(o.ContentEncoding)),
		ETag:                 o.ETag,
		LastModified:         o.LastModified,
		CacheControl:         o.CacheControl,
		Fetched:              now,
		Expires:              now.Add(f.ttl),
		StaleWhileRevalidate: f.swr,
		StaleIfError:         f.sie,
		Compressible:         known && negotiate.Compressible(ct, o.CacheControl, o.Size) && o.Size <= h.cache.MaxMemoryObject(),
	}
	if known {
		// The cache names variants by coding: "identity", "gzip", ...
		meta.Coding = stored.String()
	}
	if !cc.noStore && o.Size > h.cache.MaxMemoryObject() {
		// Too large for memory: clients get the bytes as they land on
		// disk rather than after the whole transfer.
		obj, err := h.cache.StoreStreaming(key, meta, o.ETag, o.Body, o.Size)
		if err != nil {
			o.Body.Close()
		}
		return obj, err
	}
	defer o.Body.Close()
	if cc.noStore {
		return h.cache.Transient(key, meta, o.ETag, o.Body, o.Size)
	}
	return h.cache.Store(key, meta, o.ETag, o.Body, o.Size)
}

// freshness is an object's lifetime and stale windows at the edge.
type freshness struct{ ttl, swr, sie time.Duration }

// freshness decides p's lifetime: the origin's s-maxage or max-age (0
// for no-cache), else the path rule's ttl, else the site's; the stale
// windows likewise from the origin's stale-while-revalidate and
// stale-if-error, else the rule's, else the site's.
func (h *Handler) freshness(s *site, p string, cc directives) freshness {
	f := freshness{ttl: s.TTL, swr: s.StaleWhileRevalidate, sie: s.StaleIfError}
	if r := s.rule(p); r != nil {
		if r.TTL > 0 {
			f.ttl = time.Duration(r.TTL)
		}
		if r.StaleWhileRevalidate > 0 {
			f.swr = time.Duration(r.StaleWhileRevalidate)
		}
		if r.StaleIfError > 0 {
			f.sie = time.Duration(r.StaleIfError)
		}
	}
	switch {
	case cc.noCache:
		f.ttl, f.swr = 0, 0 // revalidate before every use
	case cc.hasMaxAt:
		f.ttl = cc.maxAge
	}
	if cc.hasSWR && !cc.noCache {
		f.swr = cc.swr
	}
	if cc.hasSIE {
		f.sie = cc.sie
	}
	return f
}

var (
	varyAcceptEncoding = []string{"Accept-Encoding"}
	codingHeader       = [numCodings][]string{nil, {"gzip"}, {"zstd"}, {"br"}}
)

// serve answers r from obj.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, s *site, p string, obj *cache.Object, res result) {
	hdr := w.Header()
	now := h.now()
	if obj.Meta.Status != http.StatusOK {
		hdr["Cache-Status"] = []string{cacheStatus(res, obj, now)}
		h.metrics.notFound.Inc()
		hdr["Cache-Control"] = []string{"max-age=" + strconv.FormatInt(max(0, int64(obj.Meta.Expires.Sub(now)/time.Second)), 10)}
		http.Error(w, http.StatusText(http.StatusNotFound), http.StatusNotFound)
		return
	}

	stored, known := negotiate.ParseContentEncoding(obj.Meta.Coding)
	var offered negotiate.Set
	switch {
	case !known || obj.Meta.Transient:
		// Serve as stored: a coding we cannot decode, or a response we
		// must not store variants of.
	case obj.Meta.Compressible:
		offered = negotiate.All
	default:
		offered = negotiate.SetOf(stored, negotiate.Identity)
	}
	coding := stored
	if offered != 0 {
		if _, ranged := r.Header["Range"]; ranged {
			// Ranges address the plain bytes; a compressed variant's
			// offsets would mean nothing to the client.
			coding = negotiate.Identity
		} else {
			coding = negotiate.Choose(r.Header["Accept-Encoding"], offered)
		}
	}

	v, err := h.variant(obj, known, stored, coding)
	if err != nil {
		// The stored body is gone (evicted, or its file corrupt): fetch it
		// again once.
		h.cache.Delete(obj.Key)
		if obj, res, err = h.fill(r.Context(), r.RemoteAddr, s, obj.Key, p, nil); err != nil {
			h.originFailed(w, err)
			return
		}
		if v, err = h.variant(obj, known, stored, coding); err != nil {
			h.originFailed(w, err)
			return
		}
	}
	h.metrics.requests[res][coding].Inc()
	hdr["Cache-Status"] = []string{cacheStatus(res, obj, now)}
	hdr["Content-Type"] = []string{obj.Meta.ContentType}
	if !known && obj.Meta.Coding != "" {
		hdr["Content-Encoding"] = []string{obj.Meta.Coding}
	} else if coding != negotiate.Identity {
		hdr["Content-Encoding"] = codingHeader[coding]
	}
	if _, set := hdr["Content-Encoding"]; set {
		// ServeContent leaves Content-Length out when Content-Encoding is
		// set (for handlers that compress on the fly). Our variants are
		// stored whole, so their length is known; 304s and errors drop
		// this header again.
		hdr["Content-Length"] = []string{strconv.FormatInt(v.Size, 10)}
	}
	if offered != 0 && offered != negotiate.SetOf(negotiate.Identity) || !known {
		hdr["Vary"] = varyAcceptEncoding
	}
	if v.ETag != "" {
		hdr["Etag"] = []string{v.ETag}
	}
	if rule := s.rule(p); rule != nil && rule.CacheControl != "" {
		hdr["Cache-Control"] = []string{rule.CacheControl}
	} else if obj.Meta.CacheControl != "" {
		hdr["Cache-Control"] = []string{obj.Meta.CacheControl}
	}
	hdr["Age"] = []string{strconv.FormatInt(obj.Meta.Age(now), 10)}

	body, err := h.cache.Open(obj, v)
	if err != nil {
		h.originFailed(w, err)
		return
	}
	defer body.Close()
	if unconditional(r.Header) {
		// Nothing for ServeContent to decide: a 200 with the whole body,
		// written at once (large bodies with sendfile from disk) instead
		// of through ServeContent's 32 KiB copy loop.
		hdr["Content-Length"] = []string{strconv.FormatInt(v.Size, 10)}
		hdr["Accept-Ranges"] = acceptRangesBytes
		if lm := obj.Meta.LastModified; !lm.IsZero() && !lm.Equal(time.Unix(0, 0)) {
			hdr["Last-Modified"] = []string{lm.UTC().Format(http.TimeFormat)}
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			// A failed write means the client went away: nothing to tell it.
			n, _ := body.WriteTo(w)
			h.metrics.bodyBytes[coding].Add(float64(n))
		}
		return
	}
	http.ServeContent(w, r, "", obj.Meta.LastModified, body.ReadSeeker())
}

var acceptRangesBytes = []string{"bytes"}

// unconditional reports whether a request has none of the headers that
// can make a response other than a plain 200: validators, Range, If-Range.
func unconditional(h http.Header) bool {
	for _, k := range [...]string{"If-None-Match", "If-Modified-Since", "Range", "If-Match", "If-Unmodified-Since", "If-Range"} {
		if _, ok := h[k]; ok {
			return false
		}
	}
	return true
}

// variant returns obj's variant in coding, deriving it from the stored
// variant the first time it is asked for. Objects in a coding we cannot
// decode (known false), and transient ones, have only their stored body.
func (h *Handler) variant(obj *cache.Object, known bool, stored, coding negotiate.Coding) (*cache.Variant, error) {
	if !known || obj.Meta.Transient {
		if v := h.cache.Variant(obj, obj.Meta.Coding); v != nil {
			return v, nil
		}
		return nil, fmt.Errorf("edge: stored body of %q is not cached", obj.Key)
	}
	if v := h.cache.Variant(obj, coding.String()); v != nil {
		return v, nil
	}
	from := h.cache.Variant(obj, stored.String())
	if from == nil {
		return nil, fmt.Errorf("edge: stored body of %q is not cached", obj.Key)
	}
	if coding == stored {
		return from, nil
	}
	etag := ""
	if obj.Meta.ETag != "" {
		etag = negotiate.VariantETag(obj.Meta.ETag, stored, coding)
	}
	return h.cache.Derive(obj, from, coding.String(), etag, func(dst io.Writer, src io.Reader) error {
		h.metrics.derivations[coding].Inc()
		return negotiate.Transcode(dst, src, stored, coding)
	})
}

// cacheStatus renders the Cache-Status field (RFC 9211) for a response.
func cacheStatus(res result, obj *cache.Object, now time.Time) string {
	ttl := strconv.FormatInt(int64(obj.Meta.Expires.Sub(now)/time.Second), 10)
	switch res {
	case resultHit:
		return "edge; hit; ttl=" + ttl
	case resultCollapsed:
		return "edge; fwd=miss; collapsed; stored"
	case resultRevalidated:
		return "edge; fwd=stale; fwd-status=304; ttl=" + ttl
	case resultStale:
		return "edge; fwd=stale; ttl=" + ttl + "; detail=stale-if-error"
	case resultRevalidating:
		return "edge; hit; ttl=" + ttl + "; detail=stale-while-revalidate"
	case resultPass:
		return "edge; fwd=miss; detail=no-store"
	}
	return "edge; fwd=miss; stored; ttl=" + ttl
}

// originFailed answers a request that has no usable copy and whose origin
// fetch failed: 504 when it timed out, else 502. The error stays in the
// logs: clients learn nothing of the inside.
func (h *Handler) originFailed(w http.ResponseWriter, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	h.metrics.requests[resultError][negotiate.Identity].Inc()
	w.Header()["Cache-Status"] = []string{"edge; fwd=miss; detail=origin-error"}
	w.Header()["Cache-Control"] = []string{"no-store"}
	http.Error(w, http.StatusText(status), status)
}

// reject answers a request refused before the cache.
func (h *Handler) reject(w http.ResponseWriter, status int) {
	h.metrics.rejected.WithLabelValues(strconv.Itoa(status)).Inc()
	http.Error(w, http.StatusText(status), status)
}

// recorder notes a response's status and size for the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (h *Handler) logAccess(r *http.Request, rec *recorder, d time.Duration) {
	h.accessLog.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("uri", r.RequestURI),
		slog.String("proto", r.Proto),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.String("encoding", rec.Header().Get("Content-Encoding")),
		slog.String("cache", rec.Header().Get("Cache-Status")),
		slog.Duration("duration", d),
		slog.String("user_agent", r.UserAgent()),
	)
}
