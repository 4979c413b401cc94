package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/origin"
)

// faultEdge is an edge in front of the real S3 server through a
// fault-injecting proxy, with a clock the test controls. Requests and
// faults are counted at the proxy, the S3 side of the edge.
type faultEdge struct {
	srv   *s3test.Server
	proxy *s3test.FaultProxy
	clock *clock
	h     *Handler
	cache *cache.Cache
	org   *origin.Failover
	logs  *logs // what the handler and the cache logged
}

func startFaultEdge(t *testing.T) *faultEdge {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	e := &faultEdge{srv: srv, proxy: s3test.NewFaultProxy(t, srv.Endpoint()), clock: newClock(), logs: &logs{}}
	s3o, err := origin.Parse(context.Background(), e.proxy.OriginURL("assets", "site"))
	if err != nil {
		t.Fatal(err)
	}
	// Short attempts, so held responses time out quickly; a high
	// threshold, so the breaker stays out of the per-fault cases.
	e.org = origin.NewFailover([]origin.Origin{s3o}, origin.FailoverConfig{
		AttemptTimeout: 300 * time.Millisecond, FailureThreshold: 1000, Backoff: time.Millisecond,
	})
	t.Cleanup(e.org.Close)
	e.cache, err = cache.New(cache.Config{Dir: t.TempDir(), Log: slog.New(e.logs), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cache.Close() })
	e.h, err = NewHandler(Options{
		Cache:    e.cache,
		Sites:    []Site{{Origin: e.org, TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour}},
		Now:      e.clock.Now,
		ErrorLog: slog.New(e.logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *faultEdge) get(t *testing.T, path string, hdr ...string) *http.Response {
	t.Helper()
	return serve(e.h, "GET", path, hdr...)
}

// TestOriginFaults: for each way S3 can fail, a cached (expired) object
// keeps being served, nothing broken is cached, and an uncached object
// gets a clean 502/504.
func TestOriginFaults(t *testing.T) {
	e := startFaultEdge(t)
	good := text(20 << 10)
	e.srv.Put(t, "assets", "site/w.js", good, s3test.PutOptions{ContentType: "text/javascript"})
	for i := range 8 {
		e.srv.Put(t, "assets", fmt.Sprintf("site/u%d.js", i), text(20<<10), s3test.PutOptions{ContentType: "text/javascript"})
	}
	if res := e.get(t, "/w.js", "Accept-Encoding", "gzip"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.cache.Wait()

	for i, tc := range []struct {
		name   string
		fault  s3test.Fault
		status int // for the uncached object
	}{
		{"500 InternalError", s3test.Fault{Status: 500}, 502},
		{"503 SlowDown", s3test.Fault{Status: 503, Code: "SlowDown"}, 502},
		// S3 refuses everything with broken credentials: a failure, never
		// a 404 (see TestWrongCredentialsAreOriginFailures).
		{"403 for everything", s3test.Fault{Status: 403}, 502},
		{"connection refused", s3test.Fault{Refuse: true}, 502},
		{"body cut mid-stream", s3test.Fault{CutBodyAfter: 5000}, 502},
		{"Content-Length too long", s3test.Fault{WrongLength: 30 << 10}, 502},
		{"headers never come", s3test.Fault{Hold: make(chan struct{})}, 504},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault.CutBodyAfter > 0 {
				// A new version at S3, so revalidation gets a body to break
				// rather than a 304.
				e.srv.Put(t, "assets", "site/w.js", text(21<<10), s3test.PutOptions{ContentType: "text/javascript"})
			}
			e.clock.Advance(2 * time.Minute) // the cached copy is expired again
			e.proxy.SetFault(tc.fault)
			defer e.proxy.SetFault(s3test.Fault{})
			faults := e.proxy.Faults()

			res := e.get(t, "/w.js", "Accept-Encoding", "gzip")
			if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Cache-Status"), "stale-if-error") || !bytes.Equal(decode(t, res), good) {
				t.Fatalf("cached object: status %d Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
			}
			path := fmt.Sprintf("/u%d.js", i)
			res = e.get(t, path)
			body := readBody(t, res)
			if res.StatusCode != tc.status || !bytes.Equal(body, []byte(http.StatusText(tc.status)+"\n")) {
				t.Fatalf("uncached object: status %d body %q, want a bare %d", res.StatusCode, body, tc.status)
			}
			if e.proxy.Faults() == faults {
				t.Fatal("the fault never reached the proxy")
			}
			// Every failure a client saw is in the error log.
			mustHaveLogged(t, e.logs, "origin failed: no usable copy to serve", path)
			mustHaveLogged(t, e.logs, "origin failed: the cached copy is served meanwhile", "/w.js")
			if obj := e.cache.Lookup(e.org.String() + path); obj != nil && obj.Meta.Status == http.StatusOK {
				t.Fatal("a failed fetch left an object in the cache")
			}
			if tc.fault.Hold != nil {
				close(tc.fault.Hold)
			}
		})
	}

	// With the faults gone, the broken objects are fetched whole.
	e.proxy.SetFault(s3test.Fault{})
	e.clock.Advance(time.Minute) // past the negative TTL of the 403
	for i := range 7 {
		res := e.get(t, fmt.Sprintf("/u%d.js", i))
		if got := readBody(t, res); res.StatusCode != 200 || len(got) != 20<<10 {
			t.Fatalf("u%d after recovery: status %d, %d bytes", i, res.StatusCode, len(got))
		}
	}
}

// TestWrongCredentialsAreOriginFailures: credentials S3 refuses (a wrong
// secret, an unknown access key, an expired token, a policy without
// s3:GetObject) are failures of the origin: they count against its
// circuit, a cached copy keeps being served, an uncached object gets a
// 502 (never a 404 that browsers and the cache would keep), and they are
// logged. Only S3's NoSuchKey is a 404. The first two cases use real
// wrong credentials against the real S3 server.
func TestWrongCredentialsAreOriginFailures(t *testing.T) {
	e := startFaultEdge(t)
	good := text(8000)
	e.srv.Put(t, "assets", "site/w.js", good, s3test.PutOptions{ContentType: "text/javascript"})
	e.srv.Put(t, "assets", "site/u.js", text(8000), s3test.PutOptions{ContentType: "text/javascript"})
	if res := e.get(t, "/w.js"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	e.cache.Wait()
	for _, tc := range []struct {
		name      string
		keyID     string // AWS_ACCESS_KEY_ID for a new origin; "" keeps the right ones
		secret    string
		fault     s3test.Fault
		wantInLog string
	}{
		{name: "wrong secret", secret: "not-the-secret", wantInLog: "SignatureDoesNotMatch"},
		// AWS answers 403 InvalidAccessKeyId; versitygw answers 404
		// XAdminUserNotFound, which is no "no such key" either.
		{name: "unknown access key", keyID: "NOSUCHKEY", secret: "x", wantInLog: "XAdminUserNotFound"},
		{name: "InvalidAccessKeyId", fault: s3test.Fault{Status: 403, Code: "InvalidAccessKeyId"}, wantInLog: "InvalidAccessKeyId"},
		{name: "expired token", fault: s3test.Fault{Status: 400, Code: "ExpiredToken"}, wantInLog: "ExpiredToken"},
		{name: "access denied", fault: s3test.Fault{Status: 403, Code: "AccessDenied"}, wantInLog: "AccessDenied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			org := e.org
			if tc.secret != "" {
				if tc.keyID != "" {
					t.Setenv("AWS_ACCESS_KEY_ID", tc.keyID)
				}
				t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
				s3o, err := origin.Parse(context.Background(), e.proxy.OriginURL("assets", "site"))
				if err != nil {
					t.Fatal(err)
				}
				org = origin.NewFailover([]origin.Origin{s3o}, origin.FailoverConfig{FailureThreshold: 1000, Backoff: time.Millisecond})
				t.Cleanup(org.Close)
			}
			e.proxy.SetFault(tc.fault)
			defer e.proxy.SetFault(s3test.Fault{})
			h, err := NewHandler(Options{Cache: e.cache, Now: e.clock.Now, ErrorLog: slog.New(e.logs), Sites: []Site{withDefaults(Site{
				Origin: org, CacheNamespace: e.org.String(),
				TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour})}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			e.clock.Advance(2 * time.Minute) // the cached copy is expired
			gets := e.proxy.GetsFor("w.js")

			res := serve(h, "GET", "/w.js")
			if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Cache-Status"), "stale-if-error") || !bytes.Equal(readBody(t, res), good) {
				t.Fatalf("cached object: status %d, Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
			}
			if e.proxy.GetsFor("w.js") == gets {
				t.Fatal("S3 was not asked")
			}
			for range 2 { // not a cached 404 either time
				if res := serve(h, "GET", "/u.js"); res.StatusCode != 502 {
					t.Fatalf("uncached object: status %d, want 502", res.StatusCode)
				}
			}
			if st := org.States()[0]; st.ConsecutiveFailures == 0 {
				t.Error("the failures did not count against the origin's circuit")
			}
			found := false
			for _, r := range e.logs.matching("origin failed") {
				if strings.Contains(attrs(r)["err"], tc.wantInLog) {
					found = true
				}
			}
			if !found {
				t.Errorf("no logged origin failure mentions %s", tc.wantInLog)
			}
		})
	}
	// NoSuchKey, with the right credentials, is a 404.
	if res := e.get(t, "/missing.js"); res.StatusCode != 404 {
		t.Fatalf("missing key: status %d, want 404", res.StatusCode)
	}
}

// mustHaveLogged checks that a record whose message contains msg was
// logged for the object at path, with the site, the origin and the error.
func mustHaveLogged(t *testing.T, l *logs, msg, path string) {
	t.Helper()
	for _, r := range l.matching(msg) {
		a := attrs(r)
		if a["path"] == path && a["site"] != "" && a["origin"] != "" && a["err"] != "" && strings.HasSuffix(a["key"], path) {
			return
		}
	}
	t.Errorf("no %q record for %s with site, key, origin and error", msg, path)
}

// TestFailuresLogged: failures nobody is waiting for are logged too
// (keep-warm, background revalidation), and a failure repeated many
// times is logged once per interval, with a count.
func TestFailuresLogged(t *testing.T) {
	e := startFaultEdge(t)
	e.srv.Put(t, "assets", "site/t.json", text(2000), s3test.PutOptions{})
	e.h.sites[0].MustServe = []string{"/must.js"} // not at S3
	e.h.sites[0].StaleWhileRevalidate = time.Hour
	e.get(t, "/t.json")
	e.cache.Wait()

	e.proxy.SetFault(s3test.Fault{Status: 500})
	// Keep-warm of a path the origin cannot give.
	e.h.warm(context.Background())
	mustHaveLogged(t, e.logs, "keep-warm: cannot fetch a must-serve path", "/must.js")
	// A background revalidation that fails keeps the copy, and says so.
	e.clock.Advance(2 * time.Minute)
	if res := e.get(t, "/t.json"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	waitBackground(e.h)
	mustHaveLogged(t, e.logs, "origin failed: the cached copy is served meanwhile", "/t.json")

	// An outage: 200 requests for one object, one record now...
	for range 200 {
		e.get(t, "/gone.js")
	}
	if got := len(e.logs.matching("origin failed: no usable copy")); got != 1 {
		t.Fatalf("%d records for 200 failures within a minute, want 1", got)
	}
	// ...and the count of the others once the interval is over, when
	// the next record comes (or a timer fires).
	e.clock.Advance(time.Minute)
	e.get(t, "/gone-too.js")
	recs := e.logs.matching("origin failed: no usable copy")
	if len(recs) != 3 || attrs(recs[1])["suppressed"] != "199" {
		t.Fatalf("after the interval: %d records, last %v; want the count of the 199 others", len(recs), attrs(recs[len(recs)-1]))
	}
}

// TestOneRevalidationPerKey: 100 concurrent requests for a stale object
// make exactly one request to S3, counted at the proxy.
func TestOneRevalidationPerKey(t *testing.T) {
	e := startFaultEdge(t)
	e.h.sites[0].StaleWhileRevalidate = time.Hour
	e.srv.Put(t, "assets", "site/t.json", text(3000), s3test.PutOptions{})
	e.get(t, "/t.json")
	e.cache.Wait()
	before := e.proxy.GetsFor("t.json")

	hold := make(chan struct{})
	e.proxy.SetFault(s3test.Fault{Hold: hold, Only: "t.json"})
	e.clock.Advance(2 * time.Minute)

	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := e.get(t, "/t.json"); res.StatusCode != 200 {
				t.Errorf("status %d", res.StatusCode)
			}
		}()
	}
	wg.Wait()
	e.proxy.SetFault(s3test.Fault{})
	close(hold)
	waitBackground(e.h)
	if got := e.proxy.GetsFor("t.json") - before; got != 1 {
		t.Fatalf("S3 saw %d GETs for 100 stale requests, want 1", got)
	}
}

// TestAllOriginsDownServesStaleAtOnce: once every circuit is open, stale
// copies are served without a request to S3 and without waiting.
func TestAllOriginsDownServesStaleAtOnce(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	srv.Put(t, "assets", "site/w.js", text(5000), s3test.PutOptions{})
	s3o, err := origin.Parse(context.Background(), proxy.OriginURL("assets", "site"))
	if err != nil {
		t.Fatal(err)
	}
	org := origin.NewFailover([]origin.Origin{s3o}, origin.FailoverConfig{FailureThreshold: 2, Backoff: time.Millisecond, ProbeInterval: time.Hour})
	t.Cleanup(org.Close)
	te := newTestEdge(t, Site{Origin: org, TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond}, cache.Config{})
	if res := te.get(t, "GET", "/w.js"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	te.cache.Wait()
	proxy.SetFault(s3test.Fault{Status: 503, Code: "SlowDown"})
	te.clock.Advance(2 * time.Minute)
	te.get(t, "GET", "/w.js") // fails twice at S3: the circuit opens
	if !org.AllDown() {
		t.Fatalf("circuit not open after failures: %+v", org.States())
	}
	seen := proxy.Requests()
	for range 10 {
		res := te.get(t, "GET", "/w.js")
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Cache-Status"), "stale-if-error") {
			t.Fatalf("status %d Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
		}
	}
	if res := te.get(t, "GET", "/never-cached.js"); res.StatusCode != 502 {
		t.Fatalf("uncached while all down: status %d", res.StatusCode)
	}
	if got := proxy.Requests() - seen; got != 0 {
		t.Fatalf("S3 saw %d requests while every circuit was open", got)
	}
	res := te.get(t, "GET", "/healthz?verbose")
	if body := string(readBody(t, res)); !strings.Contains(body, "open") {
		t.Fatalf("health does not show the open circuit: %q", body)
	}
	rec := httptest.NewRecorder()
	te.h.AdminHandler("").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := fmt.Sprintf("edge_origin_state{origin=%q,state=\"open\"} 1", org.String()); !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("metrics lack %s", want)
	}
}

// TestFailoverToReplica: the primary bucket fails, the replica answers.
func TestFailoverToReplica(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "primary")
	srv.CreateBucket(t, "replica")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	body := text(4000)
	srv.Put(t, "replica", "w.js", body, s3test.PutOptions{})
	var origins []origin.Origin
	for _, spec := range []string{proxy.OriginURL("primary", ""), srv.OriginURL("replica", "")} {
		o, err := origin.Parse(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		origins = append(origins, o)
	}
	org := origin.NewFailover(origins, origin.FailoverConfig{Backoff: time.Millisecond})
	t.Cleanup(org.Close)
	proxy.SetFault(s3test.Fault{Status: 500})
	te := newTestEdge(t, Site{Origin: org}, cache.Config{})
	res := te.get(t, "GET", "/w.js")
	if got := readBody(t, res); res.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("status %d", res.StatusCode)
	}
	if proxy.Faults() == 0 {
		t.Fatal("the primary was never tried")
	}
}

// TestReplicaAddedKeepsCache: adding a replica origin to a site keeps
// its cache: a restarted edge with the primary down serves what it had.
func TestReplicaAddedKeepsCache(t *testing.T) {
	dir := t.TempDir()
	primary := newMemOrigin()
	primary.put("/w.js", memObject{body: text(3000)})
	one := origin.NewFailover([]origin.Origin{primary}, origin.FailoverConfig{})
	t.Cleanup(one.Close)
	// cmd/edge names a site's cache after its first origin, whatever
	// wraps it (see TestCacheNamespaceFromConfig there).
	te := newTestEdge(t, Site{Origin: one, CacheNamespace: primary.String()}, cache.Config{Dir: dir})
	if res := te.get(t, "GET", "/w.js"); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	te.cache.Close()

	primary.down.Store(true)
	replica := &pipeOrigin{bodies: make(chan io.ReadCloser)}
	two := origin.NewFailover([]origin.Origin{primary, replica}, origin.FailoverConfig{})
	t.Cleanup(two.Close)
	te2 := newTestEdge(t, Site{Origin: two, CacheNamespace: primary.String()}, cache.Config{Dir: dir})
	res := te2.get(t, "GET", "/w.js")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Cache-Status"), "edge; hit") {
		t.Fatalf("after adding a replica: status %d Cache-Status %q", res.StatusCode, res.Header.Get("Cache-Status"))
	}
	if replica.gets.Load() != 0 {
		t.Fatal("the replica was asked for a cached object")
	}
}
