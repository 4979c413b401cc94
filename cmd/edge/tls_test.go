package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/internal/pebbletest"
	"github.com/edgecdn/edge/internal/s3test"
	edgetls "github.com/edgecdn/edge/tls"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// startEdge runs the command with args and returns its addresses; it
// stops at the test's end.
func startEdge(t *testing.T, args ...string) (httpAddr, adminAddr, httpsAddr string, stderr *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [3]string, 1)
	done := make(chan int, 1)
	stderr = &bytes.Buffer{}
	var https string
	go func() {
		done <- run(ctx, append([]string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...), io.Discard, stderr,
			hooks{httpsReady: func(a net.Addr) { https = a.String() }, ready: func(h, a net.Addr) { ready <- [3]string{h.String(), a.String(), https} }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-ready:
		return a[0], a[1], a[2], stderr
	case code := <-done:
		t.Fatalf("edge exited with %d:\n%s", code, stderr)
	}
	return
}

// TestHTTPS runs the edge with ACME (Pebble) on a shared S3 store, HTTP/3,
// HSTS, the redirect and shared ticket keys, and checks the request path
// over HTTP/1.1, HTTP/2 and HTTP/3 against plain HTTP.
func TestHTTPS(t *testing.T) {
	ca := pebbletest.Start(t, pebbletest.Options{})
	srv := s3test.Start(t)
	srv.CreateBucket(t, "certs")
	httpAddr, adminAddr, httpsAddr, stderr := startEdge(t,
		"-https", "127.0.0.1:0", "-domains", "cdn.edge.test", "-acme-directory", ca.Directory(), "-acme-ca-roots", ca.RootsFile(),
		"-cert-cache", srv.OriginURL("certs", "fleet"), "-http3", "-hsts-max-age", "8760h", "-redirect-https",
		"-ticket-keys", "dir:"+filepath.Join(t.TempDir(), "keys"))
	roots := ca.IssuerRoots(t)
	_, port, _ := net.SplitHostPort(httpsAddr)
	base := "https://cdn.edge.test:" + port
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "cdn.edge.test"}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
	}
	h1 := &http.Transport{TLSClientConfig: tlsCfg, DialContext: dial, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}, DisableCompression: true}
	h2 := &http.Transport{TLSClientConfig: tlsCfg, DialContext: dial, ForceAttemptHTTP2: true, DisableCompression: true}
	h3 := &http3.Transport{TLSClientConfig: tlsCfg, Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		return quic.DialAddrEarly(ctx, httpsAddr, tc, qc)
	}}
	defer h1.CloseIdleConnections()
	defer h2.CloseIdleConnections()
	defer h3.Close()
	do := func(rt http.RoundTripper, url string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := rt.RoundTrip(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s: %v\n%s", url, err, stderr)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	// Plain HTTP fills the cache; /healthz is not redirected.
	if r := do(http.DefaultTransport, "http://"+httpAddr+"/healthz"); r.StatusCode != 200 {
		t.Errorf("plain /healthz: %d", r.StatusCode)
	}
	r := do(http.DefaultTransport, "http://"+httpAddr+"/widget/v1/login.js?x=1")
	if want := "https://127.0.0.1:" + port + "/widget/v1/login.js?x=1"; r.StatusCode != http.StatusPermanentRedirect || r.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 308 %q", r.StatusCode, r.Header.Get("Location"), want)
	}
	// An HTTP-01 challenge is answered before the redirect, from the
	// shared store: another edge made the order.
	srv.Put(t, "certs", "fleet/tok-123+http-01", []byte("tok-123.key-thumbprint"), s3test.PutOptions{})
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/.well-known/acme-challenge/tok-123", nil)
	req.Host = "cdn.edge.test"
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	challenge, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(challenge) != "tok-123.key-thumbprint" {
		t.Errorf("HTTP-01 challenge with -redirect-https: %d %q, want 200 and the stored answer", resp.StatusCode, challenge)
	}
	first := do(h1, base+"/widget/v1/login.js")
	for _, tc := range []struct {
		name  string
		rt    http.RoundTripper
		proto string
	}{{"HTTP/1.1", h1, "HTTP/1.1"}, {"HTTP/2", h2, "HTTP/2.0"}, {"HTTP/3", h3, "HTTP/3.0"}} {
		r := do(tc.rt, base+"/widget/v1/login.js")
		if r.StatusCode != 200 || r.Proto != tc.proto {
			t.Errorf("%s: %d %s", tc.name, r.StatusCode, r.Proto)
			continue
		}
		if r.TLS == nil || r.TLS.PeerCertificates[0].VerifyHostname("cdn.edge.test") != nil {
			t.Errorf("%s: no certificate for cdn.edge.test", tc.name)
		}
		// The same request path: a hit from the same cache, same variant.
		if !strings.HasPrefix(r.Header.Get("Cache-Status"), "edge; hit") || r.Header.Get("ETag") != first.Header.Get("ETag") || r.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: Cache-Status %q ETag %q (first %q) Content-Encoding %q", tc.name, r.Header.Get("Cache-Status"), r.Header.Get("ETag"), first.Header.Get("ETag"), r.Header.Get("Content-Encoding"))
		}
		if r.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
			t.Errorf("%s: Strict-Transport-Security %q", tc.name, r.Header.Get("Strict-Transport-Security"))
		}
		wantAltSvc := `h3=":` + port + `"; ma=86400`
		if tc.proto == "HTTP/3.0" {
			wantAltSvc = ""
		}
		if got := r.Header.Get("Alt-Svc"); got != wantAltSvc {
			t.Errorf("%s: Alt-Svc %q, want %q", tc.name, got, wantAltSvc)
		}
	}
	if ca.Orders() != 1 {
		t.Errorf("Pebble saw %d orders, want 1", ca.Orders())
	}
	// Health and metrics on the admin listener.
	resp, err = http.Get("http://" + adminAddr + "/healthz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"certificate cdn.edge.test: ok (acme, expires ", "session-ticket keys: ok"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/healthz?verbose lacks %q:\n%s", want, body)
		}
	}
	resp, err = http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`edge_tls_certificate_expiry_seconds{name="cdn.edge.test"}`, "edge_tls_handshake_errors_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr, hooks{}); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, f := range []string{"-https", "-domains", "-acme-directory", "-acme-email", "-acme-ca-roots", "-cert-cache", "-tls-cert", "-tls-key", "-redirect-https", "-hsts-max-age", "-ticket-keys", "-http3", "-alt-svc-port"} {
		if !strings.Contains(stderr.String(), "\n  "+f+" ") && !strings.Contains(stderr.String(), "\n  "+f+"\n") {
			t.Errorf("-h lacks %s", f)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-domains", "a.example"}, "-domains needs -https"},
		{[]string{"-http3"}, "-http3 needs -https"},
		{[]string{"-https", "127.0.0.1:0", "-domains", "a.example", "-alt-svc-port", "443"}, "-alt-svc-port needs -http3"},
		{[]string{"-https", "127.0.0.1:0", "-domains", "a.example", "-http3", "-alt-svc-port", "70000"}, "-alt-svc-port 70000: not a port"},
		{[]string{"-https", "127.0.0.1:0"}, "no certificates"},
		{[]string{"-https", "127.0.0.1:0", "-tls-cert", "c.pem"}, "in pairs"},
		{[]string{"-https", "127.0.0.1:0", "-tls-cert", "/nonexistent.pem", "-tls-key", "/nonexistent.key"}, "-tls-cert /nonexistent.pem"},
		{[]string{"-https", "127.0.0.1:0", "-domains", "a.example", "-cert-cache", "s3://bkt?regoin=x"}, "-cert-cache"},
		{[]string{"-https", "127.0.0.1:0", "-domains", "*.example"}, "-domains"},
	} {
		stderr.Reset()
		code := run(context.Background(), append([]string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, tc.args...), &stdout, &stderr, hooks{ready: func(net.Addr, net.Addr) { t.Error("started") }})
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestBadClients: bad handshakes are answered cleanly (closed, or a 400
// for plain HTTP), counted, logged at debug level only, bounded by the
// handshake timeout, and leave no goroutine or memory behind.
func TestBadClients(t *testing.T) {
	a, err := edgetls.NewACME(edgetls.ACMEConfig{Domains: []string{"cdn.edge.test"}, Store: nopStore{}, Directory: "https://127.0.0.1:1/dir"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := edgetls.ServerConfig((&edgetls.Certificates{ACME: a}).GetCertificate)
	errs := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	var logs bytes.Buffer
	lb := &lockedBuffer{b: &logs}
	srv := newHTTPSServer(http.NotFoundHandler(), handshakeLog{log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), errors: errs}, 200*time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	defer srv.Close()
	addr := ln.Addr().String()
	base := runtime.NumGoroutine()

	// Each returns what the server sent before it closed the connection.
	clients := map[string]func(net.Conn){
		"no SNI": func(c net.Conn) { tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake() },
		"unknown SNI": func(c net.Conn) {
			tls.Client(c, &tls.Config{ServerName: "evil.example", InsecureSkipVerify: true}).Handshake()
		},
		"malformed ClientHello": func(c net.Conn) {
			c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x20, 0x01, 0x00, 0x00, 0x1c, 0xde, 0xad})
			c.Write(bytes.Repeat([]byte{0xff}, 27))
		},
		"plain HTTP":                 func(c net.Conn) { io.WriteString(c, "GET / HTTP/1.1\r\nHost: cdn.edge.test\r\n\r\n") },
		"stall mid-handshake":        func(c net.Conn) { c.Write([]byte{0x16, 0x03, 0x01, 0x01}) },
		"stall before the handshake": func(net.Conn) {},
	}
	bad := func(name string, f func(net.Conn)) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f(c)
		// The server must close: a read ends (EOF or reset) well within
		// this safety bound, which only stops a hung test.
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: the server never closed the connection", name)
		}
		if name == "plain HTTP" && !strings.HasPrefix(string(got), "HTTP/1.0 400 Bad Request") {
			t.Fatalf("plain HTTP got %q, want a 400", got)
		}
	}
	const each = 20
	for name, f := range clients {
		for range each {
			bad(name, f)
		}
	}
	if n := testutil.ToFloat64(errs); n < float64(4*each) {
		t.Errorf("handshake errors counted: %v, want at least %d", n, 4*each)
	}
	// No goroutine left behind (the server's own accept loop stays).
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
	// Nor memory: 1,000 more of the quick ones (the stalls cost only
	// time) leave the heap, after a collection, within 2 MiB of where it
	// was. Each connection's TLS and HTTP buffers alone are over 8 KiB,
	// so a leak of them would show as 8 MiB or more.
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	for range 250 {
		for _, name := range []string{"no SNI", "unknown SNI", "malformed ClientHello", "plain HTTP"} {
			bad(name, clients[name])
		}
	}
	if after := heap(); after > before+2<<20 {
		t.Errorf("heap in use grew from %d to %d bytes over 1,000 bad connections", before, after)
	}
	sc := bufio.NewScanner(strings.NewReader(lb.String()))
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "level=DEBUG") {
			t.Errorf("logged above debug: %s", sc.Text())
		}
	}
	if !strings.Contains(lb.String(), "handshake failed") {
		t.Error("no debug log of the failed handshakes")
	}
}

// nopStore is an empty store (no certificate ever gets in).
type nopStore struct{}

func (nopStore) Get(context.Context, string) ([]byte, error)    { return nil, fs.ErrNotExist }
func (nopStore) Put(context.Context, string, []byte) error      { return errors.New("read-only") }
func (nopStore) Create(context.Context, string, []byte) error   { return errors.New("read-only") }
func (nopStore) Delete(context.Context, string) error           { return nil }
func (nopStore) List(context.Context, string) ([]string, error) { return nil, nil }
func (nopStore) String() string                                 { return "nop" }

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestAltSvcPort: behind a load balancer that maps 443 to the edge's
// 8443, Alt-Svc must name the port browsers can reach.
func TestAltSvcPort(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "cdn.edge.test")
	_, _, httpsAddr, stderr := startEdge(t, "-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile, "-http3", "-alt-svc-port", "443")
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + httpsAddr + "/healthz")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Alt-Svc"), `h3=":443"; ma=86400`; got != want {
		t.Errorf("Alt-Svc %q, want %q", got, want)
	}
}
