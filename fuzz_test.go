package edge

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a.js", "//a//b/", "/../x", "/a/./b", "/a/..", "/%00", "/a\\b", "/.well-known/x", "/a..b/c", "/...", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		clean, ok := cleanPath(p)
		if !ok {
			return
		}
		if !strings.HasPrefix(clean, "/") {
			t.Fatalf("%q → %q: not rooted", p, clean)
		}
		if strings.Contains(clean, "//") {
			t.Fatalf("%q → %q: empty segment", p, clean)
		}
		for _, seg := range strings.Split(clean, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q → %q: dot segment", p, clean)
			}
		}
		if strings.ContainsAny(clean, "\x00\\\r\n") {
			t.Fatalf("%q → %q: control character or backslash", p, clean)
		}
		if again, ok := cleanPath(clean); !ok || again != clean {
			t.Fatalf("cleanPath not idempotent: %q → %q → %q", p, clean, again)
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("sites:\n  - hosts: [a.example]\n    rules:\n      - prefix: /w/\n        ttl: 1h\n"))
	f.Add([]byte("sites:\n  - ttl: 5m\n    negative_ttl: 1s\n    index: i.html\n"))
	f.Add([]byte("sites: [{hosts: [x], origin: 'dir:/tmp'}, {hosts: [x]}]"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever is accepted satisfies the rules the handler relies on.
		defaults := 0
		for _, s := range cfg.Sites {
			if len(s.Hosts) == 0 {
				defaults++
			}
			for _, r := range s.Rules {
				if !strings.HasPrefix(r.Prefix, "/") {
					t.Fatalf("accepted rule prefix %q", r.Prefix)
				}
			}
		}
		if defaults > 1 {
			t.Fatal("accepted two default sites")
		}
	})
}

var rangeReference = regexp.MustCompile(`^(?i:bytes)=[ \t,]*((\d{1,18}-\d{0,18}|-\d{1,18})[ \t]*)([ \t]*,[ \t]*((\d{1,18}-\d{0,18}|-\d{1,18})[ \t]*)?)*$`)

// FuzzValidByteRanges checks the Range parser against a regular
// expression of the grammar (without the last-pos ≥ first-pos rule,
// checked separately) and that it never panics.
func FuzzValidByteRanges(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-5", "bytes=5-", "bytes=0-0,2-3", "bytes= 1-2 , ,3-4", "bytes=abc", "bytes=", "bytes=,", "items=0-1", "BYTES=1-2", "bytes=5-4", "bytes=1-2,", "bytes=99999999999999999999-"} {
		f.Add(s)
	}
	pairs := regexp.MustCompile(`(\d+)-(\d+)`)
	f.Fuzz(func(t *testing.T, v string) {
		want := rangeReference.MatchString(v)
		for _, m := range pairs.FindAllStringSubmatch(v, -1) {
			first, _ := strconv.ParseInt(m[1], 10, 64)
			last, _ := strconv.ParseInt(m[2], 10, 64)
			if want && last < first {
				want = false
			}
		}
		if got := validByteRanges(v); got != want {
			t.Fatalf("validByteRanges(%q) = %v, the grammar says %v", v, got, want)
		}
	})
}
