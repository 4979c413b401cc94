package origin

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanKey(t *testing.T) {
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"/widget.js", "widget.js", true},
		{"widget.js", "widget.js", true},
		{"/a/b/c.json", "a/b/c.json", true},
		{"/v1..2/x", "v1..2/x", true},
		{"/.well-known/x", ".well-known/x", true},
		{"/", "", false},
		{"", "", false},
		{"/.", "", false},
		{"/..", "", false},
		{"/../etc/passwd", "", false},
		{"/a/../../x", "", false},
		{"/a/./b", "", false},
		{"//x", "", false},
		{"/a//b", "", false},
		{"/dir/", "", false},
		{"\x00", "", false},
		{"/a\x00b", "", false},
		{`/a\b`, "", false},
		{`/..\x`, "", false},
		{"/\xff", "", false}, // fs.ValidPath wants UTF-8
	}
	for _, tc := range tests {
		got, ok := cleanKey(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("cleanKey(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzCleanKey checks that an accepted key is a clean relative path that
// stays below the root, whatever the input.
func FuzzCleanKey(f *testing.F) {
	for _, s := range []string{"/widget.js", "/a/../b", "//x", "/..", `\..\x`, "/a\x00", "/v1..2/x", "/./a", "/dir/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name, ok := cleanKey(key)
		if !ok {
			if name != "" {
				t.Fatalf("cleanKey(%q) = %q with ok=false", key, name)
			}
			return
		}
		if name == "" || !utf8.ValidString(name) {
			t.Fatalf("cleanKey(%q) = %q, ok", key, name)
		}
		if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
			t.Fatalf("cleanKey(%q) = %q: absolute or has a backslash or NUL", key, name)
		}
		// Already clean: nothing for path.Clean to resolve, and no way up.
		if path.Clean(name) != name {
			t.Fatalf("cleanKey(%q) = %q, not clean (%q)", key, name, path.Clean(name))
		}
		for _, elem := range strings.Split(name, "/") {
			if elem == ".." || elem == "." || elem == "" {
				t.Fatalf("cleanKey(%q) = %q has element %q", key, name, elem)
			}
		}
		// Below any root, for S3 prefixes and directories alike.
		if joined := path.Join("/root", name); !strings.HasPrefix(joined, "/root/") {
			t.Fatalf("cleanKey(%q) = %q escapes the root: %q", key, name, joined)
		}
	})
}
