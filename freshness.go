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
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil || n < 0 {
				continue
			}
			if name == "max-age" && sharedSet {
				continue
			}
			if n > int64(100*365*24*time.Hour/time.Second) {
				n = int64(100 * 365 * 24 * time.Hour / time.Second)
			}
			d.maxAge, d.hasMaxAt = time.Duration(n)*time.Second, true
			sharedSet = sharedSet || name == "s-maxage"
		}
	}
	return d
}
