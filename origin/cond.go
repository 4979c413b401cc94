package origin

import (
	"strings"
	"time"
)

// notModified reports whether an object with the given validators satisfies
// cond, that is whether a conditional GET would answer 304.
//
// As in RFC 9110 §13.1.3 and §13.2.2, If-None-Match wins when both are
// set, and it uses the weak comparison (§8.8.3.2): W/"x" matches "x".
// If-Modified-Since compares at one-second resolution, the resolution of
// HTTP dates.
func notModified(cond Conditions, etag string, lastModified time.Time) bool {
	if cond.IfNoneMatch != "" {
		return etagWeakMatch(cond.IfNoneMatch, etag)
	}
	if cond.IfModifiedSince.IsZero() || lastModified.IsZero() {
		return false
	}
	return !lastModified.Truncate(time.Second).After(cond.IfModifiedSince)
}

// etagWeakMatch compares one If-None-Match value ("*" or one entity tag)
// with etag. Lists are not supported: Conditions carries a single tag.
func etagWeakMatch(ifNoneMatch, etag string) bool {
	inm := strings.TrimSpace(ifNoneMatch)
	if etag == "" {
		return false
	}
	if inm == "*" {
		return true
	}
	return strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(etag, "W/")
}
