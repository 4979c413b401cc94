package edge

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
	"github.com/edgecdn/edge/origin"
)

// errTooManyMisses: the client already has its share of requests
// waiting on the origin.
var errTooManyMisses = errors.New("edge: too many concurrent misses from one client")

// varySeparator joins a URL's key and a request's values of the fields
// its responses vary on. NUL never occurs in a path (cleanPath refuses
// it).
const varySeparator = "\x00vary\x00"

// want is what a lookup and a fill know of the request that wants an
// object.
type want struct {
	r    *http.Request // nil for the edge's own work (revalidation, keep-warm, warm)
	s    *site
	p    string     // object path, with the query when the site keeps it
	key  string     // where this request's response is: the URL's key, or its Vary key
	dirs directives // the request's Cache-Control, where the site honours it
	// alone: fetch for this request only, never shared (it carries
	// credentials, or asked not to store).
	alone bool
	// auth: the request carries Authorization, so a stored response
	// answers it only if the response said it may (mayReuse).
	auth bool
	// setCookie is the origin's Set-Cookie, for the client whose request
	// made the fetch only: never stored, never given to another.
	setCookie []string
	// varied are, for the edge's own revalidation of a response that
	// varies (r nil), the triggering request's values of the fields it
	// varies on: what the origin is asked with, and the key it is kept
	// under.
	varied http.Header
}

// wantFor is what the request r wants of site s at path p. For an HTTP
// origin the request's own Cache-Control and Pragma are honoured (RFC
// 9111 §5.2.1, §5.4); for S3 and directories they are not: no client may
// make the edge ask S3 again.
func wantFor(r *http.Request, s *site, p string) *want {
	w := &want{r: r, s: s, p: p, key: s.key(p)}
	if r == nil || !s.speaksHTTP {
		return w
	}
	if cc := r.Header.Values("Cache-Control"); len(cc) > 0 {
		w.dirs = parseCacheControl(cc...)
	} else if strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Pragma"), ",")), "no-cache") {
		w.dirs.requestNoCache = true
	}
	_, w.auth = r.Header["Authorization"]
	w.alone = w.auth || w.dirs.noStore
	return w
}

// mayReuse reports whether the stored obj may answer w's request at all,
// fresh or after revalidation: not when the request asked for no-store;
// with Authorization, only a response that says it may be shared (RFC
// 9111 §3.5: public, s-maxage, must-revalidate).
func (w *want) mayReuse(obj *cache.Object) bool {
	switch {
	case w.dirs.noStore:
		return false
	case w.auth:
		hdr := http.Header(obj.Meta.Header)
		cc := edgeDirectives(hdr, parseCacheControl(hdr.Values("Cache-Control")...))
		return cc.public || cc.hasSMaxAge || cc.mustRevalidate
	}
	return true
}

// client is the request's remote address, charged for its misses; ""
// for the edge's own work.
func (w *want) client() string {
	if w.r == nil {
		return ""
	}
	return w.r.RemoteAddr
}

// header is the request header, or none for the edge's own work.
func (w *want) header() http.Header {
	if w.r == nil {
		return w.varied
	}
	return w.r.Header
}

// lookup finds the object for r: a fresh copy at once; an expired one at
// once too while one background request revalidates it, or while every
// origin is known down; else one fill from the origin. A URL whose
// responses vary (Vary) is looked up again under the key made of the
// request's values of the fields they vary on.
func (h *Handler) lookup(w *want) (*cache.Object, result, error) {
	obj := h.cache.Lookup(w.key)
	if obj != nil && obj.Meta.IsIndex() {
		w.key = varyKey(w.key, obj.Meta.Vary, w.header())
		obj = h.cache.Lookup(w.key)
	}
	if obj == nil || !w.mayReuse(obj) {
		if w.dirs.onlyIfCached && obj == nil {
			return nil, resultError, errOnlyIfCached
		}
		return h.fill(w, obj, nil)
	}
	now := h.now()
	if obj.SoftPurged() {
		return h.revalidatePurged(w, obj, now) // admin_purge.go
	}
	win := w.s.window(w.p, &obj.Meta)
	switch {
	case w.satisfied(win, obj, now):
		return obj, resultHit, nil
	case w.dirs.onlyIfCached:
		return nil, resultError, errOnlyIfCached
	case win.revalidating(now) && !w.dirs.requestNoCache:
		h.revalidate(w, obj)
		return obj, resultRevalidating, nil
	case win.usable(now) && w.s.allDown():
		// Every origin is known down: do not make the client wait for a
		// timeout to learn what we already know.
		return obj, resultStale, nil
	}
	return h.fill(w, obj, nil)
}

// errOnlyIfCached answers only-if-cached when nothing stored will do
// (RFC 9111 §5.2.1.7): 504.
var errOnlyIfCached = errors.New("edge: only-if-cached and no usable stored response")

// satisfied reports whether the stored obj may be given to the request
// without asking the origin: fresh, within what the request's own
// Cache-Control allows (max-age, min-fresh, max-stale, no-cache).
func (w *want) satisfied(win window, obj *cache.Object, now time.Time) bool {
	d := &w.dirs
	if d.requestNoCache || d.noCache0 {
		return false
	}
	if d.hasMaxAge && time.Duration(ageSeconds(&obj.Meta, now))*time.Second > d.maxAge { // the Age the client would see
		return false
	}
	at := now
	if d.hasMinFresh {
		at = now.Add(d.minFresh)
	}
	if win.fresh(at) {
		return true
	}
	if win.noStale {
		return false
	}
	return d.anyStale || (d.hasMaxStale && win.fresh(now.Add(-d.maxStale)))
}

// varyKey is the key of the response for a request with header h to a URL
// (key) whose responses vary on fields.
func varyKey(key string, fields []string, h http.Header) string {
	return key + varySeparator + secondaryKey(fields, h)
}

// fill gets a fresh copy of the object w wants from the origin,
// coalesced with every concurrent request for it (but requests that must
// fetch alone). stale is the copy the cache holds, if any: it makes the
// fetch conditional, and is served when the origin fails (the failure is
// logged). broken, when set, is a cached version whose body has gone: it
// is fetched again however fresh it looks.
//
// The client is charged against the miss limiter only when its request
// starts a fetch: requests that join a fetch in flight cost the origin
// nothing.
func (h *Handler) fill(w *want, stale, broken *cache.Object) (*cache.Object, result, error) {
	ctx := context.Background()
	if w.r != nil {
		ctx = w.r.Context()
	}
	return h.fillCtx(ctx, w, stale, broken)
}

// fillCtx is fill under ctx (the background work's).
func (h *Handler) fillCtx(ctx context.Context, w *want, stale, broken *cache.Object) (*cache.Object, result, error) {
	s, p := w.s, w.p
	led := false
	fetch := func(ctx context.Context) (*cache.Response, error) {
		led = true
		if c := w.client(); c != "" {
			release, ok := h.misses.acquire(c)
			if !ok {
				return nil, errTooManyMisses
			}
			defer release()
		}
		return h.fetch(ctx, w, stale, broken)
	}
	var obj *cache.Object
	var err error
	if w.alone {
		obj, err = h.cache.FillAlone(ctx, w.key, h.fetchTimeout, fetch)
	} else {
		obj, _, err = h.cache.Fill(ctx, w.key, h.fetchTimeout, fetch)
		switch {
		case errors.Is(err, errTooManyMisses) && !led:
			// The fetch we joined was refused for its leader's client,
			// not ours: lead one of our own.
			obj, _, err = h.cache.Fill(ctx, w.key, h.fetchTimeout, fetch)
		case err == nil && !led && s.speaksHTTP && obj.Meta.Transient:
			// The answer we joined is its requester's only (the origin
			// forbade storing it: no-store, private): ask for our own.
			obj, err = h.cache.FillAlone(ctx, w.key, h.fetchTimeout, fetch)
		case err == nil && !led && len(obj.Meta.Vary) > 0 && obj.Key != varyKey(s.key(p), obj.Meta.Vary, w.header()):
			// The answer we joined varies on fields our request has other
			// values of: fill ours, with whoever shares them.
			w.key = varyKey(s.key(p), obj.Meta.Vary, w.header())
			obj, _, err = h.cache.Fill(ctx, w.key, h.fetchTimeout, fetch)
		}
	}
	switch {
	case err != nil && stale != nil && s.window(p, &stale.Meta).usable(h.now()) && ctx.Err() == nil && !errors.Is(err, errTooManyMisses):
		h.errorLog.Warn("origin failed: the cached copy is served meanwhile (stale-if-error)", h.failure(s, p, err)...)
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

// failure is the attributes of a failure's log record: the site's
// namespace, the object path and key, the origin and the error.
func (h *Handler) failure(s *site, p string, err error) []any {
	return []any{"site", s.CacheNamespace, "path", p, "key", s.key(p), "origin", s.Origin.String(), "err", err}
}

// revalidate refreshes stale in the background, at most once at a time
// per key however many requests see it stale; a response that varies is
// asked for with trigger's values of the fields it varies on.
func (h *Handler) revalidate(trigger *want, stale *cache.Object) {
	s, p, key := trigger.s, trigger.p, stale.Key
	if _, busy := h.revalidating.LoadOrStore(key, struct{}{}); busy {
		return
	}
	var varied http.Header
	if rh := trigger.header(); len(stale.Meta.Vary) > 0 && rh != nil {
		varied = make(http.Header, len(stale.Meta.Vary))
		for _, f := range stale.Meta.Vary {
			if vs, ok := rh[f]; ok {
				varied[f] = slices.Clone(vs)
			}
		}
	}
	started := h.goBackground(func(ctx context.Context) {
		defer h.revalidating.Delete(key)
		w := wantFor(nil, s, p)
		w.key, w.varied = key, varied
		// An origin failure with the copy still usable is logged by fill.
		if _, _, err := h.fillCtx(ctx, w, stale, nil); err != nil && ctx.Err() == nil {
			h.errorLog.Warn("background revalidation failed", h.failure(s, p, err)...)
		}
	})
	if !started {
		h.revalidating.Delete(key)
	}
}

// fetch asks the origin for the object w wants and says what the cache
// should store. It runs once per key at a time (see fill).
func (h *Handler) fetch(ctx context.Context, w *want, stale, broken *cache.Object) (*cache.Response, error) {
	s, p := w.s, w.p
	now := h.now()
	// A fill that finished just before this one began has the answer
	// (groupcache's Group.load makes the same check).
	if !w.alone && !w.dirs.requestNoCache {
		if cur := h.cache.Lookup(w.key); cur != nil && !cur.Meta.IsIndex() && s.window(p, &cur.Meta).fresh(now) && !cur.SoftPurged() && (broken == nil || cur.Meta.Version != broken.Meta.Version) {
			return &cache.Response{Current: cur}, nil
		}
	}
	var cond origin.Conditions
	if stale != nil && !stale.Meta.Negative() {
		cond.IfNoneMatch = stale.Meta.ETag
		if cond.IfNoneMatch == "" && !stale.Meta.LastModified.IsZero() && s.speaksHTTP {
			cond.IfModifiedSince = stale.Meta.LastModified
		}
	}
	switch {
	case !s.speaksHTTP:
	case w.r != nil:
		cond.Header = forwardHeader(w.r)
	case w.varied != nil:
		cond.Header = w.varied.Clone()
	}
	start := time.Now()
	o, err := s.Origin.Get(ctx, p, cond)
	responseTime := time.Now()
	h.metrics.originSecs.WithLabelValues(s.CacheNamespace).Observe(responseTime.Sub(start).Seconds())
	switch {
	case err == nil:
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "ok").Inc()
	case errors.Is(err, origin.ErrNotModified) && stale != nil:
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "not_modified").Inc()
		return h.confirmed(w, stale, err, now, start, responseTime), nil
	case errors.Is(err, origin.ErrNotFound):
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "not_found").Inc()
		// A misconfigured replica or prefix answers 404: it may not wipe
		// a good copy. A usable copy keeps being served (stale-if-error);
		// objects are removed on purpose by purging them.
		if stale != nil && stale.Meta.Status == http.StatusOK && s.window(p, &stale.Meta).usable(now) {
			return nil, err
		}
		return &cache.Response{Meta: cache.Meta{Status: http.StatusNotFound, Fetched: now, Origin: &cache.OriginFreshness{}}}, nil
	case errors.Is(err, origin.ErrForbidden):
		// S3 answers 403 to everything when the credentials are wrong,
		// expired or lack s3:GetObject: a failure of the origin, like a
		// 5xx (a stale copy is served, else a 502), never a cached 404.
		// (Without s3:ListBucket S3 also answers 403 for missing keys:
		// grant it, so that 404 means 404.)
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "forbidden").Inc()
		return nil, err
	default:
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "error").Inc()
		var se *origin.StatusError
		if errors.As(err, &se) {
			// Its Set-Cookie is for the client whose request fetched it
			// alone: the error goes to every request joined to the fill.
			w.setCookie = se.Header.Values("Set-Cookie")
			se.Header.Del("Set-Cookie")
		}
		if se == nil || (stale != nil && s.window(p, &stale.Meta).usable(now)) || !freshFor(se, responseTime) {
			return nil, err
		}
		// An HTTP origin's 5xx that says how long it holds (a
		// maintenance page with max-age): nothing cached can stand in
		// for it, so it is stored as the origin says (RFC 9111 §3), and
		// the origin is not asked again by every client meanwhile.
		h.errorLog.Warn("origin failed with a lifetime: its answer is stored", h.failure(s, p, err)...)
		o = se.Object()
	}
	return h.newVersion(w, o, now, start, responseTime), nil
}

// newVersion is the cache's Response for a new answer o of the origin:
// its metadata, where it is stored (Vary), and whether it may be.
func (h *Handler) newVersion(w *want, o *origin.Object, now, requestTime, responseTime time.Time) *cache.Response {
	s, p := w.s, w.p
	status := o.Status
	if status == 0 {
		status = http.StatusOK
	}
	hdr := http.Header(o.Header)
	if hdr == nil {
		// S3 and directories: the few fields they have, as an HTTP
		// origin would send them.
		hdr = http.Header{}
		if o.CacheControl != "" {
			hdr.Set("Cache-Control", o.CacheControl)
		}
	}
	cc := parseCacheControl(hdr.Values("Cache-Control")...)
	ec := edgeDirectives(hdr, cc)
	ct := negotiate.ContentType(o.ContentType, p)
	meta := cache.Meta{
		Status:       status,
		ContentType:  ct,
		Coding:       strings.ToLower(strings.TrimSpace(o.ContentEncoding)),
		ETag:         o.ETag,
		LastModified: o.LastModified,
		CacheControl: o.CacheControl,
		Size:         o.Size,
		Fetched:      now,
		Origin:       originFreshnessOf(s.speaksHTTP, status, hdr, ec, requestTime, responseTime),
		Tags:         o.SurrogateKeys,
	}
	if tags := strings.Fields(strings.Join(hdr.Values("Surrogate-Key"), " ")); len(tags) > 0 {
		meta.Tags = tags
	}
	if stored, known := negotiate.ParseContentEncoding(o.ContentEncoding); known {
		// The cache names variants by coding: "identity", "gzip", ...
		meta.Coding = stored.Token()
		meta.Compressible = status == http.StatusOK && negotiate.Compressible(ct, o.CacheControl, o.Size) && !cc.noTransform
	}
	resp := &cache.Response{Meta: meta, Body: o.Body}
	if !s.speaksHTTP {
		resp.NoStore = ec.noStore || ec.private
		return resp
	}
	// An HTTP origin: RFC 9111 decides whether, and under which key.
	reqHdr := w.header()
	resp.NoStore = !storable(status, hdr, ec, reqHdr) || w.dirs.noStore
	resp.Meta.Header = storedFields(hdr, cc)
	if _, dated := hdr["Date"]; !dated {
		// RFC 9110 §6.6.1: a cache records when an undated response
		// arrived, and gives that as its Date.
		if resp.Meta.Header == nil {
			resp.Meta.Header = http.Header{}
		}
		resp.Meta.Header["Date"] = []string{responseTime.UTC().Format(http.TimeFormat)}
	}
	w.setCookie = hdr.Values("Set-Cookie")
	if vary := varyFields(hdr); len(vary) > 0 {
		primary := s.key(p)
		resp.Meta.Vary = vary
		resp.Key, resp.Index = varyKey(primary, vary, reqHdr), primary
	} else if strings.Contains(w.key, varySeparator) {
		// The origin stopped varying: the response is the URL's again.
		resp.Key = s.key(p)
	}
	return resp
}

// freshFor reports whether an HTTP origin's error answer may be stored:
// whole, and with an explicit lifetime (for the edge) that has not
// already run out.
func freshFor(se *origin.StatusError, responseTime time.Time) bool {
	if !se.Whole {
		return false
	}
	ec := edgeDirectives(se.Header, parseCacheControl(se.Header.Values("Cache-Control")...))
	l, explicit, ok := lifetimeOf(se.Status, se.Header, ec, responseTime)
	return ok && explicit && l > 0
}

// confirmed is the cache's Response for a 304 that confirmed stale: its
// freshness from the origin again, and the header fields the 304 brought
// (RFC 9111 §4.3.4).
func (h *Handler) confirmed(w *want, stale *cache.Object, err error, now, requestTime, responseTime time.Time) *cache.Response {
	meta := stale.Meta
	meta.Fetched = now
	hdr := http.Header(meta.Header)
	var nm *origin.NotModifiedError
	if errors.As(err, &nm) {
		hdr = update304(hdr, nm.Header)
		meta.Header = hdr
	}
	if hdr == nil {
		hdr = http.Header{}
	}
	if meta.CacheControl != "" && hdr.Get("Cache-Control") == "" {
		hdr.Set("Cache-Control", meta.CacheControl)
	}
	if v := hdr.Values("Cache-Control"); len(v) > 0 {
		meta.CacheControl = strings.Join(v, ", ")
	}
	ec := edgeDirectives(hdr, parseCacheControl(hdr.Values("Cache-Control")...))
	meta.Origin = originFreshnessOf(w.s.speaksHTTP, meta.Status, hdr, ec, requestTime, responseTime)
	return &cache.Response{Confirmed: stale, Meta: meta}
}
