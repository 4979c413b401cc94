package negotiate

import "strings"

// VariantETag derives the entity tag of the variant in coding c from the
// origin's ETag for the object stored in coding stored.
//
// RFC 9110 §8.8.3.3: representations that differ in content coding must
// not share a strong entity tag, or a cache or client could splice a
// range of one into the other, or answer a conditional request for one
// with the other. So:
//
//   - the variant in the stored coding keeps the origin's tag unchanged
//     (a client that revalidates against S3 directly still matches);
//   - every other variant gets "-<coding>" inserted before the closing
//     quote: `"abc"` → `"abc-gzip"`, `W/"abc"` → `W/"abc-br"`, and the
//     identity variant of a gzip-stored object `"abc-identity"`;
//   - an origin tag without proper quotes (`abc`, `W/abc`) is quoted
//     first, dropping bytes that are not allowed inside an entity tag
//     (double quotes, controls, spaces): `abc` → `"abc"` / `"abc-zstd"`.
//
// An empty origin tag (or one with nothing usable in it) yields "": the
// origin gave no validator, and inventing a constant one such as `""`
// would make every later version of the object match it, so the caller
// should send no ETag and rely on Last-Modified.
//
// The result never gives two codings of one object the same tag.
func VariantETag(originETag string, stored, c Coding) string {
	s := trimOWS(originETag)
	weak := strings.HasPrefix(s, "W/")
	if weak {
		s = s[2:]
	}
	opaque, valid := etagOpaque(s)
	if !valid {
		opaque = sanitizeETag(s)
		if opaque == "" {
			return ""
		}
	}
	var b strings.Builder
	b.Grow(len(opaque) + 16)
	if weak {
		b.WriteString("W/")
	}
	b.WriteByte('"')
	b.WriteString(opaque)
	if c != stored {
		b.WriteByte('-')
		b.WriteString(c.String())
	}
	b.WriteByte('"')
	return b.String()
}

// etagOpaque returns the characters between the quotes of a well-formed
// opaque-tag (RFC 9110 §8.8.3).
func etagOpaque(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	inner := s[1 : len(s)-1]
	for i := 0; i < len(inner); i++ {
		if !isEtagc(inner[i]) {
			return "", false
		}
	}
	return inner, true
}

// sanitizeETag keeps only the bytes of s allowed inside an opaque-tag.
func sanitizeETag(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isEtagc(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// isEtagc reports whether b may appear inside an opaque-tag:
// etagc = %x21 / %x23-7E / obs-text.
func isEtagc(b byte) bool {
	return b == 0x21 || (b >= 0x23 && b != 0x7f)
}
