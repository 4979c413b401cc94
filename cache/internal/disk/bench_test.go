package disk

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkGet opens an entry already verified and reads its body:
// the disk tier's hit path.
func BenchmarkGet(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("body=%dKiB", size>>10), func(b *testing.B) {
			d := testOpen(b, b.TempDir(), 0)
			const key = "/tenant/config.json\x00identity"
			meta := []byte(`{"version":1,"etag":"\"abc\"","expires":"2030-01-01T00:00:00Z"}`)
			testPut(b, d, key, meta, testBody(size, key))
			if _, _, err := testGet(d, key); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				e, err := d.Get(key)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(e.Body, buf); err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
		})
	}
}

// BenchmarkGetParallel is BenchmarkGet from all cores over 1,000
// keys.
func BenchmarkGetParallel(b *testing.B) {
	d := testOpen(b, b.TempDir(), 0)
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("/tenant/%d/config.json\x00identity", i)
		testPut(b, d, keys[i], []byte(`{"version":1}`), testBody(1<<10, keys[i]))
		if _, _, err := testGet(d, keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 1<<10)
		i := 0
		for pb.Next() {
			e, err := d.Get(keys[i%n])
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.ReadFull(e.Body, buf)
			e.Close()
			i++
		}
	})
}

// BenchmarkGetFirst is the first Get of an entry in a process, which
// streams the body through its checksum.
func BenchmarkGetFirst(b *testing.B) {
	const size = 1 << 20
	d := testOpen(b, b.TempDir(), 0)
	testPut(b, d, "/widget.js", nil, testBody(size, "w"))
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		d.mu.Lock()
		d.index["/widget.js"].verified = false
		d.mu.Unlock()
		e, err := d.Get("/widget.js")
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
}

// BenchmarkPut stores a 1 KiB body: temp file, one write, rename.
func BenchmarkPut(b *testing.B) {
	d := testOpen(b, b.TempDir(), 0)
	body := testBody(1<<10, "p")
	meta := []byte(`{"version":1,"etag":"\"abc\""}`)
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.Put(fmt.Sprintf("/k/%d", i%1000), meta, bytes.NewReader(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkOpen measures indexing at start-up: 100,000 entries of
// ~1 KiB body and ~100 B meta (the page cache is warm after the fixture
// is written). Building the fixture takes some seconds; it is built once,
// in the parent benchmark, and only when -bench selects this benchmark.
func BenchmarkOpen(b *testing.B) {
	const entries = 100_000
	dir := b.TempDir()
	start := time.Now()
	benchFixture(b, dir, entries)
	b.Logf("fixture of %d entries written in %v", entries, time.Since(start).Round(time.Millisecond))
	b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := openSync(dir, 0)
			if err != nil {
				b.Fatal(err)
			}
			if s := d.Stats(); s.Entries != entries || s.Corrupt != 0 {
				b.Fatalf("indexed %+v, want %d entries", s, entries)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/open")
	})
	// What a restarted edge waits for: open the tier and read one entry,
	// while the scan runs in the background.
	b.Run(fmt.Sprintf("first-hit/entries=%d", entries), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := Open(dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			e, err := d.Get("/tenants/054321/config.json\x00identity")
			if err != nil {
				b.Fatal(err)
			}
			e.Close()
			b.StopTimer()
			<-d.Indexed() // do not let scans pile up
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/first-hit")
	})
}

// benchFixture writes n valid files straight to dir (faster than Put).
func benchFixture(b *testing.B, dir string, n int) {
	const writers = 4
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			body := testBody(1<<10, "fixture")
			for i := w; i < n; i += writers {
				key := fmt.Sprintf("/tenants/%06d/config.json\x00identity", i)
				meta := fmt.Appendf(nil, `{"version":%d,"etag":"\"%08x\"","expires":"2030-01-01T00:00:00Z"}`, i, i)
				h := hashName(key)
				path := filepath.Join(dir, h[0:2], h[2:4], h)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					errs <- err
					return
				}
				if err := os.WriteFile(path, fuzzFile(key, meta, body, int64(i)), 0o600); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
