package edge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/origin"
)

// s3Edge is an edge whose origin is the real S3 server behind a proxy
// that counts the GETs it forwards, so coalescing is proven at the S3
// side, not by the edge's own counters.
type s3Edge struct {
	srv   *s3test.Server
	proxy *s3test.FaultProxy
	dir   string
	h     *Handler
	cache *cache.Cache
	logs  *logs
}

func startS3Edge(t *testing.T) *s3Edge {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	e := &s3Edge{srv: srv, proxy: s3test.NewFaultProxy(t, srv.Endpoint()), dir: t.TempDir(), logs: &logs{}}
	e.open(t)
	return e
}

// open starts (or restarts) the edge on e.dir.
func (e *s3Edge) open(t *testing.T) {
	t.Helper()
	o, err := origin.Parse(context.Background(), e.proxy.OriginURL("assets", "site"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cache.Config{Dir: e.dir, Log: slog.New(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, err := NewHandler(Options{Cache: c, Sites: []Site{withDefaults(Site{Origin: o})}, ErrorLog: slog.New(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	e.h, e.cache = h, c
}

func (e *s3Edge) get(t *testing.T, path string, hdr ...string) *http.Response {
	t.Helper()
	return serve(e.h, "GET", path, hdr...)
}

func TestS3EndToEnd(t *testing.T) {
	e := startS3Edge(t)
	js := text(40 << 10)
	e.srv.Put(t, "assets", "site/widget.js", js, s3test.PutOptions{ContentType: "application/javascript"})
	e.srv.Put(t, "assets", "site/stored.js", gzipBytes(t, js), s3test.PutOptions{ContentType: "application/javascript", ContentEncoding: "gzip"})
	e.srv.Put(t, "assets", "site/tenants/acme.json", text(1500), s3test.PutOptions{})
	e.srv.Put(t, "assets", "outside.js", js, s3test.PutOptions{})

	for _, tc := range []struct {
		path, accept, wantEncoding string
	}{
		{"/widget.js", "gzip", "gzip"},
		{"/widget.js", "", ""},
		{"/widget.js", "br, gzip", "br"},
		{"/stored.js", "gzip", "gzip"},
		{"/stored.js", "", ""},
		{"/stored.js", "zstd", "zstd"},
	} {
		res := e.get(t, tc.path, "Accept-Encoding", tc.accept)
		if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != tc.wantEncoding {
			t.Fatalf("%s %q: status %d encoding %q, want 200 %q", tc.path, tc.accept, res.StatusCode, res.Header.Get("Content-Encoding"), tc.wantEncoding)
		}
		if !bytes.Equal(decode(t, res), js) {
			t.Fatalf("%s %q: decoded bytes differ from the original", tc.path, tc.accept)
		}
	}
	// gzip clients get the stored gzip object exactly as S3 holds it.
	if got := readBody(t, e.get(t, "/stored.js", "Accept-Encoding", "gzip")); !bytes.Equal(got, gzipBytes(t, js)) {
		t.Fatal("stored gzip object was not passed through as stored")
	}
	if ct := e.get(t, "/tenants/acme.json").Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type from the extension: %q", ct)
	}
	if res := e.get(t, "/../outside.js"); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("escaping the prefix: status %d", res.StatusCode)
	}
	if res := e.get(t, "/missing.js"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("missing: status %d", res.StatusCode)
	}
	// One GET per object reached S3, whatever the codings asked for.
	if got := e.proxy.GetsFor(""); got != 4 {
		t.Fatalf("S3 saw %d GETs, want 4 (widget, stored, acme, missing)", got)
	}
}

func TestS3CoalescedFill(t *testing.T) {
	e := startS3Edge(t)
	e.srv.Put(t, "assets", "site/cold.js", text(100<<10), s3test.PutOptions{ContentType: "text/javascript"})
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	e.proxy.SetFault(s3test.Fault{Hold: hold, Held: held})
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := e.get(t, "/cold.js", "Accept-Encoding", "gzip")
			if res.StatusCode != 200 {
				errs <- fmt.Sprint("status ", res.StatusCode)
			}
		}()
	}
	<-held
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := e.proxy.GetsFor(""); got != 1 {
		t.Fatalf("S3 saw %d GETs for 100 concurrent requests, want 1", got)
	}
}

func TestS3RestartWithOriginDown(t *testing.T) {
	e := startS3Edge(t)
	js := text(20 << 10)
	e.srv.Put(t, "assets", "site/w.js", js, s3test.PutOptions{ContentType: "text/javascript"})
	e.srv.Put(t, "assets", "site/c.json", text(3000), s3test.PutOptions{})
	for _, p := range []string{"/w.js", "/c.json"} {
		if res := e.get(t, p, "Accept-Encoding", "gzip"); res.StatusCode != 200 {
			t.Fatalf("%s: status %d", p, res.StatusCode)
		}
	}
	e.cache.Close()
	e.srv.Stop()

	e.open(t)
	before := e.proxy.GetsFor("")
	for _, ae := range []string{"gzip", ""} {
		res := e.get(t, "/w.js", "Accept-Encoding", ae)
		if res.StatusCode != 200 || !bytes.Equal(decode(t, res), js) {
			t.Fatalf("after restart (%q): status %d", ae, res.StatusCode)
		}
	}
	if res := e.get(t, "/c.json"); res.StatusCode != 200 {
		t.Fatalf("config after restart: status %d", res.StatusCode)
	}
	if got := e.proxy.GetsFor(""); got != before {
		t.Fatalf("S3 asked %d times after restart, want 0", got-before)
	}
}

func TestCorruptDiskEntryRefetched(t *testing.T) {
	e := startS3Edge(t)
	js := text(20 << 10)
	e.srv.Put(t, "assets", "site/w.js", js, s3test.PutOptions{ContentType: "text/javascript"})
	if res := e.get(t, "/w.js"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.cache.Close()
	// Flip a byte near the end of every file that holds body bytes.
	corrupted := 0
	filepath.WalkDir(e.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) < 10000 {
			return err
		}
		b[len(b)-100] ^= 0xff
		corrupted++
		return os.WriteFile(path, b, 0o644)
	})
	if corrupted == 0 {
		t.Fatal("found no body file to corrupt")
	}
	e.open(t)
	res := e.get(t, "/w.js")
	if got := readBody(t, res); res.StatusCode != 200 || !bytes.Equal(got, js) {
		t.Fatalf("after corruption: status %d, body equal %v", res.StatusCode, bytes.Equal(got, js))
	}
	if !strings.Contains(res.Header.Get("Cache-Status"), "fwd=miss") {
		t.Fatalf("Cache-Status %q: the corrupt copy should have been refetched", res.Header.Get("Cache-Status"))
	}
	if len(e.logs.matching("dropped a corrupt cache file")) == 0 {
		t.Error("the corrupt file was dropped without a log record")
	}
}
