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
