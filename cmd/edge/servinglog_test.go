package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The "edge serving" line names every listener, HTTPS too, so that
// whoever starts an edge on port 0 (tests, the deploy package's) or reads
// its log knows where it listens.
func TestServingLogNamesEveryListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "cdn.edge.test")
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lockedBuffer{b: &bytes.Buffer{}} // tls_test.go
	ready := make(chan [3]string, 1)
	done := make(chan int, 1)
	var https string
	go func() {
		done <- run(ctx, []string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0",
			"-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile}, io.Discard, stderr,
			hooks{httpsReady: func(a net.Addr) { https = a.String() }, ready: func(h, a net.Addr) { ready <- [3]string{h.String(), a.String(), https} }})
	}()
	defer func() { cancel(); <-done }()
	var addrs [3]string
	select {
	case addrs = <-ready:
	case code := <-done:
		t.Fatalf("edge exited with %d:\n%s", code, stderr.String())
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "edge serving" {
			continue
		}
		if rec["http"] != addrs[0] || rec["admin"] != addrs[1] || rec["https"] != addrs[2] {
			t.Fatalf("edge serving: http %v admin %v https %v; listening on %v", rec["http"], rec["admin"], rec["https"], addrs)
		}
		return
	}
	t.Fatalf("no \"edge serving\" line:\n%s", stderr.String())
}

// writeSelfSigned writes a self-signed ECDSA certificate for name and
// its key, in PEM.
func writeSelfSigned(t *testing.T, certFile, keyFile, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}
