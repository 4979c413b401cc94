package edge

import (
	"net/http"
	"strings"
)

// dropInvalidRange removes a Range header that is not a well-formed
// byte-range request (RFC 9110 §14.1.1): several Range fields, another
// unit, or a range-set that does not parse. §14.2 lets a server ignore
// such a Range, and a 200 serves a confused client better than a 416.
// A well-formed range that cannot be satisfied still gets 416 from
// http.ServeContent.
func dropInvalidRange(h http.Header) {
	v, ok := h["Range"]
	if ok && (len(v) != 1 || !validByteRanges(v[0])) {
		delete(h, "Range")
	}
}

// validByteRanges reports whether v is "bytes=" and a range-set:
//
//	ranges-specifier = "bytes" "=" range-set
//	range-set        = 1#range-spec  (commas, optional whitespace, empty elements allowed)
//	range-spec       = first-pos "-" [ last-pos ] / "-" suffix-length
//
// with last-pos ≥ first-pos, and numbers of at most 18 digits (so they
// fit an int64). The unit is case-insensitive.
func validByteRanges(v string) bool {
	const unit = "bytes="
	if len(v) < len(unit) || !strings.EqualFold(v[:len(unit)], unit) {
		return false
	}
	v = v[len(unit):]
	specs := 0
	for v != "" || specs == 0 {
		var spec string
		spec, v, _ = strings.Cut(v, ",")
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			if v == "" && specs == 0 {
				return false
			}
			continue // an empty list element (RFC 9110 §5.6.1)
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return false
		}
		switch {
		case first == "":
			if _, ok := digits(last); !ok {
				return false
			}
		case last == "":
			if _, ok := digits(first); !ok {
				return false
			}
		default:
			f, ok1 := digits(first)
			l, ok2 := digits(last)
			if !ok1 || !ok2 || l < f {
				return false
			}
		}
		specs++
	}
	return true
}

// digits parses 1 to 18 ASCII digits.
func digits(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}
