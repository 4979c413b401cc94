package edge

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
)

// fixtureBody is the body the fixture's objects were made of.
func fixtureBody(n int) []byte {
	b := make([]byte, n)
	words := "function login(){return tenant.config}\n"
	for i := range b {
		b[i] = words[(i*7+i/13)%len(words)]
	}
	return b
}

// TestCacheFromPreviousReleaseStillHits: testdata/cache-d32a2f0 is a
// cache directory written by commit d32a2f0 (before the cache keys and
// the disk tier moved): a widget stored plain with its derived variants,
// a tenant config stored gzip, and a cached 404, under the namespace
// "mem:test", at 2026-11-25 12:00 UTC with a TTL of one hour. An edge
// upgraded onto it must serve all of it as hits, with the origin down:
// an upgrade must not empty a fleet's caches.
func TestCacheFromPreviousReleaseStillHits(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/cache-d32a2f0")); err != nil {
		t.Fatal(err)
	}
	// Files in the fixture are read-only in some checkouts; the cache
	// writes beside them.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chmod(p, 0o755)
		}
		return err
	})
	te := newTestEdge(t, Site{TTL: time.Hour, CacheNamespace: "mem:test"}, cache.Config{Dir: dir})
	te.org.down.Store(true)
	te.clock.Set(time.Date(2026, 11, 25, 12, 0, 5, 0, time.UTC)) // within the 404's 10 s TTL

	widget := fixtureBody(20000)
	config := fixtureBody(3000)
	for _, ae := range []string{"", "br", "gzip", "zstd"} {
		for path, want := range map[string][]byte{"/widget/v1/login.js": widget, "/tenants/acme.json": config} {
			res := te.get(t, "GET", path, "Accept-Encoding", ae)
			if cs := res.Header.Get("Cache-Status"); res.StatusCode != 200 || !strings.HasPrefix(cs, "edge; hit") {
				t.Fatalf("%s (%q): %d %q", path, ae, res.StatusCode, cs)
			}
			if got := decode(t, res); !bytes.Equal(got, want) {
				t.Fatalf("%s (%q): body differs", path, ae)
			}
		}
	}
	if res := te.get(t, "GET", "/missing.js"); res.StatusCode != 404 || !strings.HasPrefix(res.Header.Get("Cache-Status"), "edge; hit") {
		t.Fatalf("cached 404: %d %q", res.StatusCode, res.Header.Get("Cache-Status"))
	}
	if n := te.org.gets.Load(); n != 0 {
		t.Fatalf("the origin was asked %d times", n)
	}
}
