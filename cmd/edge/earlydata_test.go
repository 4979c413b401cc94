package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestEarlyDataRefused: a POST sent in HTTP/3 0-RTT early data, which
// anyone who saw the packets could replay, gets 425 Too Early; a GET in
// early data is served. The edge's answers to the client are held back
// until the edge has handled the request, so the handshake cannot have
// completed first.
func TestEarlyDataRefused(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "cdn.edge.test")
	relay := newHoldingRelay(t) // before the edge: it closes after the edge has shut down
	_, adminAddr, httpsAddr, stderr := startEdge(t, "-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile, "-http3")
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	sessions := newNotifyingSessionCache()
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "cdn.edge.test", ClientSessionCache: sessions, NextProtos: []string{http3.NextProtoH3}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A first connection leaves a session ticket that allows 0-RTT.
	first := &http3.Transport{TLSClientConfig: tlsCfg, Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		return quic.DialAddrEarly(ctx, httpsAddr, tc, qc)
	}}
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://cdn.edge.test/widget/v1/login.js", nil)
	resp, err := first.RoundTrip(req)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	first.Close()
	select {
	case <-sessions.stored:
	case <-ctx.Done():
		t.Fatal("no session ticket")
	}

	// The second connection, through a relay that holds the edge's
	// packets: the handshake cannot complete, so what the edge handles
	// arrived in early data.
	relay.connect(t, httpsAddr)
	conn, err := quic.DialAddrEarly(ctx, relay.addr(), tlsCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(conn)
	post, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequestWithContext(ctx, "POST", "https://cdn.edge.test/widget/v1/login.js", nil)
	if err := post.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	post.Close()
	gotGet := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http3.MethodGet0RTT, "https://cdn.edge.test/widget/v1/login.js", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Error(err)
		}
		gotGet <- resp
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(scrape(t, adminAddr), "edge_http3_too_early_total 1") {
		if time.Now().After(deadline) {
			t.Fatalf("the edge did not refuse the POST in early data:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond) // watching the edge from outside; the deadline fails the test
	}
	relay.release()
	resp, err = post.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooEarly {
		t.Errorf("POST in early data: %d, want 425", resp.StatusCode)
	}
	if resp := <-gotGet; resp == nil || resp.StatusCode != 200 {
		t.Errorf("GET in early data: %v, want 200", resp)
	} else {
		resp.Body.Close()
	}
	if !conn.ConnectionState().Used0RTT {
		t.Error("the edge did not accept 0-RTT")
	}
}

// TestRefuseEarlyDataMethods: only unsafe methods are refused, and only
// before the handshake completes.
func TestRefuseEarlyDataMethods(t *testing.T) {
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	h := refuseEarlyData(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }), refused)
	for _, tc := range []struct {
		method string
		tls    *tls.ConnectionState
		want   int
	}{
		{"POST", &tls.ConnectionState{}, 425},
		{"DELETE", &tls.ConnectionState{}, 425},
		{"GET", &tls.ConnectionState{}, 204},
		{"HEAD", &tls.ConnectionState{}, 204},
		{"OPTIONS", &tls.ConnectionState{}, 204},
		{"POST", &tls.ConnectionState{HandshakeComplete: true}, 204},
		{"POST", nil, 204},
	} {
		r := httptest.NewRequest(tc.method, "/", nil)
		r.TLS = tc.tls
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s (TLS %+v): %d, want %d", tc.method, tc.tls, w.Code, tc.want)
		}
	}
	if n := testutil.ToFloat64(refused); n != 2 {
		t.Errorf("refused: %v, want 2", n)
	}
}

func scrape(t *testing.T, adminAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// holdingRelay relays UDP between one client and the edge, and holds the
// edge's packets until release.
type holdingRelay struct {
	front *net.UDPConn // the client's side
	back  *net.UDPConn // connected to the edge
	mu    sync.Mutex
	held  [][]byte
	hold  bool
	peer  net.Addr
}

// newHoldingRelay listens for the client; it relays once connected.
func newHoldingRelay(t *testing.T) *holdingRelay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &holdingRelay{front: front, hold: true}
	t.Cleanup(func() {
		front.Close()
		if r.back != nil {
			r.back.Close()
		}
	})
	return r
}

// connect starts relaying between the client and edgeAddr.
func (r *holdingRelay) connect(t *testing.T, edgeAddr string) {
	t.Helper()
	ua, _ := net.ResolveUDPAddr("udp", edgeAddr)
	back, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	r.back = back
	front := r.front
	go func() { // client → edge
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.peer = from
			r.mu.Unlock()
			back.Write(buf[:n])
		}
	}()
	go func() { // edge → client, held until release
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			if r.hold {
				r.held = append(r.held, append([]byte(nil), buf[:n]...))
			} else {
				front.WriteTo(buf[:n], r.peer)
			}
			r.mu.Unlock()
		}
	}()
}

func (r *holdingRelay) addr() string { return r.front.LocalAddr().String() }

func (r *holdingRelay) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.held {
		r.front.WriteTo(p, r.peer)
	}
	r.held, r.hold = nil, false
}
