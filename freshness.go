package edge

import (
	"net/http"
	"time"

	"github.com/edgecdn/edge/cache"
)

// originFreshness is what an origin's Cache-Control says about how long
// its answer may be used, as the cache stores it.
func originFreshness(cc directives) *cache.OriginFreshness {
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
	return &f
}

// window is when a cached object stops being fresh, and until when it
// may still be served: at once while one request revalidates it
// (stale-while-revalidate), or when the origin fails (stale-if-error).
type window struct {
	expires, revalidateUntil, usableUntil time.Time
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
	if m.Status != http.StatusOK {
		// A negative answer: kept briefly, never served while
		// revalidating, and usable (a 404 instead of a 502) as long as a
		// copy would be.
		expires := m.Fetched.Add(s.NegativeTTL)
		return window{expires: expires, revalidateUntil: expires, usableUntil: expires.Add(s.StaleIfError)}
	}
	ttl, swr, sie := s.TTL, s.StaleWhileRevalidate, s.StaleIfError
	if r := s.rule(p); r != nil {
		if r.TTL != nil {
			ttl = time.Duration(*r.TTL)
		}
		if r.StaleWhileRevalidate != nil {
			swr = time.Duration(*r.StaleWhileRevalidate)
		}
		if r.StaleIfError != nil {
			sie = time.Duration(*r.StaleIfError)
		}
	}
	if o := m.Origin; o != nil {
		if o.HasTTL {
			ttl = o.TTL
		}
		if o.HasStaleWhileRevalidate {
			swr = o.StaleWhileRevalidate
		}
		if o.HasStaleIfError {
			sie = o.StaleIfError
		}
	}
	expires := m.Fetched.Add(ttl)
	return window{expires: expires, revalidateUntil: expires.Add(swr), usableUntil: expires.Add(sie)}
}
