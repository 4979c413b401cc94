package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/internal/s3test"
)

func TestBadInputExitsWithAMessage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownField := write("unknown.yaml", "sites:\n  - hosts: [a.example]\n    orign: dir:/tmp\n")
	badPrefix := write("prefix.yaml", "sites:\n  - rules:\n      - prefix: widget/\n        ttl: 1h\n")
	badTTL := write("ttl.yaml", "sites:\n  - ttl: forever\n")
	dupHost := write("dup.yaml", "sites:\n  - hosts: [a.example]\n  - hosts: [A.example]\n")
	shortToken := write("token", "short\n")
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{"unknown origin scheme", []string{"-origin", "ftp://bucket"}, []string{"-origin", "unknown scheme"}},
		{"missing dir origin", []string{"-origin", "dir:/does/not/exist"}, []string{"-origin", "/does/not/exist"}},
		{"bad size", []string{"-mem", "lots"}, []string{"-mem", "lots"}},
		{"bad disk size", []string{"-disk", "12XB"}, []string{"-disk"}},
		{"mem too small", []string{"-mem", "10KiB"}, []string{"-mem", "at least"}},
		{"unknown flag", []string{"-colour"}, []string{"colour"}},
		{"stray argument", []string{"serve"}, []string{"unexpected arguments: serve"}},
		{"missing config", []string{"-config", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml"}},
		{"unknown config field", []string{"-config", unknownField}, []string{"unknown.yaml", "line 3", "orign"}},
		{"bad rule prefix", []string{"-config", badPrefix}, []string{"prefix.yaml", "line 3", "sites[0].rules[0].prefix", "must start with /"}},
		{"bad ttl", []string{"-config", badTTL}, []string{"ttl.yaml", "line 2", "forever"}},
		{"duplicate host", []string{"-config", dupHost}, []string{"dup.yaml", "line 3", "sites[1].hosts[0]", "already"}},
		{"public admin without a token", []string{"-admin", "0.0.0.0:9080"}, []string{"-admin 0.0.0.0:9080 is not on loopback", "-admin-token-file"}},
		{"short admin token", []string{"-admin-token-file", shortToken}, []string{"-admin-token-file", "shorter than 16"}},
		{"missing admin token file", []string{"-admin-token-file", filepath.Join(dir, "none")}, []string{"-admin-token-file", "none"}},
		// Flags refuse what the config file refuses, with the same words.
		{"negative ttl", []string{"-ttl", "-5s"}, []string{"-ttl", `"-5s" is negative`}},
		{"negative stale-if-error", []string{"-stale-if-error", "-1h"}, []string{"-stale-if-error", `"-1h" is negative`}},
		{"ttl not a duration", []string{"-ttl", "soon"}, []string{"-ttl", `"soon" is not a duration`}},
		{"negative miss concurrency", []string{"-miss-concurrency", "-7"}, []string{"-miss-concurrency -7", "-1 for no limit"}},
		{"zero fetch timeout", []string{"-fetch-timeout", "0"}, []string{"-fetch-timeout 0s: must be positive"}},
		{"invalid bucket", []string{"-origin", "s3://My_Bucket/x"}, []string{"-origin", `invalid bucket name "My_Bucket"`}},
		{"invalid bucket in the config", []string{"-config", write("bucket.yaml", "sites:\n  - origin: s3://ab\n")}, []string{"sites[0].origin", `invalid bucket name "ab"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, tc.args...)
			// later flags win: a case's own -admin replaces the default
			code := run(context.Background(), args, &stdout, &stderr, hooks{ready: func(net.Addr, net.Addr) {
				t.Error("started serving")
			}})
			if code == 0 {
				t.Fatalf("exit status 0, want non-zero; stderr:\n%s", stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			// The error and a hint, not the whole usage.
			if n := strings.Count(stderr.String(), "\n"); n > 3 {
				t.Errorf("%d lines on stderr for one error:\n%s", n, stderr.String())
			}
		})
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr, hooks{}); code != 0 {
		t.Fatalf("-h: exit status %d", code)
	}
	for _, f := range []string{"-http", "-admin", "-origin", "-cache-dir", "-mem", "-disk", "-max-mem-object", "-config", "-access-log", "-ttl", "-negative-ttl", "-fetch-timeout", "-shutdown-timeout", "-admin-token-file", "-version", "-name", "-region", "-admin-url", "-purge-journal", "-purge-poll", "127.0.0.1:8080", "127.0.0.1:9080"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("-h output lacks %s", f)
		}
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"-version"}, &stdout, &stderr, hooks{}); code != 0 || !strings.HasPrefix(stdout.String(), "edge ") {
		t.Fatalf("-version: exit %d, output %q", code, stdout.String())
	}
}

// TestServesDemoSite runs the whole command on its embedded default, as
// `make run` does, then stops it the way SIGTERM does.
func TestServesDemoSite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-access-log"}, &stdout, &stderr,
			hooks{ready: func(h, a net.Addr) { addrs <- [2]net.Addr{h, a} }, terminal: true})
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case code := <-done:
		t.Fatalf("exited with %d before serving:\n%s", code, stderr.String())
	}
	base, admin := "http://"+a[0].String(), "http://"+a[1].String()
	if want := "serving the demo site at " + base + "/"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks the line for a person at a terminal, %q:\n%s", want, stderr.String())
	}

	get := func(url string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		// A transport that does not ask for gzip behind our back.
		res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, body := get(base + "/"); res.StatusCode != 200 || !strings.Contains(body, "/widget/v1/login.js") {
		t.Fatalf("index: status %d", res.StatusCode)
	}
	res, _ := get(base+"/widget/v1/login.js", "Accept-Encoding", "br")
	if res.StatusCode != 200 || res.Header.Get("Content-Encoding") != "br" || res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("widget: status %d encoding %q cache-control %q", res.StatusCode, res.Header.Get("Content-Encoding"), res.Header.Get("Cache-Control"))
	}
	for _, p := range []string{"/tenants/acme.json", "/logo.png", "/healthz"} {
		if res, _ := get(base + p); res.StatusCode != 200 {
			t.Fatalf("%s: status %d", p, res.StatusCode)
		}
	}
	if res, body := get(admin + "/metrics"); res.StatusCode != 200 || !strings.Contains(body, `edge_derivations_total{encoding="br"} 1`) {
		t.Fatalf("metrics: status %d\n%s", res.StatusCode, body)
	}
	if res, _ := get(base + "/metrics"); res.StatusCode != 404 {
		t.Fatalf("/metrics on the public listener: status %d, want 404", res.StatusCode)
	}
	if res, _ := get(base+"/tenants/acme.json", "X-Padding", strings.Repeat("x", 40<<10)); res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("40 KiB of headers: status %d, want 431", res.StatusCode)
	}
	if res, body := get(admin + "/debug/pprof/"); res.StatusCode != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof: status %d", res.StatusCode)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit status %d after shutdown:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"uri":"/widget/v1/login.js"`) {
		t.Fatalf("access log lacks the widget request:\n%s", stdout.String())
	}
	if _, err := net.Dial("tcp", a[0].String()); err == nil {
		t.Fatal("still listening after shutdown")
	}
}

// TestShutdownFinishesInFlightRequests: a request waiting on S3 when
// SIGTERM arrives still gets its whole answer, and the object reaches the
// disk before the process exits.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	body := bytes.Repeat([]byte("function login(){return 42}\n"), 400)
	srv.Put(t, "assets", "w.js", body, s3test.PutOptions{ContentType: "text/javascript"})
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	proxy.SetFault(s3test.Fault{Hold: hold, Held: held})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan net.Addr, 1)
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	cacheDir := t.TempDir()
	go func() {
		// The held S3 response is let go only once the server is shutting
		// down: its listeners are closed, this request is still in flight.
		done <- run(ctx, []string{"-cache-dir", cacheDir, "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-origin", proxy.OriginURL("assets", ""), "-must-serve", ""},
			&stdout, &stderr, hooks{ready: func(h, _ net.Addr) { addrs <- h }, shuttingDown: func() { close(hold) }})
	}()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a.String()
	case code := <-done:
		t.Fatalf("exited with %d:\n%s", code, stderr.String())
	}
	type result struct {
		status int
		body   []byte
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		res, err := http.Get(base + "/w.js")
		if err != nil {
			resc <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		resc <- result{res.StatusCode, b, err}
	}()
	<-held   // the request is in flight, waiting on S3
	cancel() // SIGTERM
	r := <-resc
	if r.err != nil || r.status != 200 || !bytes.Equal(r.body, body) {
		t.Fatalf("in-flight request: status %d, %d bytes, err %v", r.status, len(r.body), r.err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit status %d:\n%s", code, stderr.String())
	}
	// The object was written to disk before exit: a new edge serves it
	// with S3 gone.
	srv.Stop()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() {
		done <- run(ctx2, []string{"-cache-dir", cacheDir, "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-origin", proxy.OriginURL("assets", ""), "-must-serve", ""},
			&stdout, &stderr, hooks{ready: func(h, _ net.Addr) { addrs <- h }})
	}()
	base = "http://" + (<-addrs).String()
	res, err := http.Get(base + "/w.js")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("after restart with S3 stopped: %v %v", err, res)
	}
	res.Body.Close()
	cancel2()
	<-done
}

// TestZeroMeansZero checks that 0 for a window, in a flag or in the
// config file, is none, not "unset": a flag's 0 reaches the sites, and a
// site's 0 overrides a flag; a site that sets nothing takes the flag's.
func TestZeroMeansZero(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.yaml")
	os.WriteFile(cfg, []byte(`sites:
  - hosts: [zero.example]
    origin: dir:`+dir+`
    ttl: 0s
    stale_if_error: 0s
  - hosts: [flags.example]
    origin: dir:`+dir+`
`), 0o644)
	o, err := parseFlags([]string{"-config", cfg, "-ttl", "1h", "-stale-while-revalidate", "0", "-stale-if-error", "1h", "-negative-ttl", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sites, closeOrigins, err := loadSites(context.Background(), o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeOrigins()
	type windows struct{ ttl, neg, swr, sie time.Duration }
	got := func(s edge.Site) windows {
		return windows{s.TTL, s.NegativeTTL, s.StaleWhileRevalidate, s.StaleIfError}
	}
	if w := (windows{0, 0, 0, 0}); got(sites[0]) != w {
		t.Errorf("site with ttl: 0s and stale_if_error: 0s = %+v, want %+v", got(sites[0]), w)
	}
	if w := (windows{time.Hour, 0, 0, time.Hour}); got(sites[1]) != w {
		t.Errorf("site taking the flags = %+v, want %+v", got(sites[1]), w)
	}
}
