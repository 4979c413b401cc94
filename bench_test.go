package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgecdn/edge/cache"
)

// discard is a ResponseWriter that keeps nothing, so benchmarks measure
// the handler rather than a recorder. Its header map is reused between
// requests the way net/http reuses a connection's.
type discard struct {
	h      http.Header
	status int
	n      int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// ReadFrom copies through io.Discard's pooled buffer, as net/http's
// response copies through its own pooled buffer.
func (d *discard) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	d.n += int(n)
	return n, err
}

func (d *discard) reset() {
	clear(d.h)
	d.status, d.n = 0, 0
}

func benchmarkHit(b *testing.B, cfg cache.Config, path, accept string, size int) {
	te := newTestEdge(b, Site{}, cfg)
	te.org.put(path, memObject{body: text(size)})
	benchmarkHitOn(b, te, path, accept, size, nil)
}

// benchmarkHitOn measures hits of path on te (whose origin holds it).
// setup, when set, runs after the object is cached, before the timer
// starts.
func benchmarkHitOn(b *testing.B, te *testEdge, path, accept string, size int, setup func()) {
	r := httptest.NewRequest("GET", path, nil)
	if accept != "" {
		r.Header.Set("Accept-Encoding", accept)
	}
	w := &discard{h: http.Header{}}
	for range 3 { // fill, derive, settle into memory
		w.reset()
		te.h.ServeHTTP(w, r)
		te.cache.Wait()
	}
	if w.status != 0 && w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
	gets := te.org.gets.Load()
	if setup != nil {
		setup()
	}
	b.SetBytes(int64(w.n))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w.reset()
		te.h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if n := te.org.gets.Load(); n != gets || gets != 1 {
		b.Fatalf("origin requests %d, want 1", n)
	}
}

// BenchmarkMemoryHit: a tenant config (1.5 KiB) and the widget (175 KB)
// from the memory tier, gzip-encoded and plain.
func BenchmarkMemoryHit(b *testing.B) {
	b.Run("config/gzip", func(b *testing.B) { benchmarkHit(b, cache.Config{}, "/tenants/a.json", "gzip, deflate, br", 1500) })
	b.Run("widget/br", func(b *testing.B) { benchmarkHit(b, cache.Config{}, "/widget.js", "gzip, deflate, br", 175<<10) })
	b.Run("widget/identity", func(b *testing.B) { benchmarkHit(b, cache.Config{}, "/widget.js", "", 175<<10) })
}

// BenchmarkDiskHit: the same objects with bodies kept on disk only
// (object records stay in memory; each request opens and reads the file).
func BenchmarkDiskHit(b *testing.B) {
	cfg := cache.Config{MaxMemoryObject: 1}
	b.Run("config/gzip", func(b *testing.B) { benchmarkHit(b, cfg, "/tenants/a.json", "gzip, deflate, br", 1500) })
	b.Run("widget/br", func(b *testing.B) { benchmarkHit(b, cfg, "/widget.js", "gzip, deflate, br", 175<<10) })
}
