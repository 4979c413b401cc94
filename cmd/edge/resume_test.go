package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestResumeAcrossEdgesEveryProtocol: two edges of a region share
// -ticket-keys; a session a browser got from edge A resumes on edge B over
// HTTP/1.1, HTTP/2 and HTTP/3. (HTTP/3 did not: quic-go's server cloned
// the tls.Config once at start, before the shared keys were loaded.)
func TestResumeAcrossEdgesEveryProtocol(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "cdn.edge.test")
	keys := "dir:" + filepath.Join(dir, "ticket-keys")
	var https [2]string
	for i := range https {
		_, _, https[i], _ = startEdge(t, "-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile, "-ticket-keys", keys, "-http3")
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)

	// get fetches the widget from addr over proto with the browser's
	// session cache, and reports whether the handshake resumed.
	get := func(proto, addr string, sessions tls.ClientSessionCache) bool {
		t.Helper()
		cfg := &tls.Config{RootCAs: roots, ServerName: "cdn.edge.test", ClientSessionCache: sessions}
		dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		var rt http.RoundTripper
		switch proto {
		case "HTTP/1.1":
			tr := &http.Transport{TLSClientConfig: cfg, DialContext: dial, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
			defer tr.CloseIdleConnections()
			rt = tr
		case "HTTP/2.0":
			tr := &http.Transport{TLSClientConfig: cfg, DialContext: dial, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			rt = tr
		case "HTTP/3.0":
			tr := &http3.Transport{TLSClientConfig: cfg, Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
				return quic.DialAddr(ctx, addr, tc, qc)
			}}
			defer tr.Close()
			rt = tr
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://cdn.edge.test/widget/v1/login.js", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s from %s: %v", proto, addr, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Proto != proto {
			t.Fatalf("%s from %s: %d %s", proto, addr, resp.StatusCode, resp.Proto)
		}
		return resp.TLS.DidResume
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0", "HTTP/3.0"} {
		sessions := newNotifyingSessionCache()
		if get(proto, https[0], sessions) {
			t.Fatalf("%s: the first connection resumed", proto)
		}
		// TLS 1.3 tickets arrive after the handshake: wait for one.
		select {
		case <-sessions.stored:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: edge A sent no session ticket", proto)
		}
		if !get(proto, https[0], sessions) {
			t.Errorf("%s: a session from edge A did not resume on edge A", proto)
		}
		if !get(proto, https[1], sessions) {
			t.Errorf("%s: a session from edge A did not resume on edge B", proto)
		}
	}
}

// notifyingSessionCache is a client session cache that signals each
// ticket it stores.
type notifyingSessionCache struct {
	tls.ClientSessionCache
	stored chan struct{}
}

func newNotifyingSessionCache() *notifyingSessionCache {
	return &notifyingSessionCache{tls.NewLRUClientSessionCache(8), make(chan struct{}, 16)}
}

func (c *notifyingSessionCache) Put(key string, s *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, s)
	if s != nil {
		select {
		case c.stored <- struct{}{}:
		default:
		}
	}
}

// TestSameAnswerOverEveryProtocol: plain HTTP, HTTPS over HTTP/1.1 and
// HTTP/2, and HTTP/3 reach one request path: the same cache (a hit after
// the first fill), the same variant, the same bytes.
func TestSameAnswerOverEveryProtocol(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "cdn.edge.test")
	httpAddr, _, httpsAddr, _ := startEdge(t, "-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile, "-http3")
	tlsCfg := &tls.Config{ServerName: "cdn.edge.test", InsecureSkipVerify: true}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
	}
	h1 := &http.Transport{TLSClientConfig: tlsCfg, DialContext: dial, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}, DisableCompression: true}
	h2 := &http.Transport{TLSClientConfig: tlsCfg, DialContext: dial, ForceAttemptHTTP2: true, DisableCompression: true}
	h3 := &http3.Transport{TLSClientConfig: tlsCfg, Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		return quic.DialAddr(ctx, httpsAddr, tc, qc)
	}}
	plain := &http.Transport{DisableCompression: true}
	defer h1.CloseIdleConnections()
	defer h2.CloseIdleConnections()
	defer h3.Close()
	defer plain.CloseIdleConnections()
	type answer struct {
		status                    int
		etag, coding, vary, cache string
		body                      string
	}
	get := func(rt http.RoundTripper, url string) answer {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = "cdn.edge.test"
		req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cache, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), ";ttl=")
		cache, _, _ = strings.Cut(cache, "; ttl=")
		return answer{resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), cache, string(b)}
	}
	const path = "/widget/v1/login.js"
	get(plain, "http://"+httpAddr+path) // the fill
	want := get(plain, "http://"+httpAddr+path)
	if want.status != 200 || !strings.HasPrefix(want.cache, "edge; hit") || want.coding == "" {
		t.Fatalf("plain HTTP: %+v", want)
	}
	for name, a := range map[string]answer{
		"HTTPS/1.1": get(h1, "https://cdn.edge.test"+path),
		"HTTP/2":    get(h2, "https://cdn.edge.test"+path),
		"HTTP/3":    get(h3, "https://cdn.edge.test"+path),
	} {
		if a != want {
			t.Errorf("%s answered differently from plain HTTP:\n got %+v\nwant %+v", name, a, want)
		}
	}
}
