package negotiate

import "strings"

// qUnset marks a coding the Accept-Encoding field did not mention.
const qUnset = -1

// Choose picks the coding to serve, among offered, for a request whose
// Accept-Encoding field lines are acceptEncoding (pass
// r.Header.Values("Accept-Encoding"); several lines are read as one
// comma-separated list). It does not allocate.
//
// The rules, from RFC 9110 §12.5.3 unless noted:
//
//   - No Accept-Encoding field (nil or empty slice): Identity. RFC 9110
//     lets a server use any coding then, but curl, scripts and old clients
//     that send no header break on compressed bodies, so the edge does
//     not (CloudFront and S3 get this wrong). A field that is present but
//     empty ("") means "no content coding": Identity too.
//   - Members are tokens with an optional weight ("br;q=0.9"), separated
//     by commas with optional whitespace; tokens and the "q" parameter
//     name are case-insensitive; "x-gzip" is gzip. A member whose weight
//     is malformed (not "0", "0.", "0.d", ... "0.ddd", "1", "1.", "1.0",
//     ... "1.000"; or given twice) is ignored, as are unknown tokens and
//     unknown parameters.
//   - "*" gives its weight to every coding, identity included, that is
//     not listed by name.
//   - Identity is acceptable unless "identity;q=0", or "*;q=0" without an
//     "identity" member, says otherwise. When it is acceptable only by
//     this default it ranks below every coding the client listed with a
//     non-zero weight: "gzip;q=0.1" gets gzip.
//   - A coding listed twice keeps its lowest weight, so a refusal is
//     never overridden (RFC 9110 leaves this open).
//   - The acceptable offered coding with the highest weight wins; ties go
//     to br, then zstd, then gzip, then identity (smallest body first).
//   - When no offered coding is acceptable the result is Identity, as the
//     RFC asks ("send a response without any content coding"), even if
//     identity was refused or is not in offered: the caller must always
//     be able to produce Identity.
//
// Garbage input never panics; it yields Identity or whatever the
// well-formed members select.
func Choose(acceptEncoding []string, offered Set) Coding {
	if len(acceptEncoding) == 0 {
		return Identity
	}
	q := [NumCodings]int16{qUnset, qUnset, qUnset, qUnset}
	star := int16(qUnset)
	for _, line := range acceptEncoding {
		for line != "" {
			var member string
			member, line = nextElem(line, ',')
			c, isStar, w, ok := parseMember(member)
			switch {
			case !ok:
			case isStar:
				star = lowerQ(star, w)
			default:
				q[c] = lowerQ(q[c], w)
			}
		}
	}

	// score: 0 unacceptable, 1 identity by default, 2..1001 weight+1.
	best, bestScore := Identity, 0
	for c := Identity; c < NumCodings; c++ {
		if !offered.Has(c) {
			continue
		}
		w := q[c]
		if w == qUnset {
			w = star
		}
		var score int
		switch {
		case w > 0:
			score = int(w) + 1
		case w == qUnset && c == Identity:
			score = 1
		}
		// >= so that a later (preferred) coding wins a tie.
		if score > 0 && score >= bestScore {
			best, bestScore = c, score
		}
	}
	return best
}

// lowerQ merges a repeated member's weight, keeping the lower one.
func lowerQ(old, w int16) int16 {
	if old == qUnset || w < old {
		return w
	}
	return old
}

// parseMember parses one Accept-Encoding member: a coding token and its
// parameters. ok is false for empty or unknown tokens and malformed
// weights. The weight is in thousandths (0..1000).
func parseMember(m string) (c Coding, star bool, q int16, ok bool) {
	tok, params := nextElem(m, ';')
	tok = trimOWS(tok)
	switch {
	case tok == "":
		return Identity, false, 0, false
	case tok == "*":
		star = true
	default:
		if c, ok = lookupCoding(tok); !ok {
			return Identity, false, 0, false
		}
	}
	if q, ok = parseWeight(params); !ok {
		return Identity, false, 0, false
	}
	return c, star, q, true
}

// parseWeight reads the "q" parameter from a member's parameters (the
// text after its first ";"), in thousandths; 1000 when absent. ok is
// false for a malformed or repeated weight. Other parameters are ignored.
func parseWeight(params string) (q int16, ok bool) {
	q = 1000
	seenQ := false
	for params != "" {
		var p string
		p, params = nextElem(params, ';')
		name, val, hasEq := strings.Cut(p, "=")
		name = trimOWS(name)
		if len(name) != 1 || name[0]|0x20 != 'q' {
			continue // empty ("gzip;;") or an extension parameter
		}
		if seenQ || !hasEq {
			return 0, false
		}
		seenQ = true
		v, good := parseQ(trimOWS(val))
		if !good {
			return 0, false
		}
		q = v
	}
	return q, true
}

// parseQ parses a qvalue (RFC 9110 §12.4.2) into thousandths:
//
//	qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
func parseQ(s string) (int16, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	var v int16
	switch s[0] {
	case '0':
	case '1':
		v = 1000
	default:
		return 0, false
	}
	if len(s) == 1 {
		return v, true
	}
	if s[1] != '.' {
		return 0, false
	}
	mult := int16(100)
	for i := 2; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 || (v == 1000 && d != 0) {
			return 0, false
		}
		v += int16(d) * mult
		mult /= 10
	}
	return v, true
}

// nextElem splits s at the first sep that is not inside a quoted-string
// (RFC 9110 §5.6.4), returning the text before it and the text after.
// Without such a separator it returns s and "".
func nextElem(s string, sep byte) (elem, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case inQuote && b == '\\':
			i++ // quoted-pair: skip the escaped octet
		case b == '"':
			inQuote = !inQuote
		case !inQuote && b == sep:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// trimOWS removes optional whitespace (SP, HTAB) from both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Accepts reports whether a request whose Accept-Encoding field lines
// are acceptEncoding accepts a body in the content coding token (a
// Content-Encoding value: "gzip", "br", "deflate", "" or "identity" for
// none), by the rules of Choose: a token listed with a non-zero weight,
// or covered by "*" with a non-zero weight; identity unless refused; and
// without an Accept-Encoding field, identity only. Tokens compare
// case-insensitively, and "x-gzip" is gzip. Use it for codings the edge
// cannot produce, to decide whether a body stored in one may be sent as
// it is. It does not allocate.
func Accepts(acceptEncoding []string, token string) bool {
	token = trimOWS(token)
	identity := token == "" || strings.EqualFold(token, "identity")
	if len(acceptEncoding) == 0 {
		return identity
	}
	want, known := lookupCoding(token)
	if identity {
		want, known = Identity, true
	}
	q, star := int16(qUnset), int16(qUnset)
	for _, line := range acceptEncoding {
		for line != "" {
			var member string
			member, line = nextElem(line, ',')
			w, isStar, match, ok := weighMember(member, token, want, known)
			switch {
			case !ok:
			case isStar:
				star = lowerQ(star, w)
			case match:
				q = lowerQ(q, w)
			}
		}
	}
	if q == qUnset {
		q = star
	}
	return q > 0 || (q == qUnset && identity)
}

// weighMember parses one Accept-Encoding member for Accepts: its weight,
// whether it is "*", and whether it names token (a known coding by any
// of its names, another token by its exact name, in any case).
func weighMember(m, token string, want Coding, known bool) (q int16, star, match, ok bool) {
	tok, params := nextElem(m, ';')
	tok = trimOWS(tok)
	if tok == "" {
		return 0, false, false, false
	}
	if q, ok = parseWeight(params); !ok {
		return 0, false, false, false
	}
	if tok == "*" {
		return q, true, false, true
	}
	if c, isKnown := lookupCoding(tok); isKnown {
		return q, false, known && c == want, true
	}
	return q, false, !known && strings.EqualFold(tok, token), true
}
