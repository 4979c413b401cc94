package edge

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds the rules of RFC 9111 a shared cache in front of an
// HTTP origin follows, as functions of header fields: whether a response
// may be stored, how long it is fresh, how old it is, which stored
// response a request may be given (Vary), what a 304 updates. S3 and
// directory origins give no header fields beyond a few, and go through
// the same rules.

// heuristicFraction is the share of a response's age since Last-Modified
// it is considered fresh for when the origin says nothing explicit (RFC
// 9111 §4.2.2 suggests 10%), and heuristicMax caps it.
const (
	heuristicFraction = 10
	heuristicMax      = 24 * time.Hour
)

// heuristicallyCacheable are the status codes RFC 9110 §15.1 defines as
// heuristically cacheable: a response with one of them may be stored and
// given heuristic freshness without explicit freshness information.
var heuristicallyCacheable = map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true, 301: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// understoodStatus reports whether the edge knows the semantics of a
// status code well enough to cache it (RFC 9111 §3: a cache must not
// store a response to a request it does not understand; and
// must-understand).
func understoodStatus(code int) bool {
	return http.StatusText(code) != "" && code >= 200
}

// storable reports whether a shared cache may store a response (RFC 9111
// §3, §3.5) to a GET with header reqHdr: a final status; with
// must-understand, one the edge understands (and then no-store is
// ignored); not no-store, not private, not Vary: *; explicitly cacheable
// (a lifetime, Expires, public) or of a heuristically cacheable status;
// and, when the request carried Authorization, only when the response
// says it may be shared (public, s-maxage, must-revalidate).
func storable(status int, resp http.Header, cc directives, reqHdr http.Header) bool {
	switch {
	case status < 200 || status == http.StatusPartialContent:
		return false // interim, or a range: the edge stores whole responses only
	case cc.mustUnderstand && !understoodStatus(status):
		return false
	case cc.noStore && !cc.mustUnderstand:
		return false
	case cc.private && cc.privateFields == nil:
		return false
	case varyStar(resp):
		return false
	}
	if _, auth := reqHdr["Authorization"]; auth && !(cc.public || cc.hasSMaxAge || cc.mustRevalidate) {
		return false
	}
	if _, explicit := cc.lifetime(); explicit || cc.public || resp.Get("Expires") != "" {
		return true
	}
	return heuristicallyCacheable[status]
}

// lifetimeOf is a response's freshness lifetime from its own header
// fields (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires minus
// Date (an Expires that does not parse means already expired), else, for
// a heuristically cacheable status with Last-Modified and nothing
// explicit (no-cache aside), a tenth of its age. explicit tells the
// first three from a heuristic; ok is false when none applies.
func lifetimeOf(status int, h http.Header, cc directives, responseTime time.Time) (lifetime time.Duration, explicit, ok bool) {
	if l, has := cc.lifetime(); has {
		return l, true, true
	}
	if exp := h.Values("Expires"); len(exp) > 0 {
		e, ok := parseHTTPDate(exp[0])
		if !ok || len(exp) > 1 {
			return 0, true, true // invalid (or ambiguous): stale
		}
		date := dateOf(h, responseTime)
		return max(0, e.Sub(date)), true, true
	}
	if !heuristicallyCacheable[status] && !cc.public {
		return 0, false, false
	}
	lm, ok := parseHTTPDate(h.Get("Last-Modified"))
	if !ok {
		return 0, false, false
	}
	if age := dateOf(h, responseTime).Sub(lm); age > 0 {
		return min(age/heuristicFraction, heuristicMax), false, true
	}
	return 0, false, false
}

// dateOf is the response's Date, or when it arrived if it has none (or
// one that does not parse: RFC 9110 §6.6.1 lets a recipient add it).
func dateOf(h http.Header, responseTime time.Time) time.Time {
	if d, ok := parseHTTPDate(h.Get("Date")); ok {
		return d
	}
	return responseTime
}

// initialAge is a response's corrected initial age (RFC 9111 §4.2.3):
// the larger of how old its Date says it is when it arrived and the Age
// it came with plus the time the request took. A stored response's age
// at any later time is this plus how long it has been stored.
func initialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	apparent := max(0, responseTime.Sub(dateOf(h, responseTime)))
	ageValue, _ := ageOf(h)
	corrected := ageValue + max(0, responseTime.Sub(requestTime))
	return max(apparent, corrected)
}

// ageOf parses an Age field (delta-seconds; the first of several lines).
// A value that does not parse is ignored (RFC 9111 §5.1).
func ageOf(h http.Header) (time.Duration, bool) {
	v := h.Values("Age")
	if len(v) == 0 {
		return 0, false
	}
	first, _, _ := strings.Cut(v[0], ",")
	return seconds(strings.TrimSpace(first))
}

// varyStar reports whether a response varies on everything (Vary: *):
// it never matches another request and is never stored.
func varyStar(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == "*" {
				return true
			}
		}
	}
	return false
}

// varyFields lists the request fields a response varies on, canonical and
// sorted, without Accept-Encoding: the edge negotiates codings itself and
// keeps one stored response for all of them.
func varyFields(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			f = http.CanonicalHeaderKey(strings.TrimSpace(f))
			if f != "" && f != "Accept-Encoding" && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out
}

// secondaryKey is the part of the cache key a request's values of the
// varying fields make (RFC 9111 §4.1): each field's lines joined with
// ", ", white space around the list members removed, so that requests
// that differ only in spacing share a stored response. An absent field
// and an empty one differ.
func secondaryKey(fields []string, h http.Header) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f)
		vs, present := h[f]
		if !present {
			b.WriteString("\x01")
			continue
		}
		b.WriteByte('=')
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(',')
			}
			for j, m := range strings.Split(v, ",") {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.Trim(m, " \t"))
			}
		}
		b.WriteByte(0)
	}
	return b.String()
}

// notStored are the response fields a shared cache never stores: the
// hop-by-hop ones (which an HTTP origin already drops), those about the
// connection to a proxy, and Set-Cookie, which would give one client's
// cookie to every other. The fetching client still gets its Set-Cookie.
var notStored = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Set-Cookie", "Set-Cookie2"}

// edgeComputed are fields the edge writes itself for each response from
// what it stores (the body's coding, length, validators, age): a stored
// copy of the origin's would contradict them. The origin's Date is kept:
// it says when the response was made, which Age then counts from.
var edgeComputed = []string{"Content-Length", "Content-Encoding", "Etag", "Last-Modified", "Age", "Accept-Ranges", "Vary", "Cache-Status"}

// forTheEdge are fields addressed to the edge alone (Edge Architecture
// 1.0, as Fastly and Varnish read them): it follows them and passes them
// on to no one. CDN-Cache-Control is not among them: a CDN further down
// may read it (RFC 9213).
var forTheEdge = []string{"Surrogate-Control", "Surrogate-Key"}

// passedOn reports whether a response field of the origin's (the header
// field's canonical name) is stored and given back to clients.
func passedOn(name string) bool {
	return !slices.Contains(notStored, name) && !slices.Contains(edgeComputed, name) && !slices.Contains(forTheEdge, name)
}

// storedFields is the copy of a response's fields the edge keeps and
// gives back with the stored response: those passedOn, but the
// private="..." names. nil when nothing is left.
func storedFields(h http.Header, cc directives) http.Header {
	var out http.Header
	for name, vs := range h {
		if !passedOn(name) || slices.Contains(cc.privateFields, name) {
			continue
		}
		if out == nil {
			out = http.Header{}
		}
		out[name] = slices.Clone(vs)
	}
	return out
}

// update304 gives a stored response's fields the ones a 304 brought (RFC
// 9111 §4.3.4): each field in the 304 replaces the stored one, except
// those the edge computes for the body it holds (Content-Length, ...).
func update304(stored, fresh http.Header) http.Header {
	out := stored.Clone()
	if out == nil {
		out = http.Header{}
	}
	for name, vs := range fresh {
		if !passedOn(name) {
			continue
		}
		out[name] = slices.Clone(vs)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// forwardedFields are the request fields the edge passes to an HTTP
// origin on a fetch it may store: what a cache must forward (RFC 9110
// §7.6: the end-to-end fields) but those that would make the origin's
// answer fit one client only: conditionals and Range (the edge asks for
// the whole response and answers those itself), and Accept-Encoding (the
// edge asks for what it can store and derives the rest).
var notForwarded = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range", "Accept-Encoding", "Host"}

// forwardHeader is the header of the edge's request to an HTTP origin
// for r: r's end-to-end fields (but notForwarded, and those its
// Connection names), X-Forwarded-For with the client's address added,
// X-Forwarded-Proto, and Via naming the edge (RFC 9110 §7.6.3).
func forwardHeader(r *http.Request) http.Header {
	h := make(http.Header, len(r.Header)+3)
	named := map[string]bool{}
	for _, v := range r.Header.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			named[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for name, vs := range r.Header {
		if !slices.Contains(notForwarded, name) && !named[name] {
			h[name] = vs
		}
	}
	if ip := clientIP(r.RemoteAddr); ip != "" {
		if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			h.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+ip)
		} else {
			h.Set("X-Forwarded-For", ip)
		}
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	h["Via"] = append(slices.Clip(r.Header.Values("Via")), viaOf(r))
	return h
}

// viaOf is the edge's Via entry for a request received as r ("1.1 edge",
// "2 edge").
func viaOf(r *http.Request) string {
	if r.ProtoMajor >= 2 {
		return strconv.Itoa(r.ProtoMajor) + " edge"
	}
	return strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor) + " edge"
}

// clientIP is the address part of a RemoteAddr ("ip:port").
func clientIP(remote string) string {
	if i := strings.LastIndexByte(remote, ':'); i > 0 {
		return strings.Trim(remote[:i], "[]")
	}
	return ""
}
