package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/journal"
	"github.com/edgecdn/edge/origin"
	"github.com/edgecdn/edge/store"
	"github.com/miekg/dns"
)

const token = "cli-test-token-0123456789"

// testEdge is an edge in process: the real handler and cache over a
// directory origin, its public and admin listeners on loopback.
type testEdge struct {
	name   string
	h      *edge.Handler
	c      *cache.Cache
	public *httptest.Server
	admin  *httptest.Server
}

func newEdge(t *testing.T, name, siteDir string) *testEdge {
	t.Helper()
	return newEdgeOn(t, name, siteDir, nil)
}

// newEdgeOn starts an edge whose admin listener is l (nil: any loopback
// port).
func newEdgeOn(t *testing.T, name, siteDir string, l net.Listener) *testEdge {
	t.Helper()
	c, err := cache.New(cache.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o, err := origin.NewDir(siteDir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := edge.NewHandler(edge.Options{Cache: c, Sites: []edge.Site{{Origin: o, TTL: time.Hour}}, Name: name, Region: "test-1"})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEdge{name: name, h: h, c: c, public: httptest.NewServer(h)}
	if l == nil {
		e.admin = httptest.NewServer(h.AdminHandler(token))
	} else {
		e.admin = httptest.NewUnstartedServer(h.AdminHandler(token))
		e.admin.Listener.Close()
		e.admin.Listener = l
		e.admin.Start()
	}
	t.Cleanup(func() {
		e.public.Close()
		e.admin.Close()
		h.Close()
		c.Close()
	})
	return e
}

// get fetches path from the edge's public listener.
func (e *testEdge) get(t *testing.T, path string) (string, string) {
	t.Helper()
	res, err := http.Get(e.public.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b), res.Header.Get("Cache-Status")
}

// site is a directory origin with one object.
func site(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// update rewrites a file with a modification time that differs (the
// directory origin's ETag is size and mtime).
func update(t *testing.T, dir, name, body string) {
	t.Helper()
	p := filepath.Join(dir, name)
	os.WriteFile(p, []byte(body), 0o644)
	later := time.Now().Add(time.Minute)
	os.Chtimes(p, later, later)
}

// purge runs the command; env is EDGE_ADMIN_TOKEN unless the args say.
func purge(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb, func(k string) string {
		if k == "EDGE_ADMIN_TOKEN" {
			return token
		}
		return ""
	})
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{nil, "no command", exitUsage},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, exitUsage},
		{[]string{"url"}, "url: want URL...", exitUsage},
		{[]string{"all", "/x", "--edges", "http://a:1"}, "all takes no arguments", exitUsage},
		{[]string{"status", "/a", "/b", "--edges", "http://a:1"}, "status: want URL", exitUsage},
		{[]string{"url", "/a.js"}, "no edges", exitUsage},
		{[]string{"url", "/a.js", "--edges", "http://a:1", "--colour"}, "colour", exitUsage},
		{[]string{"url", "/a.js?v=2", "--edges", "http://a:1"}, "no query string", exitUsage},
		{[]string{"url", "ftp://x/a.js", "--edges", "http://a:1"}, "want https://HOST/PATH", exitUsage},
		{[]string{"url", "https://b.example/a.js", "--host", "a.example", "--edges", "http://a:1"}, "not --host a.example", exitUsage},
		{[]string{"prefix", "tenants/", "--edges", "http://a:1"}, "must start with /", exitUsage},
		{[]string{"tag", "a b", "--edges", "http://a:1"}, "one word", exitUsage},
		{[]string{"url", "/a.js", "--edges", "http://a:1", "--verify"}, "--verify needs --origin", exitUsage},
		{[]string{"prefix", "/a", "--edges", "http://a:1", "--verify", "--origin", "dir:/tmp"}, "only with url", exitUsage},
		{[]string{"warm", "/a", "--edges", "http://a:1", "--hard"}, "--hard", exitUsage},
		{[]string{"url", "/a.js", "--edges", "http://a:1", "--timeout", "0s"}, "--timeout", exitUsage},
		{[]string{"url", "/a.js", "--edges", "a:1"}, "want http(s)://HOST:PORT", exitNotAll},
		{[]string{"url", "/a.js", "--edges-file", "/does/not/exist"}, "--edges-file", exitNotAll},
		{[]string{"url", "/a.js", "--journal", "ftp://x"}, "--journal", exitUsage},
	} {
		code, _, stderr := purge(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d with %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	// What an edge would refuse never reaches the journal: each edge would
	// take a record it cannot apply for a purge of everything.
	jdir := t.TempDir()
	for _, args := range [][]string{{"url", "/a/../tenants/acme.json"}, {"tag", "a\x01b"}, {"prefix", `/a\b`}, {"url", "/a\x00"}} {
		code, _, stderr := purge(t, append(args, "--journal", "dir:"+jdir)...)
		if code != exitUsage {
			t.Errorf("%q: exit %d (%q), want %d", args, code, stderr, exitUsage)
		}
	}
	if ents, _ := os.ReadDir(jdir); len(ents) != 0 {
		t.Errorf("refused purges wrote %d entries to the journal", len(ents))
	}
	code, _, stderr := run2(t, []string{"url", "/a.js", "--edges", "http://127.0.0.1:1"}, "")
	if code != exitUsage || !strings.Contains(stderr, "no admin token") {
		t.Errorf("without a token: %d %q", code, stderr)
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &out, io.Discard, os.Getenv); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, f := range []string{"--hard", "--host", "--edges", "--edges-file", "--edges-dns", "--journal", "--token-file", "--timeout", "--resolver", "--origin", "--verify", "--json", "--allow-catchup", "url URL...", "status URL", "Exit status"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h lacks %s", f)
		}
	}
}

// run2 runs with EDGE_ADMIN_TOKEN set to tok.
func run2(t *testing.T, args []string, tok string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string {
		if k == "EDGE_ADMIN_TOKEN" {
			return tok
		}
		return ""
	})
	return code, out.String(), errb.String()
}

// TestPurgeEveryEdge: options after the arguments; every edge confirms,
// exit 0; each edge then serves the new version; --json is one document
// with every edge.
func TestPurgeEveryEdge(t *testing.T) {
	dir := site(t, map[string]string{"widget/v1/login.js": "v1 widget"})
	a, b := newEdge(t, "edge-a", dir), newEdge(t, "edge-b", dir)
	for _, e := range []*testEdge{a, b} {
		e.get(t, "/widget/v1/login.js")
	}
	update(t, dir, "widget/v1/login.js", "v2 widget!")
	code, stdout, stderr := purge(t, "url", "/widget/v1/login.js", "--edges", a.admin.URL+","+b.admin.URL, "--hard")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"edge-a", "edge-b", "test-1", "ok", "1 entries", "url: 2 edges: 2 confirmed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, e := range []*testEdge{a, b} {
		if body, cs := e.get(t, "/widget/v1/login.js"); body != "v2 widget!" {
			t.Fatalf("%s after the purge: %q (%s)", e.name, body, cs)
		}
	}

	code, stdout, _ = purge(t, "--json", "prefix", "/widget/", "--edges", a.admin.URL, "--edges", b.admin.URL)
	var rep report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, stdout)
	}
	if code != 0 || !rep.OK || rep.Exit != 0 || rep.Mode != "soft" || rep.Summary.Confirmed != 2 || len(rep.Requests) != 1 {
		t.Fatalf("exit %d, report %+v", code, rep)
	}
	rr := rep.Requests[0]
	if _, err := journal.ParseID(rr.ID); err != nil || rr.Outcomes[1].Name != "edge-b" || rr.Outcomes[1].Status != "ok" || rr.Outcomes[1].Entries != 1 {
		t.Fatalf("request report %+v, outcome %+v", rr, rr.Outcomes[0])
	}
}

// TestUnreachableEdge: an edge that does not answer makes the exit status
// non-zero and is named; one that refuses the token is not retried.
func TestUnreachableEdge(t *testing.T) {
	dir := site(t, map[string]string{"a.js": "a"})
	a := newEdge(t, "edge-a", dir)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	code, stdout, stderr := purge(t, "url", "/a.js", "--edges", a.admin.URL+","+deadURL, "--timeout", "2s")
	if code != exitNotAll || !strings.Contains(stderr, "not confirmed by") || !strings.Contains(stderr, deadURL) || !strings.Contains(stdout, "1 confirmed, 1 failed") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run2(t, []string{"url", "/a.js", "--edges", a.admin.URL, "--json"}, "wrong-token-0123456789")
	var rep report
	json.Unmarshal([]byte(stdout), &rep)
	if code != exitNotAll || rep.Requests[0].Outcomes[0].HTTPStatus != 401 || rep.Requests[0].Outcomes[0].Attempts != 1 {
		t.Fatalf("wrong token: exit %d, %s %s", code, stdout, stderr)
	}
}

// TestManyEdgesProgress: with many edges, progress lines on stderr and
// the whole fan-out in the summary.
func TestManyEdgesProgress(t *testing.T) {
	dir := site(t, map[string]string{"a.js": "a"})
	a := newEdge(t, "edge-a", dir)
	var urls []string
	for range 25 { // 25 listeners in front of one edge
		srv := httptest.NewServer(a.h.AdminHandler(token))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	code, stdout, stderr := purge(t, "all", "--edges", strings.Join(urls, ","), "--concurrency", "4")
	if code != 0 || !strings.Contains(stdout, "all: 25 edges: 25 confirmed") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if n := strings.Count(stderr, "edges answered"); n < 5 || !strings.Contains(stderr, "purge: 25/25 edges answered") {
		t.Fatalf("%d progress lines:\n%s", n, stderr)
	}
}

// flaky answers 503 to the first n requests, then passes them on.
type flaky struct {
	next http.Handler
	n    atomic.Int32
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.n.Add(-1) >= 0 {
		http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
		return
	}
	f.next.ServeHTTP(w, r)
}

func TestRetries(t *testing.T) {
	dir := site(t, map[string]string{"a.js": "a"})
	a := newEdge(t, "edge-a", dir)
	f := &flaky{next: a.h.AdminHandler(token)}
	f.n.Store(2)
	srv := httptest.NewServer(f)
	defer srv.Close()
	code, stdout, stderr := purge(t, "url", "/a.js", "--edges", srv.URL, "--json")
	var rep report
	json.Unmarshal([]byte(stdout), &rep)
	if code != 0 || rep.Requests[0].Outcomes[0].Attempts != 3 {
		t.Fatalf("exit %d, %s %s", code, stdout, stderr)
	}
	f.n.Store(5)
	code, stdout, _ = purge(t, "url", "/a.js", "--edges", srv.URL, "--json", "--retries", "1")
	json.Unmarshal([]byte(stdout), &rep)
	if o := rep.Requests[0].Outcomes[0]; code != exitNotAll || o.Attempts != 2 || !strings.Contains(o.Error, "busy") {
		t.Fatalf("bounded retries: exit %d, %+v", code, o)
	}
}

// TestRegistryAndCatchUp: with --journal the record is written first and
// the edges come from the registry; a registered edge that does not
// answer "will apply on return (journal)", which --allow-catchup accepts.
func TestRegistryAndCatchUp(t *testing.T) {
	dir := site(t, map[string]string{"t.json": `{"v":1}`})
	a := newEdge(t, "edge-a", dir)
	jdir := t.TempDir()
	st, _ := store.NewDir(jdir)
	j := journal.New(st)
	ctx := context.Background()
	j.Register(ctx, journal.Edge{Name: "edge-a", Region: "test-1", AdminURL: a.admin.URL, LastSeen: time.Now()})
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	j.Register(ctx, journal.Edge{Name: "edge-down", Region: "test-2", AdminURL: dead.URL, LastSeen: time.Now()})
	j.Register(ctx, journal.Edge{Name: "edge-gone", Region: "test-2", AdminURL: "http://127.0.0.1:1", LastSeen: time.Now().Add(-48 * time.Hour)})

	code, stdout, stderr := purge(t, "tag", "release-42", "--journal", "dir:"+jdir, "--timeout", "2s")
	if code != exitNotAll || !strings.Contains(stdout, "edge-down") || !strings.Contains(stdout, "will apply on return (journal)") || !strings.Contains(stderr, "edge-down (will apply on return (journal))") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "edge-gone") || !strings.Contains(stderr, "1 registry entries not refreshed") {
		t.Fatalf("a decommissioned edge was contacted or not mentioned:\n%s\n%s", stdout, stderr)
	}
	ids, _ := j.IDs(ctx)
	if len(ids) != 1 {
		t.Fatalf("journal holds %d records, want 1", len(ids))
	}
	r, err := j.Read(ctx, ids[0])
	if err != nil || r.Tags[0] != "release-42" || r.Mode != journal.Soft || r.By == "" {
		t.Fatalf("record %+v, %v", r, err)
	}
	// The edge got the record's id: the journal's copy is a duplicate.
	if !a.c.PurgeApplied(r.ID) {
		t.Fatal("the edge did not get the journal id")
	}
	code, stdout, stderr = purge(t, "tag", "release-43", "--journal", "dir:"+jdir, "--timeout", "2s", "--allow-catchup")
	if code != 0 || !strings.Contains(stdout, "1 will apply on return (journal) (allowed)") {
		t.Fatalf("--allow-catchup: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// A registry entry that cannot be read: its edge is unknown, so the
	// run cannot say every edge confirmed, though every edge it knows did.
	jdir2 := t.TempDir()
	st2, _ := store.NewDir(jdir2)
	journal.New(st2).Register(ctx, journal.Edge{Name: "edge-a", AdminURL: a.admin.URL, LastSeen: time.Now()})
	if err := st2.Put(ctx, "edges/edge-broken", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = purge(t, "tag", "release-44", "--journal", "dir:"+jdir2, "--timeout", "2s")
	if code != exitNotAll || !strings.Contains(stderr, "could not be read") || !strings.Contains(stderr, "edge-broken") {
		t.Fatalf("with an unreadable registry entry: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestEdgesDNS: every A and AAAA record of a name is an edge, asked of a
// DNS server on loopback (miekg/dns, as dnsgeo is built).
func TestEdgesDNS(t *testing.T) {
	dir := site(t, map[string]string{"a.js": "a"})
	// Three edges on one port of three loopback addresses.
	var edges []*testEdge
	var ips []net.IP
	port := 0
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "::1"} {
		addr := net.JoinHostPort(ip, "0")
		if port != 0 {
			addr = net.JoinHostPort(ip, strconvItoa(port))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if ip == "::1" {
				t.Logf("no IPv6 loopback (%v): A records only", err)
				continue
			}
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		edges = append(edges, newEdgeOn(t, "edge-"+ip, dir, l))
		ips = append(ips, net.ParseIP(ip))
	}
	resolver := startDNS(t, "edges.cdn.test.", ips)
	code, stdout, stderr := purge(t, "all", "--edges-dns", "edges.cdn.test:"+strconvItoa(port), "--resolver", resolver, "--json")
	var rep report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 || rep.Summary.Confirmed != len(edges) {
		t.Fatalf("exit %d, %d of %d edges confirmed\n%s\n%s", code, rep.Summary.Confirmed, len(edges), stdout, stderr)
	}
	if code, _, stderr := purge(t, "all", "--edges-dns", "nothing.cdn.test:9080", "--resolver", resolver); code == 0 || !strings.Contains(stderr, "nothing.cdn.test") {
		t.Fatalf("a name without records: exit %d, %q", code, stderr)
	}
}

func strconvItoa(n int) string { return strconv.Itoa(n) }

// startDNS serves A and AAAA records of name over UDP and TCP on
// loopback, and returns its address.
func startDNS(t *testing.T, name string, ips []net.IP) string {
	t.Helper()
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		if !strings.EqualFold(q.Name, name) {
			m.Rcode = dns.RcodeNameError
		}
		for _, ip := range ips {
			if strings.EqualFold(q.Name, name) {
				switch {
				case ip.To4() != nil && q.Qtype == dns.TypeA:
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: ip})
				case ip.To4() == nil && q.Qtype == dns.TypeAAAA:
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 5}, AAAA: ip})
				}
			}
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: mux}
	tcp := &dns.Server{Listener: ln, Handler: mux}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return addr
}

// TestVerify: --verify reads the origin's ETag and finds every edge on
// it after the purge; an edge that still serves another version (here
// its origin is another copy) fails the run and is named.
func TestVerify(t *testing.T) {
	dir := site(t, map[string]string{"w.js": "v1"})
	a := newEdge(t, "edge-a", dir)
	a.get(t, "/w.js")
	update(t, dir, "w.js", "v2 of w")
	code, stdout, stderr := purge(t, "url", "/w.js", "--edges", a.admin.URL, "--verify", "--origin", "dir:"+dir)
	if code != 0 || !strings.Contains(stdout, "verified 1/1") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if body, cs := a.get(t, "/w.js"); body != "v2 of w" || !strings.HasPrefix(cs, "edge; hit") {
		t.Fatalf("after verify: %q %q, want a hit of v2 (warmed)", body, cs)
	}

	other := site(t, map[string]string{"w.js": "an old copy"})
	b := newEdge(t, "edge-b", other)
	code, stdout, stderr = purge(t, "url", "/w.js", "--edges", a.admin.URL+","+b.admin.URL, "--verify", "--origin", "dir:"+dir, "--timeout", "1s")
	if code != exitNotAll || !strings.Contains(stdout, "verify: edge-b /w.js: serves") || !strings.Contains(stderr, "edge-b") {
		t.Fatalf("an edge on another version: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestWarmAndStatus(t *testing.T) {
	dir := site(t, map[string]string{"widget/v2/login.js": strings.Repeat("function login(){}\n", 200)})
	a := newEdge(t, "edge-a", dir)
	code, stdout, stderr := purge(t, "warm", "/widget/v2/login.js", "--edges", a.admin.URL)
	if code != 0 || !strings.Contains(stdout, "1 urls warmed") {
		t.Fatalf("warm: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, cs := a.get(t, "/widget/v2/login.js"); !strings.HasPrefix(cs, "edge; hit") {
		t.Fatalf("after warm: %q", cs)
	}
	code, stdout, stderr = purge(t, "status", "https://cdn.example.com/widget/v2/login.js", "--edges", a.admin.URL)
	if code != 0 || !strings.Contains(stdout, "fresh") || !strings.Contains(stdout, "variants identity,gzip,zstd,br") || !strings.Contains(stdout, "etag ") {
		t.Fatalf("status: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := purge(t, "warm", "/missing.js", "/widget/v2/login.js", "--edges", a.admin.URL, "--json"); code != 0 || !strings.Contains(stdout, `"status": 404,`) {
		t.Fatalf("warm of a missing object: exit %d\n%s", code, stdout)
	}
}

func TestParseEdgesFile(t *testing.T) {
	got, err := parseEdgesFile("# eu-west-1\nhttp://10.0.0.1:9080\n  https://edge-2.example:9443/  # spare\n\n")
	if err != nil || len(got) != 2 || got[0] != "http://10.0.0.1:9080" || got[1] != "https://edge-2.example:9443" {
		t.Fatalf("%q, %v", got, err)
	}
	if _, err := parseEdgesFile("http://a:1\n10.0.0.2:9080\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestSplitURL(t *testing.T) {
	for _, tc := range []struct{ in, def, host, path string }{
		{"/a.js", "", "", "/a.js"},
		{"/a.js", "cdn.example.com", "cdn.example.com", "/a.js"},
		{"https://CDN.example.com/w/v1/login.js", "", "cdn.example.com", "/w/v1/login.js"},
		{"https://cdn.example.com:8443/a%20b.js", "", "cdn.example.com", "/a b.js"},
		{"https://cdn.example.com", "", "cdn.example.com", "/"},
	} {
		h, p, err := splitURL(tc.in, tc.def)
		if err != nil || h != tc.host || p != tc.path {
			t.Errorf("%q: %q %q %v", tc.in, h, p, err)
		}
	}
}

func FuzzParseEdgesFile(f *testing.F) {
	f.Add("# comment\nhttp://10.0.0.1:9080\nhttps://[::1]:9443\n")
	f.Add("http://a:1 # x\n\n\t\n")
	f.Fuzz(func(t *testing.T, data string) {
		urls, err := parseEdgesFile(data)
		if err != nil {
			return
		}
		for _, u := range urls {
			if again, err := normalizeURL(u); err != nil || again != u {
				t.Fatalf("accepted %q, which does not normalize to itself (%q, %v)", u, again, err)
			}
		}
	})
}
