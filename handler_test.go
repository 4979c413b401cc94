package edge

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decode undoes a response's Content-Encoding with independent decoders
// (the standard library's gzip, brotli's and zstd's readers).
func decode(t testing.TB, res *http.Response) []byte {
	t.Helper()
	body := readBody(t, res)
	var r io.Reader
	switch enc := res.Header.Get("Content-Encoding"); enc {
	case "":
		return body
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", res.Header.Get("Content-Encoding"), err)
	}
	return out
}

func TestEncodingNegotiation(t *testing.T) {
	js := text(20 << 10)
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/plain.js", memObject{body: js, contentType: "application/javascript"})
	te.org.put("/stored-gzip.js", memObject{body: gzipBytes(t, js), contentType: "application/javascript", encoding: "gzip"})

	for _, path := range []string{"/plain.js", "/stored-gzip.js"} {
		for _, tc := range []struct {
			accept string // "-" means no header
			want   string
		}{
			{"-", ""},
			{"gzip", "gzip"},
			{"gzip, deflate, br", "br"},
			{"br;q=0.5, zstd", "zstd"},
			{"identity", ""},
			{"*;q=0, gzip;q=0", ""},
			{"GZIP ; Q=1", "gzip"},
			{"garbage;;;,,", ""},
			{"", ""},
		} {
			t.Run(path+"/"+tc.accept, func(t *testing.T) {
				var res *http.Response
				if tc.accept == "-" {
					res = te.get(t, "GET", path)
				} else {
					res = te.get(t, "GET", path, "Accept-Encoding", tc.accept)
				}
				if res.StatusCode != 200 {
					t.Fatalf("status %d", res.StatusCode)
				}
				if got := res.Header.Get("Content-Encoding"); got != tc.want {
					t.Fatalf("Content-Encoding %q, want %q", got, tc.want)
				}
				if got := res.Header.Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
					t.Fatalf("Vary %q, want exactly one Accept-Encoding", got)
				}
				if !bytes.Equal(decode(t, res), js) {
					t.Fatal("decoded body differs from the original")
				}
			})
		}
	}
	// The object stored gzip goes to gzip clients byte for byte as stored.
	res := te.get(t, "GET", "/stored-gzip.js", "Accept-Encoding", "gzip")
	if got, want := readBody(t, res), gzipBytes(t, js); !bytes.Equal(got, want) {
		t.Fatal("gzip client did not get the stored gzip bytes")
	}
}

func TestVariantETagsAndConditionals(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/w.js", memObject{body: text(8 << 10), contentType: "text/javascript"})

	etags := map[string]string{}
	for _, ae := range []string{"identity", "gzip", "br", "zstd"} {
		res := te.get(t, "GET", "/w.js", "Accept-Encoding", ae)
		etag := res.Header.Get("Etag")
		if etag == "" || strings.HasPrefix(etag, "W/") {
			t.Fatalf("%s: ETag %q, want a strong ETag", ae, etag)
		}
		for other, e := range etags {
			if e == etag {
				t.Fatalf("%s and %s share ETag %s", ae, other, etag)
			}
		}
		etags[ae] = etag
	}
	for ae, etag := range etags {
		res := te.get(t, "GET", "/w.js", "Accept-Encoding", ae, "If-None-Match", etag)
		if res.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its own ETag: status %d, want 304", ae, res.StatusCode)
		}
		if got := res.Header.Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
			t.Fatalf("304 Vary %q, want exactly one Accept-Encoding", got)
		}
		if res.Header.Get("Etag") != etag {
			t.Fatalf("304 ETag %q, want %q", res.Header.Get("Etag"), etag)
		}
	}
	// A gzip client presenting the identity variant's ETag gets the gzip body.
	res := te.get(t, "GET", "/w.js", "Accept-Encoding", "gzip", "If-None-Match", etags["identity"])
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("other variant's ETag: status %d encoding %q, want 200 gzip", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	// If-Modified-Since at the object's Last-Modified: 304.
	res = te.get(t, "GET", "/w.js", "If-Modified-Since", "Fri, 02 Jan 2026 03:04:05 GMT")
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-Modified-Since: status %d, want 304", res.StatusCode)
	}
}

func TestVariantDerivedOnce(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/w.js", memObject{body: text(64 << 10), contentType: "text/javascript"})
	for i := 0; i < 20; i++ {
		for _, ae := range []string{"gzip", "br", "zstd", ""} {
			res := te.get(t, "GET", "/w.js", "Accept-Encoding", ae)
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			te.cache.Wait()
		}
	}
	for c, got := range te.cache.Stats().Derivations {
		want := uint64(1)
		if negotiate.Coding(c) == negotiate.Identity {
			want = 0 // the stored variant
		}
		if got != want {
			t.Errorf("%v derived %d times, want %d", negotiate.Coding(c), got, want)
		}
	}
	if got := te.org.gets.Load(); got != 1 {
		t.Errorf("origin requests %d, want 1", got)
	}
}

func TestNotCompressed(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	png := append([]byte("\x89PNG\r\n\x1a\n"), text(4<<10)...)
	te.org.put("/logo.png", memObject{body: png, contentType: "image/png"})
	te.org.put("/tiny.json", memObject{body: []byte(`{"a":1}`)})
	te.org.put("/nt.js", memObject{body: text(4 << 10), cacheControl: "public, no-transform, max-age=60"})
	te.org.put("/icon.svg", memObject{body: text(4 << 10), contentType: "image/svg+xml"})
	te.org.put("/font.woff2", memObject{body: text(4 << 10)})
	for _, tc := range []struct {
		path, want string
	}{
		{"/logo.png", ""},
		{"/tiny.json", ""},
		{"/nt.js", ""},
		{"/font.woff2", ""},
		{"/icon.svg", "br"},
	} {
		res := te.get(t, "GET", tc.path, "Accept-Encoding", "gzip, br")
		if got := res.Header.Get("Content-Encoding"); got != tc.want {
			t.Errorf("%s: Content-Encoding %q, want %q", tc.path, got, tc.want)
		}
		if tc.want == "" && res.Header.Get("Vary") != "" {
			t.Errorf("%s: Vary %q on an object served one way only", tc.path, res.Header.Get("Vary"))
		}
	}
	if ct := te.get(t, "GET", "/tiny.json").Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type from the extension: %q", ct)
	}
}

func TestMethods(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/a.js", memObject{body: text(2048)})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"} {
		res := te.get(t, m, "/a.js")
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d Allow %q", m, res.StatusCode, res.Header.Get("Allow"))
		}
	}
	res := te.get(t, "HEAD", "/a.js", "Accept-Encoding", "gzip")
	if res.StatusCode != 200 || len(readBody(t, res)) != 0 || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: status %d, Content-Length %q", res.StatusCode, res.Header.Get("Content-Length"))
	}
	if te.org.gets.Load() != 1 {
		t.Errorf("origin requests %d, want 1 (only the HEAD)", te.org.gets.Load())
	}
}

func TestRange(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	body := text(10000)
	te.org.put("/r.js", memObject{body: body})
	te.org.put("/rg.js", memObject{body: gzipBytes(t, body), encoding: "gzip"})
	for _, path := range []string{"/r.js", "/rg.js"} {
		res := te.get(t, "GET", path, "Range", "bytes=100-199", "Accept-Encoding", "gzip, br")
		if res.StatusCode != http.StatusPartialContent || res.Header.Get("Content-Encoding") != "" {
			t.Fatalf("%s: status %d encoding %q, want 206 identity", path, res.StatusCode, res.Header.Get("Content-Encoding"))
		}
		if got := readBody(t, res); !bytes.Equal(got, body[100:200]) {
			t.Fatalf("%s: range body differs", path)
		}
		res = te.get(t, "GET", path, "Range", "bytes=0-9,20-29", "Accept-Encoding", "gzip")
		_, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if res.StatusCode != http.StatusPartialContent || err != nil {
			t.Fatalf("%s multi-range: status %d type %q", path, res.StatusCode, res.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(res.Body, params["boundary"])
		for _, want := range [][]byte{body[0:10], body[20:30]} {
			part, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := io.ReadAll(part); !bytes.Equal(got, want) {
				t.Fatalf("%s multi-range: part %q, want %q", path, got, want)
			}
		}
		res = te.get(t, "GET", path, "Range", "bytes=20000-")
		if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("%s: unsatisfiable range: status %d", path, res.StatusCode)
		}
	}
}

func TestCacheStatusAgeAndTTL(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond}, cache.Config{})
	te.org.put("/t.json", memObject{body: text(2000)})
	res := te.get(t, "GET", "/t.json")
	if cs := res.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=miss") || res.Header.Get("Age") != "0" {
		t.Fatalf("first: Cache-Status %q Age %q", cs, res.Header.Get("Age"))
	}
	te.cache.Wait()
	te.clock.Advance(40 * time.Second)
	res = te.get(t, "GET", "/t.json")
	if cs := res.Header.Get("Cache-Status"); cs != "edge; hit; ttl=20" || res.Header.Get("Age") != "40" {
		t.Fatalf("hit: Cache-Status %q Age %q", cs, res.Header.Get("Age"))
	}
	te.clock.Advance(30 * time.Second) // past the TTL: revalidated with the origin (304)
	res = te.get(t, "GET", "/t.json")
	if cs := res.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd-status=304") || res.Header.Get("Age") != "0" {
		t.Fatalf("expired: Cache-Status %q Age %q", cs, res.Header.Get("Age"))
	}
	if n := te.org.gets.Load(); n != 2 {
		t.Fatalf("origin requests %d, want 2", n)
	}
}

func TestFreshnessFromOrigin(t *testing.T) {
	for _, tc := range []struct {
		name, cc   string
		rule       *Duration // nil: no ttl in the rule
		after      time.Duration
		wantOrigin int64 // origin requests after two requests `after` apart
	}{
		{"max-age keeps", "max-age=100", nil, 90 * time.Second, 1},
		{"max-age expires", "max-age=100", nil, 110 * time.Second, 2},
		{"s-maxage wins", "max-age=1000, s-maxage=10", nil, 20 * time.Second, 2},
		{"no-store never cached", "no-store", nil, 0, 2},
		{"private never cached", "private, max-age=600", nil, 0, 2},
		{"no-cache revalidates", "no-cache", nil, 0, 2},
		{"rule ttl when origin silent", "", DurationOf(time.Hour), 50 * time.Minute, 1},
		{"rule ttl 0 means revalidate", "", DurationOf(0), time.Second, 2},
		{"site ttl when origin silent", "", nil, 4 * time.Minute, 1},
		{"site ttl expires", "", nil, 6 * time.Minute, 2},
		{"malformed max-age ignored", "max-age=abc", nil, 6 * time.Minute, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No stale-while-revalidate: an expired copy is refetched in the
			// foreground, so the count is exact.
			te := newTestEdge(t, Site{StaleWhileRevalidate: time.Nanosecond, Rules: []Rule{{Prefix: "/r/", TTL: tc.rule}}}, cache.Config{})
			te.org.put("/r/x.json", memObject{body: text(3000), cacheControl: tc.cc})
			for i := 0; i < 2; i++ {
				if res := te.get(t, "GET", "/r/x.json"); res.StatusCode != 200 {
					t.Fatalf("status %d", res.StatusCode)
				}
				te.cache.Wait()
				te.clock.Advance(tc.after)
			}
			if got := te.org.gets.Load(); got != tc.wantOrigin {
				t.Fatalf("origin requests %d, want %d", got, tc.wantOrigin)
			}
		})
	}
}

func TestCacheControlForBrowsers(t *testing.T) {
	te := newTestEdge(t, Site{Rules: []Rule{
		{Prefix: "/widget/", CacheControl: "public, max-age=31536000, immutable"},
		{Prefix: "/tenants/", CacheControl: "public, max-age=60"},
	}}, cache.Config{})
	te.org.put("/widget/v1/w.js", memObject{body: text(2000), cacheControl: "max-age=5"})
	te.org.put("/tenants/a.json", memObject{body: text(2000)})
	te.org.put("/other.js", memObject{body: text(2000), cacheControl: "public, max-age=300"})
	te.org.put("/bare.js", memObject{body: text(2000)})
	for path, want := range map[string]string{
		"/widget/v1/w.js": "public, max-age=31536000, immutable",
		"/tenants/a.json": "public, max-age=60",
		"/other.js":       "public, max-age=300",
		"/bare.js":        "",
	} {
		if got := te.get(t, "GET", path).Header.Get("Cache-Control"); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", path, got, want)
		}
	}
}

func TestNotFoundCachedBriefly(t *testing.T) {
	te := newTestEdge(t, Site{NegativeTTL: 10 * time.Second}, cache.Config{})
	for i := 0; i < 5; i++ {
		if res := te.get(t, "GET", "/missing.js"); res.StatusCode != 404 {
			t.Fatalf("status %d", res.StatusCode)
		}
		te.cache.Wait()
	}
	if got := te.org.gets.Load(); got != 1 {
		t.Fatalf("origin requests %d, want 1", got)
	}
	te.clock.Advance(11 * time.Second)
	te.org.put("/missing.js", memObject{body: text(2000)})
	if res := te.get(t, "GET", "/missing.js"); res.StatusCode != 200 {
		t.Fatalf("after the negative TTL: status %d", res.StatusCode)
	}
}

func TestHostilePaths(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/ok.js", memObject{body: text(2000)})
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/ok.js", 200},
		{"//ok.js", 200},
		{"/%2e%2e/etc/passwd", 400},
		{"/a/../ok.js", 400},
		{"/a/%2E%2E/%2e%2e/x", 400},
		{"/./ok.js", 400},
		{"/a%00b", 400},
		{"/a%5cb", 400},
		{"/a%0d%0aSet-Cookie:x", 400},
		{"/" + strings.Repeat("a", 2000), 414},
		{"/?" + strings.Repeat("q", 9000), 414},
		{"/nope/", 404},
	} {
		res := te.get(t, "GET", tc.target)
		if res.StatusCode != tc.want {
			t.Errorf("%.40q: status %d, want %d", tc.target, res.StatusCode, tc.want)
		}
		if tc.want >= 400 {
			if b := readBody(t, res); bytes.Contains(b, []byte("mem")) || bytes.Contains(b, []byte("/")) {
				t.Errorf("%.40q: body leaks detail: %q", tc.target, b)
			}
		}
	}
}

func TestCoalescedFill(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/cold.js", memObject{body: text(50 << 10)})
	te.org.gate = make(chan struct{})
	te.org.entered = make(chan struct{})
	const n = 100
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- te.get(t, "GET", "/cold.js", "Accept-Encoding", "gzip").StatusCode
		}()
	}
	// Let the fill through only once the origin has been asked: every
	// other request is then waiting on it (or will find it cached).
	<-te.org.entered
	close(te.org.gate)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if got := te.org.gets.Load(); got != 1 {
		t.Fatalf("origin requests %d, want 1", got)
	}
}

func TestOriginDownServesCachedAndFailsCleanly(t *testing.T) {
	te := newTestEdge(t, Site{TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond}, cache.Config{})
	te.org.put("/w.js", memObject{body: text(4000)})
	if res := te.get(t, "GET", "/w.js"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	te.cache.Wait()
	te.org.down.Store(true)
	te.clock.Advance(2 * time.Minute)
	res := te.get(t, "GET", "/w.js", "Accept-Encoding", "gzip")
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Cache-Status"), "stale") {
		t.Fatalf("stale copy: status %d Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
	}
	res = te.get(t, "GET", "/uncached.js")
	if b := readBody(t, res); res.StatusCode != http.StatusBadGateway || bytes.Contains(b, []byte("refused")) {
		t.Fatalf("uncached: status %d body %q, want a bare 502", res.StatusCode, b)
	}
}

func TestLargeObjectNotHeldInMemory(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{MaxMemoryObject: 64 << 10})
	big := text(1 << 20)
	te.org.put("/big.js", memObject{body: big})
	for i := 0; i < 3; i++ {
		res := te.get(t, "GET", "/big.js")
		if got := readBody(t, res); !bytes.Equal(got, big) {
			t.Fatalf("body differs (len %d)", len(got))
		}
		te.cache.Wait()
	}
	if got := te.cache.Stats().MemoryBytes; got >= 64<<10 {
		t.Fatalf("memory tier holds %d bytes: the 1 MiB object went to memory", got)
	}
	if te.org.gets.Load() != 1 {
		t.Fatalf("origin requests %d, want 1", te.org.gets.Load())
	}
	res := te.get(t, "GET", "/big.js", "Range", "bytes=1000-1999")
	if got := readBody(t, res); res.StatusCode != 206 || !bytes.Equal(got, big[1000:2000]) {
		t.Fatalf("range from disk: status %d", res.StatusCode)
	}
}

func TestDiskSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	js := text(30 << 10)
	te := newTestEdge(t, Site{}, cache.Config{Dir: dir})
	te.org.put("/w.js", memObject{body: js})
	te.get(t, "GET", "/w.js", "Accept-Encoding", "br")
	te.cache.Close()

	// A new process: same directory, origin unreachable.
	te2 := newTestEdge(t, Site{}, cache.Config{Dir: dir})
	te2.org.down.Store(true)
	for _, ae := range []string{"br", ""} {
		res := te2.get(t, "GET", "/w.js", "Accept-Encoding", ae)
		if res.StatusCode != 200 || !bytes.Equal(decode(t, res), js) {
			t.Fatalf("after restart (%q): status %d", ae, res.StatusCode)
		}
	}
	if te2.org.gets.Load() != 0 {
		t.Fatalf("origin asked %d times after restart", te2.org.gets.Load())
	}
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestPlainResponseHeaders(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	body := text(3000)
	te.org.put("/a.js", memObject{body: body})
	for _, method := range []string{"GET", "HEAD"} {
		res := te.get(t, method, "/a.js")
		if res.Header.Get("Content-Length") != "3000" || res.Header.Get("Accept-Ranges") != "bytes" || res.Header.Get("Last-Modified") != "Fri, 02 Jan 2026 03:04:05 GMT" {
			t.Fatalf("%s: headers %v", method, res.Header)
		}
		if got := readBody(t, res); method == "GET" && !bytes.Equal(got, body) || method == "HEAD" && len(got) != 0 {
			t.Fatalf("%s: %d body bytes", method, len(got))
		}
	}
}

// TestDiskBodyOverTCP serves a body kept on disk only through a real
// connection, where it goes out with sendfile.
func TestDiskBodyOverTCP(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{MaxMemoryObject: 4 << 10})
	big := text(3 << 20)
	te.org.put("/big.js", memObject{body: big})
	srv := httptest.NewServer(te.h)
	defer srv.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		req, _ := http.NewRequest("GET", srv.URL+"/big.js", nil)
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		got := readBody(t, res)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Equal(got, big) {
			t.Fatalf("request %d: status %d, %d bytes", i, res.StatusCode, len(got))
		}
	}
}
