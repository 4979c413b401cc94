package edge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/origin"
)

// smallFilesystem mounts a tmpfs of size bytes on a new directory for
// the test, or skips when mounting is not allowed (not root, or a
// container without the capability).
func smallFilesystem(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (%v: %s): the disk-fault tests of package cache cover this case", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDiskUnderLoad: with the cache on a real filesystem that fills
// up under load, every request is still answered from memory and the
// origin; S3 sees one GET per object, and after expiry one revalidation
// per object, not one per request; /healthz stays 200 and says the disk
// is degraded.
func TestFullDiskUnderLoad(t *testing.T) {
	dir := smallFilesystem(t, "256k")
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	const objects = 40
	bodies := make([][]byte, objects)
	for i := range objects {
		bodies[i] = text(20<<10 + i)
		srv.Put(t, "assets", fmt.Sprintf("site/o%02d.js", i), bodies[i], s3test.PutOptions{ContentType: "text/javascript"})
	}
	s3o, err := origin.Parse(context.Background(), proxy.OriginURL("assets", "site"))
	if err != nil {
		t.Fatal(err)
	}
	clock := newClock()
	l := &logs{}
	c, err := cache.New(cache.Config{Dir: dir, Log: newTestLogger(l), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, err := NewHandler(Options{Cache: c, Now: clock.Now, ErrorLog: newTestLogger(l),
		Sites: []Site{withDefaults(Site{Origin: s3o, TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour, MustServe: []string{"/o00.js"}})}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	load := func() {
		t.Helper()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range objects {
					j := (i + w*5) % objects
					ae := []string{"", "gzip", "br", "zstd"}[(i+w)%4]
					res := serve(h, "GET", fmt.Sprintf("/o%02d.js", j), "Accept-Encoding", ae)
					if res.StatusCode != 200 {
						t.Errorf("o%02d (%q): status %d", j, ae, res.StatusCode)
						return
					}
					if got := decode(t, res); !bytes.Equal(got, bodies[j]) {
						t.Errorf("o%02d (%q): wrong body", j, ae)
						return
					}
				}
			}()
		}
		wg.Wait()
		c.Wait()
	}
	load()
	if n := proxy.Requests(); n != objects {
		t.Fatalf("S3 saw %d requests for %d objects", n, objects)
	}
	res := serve(h.AdminHandler(""), "GET", "/healthz?verbose")
	body := string(readBody(t, res))
	if res.StatusCode != 200 || !strings.Contains(body, "disk: degraded") || !strings.Contains(body, "no space left on device") {
		t.Fatalf("/healthz?verbose: %d\n%s", res.StatusCode, body)
	}
	if s := c.Stats(); !s.DiskDegraded || s.DiskWriteErrors == 0 {
		t.Fatalf("stats: %+v", s)
	}

	// Expired: each object is revalidated once (a 304), and the new
	// freshness holds in memory although the disk cannot take it.
	clock.Advance(2 * time.Minute)
	load()
	load()
	if n := proxy.Requests(); n != 2*objects {
		t.Fatalf("S3 saw %d requests after expiry, want %d (one revalidation per object)", n-objects, objects)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}
