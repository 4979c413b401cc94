package edge

import "strings"

// maxKeyLen bounds object keys: S3 allows 1,024 bytes.
const maxKeyLen = 1024

// cleanPath turns a decoded URL path into an object path: rooted, without
// empty, "." or ".." segments, backslashes, NULs or control characters.
// It never lets a request name something outside the site's origin
// prefix. ok is false for paths that are hostile rather than merely
// untidy; such requests get 400.
//
// The common case, an already clean path, returns p itself without
// allocating.
func cleanPath(p string) (clean string, ok bool) {
	if p == "" || p[0] != '/' {
		return "", false
	}
	dirty := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f || c == '\\':
			return "", false
		case c == '/' && i+1 < len(p) && p[i+1] == '/':
			dirty = true
		case c == '.' && p[i-1] == '/':
			// A "." or ".." segment: browsers resolve these before
			// sending, so only hostile or broken clients send them.
			rest := p[i:]
			if rest == "." || rest == ".." || strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
				return "", false
			}
		}
	}
	if !dirty {
		return p, true
	}
	// Collapse runs of slashes: "//x" names the same object as "/x".
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i+1 < len(p) && p[i+1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String(), true
}
