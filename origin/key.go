package origin

import (
	"io/fs"
	"strings"
)

// cleanKey turns a key as it arrives (a URL path such as "/widget.js") into
// a slash-separated path relative to the origin's root, or reports false
// when the key must not be looked up at all.
//
// It strips one leading slash and then accepts only what fs.ValidPath
// accepts: no empty, "." or ".." elements, no leading or trailing slash. On
// top of that it rejects backslashes (a path separator on Windows, and an
// escape route on some S3-compatible servers) and NUL. It never rewrites a
// bad key into a good one ("/a/../b" is rejected, not cleaned to "b"): the
// router owns URL normalisation, and an origin that quietly resolved ".."
// would let one key alias another.
//
// The same rules apply to S3 keys, even though S3 itself would store
// "a/../b" literally: a CDN has no business serving such keys, and an
// S3-compatible server backed by a filesystem might resolve them.
func cleanKey(key string) (string, bool) {
	name := strings.TrimPrefix(key, "/")
	if !fs.ValidPath(name) || name == "." {
		return "", false
	}
	if strings.ContainsAny(name, "\\\x00") {
		return "", false
	}
	return name, true
}
