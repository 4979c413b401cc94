package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/origin"
)

// scriptOrigin is a real HTTP origin server for the tests: each path is
// answered by the handler the test gives it, and every request is
// recorded as the origin saw it.
type scriptOrigin struct {
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	seen   []seenRequest
}

// seenRequest is a request as the origin received it.
type seenRequest struct {
	method, uri string
	header      http.Header
	body        string
}

func newScriptOrigin(t testing.TB) *scriptOrigin {
	t.Helper()
	o := &scriptOrigin{routes: map[string]http.HandlerFunc{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		o.mu.Lock()
		o.seen = append(o.seen, seenRequest{r.Method, r.RequestURI, r.Header.Clone(), string(body)})
		f := o.routes[r.URL.Path]
		o.mu.Unlock()
		if f == nil {
			http.NotFound(w, r)
			return
		}
		f(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// handle sets the answer for path.
func (o *scriptOrigin) handle(path string, f http.HandlerFunc) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.routes[path] = f
}

// answer sets a fixed answer for path: status, header pairs, body.
func (o *scriptOrigin) answer(path string, status int, body string, hdr ...string) {
	o.handle(path, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
}

// requests returns the requests the origin received for path (any
// query).
func (o *scriptOrigin) requests(path string) []seenRequest {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []seenRequest
	for _, s := range o.seen {
		if u, _ := url.ParseRequestURI(s.uri); u != nil && u.Path == path {
			out = append(out, s)
		}
	}
	return out
}

// httpEdge is a Handler in front of a scriptOrigin, through the failover
// cmd/edge puts around every origin, with the windows the cache-tests
// harness uses (no default freshness: the origin's fields decide).
type httpEdge struct {
	*testEdge
	org  *scriptOrigin
	logs *logs
}

func newHTTPEdge(t testing.TB, site Site) *httpEdge {
	t.Helper()
	so := newScriptOrigin(t)
	u, _ := url.Parse(so.srv.URL)
	ho, err := origin.NewHTTP(u)
	if err != nil {
		t.Fatal(err)
	}
	f := origin.NewFailover([]origin.Origin{ho}, origin.FailoverConfig{Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
	t.Cleanup(func() { f.Close() })
	te := newTestEdge(t, Site{}, cache.Config{})
	he := &httpEdge{testEdge: te, org: so, logs: &logs{}}
	site.Origin = f
	te.h, err = NewHandler(Options{Cache: te.cache, Sites: []Site{site}, Now: te.clock.Now, ErrorLog: slog.New(he.logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { te.h.Close() })
	return he
}

// fetches is how many requests for path reached the origin.
func (he *httpEdge) fetches(path string) int { return len(he.org.requests(path)) }

func TestHTTPOriginRevalidatesAndUpdatesFields(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.handle("/a", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Cache-Control", "max-age=120")
			w.Header().Set("X-Version", "2")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("X-Version", "1")
		io.WriteString(w, "body one")
	})
	res := he.get(t, "GET", "/a")
	if got := string(readBody(t, res)); got != "body one" || res.Header.Get("X-Version") != "1" {
		t.Fatalf("first: %q, X-Version %q", got, res.Header.Get("X-Version"))
	}
	he.clock.Advance(61 * time.Second)
	res = he.get(t, "GET", "/a")
	if got := string(readBody(t, res)); got != "body one" {
		t.Fatalf("revalidated body %q", got)
	}
	reqs := he.org.requests("/a")
	if len(reqs) != 2 || reqs[1].header.Get("If-None-Match") != `"v1"` {
		t.Fatalf("origin saw %d requests, the second with If-None-Match %q", len(reqs), reqs[len(reqs)-1].header.Get("If-None-Match"))
	}
	// RFC 9111 §4.3.4: the 304's fields replace the stored ones, for the
	// response it revalidated and the ones served after it.
	for i, r := range []*http.Response{res, he.get(t, "GET", "/a")} {
		if r.Header.Get("X-Version") != "2" || r.Header.Get("Cache-Control") != "max-age=120" {
			t.Errorf("response %d after the 304: X-Version %q, Cache-Control %q; want 2, max-age=120", i, r.Header.Get("X-Version"), r.Header.Get("Cache-Control"))
		}
	}
	// The 304's max-age=120 is the new lifetime.
	he.clock.Advance(100 * time.Second)
	he.get(t, "GET", "/a")
	if n := he.fetches("/a"); n != 2 {
		t.Errorf("origin fetches after 100s of a 120s lifetime: %d, want 2", n)
	}
}

func TestHTTPOriginRevalidatesWithLastModified(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	he.org.handle("/lm", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-Modified-Since") == lm {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Last-Modified", lm)
		w.Header().Set("Cache-Control", "max-age=10")
		io.WriteString(w, "lm body")
	})
	he.get(t, "GET", "/lm")
	he.clock.Advance(11 * time.Second)
	res := he.get(t, "GET", "/lm")
	reqs := he.org.requests("/lm")
	if len(reqs) != 2 || reqs[1].header.Get("If-Modified-Since") != lm || string(readBody(t, res)) != "lm body" {
		t.Fatalf("origin saw %d requests; If-Modified-Since %q, want %q", len(reqs), reqs[len(reqs)-1].header.Get("If-Modified-Since"), lm)
	}
}

func TestHTTPOriginForwardsRequestFields(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/f", 200, "0123456789", "Cache-Control", "max-age=60")
	res := he.get(t, "GET", "/f",
		"Cookie", "session=1", "X-Custom", "yes", "Connection", "X-Drop", "X-Drop", "1",
		"Range", "bytes=2-4", "If-None-Match", `"nope"`, "Accept-Encoding", "identity")
	if res.StatusCode != http.StatusPartialContent || string(readBody(t, res)) != "234" {
		t.Fatalf("range answered %d", res.StatusCode)
	}
	got := he.org.requests("/f")[0].header
	for name, want := range map[string]string{
		"Cookie": "session=1", "X-Custom": "yes", "X-Forwarded-For": "192.0.2.1", "X-Forwarded-Proto": "http",
		// The edge asks for the whole response and answers Range and the
		// client's conditionals itself, from what it stores.
		"X-Drop": "", "Range": "", "If-None-Match": "",
	} {
		if got.Get(name) != want {
			t.Errorf("origin saw %s %q, want %q", name, got.Get(name), want)
		}
	}
	if !strings.Contains(got.Get("Via"), "1.1 ") {
		t.Errorf("origin saw Via %q, want the edge named", got.Get("Via"))
	}
}

// TestHTTPOriginAuthorization checks RFC 9111 §3.5: an answer to a
// request with Authorization is shared only when it says it may be.
func TestHTTPOriginAuthorization(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/private", 200, "yours", "Cache-Control", "max-age=60")
	he.org.answer("/public", 200, "anyone's", "Cache-Control", "public, max-age=60")
	for range 2 {
		he.get(t, "GET", "/private", "Authorization", "Bearer a")
		he.get(t, "GET", "/public", "Authorization", "Bearer a")
	}
	if n := he.fetches("/private"); n != 2 {
		t.Errorf("max-age answer to an authorized request: %d fetches, want 2 (never shared)", n)
	}
	if n := he.fetches("/public"); n != 1 {
		t.Errorf("public answer to an authorized request: %d fetches, want 1", n)
	}
	if got := he.org.requests("/private")[0].header.Get("Authorization"); got != "Bearer a" {
		t.Errorf("origin saw Authorization %q", got)
	}
}

func TestHTTPOriginQueryString(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.handle("/q", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "v="+r.URL.Query().Get("v"))
	})
	for _, v := range []string{"1", "2", "1"} {
		if got := string(readBody(t, he.get(t, "GET", "/q?v="+v))); got != "v="+v {
			t.Errorf("?v=%s answered %q", v, got)
		}
	}
	if n := he.fetches("/q"); n != 2 {
		t.Errorf("fetches %d, want 2 (one per query)", n)
	}
	// A purge of the URL takes every query string of it, and nothing else.
	he.org.answer("/qx", 200, "qx", "Cache-Control", "max-age=60")
	readBody(t, he.get(t, "GET", "/qx?v=1"))
	if _, err := he.h.Purge(PurgeRequest{URLs: []string{"/q"}, Soft: new(bool)}, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "2"} {
		readBody(t, he.get(t, "GET", "/q?v="+v))
	}
	readBody(t, he.get(t, "GET", "/qx?v=1"))
	if n, nx := he.fetches("/q"), he.fetches("/qx"); n != 4 || nx != 1 {
		t.Errorf("after purging /q: fetches of /q %d (want 4: both query strings again), of /qx %d (want 1)", n, nx)
	}

	ignore := newHTTPEdge(t, Site{Query: QueryIgnore})
	ignore.org.handle("/q", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "q="+r.URL.RawQuery)
	})
	for _, v := range []string{"1", "2"} {
		if got := string(readBody(t, ignore.get(t, "GET", "/q?v="+v))); got != "q=" {
			t.Errorf("query: ignore, ?v=%s answered %q, want the query dropped", v, got)
		}
	}
	if n := ignore.fetches("/q"); n != 1 {
		t.Errorf("query: ignore: fetches %d, want 1", n)
	}
}

func TestHTTPOriginPassesOtherMethodsAndInvalidates(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/doc", 200, "doc", "Cache-Control", "max-age=600")
	he.org.answer("/other", 200, "other", "Cache-Control", "max-age=600")
	he.org.handle("/doc-writer", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || r.Method == "PROPFIND" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Location", "/doc")
		w.Header().Set("Content-Location", "/other")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "made")
	})
	warm := func() {
		he.get(t, "GET", "/doc")
		he.get(t, "GET", "/other")
	}
	warm()
	warm()
	if he.fetches("/doc") != 1 || he.fetches("/other") != 1 {
		t.Fatalf("not cached: %d, %d fetches", he.fetches("/doc"), he.fetches("/other"))
	}
	// Safe methods pass and drop nothing.
	for _, m := range []string{http.MethodOptions, "PROPFIND"} {
		if res := he.get(t, m, "/doc-writer"); res.StatusCode != http.StatusNoContent {
			t.Errorf("%s answered %d, want the origin's 204", m, res.StatusCode)
		}
	}
	warm()
	if he.fetches("/doc") != 1 {
		t.Errorf("a safe method invalidated /doc")
	}
	r := httptest.NewRequest(http.MethodPost, "/doc-writer", strings.NewReader("payload"))
	w := httptest.NewRecorder()
	he.h.ServeHTTP(w, r)
	if w.Code != http.StatusCreated || w.Body.String() != "made" {
		t.Fatalf("POST answered %d %q", w.Code, w.Body.String())
	}
	if got := he.org.requests("/doc-writer"); got[len(got)-1].body != "payload" || got[len(got)-1].method != http.MethodPost {
		t.Errorf("origin saw %s %q", got[len(got)-1].method, got[len(got)-1].body)
	}
	// RFC 9111 §4.4: the target, Location and Content-Location go.
	warm()
	if he.fetches("/doc") != 2 || he.fetches("/other") != 2 {
		t.Errorf("after the POST: /doc %d, /other %d fetches; want 2 each", he.fetches("/doc"), he.fetches("/other"))
	}
	for _, m := range []string{http.MethodConnect, http.MethodTrace} {
		if res := he.get(t, m, "/doc"); res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s answered %d, want 405", m, res.StatusCode)
		}
	}

	// S3 and directory sites answer 405 to all but GET and HEAD.
	mem := newTestEdge(t, Site{}, cache.Config{})
	for _, m := range []string{http.MethodPost, http.MethodPut, "PROPFIND"} {
		if res := mem.get(t, m, "/doc"); res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("S3-like site: %s answered %d, want 405", m, res.StatusCode)
		}
	}
}

func TestHTTPOriginVary(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.handle("/v", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	he.org.answer("/star", 200, "star", "Cache-Control", "max-age=60", "Vary", "*")
	for _, lang := range []string{"en", "fr", "en", "fr, de", "fr,de"} {
		res := he.get(t, "GET", "/v", "Accept-Language", lang)
		want := "lang=" + lang
		if lang == "fr,de" {
			want = "lang=fr, de" // the same selection key: the stored one
		}
		if got := string(readBody(t, res)); got != want {
			t.Errorf("Accept-Language %q: %q, want %q", lang, got, want)
		}
		if !strings.Contains(res.Header.Get("Vary"), "Accept-Language") {
			t.Errorf("Vary %q", res.Header.Get("Vary"))
		}
	}
	if n := he.fetches("/v"); n != 3 {
		t.Errorf("fetches %d, want 3 (en, fr, fr+de)", n)
	}
	he.get(t, "GET", "/star")
	he.get(t, "GET", "/star")
	if n := he.fetches("/star"); n != 2 {
		t.Errorf("Vary: * fetched %d times, want 2 (never served from the cache)", n)
	}
}

// TestHTTPOriginFreshness checks the response fields that decide how long
// a response is used (RFC 9111 §4.2, §5.2.2, RFC 9213, Edge Architecture):
// after wait, is the second request answered from the cache?
func TestHTTPOriginFreshness(t *testing.T) {
	now := time.Now().UTC()
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name   string
		hdr    []string
		wait   time.Duration
		cached bool
	}{
		{"max-age", []string{"Cache-Control", "max-age=100"}, 50 * time.Second, true},
		{"max-age run out", []string{"Cache-Control", "max-age=100"}, 101 * time.Second, false},
		{"Expires", []string{"Expires", date(100 * time.Second)}, 50 * time.Second, true},
		{"Expires run out", []string{"Expires", date(100 * time.Second)}, 101 * time.Second, false},
		{"Expires invalid", []string{"Expires", "Thu, 18 Aug 2050 2:01:18 GMT"}, 0, false},
		{"Age counts", []string{"Cache-Control", "max-age=100", "Age", "60"}, 50 * time.Second, false},
		{"s-maxage over max-age", []string{"Cache-Control", "s-maxage=100, max-age=1"}, 50 * time.Second, true},
		{"heuristic from Last-Modified", []string{"Last-Modified", date(-10 * 24 * time.Hour)}, time.Hour, true},
		{"no-cache", []string{"Cache-Control", "no-cache, max-age=100"}, 0, false},
		{"no-store", []string{"Cache-Control", "no-store, max-age=100"}, 0, false},
		{"private", []string{"Cache-Control", "private, max-age=100"}, 0, false},
		{"no-store must-understand", []string{"Cache-Control", "no-store, must-understand, max-age=100"}, 0, true},
		{"Surrogate-Control for the edge", []string{"Cache-Control", "max-age=1", "Surrogate-Control", "max-age=100"}, 50 * time.Second, true},
		{"CDN-Cache-Control for the edge", []string{"Cache-Control", "no-store", "CDN-Cache-Control", "max-age=100"}, 50 * time.Second, true},
		{"CDN-Cache-Control invalid", []string{"Cache-Control", "no-store", "CDN-Cache-Control", `max-age="100"`}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			he := newHTTPEdge(t, Site{})
			he.org.answer("/x", 200, "x", tc.hdr...)
			first := he.get(t, "GET", "/x")
			if first.Header.Get("Surrogate-Control") != "" {
				t.Errorf("Surrogate-Control passed on to the client")
			}
			he.clock.Advance(tc.wait)
			he.get(t, "GET", "/x")
			if cached := he.fetches("/x") == 1; cached != tc.cached {
				t.Errorf("after %v: from the cache %v, want %v (%d fetches)", tc.wait, cached, tc.cached, he.fetches("/x"))
			}
		})
	}
}

// TestHTTPOriginMustRevalidate checks that must-revalidate forbids serving
// the response stale when the origin fails, however long the site's
// stale-if-error.
func TestHTTPOriginMustRevalidate(t *testing.T) {
	he := newHTTPEdge(t, Site{StaleIfError: time.Hour})
	he.org.answer("/m", 200, "m", "Cache-Control", "max-age=10, must-revalidate")
	he.org.answer("/s", 200, "s", "Cache-Control", "max-age=10")
	he.get(t, "GET", "/m")
	he.get(t, "GET", "/s")
	he.clock.Advance(20 * time.Second)
	he.org.answer("/m", 503, "down")
	he.org.answer("/s", 503, "down")
	if res := he.get(t, "GET", "/s"); res.StatusCode != 200 {
		t.Errorf("without must-revalidate: %d, want the stale copy", res.StatusCode)
	}
	if res := he.get(t, "GET", "/m"); res.StatusCode != 503 {
		t.Errorf("must-revalidate: %d, want the origin's 503", res.StatusCode)
	}
}

func TestHTTPOriginStatuses(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/moved", 301, "moved", "Location", "/there", "Cache-Control", "max-age=60")
	he.org.answer("/odd", 599, "odd", "Cache-Control", "max-age=60")
	he.org.answer("/found", 302, "found", "Location", "/there")
	he.org.answer("/gone", 410, "gone page", "Last-Modified", time.Now().Add(-100*time.Hour).UTC().Format(http.TimeFormat))
	he.org.answer("/busy", 503, "busy page", "X-Origin", "yes", "Retry-After", "5")
	he.org.answer("/maintenance", 503, "maintenance", "Cache-Control", "max-age=60")
	for range 2 {
		for _, tc := range []struct {
			path   string
			status int
			body   string
		}{{"/moved", 301, "moved"}, {"/odd", 599, "odd"}, {"/found", 302, "found"}, {"/gone", 410, "gone page"}, {"/busy", 503, "busy page"}, {"/maintenance", 503, "maintenance"}} {
			res := he.get(t, "GET", tc.path)
			if res.StatusCode != tc.status || string(readBody(t, res)) != tc.body {
				t.Errorf("%s: %d, want %d %q", tc.path, res.StatusCode, tc.status, tc.body)
			}
		}
	}
	for path, want := range map[string]int{
		"/moved": 1, "/odd": 1, "/gone": 1, // explicitly fresh, or heuristically cacheable
		"/found":       2, // neither
		"/busy":        2, // a failure, asked once per request: not retried on the same origin
		"/maintenance": 1, // a failure that says how long it holds, and nothing to stand in
	} {
		if n := he.fetches(path); n != want {
			t.Errorf("%s fetched %d times, want %d", path, n, want)
		}
	}
	res := he.get(t, "GET", "/busy")
	if res.Header.Get("X-Origin") != "yes" || res.Header.Get("Retry-After") != "5" {
		t.Errorf("the origin's 503 lost its fields: %v", res.Header)
	}
	if got := res.Header.Get("Location"); he.get(t, "GET", "/moved").Header.Get("Location") != "/there" {
		t.Errorf("301 Location %q", got)
	}
	if len(he.logs.matching("origin failed")) == 0 {
		t.Errorf("the origin's 503s were not logged")
	}
}

func TestHTTPOriginFieldsNotShared(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/c", 200, "c", "Cache-Control", "max-age=60", "Set-Cookie", "id=1", "Connection", "X-Hop", "X-Hop", "secret", "X-Kept", "yes")
	first := he.get(t, "GET", "/c")
	second := he.get(t, "GET", "/c")
	if first.Header.Get("Set-Cookie") != "id=1" {
		t.Errorf("the fetching client lost its Set-Cookie")
	}
	if second.Header.Get("Set-Cookie") != "" {
		t.Errorf("a stored Set-Cookie was given to another client")
	}
	for i, r := range []*http.Response{first, second} {
		if r.Header.Get("X-Hop") != "" || r.Header.Get("X-Kept") != "yes" {
			t.Errorf("response %d: X-Hop %q (hop-by-hop, want none), X-Kept %q", i, r.Header.Get("X-Hop"), r.Header.Get("X-Kept"))
		}
	}
	if he.fetches("/c") != 1 {
		t.Errorf("fetches %d, want 1", he.fetches("/c"))
	}
}

func TestHTTPOriginEncodings(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	plain := string(text(64 << 10)) // still over negotiate.MinSize gzipped
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(plain))
	zw.Close()
	he.org.answer("/app.js", 200, gz.String(), "Content-Type", "text/javascript", "Content-Encoding", "gzip", "Cache-Control", "max-age=60", "Vary", "Accept-Encoding")
	he.org.answer("/odd.bin", 200, "xyz", "Content-Encoding", "x-custom", "Cache-Control", "max-age=60")

	res := he.get(t, "GET", "/app.js", "Accept-Encoding", "identity")
	if got := string(readBody(t, res)); got != plain || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("identity client: Content-Encoding %q, %d bytes", res.Header.Get("Content-Encoding"), len(got))
	}
	res = he.get(t, "GET", "/app.js", "Accept-Encoding", "br")
	if res.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("br client: Content-Encoding %q", res.Header.Get("Content-Encoding"))
	}
	if got, err := io.ReadAll(brotli.NewReader(bytes.NewReader(readBody(t, res)))); err != nil || string(got) != plain {
		t.Errorf("br body: %v", err)
	}
	if n := he.fetches("/app.js"); n != 1 {
		t.Errorf("fetches %d, want 1: every coding derived from the one stored", n)
	}
	// A coding the edge cannot decode: passed on as the origin sent it.
	res = he.get(t, "GET", "/odd.bin", "Accept-Encoding", "gzip")
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "x-custom" || string(readBody(t, res)) != "xyz" {
		t.Errorf("unknown coding: %d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
}

func TestHTTPOriginSurrogateKeys(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/tenant-a.json", 200, "a", "Cache-Control", "max-age=600", "Surrogate-Key", "tenant-a config")
	he.org.answer("/tenant-b.json", 200, "b", "Cache-Control", "max-age=600", "Surrogate-Key", "tenant-b config")
	for _, p := range []string{"/tenant-a.json", "/tenant-b.json"} {
		if res := he.get(t, "GET", p); res.Header.Get("Surrogate-Key") != "" {
			t.Errorf("Surrogate-Key passed on to the client")
		}
	}
	if _, err := he.h.Purge(PurgeRequest{Tags: []string{"tenant-a"}, Soft: new(bool)}, time.Second); err != nil {
		t.Fatal(err)
	}
	he.get(t, "GET", "/tenant-a.json")
	he.get(t, "GET", "/tenant-b.json")
	if a, b := he.fetches("/tenant-a.json"), he.fetches("/tenant-b.json"); a != 2 || b != 1 {
		t.Errorf("after purging tag tenant-a: fetches a=%d b=%d, want 2 and 1", a, b)
	}
}

func TestHTTPOriginFailuresLogged(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.handle("/reset", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close() // no answer at all
		}
	})
	if res := he.get(t, "GET", "/reset"); res.StatusCode != http.StatusBadGateway {
		t.Errorf("connection closed by the origin: %d, want 502", res.StatusCode)
	}
	recs := he.logs.matching("origin failed")
	if len(recs) == 0 {
		t.Fatal("no ErrorLog line for the origin's failure")
	}
	if a := attrs(recs[0]); a["origin"] != he.org.srv.URL || a["path"] != "/reset" || a["err"] == "" {
		t.Errorf("log attributes %v", a)
	}
}

// TestOriginErrorCookieNotShared: an origin's error answer is passed to
// every request coalesced on the fill, but its Set-Cookie only to the
// request that fetched it (as for a 200).
func TestOriginErrorCookieNotShared(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	entered, gate := make(chan struct{}, 64), make(chan struct{})
	he.org.handle("/down", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-gate
		user := r.Header.Get("X-User")
		w.Header().Set("Set-Cookie", "session="+user)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down for "+user)
	})
	const n = 20
	type answer struct{ user, cookie string }
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			user := fmt.Sprintf("user%d", i)
			res := he.get(t, "GET", "/down", "X-User", user)
			readBody(t, res)
			answers <- answer{user, res.Header.Get("Set-Cookie")}
		})
	}
	<-entered // the first fill is at the origin: the others join it, or come after
	close(gate)
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.cookie != "" && a.cookie != "session="+a.user {
			t.Errorf("%s got Set-Cookie %q", a.user, a.cookie)
		}
	}
	if got := he.fetches("/down"); got >= n {
		t.Fatalf("no request joined a fill (%d fetches): nothing was tested", got)
	}
}

// TestRequestMaxAgeCountsAgeOnArrival: a request's max-age is held
// against the age the client would see, the origin's Age included
// (RFC 9111 §5.2.1.1), not only the time the edge has held it.
func TestRequestMaxAgeCountsAgeOnArrival(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.answer("/aged", 200, "aged", "Cache-Control", "max-age=3600", "Age", "3000")
	readBody(t, he.get(t, "GET", "/aged"))
	for _, tc := range []struct{ maxAge, want string }{
		{"max-age=60", "edge; fwd=stale"}, // 3000 s old: asked again (a 304)
		{"max-age=3500", "edge; hit"},
	} {
		res := he.get(t, "GET", "/aged", "Cache-Control", tc.maxAge)
		readBody(t, res)
		if cs := res.Header.Get("Cache-Status"); !strings.HasPrefix(cs, tc.want) {
			t.Errorf("%s on a response 3000 s old: Cache-Status %q, want %q", tc.maxAge, cs, tc.want)
		}
	}
}

// TestPassedResponsesGetThePolicy: a POST passed to the origin gets the
// CORS and configured headers of its path, as a cached response does: a
// browser would otherwise block the answer to a preflight the edge
// allowed.
func TestPassedResponsesGetThePolicy(t *testing.T) {
	he := newHTTPEdge(t, Site{
		CORS:    &CORS{AllowOrigins: []string{"https://login.customer.com"}, AllowMethods: []string{"GET", "HEAD", "POST"}},
		Headers: map[string]string{"X-Content-Type-Options": "nosniff"},
	})
	he.org.handle("/submit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	res := he.get(t, "POST", "/submit", "Origin", "https://login.customer.com")
	readBody(t, res)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://login.customer.com" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("passed POST: %d, headers %v", res.StatusCode, res.Header)
	}
}

// TestBackgroundRevalidationOfAVariant: a stale response stored under a
// Vary key is revalidated in the background with the triggering
// request's values of the varying fields, and refreshed in place: the
// origin is asked once, and the next request is a hit.
func TestBackgroundRevalidationOfAVariant(t *testing.T) {
	he := newHTTPEdge(t, Site{})
	he.org.handle("/v", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Accept-Language")
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		w.Header().Set("ETag", `"`+r.Header.Get("Accept-Language")+`"`)
		if r.Header.Get("If-None-Match") == `"`+r.Header.Get("Accept-Language")+`"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	fr := func() *http.Response {
		res := he.get(t, "GET", "/v", "Accept-Language", "fr")
		if b := string(readBody(t, res)); b != "lang=fr" {
			t.Fatalf("fr got %q", b)
		}
		return res
	}
	fr()
	he.clock.Advance(20 * time.Second)
	if cs := fr().Header.Get("Cache-Status"); !strings.Contains(cs, "stale") && !strings.Contains(cs, "revalidat") {
		t.Fatalf("after expiry: Cache-Status %q, want the stale copy while it revalidates", cs)
	}
	waitBackground(he.h)
	reqs := he.org.requests("/v")
	if len(reqs) != 2 || reqs[1].header.Get("Accept-Language") != "fr" || reqs[1].header.Get("If-None-Match") != `"fr"` {
		t.Fatalf("origin saw %d requests, the revalidation with Accept-Language %q If-None-Match %q; want fr and \"fr\"",
			len(reqs), reqs[len(reqs)-1].header.Get("Accept-Language"), reqs[len(reqs)-1].header.Get("If-None-Match"))
	}
	if cs := fr().Header.Get("Cache-Status"); !strings.HasPrefix(cs, "edge; hit") {
		t.Errorf("after the revalidation: Cache-Status %q, want a hit", cs)
	}
	if n := len(he.org.requests("/v")); n != 2 {
		t.Errorf("origin asked %d times, want 2", n)
	}
}
