package negotiate

import (
	"strconv"
	"strings"
)

// Coding is a content coding the edge can serve.
//
// The numeric order is also the server's preference when a client weighs
// two codings equally: Brotli > Zstd > Gzip > Identity.
type Coding uint8

// The codings the edge can decode and encode.
const (
	Identity Coding = iota // no content coding
	Gzip                   // gzip (RFC 9110 §8.4.1.3); "x-gzip" is an alias
	Zstd                   // zstd (RFC 8878), window at most 8 MiB (RFC 9659)
	Brotli                 // br (RFC 7932)

	// NumCodings is how many codings there are: Coding values run from 0
	// to NumCodings-1, so arrays indexed by Coding can be sized by it.
	NumCodings = 4
)

var codingNames = [NumCodings]string{"identity", "gzip", "zstd", "br"}

// String returns the coding's registered name: "identity", "gzip", "zstd"
// or "br".
func (c Coding) String() string {
	if c < NumCodings {
		return codingNames[c]
	}
	return "Coding(" + strconv.Itoa(int(c)) + ")"
}

// Token is the Content-Encoding header value for c: "" for Identity (the
// header is omitted), else "gzip", "zstd" or "br".
func (c Coding) Token() string {
	if c == Identity {
		return ""
	}
	return c.String()
}

// ParseContentEncoding maps a stored Content-Encoding value to a Coding.
// The value is trimmed and compared case-insensitively; "" and "identity"
// mean Identity, "x-gzip" means Gzip.
//
// ok is false for codings the edge cannot decode, such as "compress",
// "deflate", or several codings stacked ("gzip, br"): the caller then
// serves such an object only as stored and derives nothing from it.
func ParseContentEncoding(s string) (c Coding, ok bool) {
	s = trimOWS(s)
	if s == "" {
		return Identity, true
	}
	if c, ok := lookupCoding(s); ok {
		return c, true
	}
	return Identity, false
}

// lookupCoding maps a single coding token (already trimmed) to a Coding,
// case-insensitively.
func lookupCoding(tok string) (Coding, bool) {
	switch len(tok) {
	case 2:
		if strings.EqualFold(tok, "br") {
			return Brotli, true
		}
	case 4:
		if strings.EqualFold(tok, "gzip") {
			return Gzip, true
		}
		if strings.EqualFold(tok, "zstd") {
			return Zstd, true
		}
	case 6:
		if strings.EqualFold(tok, "x-gzip") {
			return Gzip, true
		}
	case 8:
		if strings.EqualFold(tok, "identity") {
			return Identity, true
		}
	}
	return Identity, false
}

// Set is a set of codings. The zero value is the empty set.
type Set uint8

// All holds every coding the edge can serve.
const All Set = 1<<Identity | 1<<Gzip | 1<<Zstd | 1<<Brotli

// SetOf returns the set holding cs. Values outside the known codings are
// dropped.
func SetOf(cs ...Coding) Set {
	var s Set
	for _, c := range cs {
		if c < NumCodings {
			s |= 1 << c
		}
	}
	return s
}

// Has reports whether c is in s.
func (s Set) Has(c Coding) bool {
	return c < NumCodings && s&(1<<c) != 0
}

// String lists the set's codings, e.g. "{identity gzip}".
func (s Set) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for c := Coding(0); c < NumCodings; c++ {
		if s.Has(c) {
			if b.Len() > 1 {
				b.WriteByte(' ')
			}
			b.WriteString(c.String())
		}
	}
	b.WriteByte('}')
	return b.String()
}
