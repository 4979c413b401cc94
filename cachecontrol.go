package edge

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// directives are what a Cache-Control field says, to a shared cache
// (RFC 9111 §5.2), or the same syntax in CDN-Cache-Control (RFC 9213) and
// Surrogate-Control (Edge Architecture 1.0). Has* tell an explicit value,
// 0 included, from absence.
type directives struct {
	// Response directives.
	noStore, noCache, private, public  bool
	noCacheFields, privateFields       []string // the qualified forms: fields not to reuse, not to store
	mustRevalidate, proxyRevalidate    bool
	mustUnderstand, noTransform        bool
	maxAge, sMaxAge                    time.Duration
	hasMaxAge, hasSMaxAge              bool
	staleWhileRevalidate, staleIfError time.Duration
	hasSWR, hasSIE                     bool
	// Request directives (§5.2.1).
	maxStale                 time.Duration
	hasMaxStale, anyStale    bool // max-stale with a value, or without one (any staleness)
	minFresh                 time.Duration
	hasMinFresh              bool
	onlyIfCached             bool
	requestNoCache, noCache0 bool // no-cache, or max-age=0, in a request: revalidate first
}

// lifetime is the freshness lifetime the directives give a shared cache
// (s-maxage, else max-age), and whether they give one.
func (d *directives) lifetime() (time.Duration, bool) {
	switch {
	case d.hasSMaxAge:
		return d.sMaxAge, true
	case d.hasMaxAge:
		return d.maxAge, true
	}
	return 0, false
}

// parseCacheControl reads the directives of a Cache-Control field's
// lines, as RFC 9110 §5.6 lists go: comma-separated, a directive a token
// with an optional value that is a token or a quoted-string (commas
// inside quotes do not split). Names are case-insensitive. When a
// directive appears twice, the first wins (RFC 9111 §4.2.1). A
// delta-seconds that does not parse (3600a, '3600', 3600.5) leaves its
// directive unset, so a broken value never makes the edge cache longer
// than the others say; max-age with a value that does not parse makes the
// response stale (§5.2.2.1: treat as 0).
func parseCacheControl(lines ...string) directives {
	var d directives
	seen := map[string]bool{}
	for _, line := range lines {
		for line != "" {
			var member string
			member, line = splitMember(line)
			name, arg, hasArg := splitDirective(member)
			if name == "" || seen[name] {
				continue
			}
			seen[name] = true
			switch name {
			case "no-store":
				d.noStore = true
			case "no-cache":
				d.noCache, d.requestNoCache = true, true
				if hasArg {
					d.noCacheFields = fieldList(arg)
				}
			case "private":
				d.private = true
				if hasArg {
					d.privateFields = fieldList(arg)
				}
			case "public":
				d.public = true
			case "must-revalidate":
				d.mustRevalidate = true
			case "proxy-revalidate":
				d.proxyRevalidate = true
			case "must-understand":
				d.mustUnderstand = true
			case "no-transform":
				d.noTransform = true
			case "only-if-cached":
				d.onlyIfCached = true
			case "max-age":
				v, ok := seconds(arg)
				if !ok {
					v = 0 // invalid: stale (§5.2.2.1)
				}
				d.maxAge, d.hasMaxAge = v, true
				d.noCache0 = v == 0
			case "s-maxage":
				if v, ok := seconds(arg); ok {
					d.sMaxAge, d.hasSMaxAge = v, true
				}
			case "stale-while-revalidate":
				d.staleWhileRevalidate, d.hasSWR = seconds(arg)
			case "stale-if-error":
				d.staleIfError, d.hasSIE = seconds(arg)
			case "max-stale":
				if !hasArg {
					d.anyStale = true
				} else {
					d.maxStale, d.hasMaxStale = seconds(arg)
				}
			case "min-fresh":
				d.minFresh, d.hasMinFresh = seconds(arg)
			}
		}
	}
	return d
}

// splitMember cuts the first list member off s, honouring quoted
// strings.
func splitMember(s string) (member, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// splitDirective parses name[=value] with optional white space around
// the member (not around "=": "max-age =5" is not max-age). A quoted
// value is unquoted.
func splitDirective(m string) (name, arg string, hasArg bool) {
	m = strings.Trim(m, " \t")
	name, arg, hasArg = strings.Cut(m, "=")
	if strings.ContainsAny(name, " \t") {
		return "", "", false
	}
	name = strings.ToLower(name)
	if len(arg) >= 2 && arg[0] == '"' && arg[len(arg)-1] == '"' {
		arg = strings.ReplaceAll(arg[1:len(arg)-1], `\`, "")
	}
	return name, arg, hasArg
}

// fieldList parses the field names of no-cache="a, b" or private="a".
func fieldList(arg string) []string {
	var out []string
	for _, f := range strings.Split(arg, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, http.CanonicalHeaderKey(f))
		}
	}
	return out
}

// seconds parses a delta-seconds value (RFC 9111 §1.2.2): digits only,
// leading zeros allowed, capped at a century so that arithmetic on it
// cannot overflow (§1.2.2 asks for at least 2^31 seconds).
func seconds(arg string) (time.Duration, bool) {
	if arg == "" {
		return 0, false
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] < '0' || arg[i] > '9' {
			return 0, false
		}
	}
	const century = int64(100 * 365 * 24 * time.Hour / time.Second)
	n, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		n = century // a longer run of digits is a very long time
	}
	return time.Duration(min(n, century)) * time.Second, true
}
