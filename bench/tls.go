package main

// HTTPS scenarios (issue 11, point 10): the edge and nginx terminate TLS
// with the same ECDSA P-256 certificate and the same suites (TLS 1.2 and
// 1.3, ECDHE with AEAD only), in the same run: hits over keep-alive
// HTTPS (wrk), and full and resumed TLS 1.3 handshakes per second (a Go
// generator in the harness: handshake, one small GET, close).

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

const (
	scHTTPSHitSmall  = "https-hit-small"
	scHTTPSHandshake = "https-handshake"
	scHTTPSResumed   = "https-resumed"
	// tlsName is the certificate's name; clients send it as SNI.
	tlsName = "bench.edge.test"
	// handshakeConns is how many handshakes the generator keeps in flight.
	handshakeConns = 16
)

// nginxCiphers are the edge's TLS 1.2 suites (tls.CipherSuites) in
// OpenSSL's names.
const nginxCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

// writeBenchCert writes a self-signed ECDSA P-256 certificate for tlsName
// into dir and returns the file names and a pool that trusts it.
func writeBenchCert(dir string) (certFile, keyFile string, roots *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: tlsName}, DNSNames: []string{tlsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "bench-cert.pem"), filepath.Join(dir, "bench-key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, err
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, roots, nil
}

// tlsRun is one timed run of handshakes against one server.
type tlsRun struct {
	Handshakes int64
	Resumed    int64
	Errors     int64
	Duration   time.Duration
	ServerCPU  time.Duration
}

func (r *tlsRun) rate() float64 { return float64(r.Handshakes) / r.Duration.Seconds() }

// cpuPer1k is server CPU milliseconds per 1,000 handshakes.
func (r *tlsRun) cpuPer1k() float64 {
	if r.Handshakes == 0 {
		return 0
	}
	return r.ServerCPU.Seconds() * 1e3 / float64(r.Handshakes) * 1e3
}

// handshakes opens connections to s's HTTPS listener for d, each a TLS
// 1.3 handshake (X25519, which both servers choose; Go's default hybrid
// post-quantum share would cost only the edge), one GET of the tenant
// config, and a close. With resume, each worker keeps a session cache, so
// every handshake after its first resumes with a ticket.
func handshakes(ctx context.Context, s *server, roots *x509.CertPool, d time.Duration, resume bool) (*tlsRun, error) {
	var n, resumed, errs atomic.Int64
	deadline := time.Now().Add(d)
	req := []byte("GET " + pathConfig + " HTTP/1.1\r\nHost: " + tlsName + "\r\nConnection: close\r\n\r\n")
	pids := s.pids()
	cpu0 := cpuTime(pids)
	start := time.Now()
	var wg sync.WaitGroup
	for range handshakeConns {
		wg.Go(func() {
			cfg := &tls.Config{ServerName: tlsName, RootCAs: roots, MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}}
			if resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				c, err := net.DialTimeout("tcp", s.tlsAddr, 5*time.Second)
				if err != nil {
					errs.Add(1)
					continue
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Client(c, cfg)
				ok := tc.Handshake() == nil
				if ok {
					_, err = tc.Write(req)
					if err == nil {
						var resp *http.Response
						if resp, err = http.ReadResponse(bufio.NewReader(tc), nil); err == nil {
							_, err = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
					ok = err == nil
				}
				if ok {
					n.Add(1)
					if tc.ConnectionState().DidResume {
						resumed.Add(1)
					}
				} else {
					errs.Add(1)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	r := &tlsRun{Handshakes: n.Load(), Resumed: resumed.Load(), Errors: errs.Load(), Duration: time.Since(start), ServerCPU: cpuTime(pids) - cpu0}
	if r.Handshakes == 0 {
		return nil, fmt.Errorf("%s: no handshake completed (%d errors)", s.name, r.Errors)
	}
	return r, nil
}

// runHandshakes measures sc on the servers that terminate TLS,
// interleaved as the other scenarios are.
func (b *bench) runHandshakes(ctx context.Context, sc string, servers []string, running map[string]*server) error {
	cfg := b.cfg
	resume := sc == scHTTPSResumed
	var tlsServers []string
	for _, name := range servers {
		if running[name].tlsAddr != "" {
			tlsServers = append(tlsServers, name)
		}
	}
	for _, name := range tlsServers { // warm-up
		if _, err := handshakes(ctx, running[name], b.roots, time.Second, resume); err != nil {
			return err
		}
	}
	for i := range cfg.runs {
		for _, name := range order(tlsServers, i) {
			r, err := handshakes(ctx, running[name], b.roots, cfg.duration, resume)
			if err != nil {
				return err
			}
			if b.res.TLS[sc] == nil {
				b.res.TLS[sc] = map[string][]*tlsRun{}
			}
			b.res.TLS[sc][name] = append(b.res.TLS[sc][name], r)
			b.logf("%s run %d %-7s %7.0f handshakes/s  %.3f CPU-ms/handshake  resumed %d/%d  errors %d",
				sc, i+1, name, r.rate(), r.cpuPer1k()/1e3, r.Resumed, r.Handshakes, r.Errors)
		}
	}
	return nil
}

// tlsMarkdown renders the handshake scenarios.
func (r *results) tlsMarkdown() string {
	if len(r.TLS) == 0 {
		return ""
	}
	var b []byte
	b = append(b, "## 5. HTTPS handshakes\n\nThe edge (`-https -tls-cert -tls-key`) and nginx (`listen ssl`) with the same ECDSA P-256 certificate and suites. "+
		"Each connection: a TLS 1.3 handshake (X25519), one GET of the tenant config, close; 16 at a time from the load core. "+
		"Resumed: each client keeps its session ticket, so every handshake after its first is a resumption. "+
		"CPU is the server's per handshake (and its one request).\n\n"...)
	b = append(b, "| scenario | server | handshakes/s | server CPU ms / handshake | resumed | errors |\n|---|---|---|---|---|---|\n"...)
	for _, sc := range []string{scHTTPSHandshake, scHTTPSResumed} {
		stats := map[string][2]stat{}
		for _, name := range r.Servers {
			runs := r.TLS[sc][name]
			if len(runs) == 0 {
				continue
			}
			rate := collect(runs, (*tlsRun).rate)
			cpu := collect(runs, func(t *tlsRun) float64 { return t.cpuPer1k() / 1e3 })
			stats[name] = [2]stat{rate, cpu}
			var res, hs, errs int64
			for _, t := range runs {
				res, hs, errs = res+t.Resumed, hs+t.Handshakes, errs+t.Errors
			}
			b = fmt.Appendf(b, "| %s | %s | %s | %s | %.0f%% | %d |\n", sc, name, rangeOf(rate, fmtRate),
				rangeOf(cpu, func(x float64) string { return fmt.Sprintf("%.3f", x) }), 100*float64(res)/float64(max(hs, 1)), errs)
		}
		if e, ok := stats[nameEdge]; ok {
			if n, ok := stats[nameNginx]; ok {
				b = fmt.Appendf(b, "| %s | **edge / nginx** | %.2f× | %.2f× | | |\n", sc, e[0].med/n[0].med, e[1].med/n[1].med)
			}
		}
	}
	return string(b) + "\n"
}
