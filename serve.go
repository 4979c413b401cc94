package edge

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
	"github.com/edgecdn/edge/origin"
)

var (
	varyAcceptEncoding = []string{"Accept-Encoding"}
	acceptRangesBytes  = []string{"bytes"}
)

// serve answers the request wt from obj: negotiate the coding, open the
// body in it, write the headers, then the body.
func (h *Handler) serve(w http.ResponseWriter, wt *want, obj *cache.Object, res result) {
	r, s, p := wt.r, wt.s, wt.p
	if obj.Meta.Negative() {
		h.serveNegative(w, r, s, p, obj, res)
		return
	}
	dropInvalidRange(r.Header)
	obj, body, res, err := h.open(wt, obj, res)
	if err != nil {
		h.openFailed(w, wt, obj, err)
		return
	}
	defer body.Close()
	coding, _ := negotiate.ParseContentEncoding(body.Coding) // identity for codings the edge does not know, in metrics
	h.writeHeaders(w, s, p, obj, body, coding, res)
	if wt.setCookie != nil {
		// The origin's cookie for the client whose request fetched it:
		// never stored, never given to another.
		w.Header()["Set-Cookie"] = wt.setCookie
	}
	s.policy(p).apply(w.Header(), r) // CORS and the configured headers, added at serve time
	h.writeBody(w, r, obj, body, coding)
}

// offered returns the codings obj can be served in, and whether the
// response varies by Accept-Encoding.
func offered(obj *cache.Object) (set negotiate.Set, vary bool) {
	stored, known := negotiate.ParseContentEncoding(obj.Meta.Coding)
	switch {
	case !known:
		// A coding the edge cannot decode: as stored, to the clients that
		// accept it.
		return 0, true
	case obj.Undecodable() != "":
		set = negotiate.SetOf(stored)
	case obj.Meta.Compressible:
		set = negotiate.All
	default:
		set = negotiate.SetOf(stored, negotiate.Identity)
	}
	return set, set != negotiate.SetOf(negotiate.Identity)
}

// open picks the coding for r and opens obj's body in it. A stored body
// that has gone from the cache is fetched again, once (the fill is
// coalesced); an object that cannot be had in the chosen coding is sent
// as stored to a client that accepts the stored coding. It returns the
// object it opened, which the refetch may have replaced.
func (h *Handler) open(wt *want, obj *cache.Object, res result) (*cache.Object, cache.Body, result, error) {
	r := wt.r
	body, err := h.openChosen(r, obj)
	if errors.Is(err, cache.ErrNotCached) {
		// Evicted, or its file was corrupt (the cache logged it).
		var refetched *cache.Object
		if refetched, res, err = h.fill(wt, nil, obj); err != nil {
			return obj, cache.Body{}, res, err
		}
		obj = refetched
		body, err = h.openChosen(r, obj)
	}
	if errors.Is(err, cache.ErrNoVariant) && (negotiate.Accepts(r.Header["Accept-Encoding"], obj.Meta.Coding) || opaqueCoding(wt.s, obj)) {
		body, err = h.cache.OpenStored(obj)
	}
	return obj, body, res, err
}

// opaqueCoding reports whether obj is an HTTP origin's response in a
// coding the edge does not know, which is passed on as it came, to every
// client, as a proxy passes it: the origin chose the coding (the edge's
// request named only those it knows), and the edge cannot undo it. From
// S3 such an object is a broken upload: only the clients that accept its
// coding get it.
func opaqueCoding(s *site, obj *cache.Object) bool {
	_, known := negotiate.ParseContentEncoding(obj.Meta.Coding)
	return s.speaksHTTP && !known
}

// openChosen opens obj's body in the coding negotiated for r.
func (h *Handler) openChosen(r *http.Request, obj *cache.Object) (cache.Body, error) {
	set, _ := offered(obj)
	if set == 0 {
		return cache.Body{}, cache.ErrNoVariant
	}
	coding := negotiate.Identity
	if _, ranged := r.Header["Range"]; !ranged {
		coding = negotiate.Choose(r.Header["Accept-Encoding"], set)
	}
	// Ranges address the plain bytes; a compressed variant's offsets
	// would mean nothing to the client.
	return h.cache.Open(obj, coding)
}

// writeHeaders sets the response headers of an object response.
func (h *Handler) writeHeaders(w http.ResponseWriter, s *site, p string, obj *cache.Object, body cache.Body, coding negotiate.Coding, res result) {
	hdr := w.Header()
	now := h.now()
	h.metrics.requests[res][coding].Inc()
	for name, vs := range obj.Meta.Header {
		// An HTTP origin's fields, as stored; the edge's own come after
		// and win.
		hdr[name] = vs
	}
	hdr["Cache-Status"] = []string{cacheStatus(res, s.window(p, &obj.Meta), now)}
	hdr["Content-Type"] = []string{obj.Meta.ContentType}
	if tok := contentEncoding(body.Coding); tok != "" {
		hdr["Content-Encoding"] = []string{tok}
		if body.Size >= 0 {
			// ServeContent leaves Content-Length out when Content-Encoding
			// is set (for handlers that compress on the fly). Our variants
			// are stored whole, so their length is known; 304s and errors
			// drop this header again.
			hdr["Content-Length"] = []string{strconv.FormatInt(body.Size, 10)}
		}
	}
	switch _, vary := offered(obj); {
	case len(obj.Meta.Vary) > 0:
		// The fields the origin's responses vary on, with ours.
		v := strings.Join(obj.Meta.Vary, ", ")
		if vary {
			v = "Accept-Encoding, " + v
		}
		hdr["Vary"] = []string{v}
	case vary:
		hdr["Vary"] = varyAcceptEncoding
	}
	if body.ETag != "" {
		hdr["Etag"] = []string{body.ETag}
	}
	if rule := s.rule(p); rule != nil && rule.CacheControl != "" {
		hdr["Cache-Control"] = []string{rule.CacheControl}
	} else if obj.Meta.CacheControl != "" {
		hdr["Cache-Control"] = []string{obj.Meta.CacheControl}
	}
	hdr["Age"] = []string{strconv.FormatInt(ageSeconds(&obj.Meta, now), 10)}
	if lm := obj.Meta.LastModified; !lm.IsZero() && !lm.Equal(time.Unix(0, 0)) {
		hdr["Last-Modified"] = []string{lm.UTC().Format(http.TimeFormat)}
	}
}

// ageSeconds is how old a stored response is at now (RFC 9111 §4.2.3):
// the age it came with, plus how long it has been stored. Whole seconds.
func ageSeconds(m *cache.Meta, now time.Time) int64 {
	age := max(0, now.Sub(m.Fetched))
	if m.Origin != nil {
		age += m.Origin.InitialAge
	}
	return int64(age / time.Second)
}

// contentEncoding is the Content-Encoding value for a body in coding:
// none for identity.
func contentEncoding(coding string) string {
	if coding == "" || coding == "identity" {
		return ""
	}
	return coding
}

// writeBody writes body: at once for a plain GET, through
// http.ServeContent for conditional and Range requests.
func (h *Handler) writeBody(w http.ResponseWriter, r *http.Request, obj *cache.Object, body cache.Body, coding negotiate.Coding) {
	status := obj.Meta.Status
	if status != http.StatusOK {
		// Another status with a body (an HTTP origin's 404 page, a 301):
		// conditions and ranges apply to 200s only (RFC 9110 §13.2.1).
		if body.Size >= 0 {
			w.Header()["Content-Length"] = []string{strconv.FormatInt(body.Size, 10)}
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified {
			if _, err := body.WriteTo(w); err != nil {
				panic(http.ErrAbortHandler)
			}
		}
		return
	}
	if !unconditional(r.Header) {
		modtime := obj.Meta.LastModified
		if _, kept := w.Header()["Last-Modified"]; !kept {
			modtime = time.Time{} // a rule took it off (remove_headers)
		}
		http.ServeContent(w, r, "", modtime, body.ReadSeeker())
		return
	}
	// Nothing for ServeContent to decide: a 200 with the whole body,
	// written at once (large bodies with sendfile from disk) instead of
	// through ServeContent's 32 KiB copy loop.
	hdr := w.Header()
	if body.Size >= 0 {
		hdr["Content-Length"] = []string{strconv.FormatInt(body.Size, 10)}
	} // else still arriving from the origin, length unknown: chunked
	hdr["Accept-Ranges"] = acceptRangesBytes
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	n, err := body.WriteTo(w)
	h.metrics.bodyBytes[coding].Add(float64(n))
	if err != nil {
		// The client went away, or the body broke under us (a large
		// transfer from the origin cut off). Either way the response must
		// end as broken, never as a short one that looks complete (as a
		// chunked one would).
		panic(http.ErrAbortHandler)
	}
}

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

// serveNegative answers from a negative entry: a cached 404 (or 403, sent
// as 404: the origin's reasons are not the client's business).
func (h *Handler) serveNegative(w http.ResponseWriter, r *http.Request, s *site, p string, obj *cache.Object, res result) {
	now := h.now()
	hdr := w.Header()
	win := s.window(p, &obj.Meta)
	hdr["Cache-Status"] = []string{cacheStatus(res, win, now)}
	h.metrics.notFound.Inc()
	hdr["Cache-Control"] = []string{"max-age=" + strconv.FormatInt(max(0, win.ttl(now)), 10)}
	s.policy(p).apply(hdr, r) // so a page's script can read the 404
	http.Error(w, http.StatusText(http.StatusNotFound), http.StatusNotFound)
}

// cacheStatus renders the Cache-Status field (RFC 9211) for a response.
func cacheStatus(res result, win window, now time.Time) string {
	ttl := strconv.FormatInt(win.ttl(now), 10)
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

// fillFailed answers a request that has no usable copy and whose origin
// fetch failed: 429 when the client is over its miss limit, 504 when the
// origin timed out, else 502. The error is logged with the site, key and
// origin; the client learns nothing of the inside.
func (h *Handler) fillFailed(w http.ResponseWriter, wt *want, err error) {
	r, s, p := wt.r, wt.s, wt.p
	if errors.Is(err, errTooManyMisses) {
		w.Header().Set("Retry-After", "1")
		h.reject(w, http.StatusTooManyRequests)
		return
	}
	if errors.Is(err, errOnlyIfCached) {
		h.failed(w, http.StatusGatewayTimeout, "only-if-cached")
		return
	}
	var se *origin.StatusError
	if errors.As(err, &se) && r.Context().Err() == nil && readable(se, r) {
		// An HTTP origin's own error answer, and nothing cached to stand
		// in for it: the client gets the origin's status and page (as
		// nginx and Varnish pass it), not a bare 502.
		h.errorLog.Error("origin failed: no usable copy to serve", h.failure(s, p, err)...)
		for name, vs := range se.Header {
			// All of the origin's fields (they are this client's answer,
			// Set-Cookie too), but those addressed to the edge and the
			// length, which the edge writes for the body it has.
			if !slices.Contains(forTheEdge, name) && name != "Content-Length" {
				w.Header()[name] = vs
			}
		}
		if wt.setCookie != nil {
			w.Header()["Set-Cookie"] = wt.setCookie // only for the request that fetched it
		}
		s.policy(p).apply(w.Header(), r)
		h.metrics.requests[resultError][negotiate.Identity].Inc()
		w.Header()["Cache-Status"] = []string{"edge; fwd=miss; detail=origin-error"}
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(se.Body))}
		w.WriteHeader(se.Status)
		if r.Method != http.MethodHead {
			w.Write(se.Body)
		}
		return
	}
	if r.Context().Err() == nil {
		h.errorLog.Error("origin failed: no usable copy to serve", h.failure(s, p, err)...)
	}
	status := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		status = http.StatusGatewayTimeout
	}
	s.policy(p).apply(w.Header(), r) // so a page's script can read the 502
	h.failed(w, status, "origin-error")
}

// readable reports whether the client of r can read the body of an
// origin's error answer: in identity (its start, when it is long), or
// whole in a coding the client accepts (the edge asked the origin for
// gzip, which a cut would break).
func readable(se *origin.StatusError, r *http.Request) bool {
	coding := se.Header.Get("Content-Encoding")
	return coding == "" || (se.Whole && negotiate.Accepts(r.Header["Accept-Encoding"], coding))
}

// openFailed answers a request whose object is cached but cannot be sent
// in any coding the client accepts (stored in one it refuses, and not
// transcodable), or whose body could not be opened: 502. It is logged.
func (h *Handler) openFailed(w http.ResponseWriter, wt *want, obj *cache.Object, err error) {
	r, s, p := wt.r, wt.s, wt.p
	if errors.Is(err, cache.ErrNoVariant) {
		h.errorLog.Warn("cannot serve the object in a coding the client accepts",
			"site", s.CacheNamespace, "path", p, "key", s.key(p), "stored_coding", obj.Meta.Coding,
			"accept_encoding", r.Header.Get("Accept-Encoding"), "err", err)
		w.Header()["Vary"] = varyAcceptEncoding // another Accept-Encoding gets a 200
		s.policy(p).apply(w.Header(), r)
		h.failed(w, http.StatusBadGateway, "no-acceptable-coding")
		return
	}
	h.fillFailed(w, wt, err)
}

// failed sends an error status for an object request, never cached.
func (h *Handler) failed(w http.ResponseWriter, status int, detail string) {
	h.metrics.requests[resultError][negotiate.Identity].Inc()
	w.Header()["Cache-Status"] = []string{"edge; fwd=miss; detail=" + detail}
	w.Header()["Cache-Control"] = []string{"no-store"}
	http.Error(w, http.StatusText(status), status)
}
