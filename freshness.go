package edge

import (
	"net/http"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/edgecdn/edge/cache"
)

// edgeDirectives are the directives the edge itself follows for a
// response: CDN-Cache-Control when the origin sent a valid one (RFC 9213:
// it replaces Cache-Control for CDNs), else Cache-Control, with
// Surrogate-Control's max-age and no-store over it (Edge Architecture 1.0,
// as Fastly and Varnish read it). Browsers get Cache-Control;
// Surrogate-Control is not passed on (forTheEdge).
func edgeDirectives(h http.Header, cc directives) directives {
	if v := h.Values("Cdn-Cache-Control"); len(v) > 0 && validTargeted(v) {
		return parseCacheControl(v...)
	}
	if v := h.Values("Surrogate-Control"); len(v) > 0 {
		sc := parseCacheControl(v...)
		if l, ok := sc.lifetime(); ok {
			cc.sMaxAge, cc.hasSMaxAge = l, true
			cc.noCache, cc.private = false, false
		}
		cc.noStore = cc.noStore || sc.noStore
	}
	return cc
}

// validTargeted reports whether the lines of a targeted cache-control
// field (CDN-Cache-Control) are one the edge follows: a Structured Field
// Dictionary (RFC 8941) with at least one member, whose delta-seconds
// directives are non-negative Integers. RFC 9213 §2.1: a cache ignores
// a targeted field that fails to parse or holds a value of the wrong
// type, and falls back to Cache-Control, rather than guess what a
// malformed field meant.
func validTargeted(lines []string) bool {
	d, err := httpsfv.UnmarshalDictionary(lines)
	if err != nil || len(d.Names()) == 0 {
		return false
	}
	for _, name := range []string{"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"} {
		m, ok := d.Get(name)
		if !ok {
			continue
		}
		item, ok := m.(httpsfv.Item)
		if !ok {
			return false
		}
		if n, ok := item.Value.(int64); !ok || n < 0 {
			return false
		}
	}
	return true
}

// originFreshnessOf is what the origin said about how long its answer
// may be used, from the directives the edge follows (edgeDirectives): a
// lifetime (s-maxage, max-age, no-cache), the stale windows. For an HTTP
// origin also Expires, a heuristic lifetime, the age the response already
// had, and must-revalidate; S3 and directory objects carry none of those
// (their Last-Modified is an upload time, not a hint: the edge's
// configured TTL applies instead).
func originFreshnessOf(speaksHTTP bool, status int, h http.Header, cc directives, requestTime, responseTime time.Time) *cache.OriginFreshness {
	var f cache.OriginFreshness
	lifetime, has := cc.lifetime()
	switch {
	case cc.noCache:
		// Revalidate before every use, never served while revalidating.
		f.TTL, f.HasTTL = 0, true
		f.StaleWhileRevalidate, f.HasStaleWhileRevalidate = 0, true
	case has:
		f.TTL, f.HasTTL = lifetime, true
	}
	if cc.hasSWR && !cc.noCache {
		f.StaleWhileRevalidate, f.HasStaleWhileRevalidate = cc.staleWhileRevalidate, true
	}
	if cc.hasSIE {
		f.StaleIfError, f.HasStaleIfError = cc.staleIfError, true
	}
	if !speaksHTTP {
		return &f
	}
	if !f.HasTTL {
		if l, explicit, ok := lifetimeOf(status, h, cc, responseTime); ok {
			if explicit {
				f.TTL, f.HasTTL = l, true
			} else {
				f.Heuristic, f.HasHeuristic = l, true
			}
		}
	}
	f.InitialAge = initialAge(h, requestTime, responseTime)
	f.NoStale = cc.mustRevalidate || cc.proxyRevalidate
	return &f
}

// window is when a cached object stops being fresh, and until when it
// may still be served: at once while one request revalidates it
// (stale-while-revalidate), or when the origin fails (stale-if-error).
type window struct {
	expires, revalidateUntil, usableUntil time.Time
	noStale                               bool // the origin forbids serving it stale
}

// fresh reports whether the object is fresh at now.
func (w window) fresh(now time.Time) bool { return now.Before(w.expires) }

// revalidating reports whether, at now, the object is expired but within
// its stale-while-revalidate window.
func (w window) revalidating(now time.Time) bool {
	return !w.fresh(now) && now.Before(w.revalidateUntil)
}

// usable reports whether the object may be served at now when the
// origin fails: fresh, or within its stale-if-error window.
func (w window) usable(now time.Time) bool { return now.Before(w.usableUntil) }

// ttl is the seconds of freshness left at now, negative once expired.
func (w window) ttl(now time.Time) int64 { return int64(w.expires.Sub(now) / time.Second) }

// window decides, when obj is served, how long it is fresh and usable:
// what the origin said (its s-maxage or max-age, 0 for no-cache; its
// stale-while-revalidate and stale-if-error), else the path rule's, else
// the site's, counted from when the origin last gave or confirmed it.
// A negative entry is fresh for the site's negative TTL. Computed at
// serve time from the configuration in force, so a change of it applies
// to what is already cached.
func (s *site) window(p string, m *cache.Meta) window {
	if m.Origin == nil && m.Legacy != nil {
		// A record of an older release: its windows as computed then,
		// until its next revalidation.
		l := m.Legacy
		return window{expires: l.Expires, revalidateUntil: l.Expires.Add(l.StaleWhileRevalidate), usableUntil: l.Expires.Add(l.StaleIfError)}
	}
	if m.Negative() {
		// A negative answer: kept briefly, never served while
		// revalidating, and usable (a 404 instead of a 502) as long as a
		// copy would be.
		expires := m.Fetched.Add(s.NegativeTTL)
		return window{expires: expires, revalidateUntil: expires, usableUntil: expires.Add(s.StaleIfError)}
	}
	ttl, swr, sie := s.TTL, s.StaleWhileRevalidate, s.StaleIfError
	ruleTTL := false
	if r := s.rule(p); r != nil {
		if r.TTL != nil {
			ttl, ruleTTL = time.Duration(*r.TTL), true
		}
		if r.StaleWhileRevalidate != nil {
			swr = time.Duration(*r.StaleWhileRevalidate)
		}
		if r.StaleIfError != nil {
			sie = time.Duration(*r.StaleIfError)
		}
	}
	var age time.Duration
	noStale := false
	if o := m.Origin; o != nil {
		switch {
		case o.HasTTL:
			ttl = o.TTL
		case ruleTTL:
			// The operator's rule for these paths over the origin's hint.
		case o.HasHeuristic:
			ttl = o.Heuristic
		}
		if o.HasStaleWhileRevalidate {
			swr = o.StaleWhileRevalidate
		}
		if o.HasStaleIfError {
			sie = o.StaleIfError
		}
		age, noStale = o.InitialAge, o.NoStale
	}
	if noStale {
		swr, sie = 0, 0
	}
	// Fresh while the response's age (its age on arrival plus the time
	// stored) is under its lifetime (RFC 9111 §4.2).
	expires := m.Fetched.Add(ttl - age)
	return window{expires: expires, revalidateUntil: expires.Add(swr), usableUntil: expires.Add(sie), noStale: noStale}
}
