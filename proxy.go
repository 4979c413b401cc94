package edge

import (
	"log/slog"
	"net/http"
	"net/http/httputil"

	"github.com/edgecdn/edge/cache"
)

// proxier is an origin that takes the requests the edge does not cache
// as they are (an HTTP origin): any method but GET and HEAD (and CONNECT
// and TRACE, which the edge refuses).
type proxier interface {
	http.RoundTripper
	Proxies() bool
}

// newPass returns the reverse proxy that passes a site's uncached
// requests to its origin (net/http/httputil: hop-by-hop fields,
// X-Forwarded-*, streaming both ways), or nil when the origin takes none
// (S3, directories). A success (2xx, 3xx) to an unsafe method invalidates
// what it names (RFC 9111 §4.4).
func (h *Handler) newPass(s *site) *httputil.ReverseProxy {
	p, ok := s.Origin.(proxier)
	if !ok || !p.Proxies() {
		return nil
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The origin's RoundTrip puts its own scheme, host and prefix.
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "origin"
			pr.SetXForwarded()
			pr.Out.Header.Add("Via", viaOf(pr.In))
		},
		Transport: p,
		ModifyResponse: func(res *http.Response) error {
			if p, ok := s.requestPath(res.Request.URL); ok {
				// CORS and the configured headers, as on every other
				// response of the path (the outgoing request carries the
				// client's Origin).
				s.policy(p).apply(res.Header, res.Request)
			}
			if res.StatusCode >= 200 && res.StatusCode < 400 && !safeMethods[res.Request.Method] {
				h.invalidate(s, res.Request, res)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				h.errorLog.Error("origin failed: a passed request", "site", s.CacheNamespace, "method", r.Method, "path", r.URL.Path, "origin", s.Origin.String(), "err", err)
			}
			h.failed(w, http.StatusBadGateway, "origin-error")
		},
		ErrorLog: slog.NewLogLogger(h.errorLog.Handler(), slog.LevelWarn),
	}
}

// safeMethods are the methods passed through that change nothing at the
// origin (RFC 9110 §9.2.1, RFC 4918 for PROPFIND): their answers drop
// nothing from the cache, so a stream of them cannot empty it. A method
// whose safety the edge does not know is taken as unsafe (RFC 9111 §4.4).
var safeMethods = map[string]bool{http.MethodOptions: true, "PROPFIND": true, "SEARCH": true, "REPORT": true}

// invalidate drops what a successful unsafe request changed (RFC 9111
// §4.4): its target, and the URIs in Location and Content-Location when
// they are on the same host.
func (h *Handler) invalidate(s *site, out *http.Request, res *http.Response) {
	var paths []string
	if p, ok := s.requestPath(out.URL); ok {
		paths = append(paths, p)
	}
	for _, f := range []string{"Location", "Content-Location"} {
		v := res.Header.Get(f)
		if v == "" {
			continue
		}
		u, err := out.URL.Parse(v) // relative to the request
		if err != nil || (u.Host != "" && u.Host != out.Host && u.Host != out.URL.Host) {
			continue // another site's: not ours to drop
		}
		if p, ok := s.requestPath(u); ok {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		key := s.key(p)
		if obj := h.cache.Lookup(key); obj != nil && obj.Meta.IsIndex() {
			// Its responses by Vary go too, or the next index would find
			// them again.
			if _, err := h.cache.Purge(cache.Purge{Selectors: []cache.Selector{{Prefix: key + varySeparator}}, Hard: true}); err != nil {
				h.errorLog.Warn("invalidation failed", h.failure(s, p, err)...)
			}
		}
		h.cache.Delete(key)
	}
}
