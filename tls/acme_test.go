package tls

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/internal/pebbletest"
	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/store"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newACME(t *testing.T, ca *pebbletest.CA, s store.Store, cfg ACMEConfig) *ACME {
	t.Helper()
	cfg.Store = s
	if cfg.Directory == "" {
		cfg.Directory = ca.Directory()
		cfg.HTTPClient = ca.Client()
	}
	if cfg.Domains == nil {
		cfg.Domains = []string{"cdn.edge.test"}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	a, err := NewACME(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestEdgesShareOneOrder: edges starting at once on one S3 store make one
// order between them, counted at Pebble; all serve that certificate, and
// its chain verifies against Pebble's issuing root over HTTP/1.1 and
// HTTP/2. The private key went to S3 with encryption requested, and no
// log line holds it.
func TestEdgesShareOneOrder(t *testing.T) {
	ca := pebbletest.Start(t, pebbletest.Options{})
	srv := s3test.Start(t)
	srv.CreateBucket(t, "certs")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	ctx := ctx10(t)
	const edges = 20 // the fleet: 20 edges starting at once for a new domain
	var logs logBuffer
	var acmes []*ACME
	for range edges {
		s, err := store.Open(ctx, proxy.OriginURL("certs", "fleet"))
		if err != nil {
			t.Fatal(err)
		}
		acmes = append(acmes, newACME(t, ca, s, ACMEConfig{Logger: logs.logger()}))
	}
	var wg sync.WaitGroup
	for _, a := range acmes {
		wg.Go(func() { a.Check(ctx) })
	}
	wg.Wait()
	if n := ca.Orders(); n != 1 {
		t.Fatalf("Pebble saw %d orders from %d edges, want 1\n%s", n, edges, logs.String())
	}
	roots := ca.IssuerRoots(t)
	var serial string
	for i, a := range acmes {
		c := a.Certificate("cdn.edge.test")
		if c == nil {
			t.Fatalf("edge %d has no certificate\n%s", i, logs.String())
		}
		if i == 0 {
			serial = c.Leaf.SerialNumber.String()
		} else if s := c.Leaf.SerialNumber.String(); s != serial {
			t.Errorf("edge %d serves serial %s, edge 0 %s", i, s, serial)
		}
	}
	addr, _ := serve(t, (&Certificates{ACME: acmes[edges-1]}).GetCertificate)
	for _, h2 := range []bool{false, true} {
		body, st, err := get(t, addr, "cdn.edge.test", roots, h2, nil)
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		want := map[bool]string{false: "ok HTTP/1.1", true: "ok HTTP/2.0"}[h2]
		if body != want || st.PeerCertificates[0].SerialNumber.String() != serial {
			t.Errorf("h2=%v: %q, serial %s; want %q, %s", h2, body, st.PeerCertificates[0].SerialNumber, want, serial)
		}
	}
	puts := proxy.Seen("PUT", "/certs/fleet/")
	if n := len(proxy.Seen("PUT", "/certs/fleet/cdn.edge.test")) - len(proxy.Seen("PUT", "/certs/fleet/cdn.edge.test+token")); n != 1 {
		t.Errorf("%d PUTs of the certificate, want 1", n)
	}
	for _, h := range puts {
		if h.Get("X-Amz-Server-Side-Encryption") != "AES256" {
			t.Error("the private key went to S3 without server-side encryption requested")
		}
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("a private key is in the log")
	}
}

// TestNeverOrdersForOtherNames: handshakes for a name not in Domains, or
// with no SNI, fail and never reach the CA.
func TestNeverOrdersForOtherNames(t *testing.T) {
	ca := pebbletest.Start(t, pebbletest.Options{})
	s, _ := store.NewDir(t.TempDir())
	a := newACME(t, ca, s, ACMEConfig{})
	addr, _ := serve(t, (&Certificates{ACME: a}).GetCertificate)
	// (A client sends no SNI for an IP address: the "" case.)
	for _, sni := range []string{"evil.example", "", "cdn.edge.test.evil.example", "CDN.edge.test."} {
		for range 10 {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
			if err == nil {
				if sni == "CDN.edge.test." {
					c.Close()
					continue // our name in another case: answered (after an order)
				}
				c.Close()
				t.Fatalf("handshake with SNI %q succeeded", sni)
			}
		}
	}
	// Only the one name of ours ordered, once.
	if n := ca.Orders(); n != 1 {
		t.Fatalf("Pebble saw %d orders, want 1 (for cdn.edge.test only)", n)
	}
}

// TestRenewal: a five-minute certificate is renewed when a third of its
// lifetime remains, while requests keep succeeding; a second edge then
// loads the renewed one from the store without ordering; metrics follow.
func TestRenewal(t *testing.T) {
	ca := pebbletest.Start(t, pebbletest.Options{Validity: 5 * time.Minute})
	s, _ := store.NewDir(t.TempDir())
	clk := &testClock{}
	a := newACME(t, ca, s, ACMEConfig{Now: clk.now})
	b := newACME(t, ca, s, ACMEConfig{Now: clk.now})
	ctx := ctx10(t)
	a.Check(ctx)
	first := a.Certificate("cdn.edge.test")
	if first == nil || ca.Orders() != 1 {
		t.Fatalf("no first certificate (orders %d)", ca.Orders())
	}
	if life := first.Leaf.NotAfter.Sub(first.Leaf.NotBefore); life > 6*time.Minute {
		t.Fatalf("Pebble issued a certificate for %v, want 5m", life)
	}
	certs := &Certificates{ACME: a}
	reg := prometheus.NewPedanticRegistry()
	if err := certs.Register(reg); err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, certs.GetCertificate)
	roots := ca.IssuerRoots(t)

	// Requests keep going through the renewal.
	stop := make(chan struct{})
	var failed, served int
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := get(t, addr, "cdn.edge.test", roots, true, nil); err != nil {
				failed++
				t.Error(err)
			}
			served++
		}
	})
	// Not due yet: nothing happens.
	clk.advance(3 * time.Minute)
	a.Check(ctx)
	if ca.Orders() != 1 {
		t.Fatalf("renewed at 3 of 5 minutes (orders %d)", ca.Orders())
	}
	clk.advance(40 * time.Second) // 1m20s left, under a third
	a.Check(ctx)
	second := a.Certificate("cdn.edge.test")
	if ca.Orders() != 2 || second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatalf("not renewed: orders %d", ca.Orders())
	}
	_, st, err := get(t, addr, "cdn.edge.test", roots, false, nil)
	if err != nil || st.PeerCertificates[0].SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Fatalf("not serving the renewed certificate: %v", err)
	}
	close(stop)
	wg.Wait()
	if failed > 0 || served == 0 {
		t.Fatalf("%d of %d requests failed during the renewal", failed, served)
	}
	// Later, at a time the renewed certificate is fresh, edge b starts.
	clk.advance(-3*time.Minute - 40*time.Second)
	b.Check(ctx)
	if c := b.Certificate("cdn.edge.test"); c == nil || c.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 || ca.Orders() != 2 {
		t.Fatalf("edge b did not load the renewed certificate from the store (orders %d)", ca.Orders())
	}
	want := float64(second.Leaf.NotAfter.Unix())
	if got := testutil.ToFloat64(expiryCollector{certs}); got != want {
		t.Errorf("edge_tls_certificate_expiry_seconds = %v, want %v", got, want)
	}
}

// TestCAFailureKeepsServing: with the CA unreachable, a due certificate
// from the store is still served; the failure is counted, logged and
// shown, and retried only after a backoff.
func TestCAFailureKeepsServing(t *testing.T) {
	ca := pebbletest.Start(t, pebbletest.Options{Validity: 5 * time.Minute})
	s, _ := store.NewDir(t.TempDir())
	clk := &testClock{}
	ctx := ctx10(t)
	newACME(t, ca, s, ACMEConfig{Now: clk.now}).Check(ctx)
	clk.advance(4 * time.Minute)
	var logs logBuffer
	down := newACME(t, ca, s, ACMEConfig{Now: clk.now, Directory: "https://127.0.0.1:1/dir", Logger: logs.logger()})
	certs := &Certificates{ACME: down}
	down.Check(ctx)
	down.Check(ctx) // within the backoff: no second attempt
	if n := testutil.ToFloat64(down.failures.WithLabelValues("cdn.edge.test")); n != 1 {
		t.Errorf("edge_tls_renewal_failures_total = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "obtaining certificate failed") {
		t.Errorf("failure not logged:\n%s", logs.String())
	}
	if st := certs.Status(); len(st) != 1 || st[0].Err == "" || st[0].NotAfter.IsZero() {
		t.Errorf("Status = %+v, want the held certificate and the error", st)
	}
	addr, _ := serve(t, certs.GetCertificate)
	if _, _, err := get(t, addr, "cdn.edge.test", ca.IssuerRoots(t), false, nil); err != nil {
		t.Fatalf("the stored certificate is not served while the CA is down: %v", err)
	}
}

// dnsServer answers A 127.0.0.1 for every name, as the CA's resolver.
func dnsServer(t *testing.T) string {
	t.Helper()
	// Pebble asks over TCP: the same port for both.
	var pc net.PacketConn
	var tl net.Listener
	for {
		var err error
		if tl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", tl.Addr().String()); err == nil {
			break
		}
		tl.Close()
	}
	answer := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: answer}, {Listener: tl, Handler: answer}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return tl.Addr().String()
}

// TestRealValidation: Pebble really validates, HTTP-01 on the HTTP
// listener (with "Host: NAME:PORT", which autocert's handler rejects) and
// TLS-ALPN-01 on the HTTPS one; the edge that answers is not the edge
// that ordered, which reads the answers from the store.
func TestRealValidation(t *testing.T) {
	httpPort, tlsPort := pebbletest.FreePort(t), pebbletest.FreePort(t)
	ca := pebbletest.Start(t, pebbletest.Options{Validate: true, HTTPPort: httpPort, TLSPort: tlsPort, DNSServer: dnsServer(t)})
	s, _ := store.NewDir(t.TempDir())
	ctx := ctx10(t)
	domains := []string{"h.edge.test", "a.edge.test"}
	// The edge the CA reaches.
	answering := newACME(t, ca, s, ACMEConfig{Domains: domains})
	hl, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(httpPort)))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: answering.HTTPHandler(http.NotFoundHandler())}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	tl, err := tls.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(tlsPort)), ServerConfig((&Certificates{ACME: answering}).GetCertificate))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	t.Cleanup(func() { tl.Close() })

	for _, tc := range []struct{ name, typ string }{{"h.edge.test", "http-01"}, {"a.edge.test", "tls-alpn-01"}} {
		ordering := newACME(t, ca, s, ACMEConfig{Domains: []string{tc.name}, ChallengeTypes: []string{tc.typ}})
		if err := ordering.obtain(ctx, tc.name); err != nil {
			t.Fatalf("%s: %v\n%s", tc.typ, err, ca.Log())
		}
	}
	if n := ca.Orders(); n != 2 {
		t.Errorf("orders = %d, want 2", n)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
