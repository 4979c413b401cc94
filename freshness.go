package edge

import (
	"strconv"
	"strings"
	"time"
)

// directives are the parts of an origin's Cache-Control the edge acts on
// as a shared cache (RFC 9111 §5.2.2).
type directives struct {
	noStore  bool // no-store or private: never cached by a shared cache
	noCache  bool // cache, but revalidate before every use
	maxAge   time.Duration
	hasMaxAt bool // max-age or s-maxage present
	// RFC 5861 extensions; has* tell an explicit 0 from absence.
	swr, sie       time.Duration
	hasSWR, hasSIE bool
}

// parseCacheControl reads the directives of a Cache-Control field value.
// s-maxage wins over max-age for a shared cache (RFC 9111 §5.2.2.10).
// Malformed members are ignored, as RFC 9111 §4.2.1 advises for
// freshness: a broken value must not make the edge cache longer.
func parseCacheControl(v string) directives {
	var d directives
	sharedSet := false
	for v != "" {
		var part string
		part, v, _ = strings.Cut(v, ",")
		name, arg, _ := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		arg = strings.Trim(strings.TrimSpace(arg), `"`)
		switch name {
		case "no-store", "private":
			d.noStore = true
		case "no-cache":
			d.noCache = true
		case "s-maxage", "max-age":
			v, ok := seconds(arg)
			if !ok || name == "max-age" && sharedSet {
				continue
			}
			d.maxAge, d.hasMaxAt = v, true
			sharedSet = sharedSet || name == "s-maxage"
		case "stale-while-revalidate":
			d.swr, d.hasSWR = seconds(arg)
		case "stale-if-error":
			d.sie, d.hasSIE = seconds(arg)
		}
	}
	return d
}

// seconds parses a delta-seconds value (RFC 9111 §1.2.2), capped at a
// century so that arithmetic on it cannot overflow.
func seconds(arg string) (time.Duration, bool) {
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	const century = int64(100 * 365 * 24 * time.Hour / time.Second)
	return time.Duration(min(n, century)) * time.Second, true
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
