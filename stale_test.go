package edge

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
)

func TestRevalidation(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond}, cache.Config{})
	v1 := text(8000)
	te.org.put("/c.json", memObject{body: v1})
	for _, ae := range []string{"gzip", "br"} {
		te.get(t, "GET", "/c.json", "Accept-Encoding", ae)
	}
	te.cache.Wait()

	// Expired, unchanged at the origin: a 304 refreshes the copy; the
	// derived variants stay (nothing is compressed again).
	te.clock.Advance(2 * time.Minute)
	res := te.get(t, "GET", "/c.json", "Accept-Encoding", "gzip")
	if cs := res.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd-status=304") || !bytes.Equal(decode(t, res), v1) {
		t.Fatalf("revalidated: Cache-Status %q", cs)
	}
	te.cache.Wait()
	te.get(t, "GET", "/c.json", "Accept-Encoding", "br")
	if d := te.cache.Stats().Derivations; d[negotiate.Gzip] != 1 || d[negotiate.Brotli] != 1 {
		t.Fatalf("derivations %v after a 304, want 1 gzip and 1 br", d)
	}

	// Expired and changed: the new version replaces the old and its
	// variants.
	v2 := text(9000)
	te.org.put("/c.json", memObject{body: v2})
	te.clock.Advance(2 * time.Minute)
	for _, ae := range []string{"gzip", "br", ""} {
		res := te.get(t, "GET", "/c.json", "Accept-Encoding", ae)
		if got := decode(t, res); !bytes.Equal(got, v2) {
			t.Fatalf("%q after the object changed: got %d bytes of the old version", ae, len(got))
		}
		te.cache.Wait()
	}
	if got := te.org.gets.Load(); got != 3 {
		t.Fatalf("origin requests %d, want 3", got)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Minute}, cache.Config{})
	v1, v2 := text(3000), text(3100)
	te.org.put("/t.json", memObject{body: v1})
	te.get(t, "GET", "/t.json")
	te.cache.Wait()
	te.org.put("/t.json", memObject{body: v2})
	te.org.gate = make(chan struct{}) // hold the background revalidation

	te.clock.Advance(90 * time.Second) // expired 30 s ago, within the 60 s window
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := te.get(t, "GET", "/t.json")
			if cs := res.Header.Get("Cache-Status"); !strings.Contains(cs, "stale-while-revalidate") || !bytes.Equal(readBody(t, res), v1) {
				t.Errorf("stale answer: Cache-Status %q", cs)
			}
		}()
	}
	wg.Wait() // every request answered while the origin is still held
	close(te.org.gate)
	waitBackground(te.h)
	if got := te.org.gets.Load(); got != 2 {
		t.Fatalf("origin requests %d, want 2 (the fill and one revalidation)", got)
	}
	te.cache.Wait()
	res := te.get(t, "GET", "/t.json")
	if cs := res.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") || !bytes.Equal(readBody(t, res), v2) {
		t.Fatalf("after revalidation: Cache-Status %q", cs)
	}

	// Past the window the request waits for the origin.
	te.clock.Advance(3 * time.Minute)
	res = te.get(t, "GET", "/t.json")
	if cs := res.Header.Get("Cache-Status"); strings.Contains(cs, "stale-while-revalidate") {
		t.Fatalf("past the window: Cache-Status %q", cs)
	}
}

func TestStaleIfErrorWindow(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour}, cache.Config{})
	te.org.put("/w.js", memObject{body: text(5000)})
	te.org.put("/cc.js", memObject{body: text(5000), cacheControl: "max-age=60, stale-if-error=600"})
	te.get(t, "GET", "/w.js")
	te.get(t, "GET", "/cc.js")
	te.get(t, "GET", "/gone.js") // a cached 404
	te.cache.Wait()
	te.org.down.Store(true)

	start := te.clock.Now()
	for _, tc := range []struct {
		after        time.Duration
		path         string
		wantStatus   int
		wantStaleHdr bool
	}{
		{30 * time.Minute, "/w.js", 200, true},
		{30 * time.Minute, "/cc.js", 502, false}, // the origin's 10-minute window is over
		{30 * time.Minute, "/gone.js", 404, true},
		{30 * time.Minute, "/never.js", 502, false},
		{2 * time.Hour, "/w.js", 502, false},
	} {
		te.clock.Set(start.Add(tc.after))
		res := te.get(t, "GET", tc.path, "Accept-Encoding", "gzip")
		if res.StatusCode != tc.wantStatus || strings.Contains(res.Header.Get("Cache-Status"), "stale") != tc.wantStaleHdr {
			t.Errorf("%s after %v: status %d Cache-Status %q", tc.path, tc.after, res.StatusCode, res.Header.Get("Cache-Status"))
		}
	}
}

func TestNotFoundOrForbiddenKeepsGoodCopy(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour}, cache.Config{})
	body := text(5000)
	te.org.put("/w.js", memObject{body: body})
	te.get(t, "GET", "/w.js")
	te.cache.Wait()
	te.org.mu.Lock()
	delete(te.org.objects, "/w.js") // the origin now answers 404
	te.org.mu.Unlock()
	te.clock.Advance(10 * time.Minute)
	res := te.get(t, "GET", "/w.js")
	if res.StatusCode != 200 || !bytes.Equal(readBody(t, res), body) {
		t.Fatalf("origin 404 with a good copy: status %d", res.StatusCode)
	}
	te.clock.Advance(2 * time.Hour) // past stale-if-error: the 404 stands
	if res := te.get(t, "GET", "/w.js"); res.StatusCode != 404 {
		t.Fatalf("past the window: status %d, want 404", res.StatusCode)
	}
}

func TestMissLimitPerClient(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.h.misses = newMissLimiter(4)
	te.org.put("/hot.js", memObject{body: text(2000)})
	te.get(t, "GET", "/hot.js")
	te.cache.Wait()
	te.org.gate = make(chan struct{})
	te.org.arrived = make(chan struct{}, 16)

	get := func(remote, path string) int {
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		te.h.ServeHTTP(w, r)
		return w.Code
	}
	var wg sync.WaitGroup
	for i := range 4 { // the scanner's four slots, held at the origin
		wg.Add(1)
		go func() { defer wg.Done(); get("198.51.100.7:1000", "/scan"+strings.Repeat("x", i)) }()
	}
	for range 4 { // each holds its slot while it waits at the origin
		<-te.org.arrived
	}
	if got := get("198.51.100.7:2000", "/scan-more"); got != 429 {
		t.Fatalf("fifth concurrent miss: status %d, want 429", got)
	}
	if got := get("198.51.100.7:2000", "/hot.js"); got != 200 {
		t.Fatalf("hit from the limited client: status %d", got)
	}
	if got := get("[2001:db8::1]:1", "/hot.js"); got != 200 {
		t.Fatalf("another client: status %d", got)
	}
	close(te.org.gate)
	wg.Wait()
}

// TestRestartKeepsFreshness: after a restart, a copy that was fresh is
// served as a hit, and one that expired meanwhile is revalidated with a
// conditional request, not refetched blind.
func TestRestartKeepsFreshness(t *testing.T) {
	dir := t.TempDir()
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond}, cache.Config{Dir: dir})
	te.org.put("/short.json", memObject{body: text(2000)})
	te.org.put("/long.js", memObject{body: text(2000), cacheControl: "max-age=3600"})
	te.get(t, "GET", "/short.json")
	te.get(t, "GET", "/long.js")
	te.cache.Close()

	te2 := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond}, cache.Config{Dir: dir})
	te2.org.put("/short.json", memObject{body: text(2000)})
	te2.org.put("/long.js", memObject{body: text(2000), cacheControl: "max-age=3600"})
	te2.clock.Advance(10 * time.Minute)
	if cs := te2.get(t, "GET", "/long.js").Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edge; hit") {
		t.Fatalf("fresh copy after restart: Cache-Status %q", cs)
	}
	if cs := te2.get(t, "GET", "/short.json").Header.Get("Cache-Status"); !strings.Contains(cs, "fwd-status=304") {
		t.Fatalf("expired copy after restart: Cache-Status %q, want a 304 revalidation", cs)
	}
	if got := te2.org.gets.Load(); got != 1 {
		t.Fatalf("origin requests after restart %d, want 1 (the conditional one)", got)
	}
}

// TestCloseStopsBackgroundWork: Close cancels a background revalidation
// that is waiting on the origin, and keep-warm, and waits for them; after
// it, stale requests are still answered but start no background work.
func TestCloseStopsBackgroundWork(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Hour, MustServe: []string{"/t.json"}}, cache.Config{})
	te.org.put("/t.json", memObject{body: text(2000)})
	te.get(t, "GET", "/t.json")
	te.cache.Wait()
	te.h.KeepWarm(time.Hour) // one pass now (a hit: nothing to do), then idle

	te.org.gate = make(chan struct{})
	te.org.entered = make(chan struct{})
	te.clock.Advance(2 * time.Minute)
	if res := te.get(t, "GET", "/t.json"); !strings.Contains(res.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("Cache-Status %q", res.Header.Get("Cache-Status"))
	}
	<-te.org.entered // the revalidation waits on the origin
	te.h.Close()     // returns although the origin never answers
	gets := te.org.gets.Load()
	te.clock.Advance(time.Minute)
	if res := te.get(t, "GET", "/t.json"); res.StatusCode != 200 {
		t.Fatalf("after Close: status %d", res.StatusCode)
	}
	if n := te.org.gets.Load(); n != gets {
		t.Errorf("a request after Close started %d background fetches", n-gets)
	}
	close(te.org.gate)
}

// TestConfigChangeAppliesToCachedObjects: the windows that come from the
// edge's configuration are applied when an object is served, not frozen
// when it was stored: after a restart with a shorter stale-if-error, or a
// longer TTL, objects cached before follow the new values.
func TestConfigChangeAppliesToCachedObjects(t *testing.T) {
	dir := t.TempDir()
	te := newTestEdge(t, Site{TTL: time.Minute, StaleIfError: 24 * time.Hour}, cache.Config{Dir: dir})
	te.org.put("/a.js", memObject{body: text(3000)})
	te.org.put("/b.js", memObject{body: text(3000)})
	te.get(t, "GET", "/a.js")
	te.get(t, "GET", "/b.js")
	te.cache.Close()
	start := te.clock.Now()

	// Restarted with stale-if-error 90s: three minutes after the fetch
	// (two past expiry) the copy is no longer servable when S3 fails.
	te = newTestEdge(t, Site{TTL: time.Minute, StaleIfError: 90 * time.Second}, cache.Config{Dir: dir})
	te.org.down.Store(true)
	te.clock.Set(start.Add(3 * time.Minute))
	if res := te.get(t, "GET", "/a.js"); res.StatusCode != 502 {
		t.Fatalf("past the new stale-if-error: status %d, Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
	}
	te.cache.Close()

	// Restarted with a TTL of 10m: the copy is fresh again.
	te = newTestEdge(t, Site{TTL: 10 * time.Minute}, cache.Config{Dir: dir})
	te.org.down.Store(true)
	te.clock.Set(start.Add(3 * time.Minute))
	if res := te.get(t, "GET", "/b.js"); res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Cache-Status"), "edge; hit; ttl=420") {
		t.Fatalf("with the longer TTL: status %d, Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
	}
}
