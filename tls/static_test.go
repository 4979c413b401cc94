package tls

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStaticReload: new files are picked up at the next watch tick
// without a restart; a bad new file keeps the old certificate, logged.
func TestStaticReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(c, k []byte) {
		t.Helper()
		// As deploy tools do: a new file renamed into place.
		for _, f := range []struct {
			path string
			b    []byte
		}{{certFile, c}, {keyFile, k}} {
			if err := os.WriteFile(f.path+".new", f.b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(f.path+".new", f.path); err != nil {
				t.Fatal(err)
			}
		}
	}
	c1, k1 := selfSigned(t, 1, "static.edge.test")
	write(c1, k1)
	var logs logBuffer
	s, err := NewStatic([]KeyPair{{certFile, keyFile}}, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	tick, stop := make(chan time.Time), make(chan struct{})
	defer close(stop)
	go s.Watch(stop, tick)
	// The second send returns only once the first tick's reload is done.
	reload := func() { tick <- time.Time{}; tick <- time.Time{} }

	addr, _ := serve(t, (&Certificates{Static: s}).GetCertificate)
	serial := func(roots []byte) string {
		t.Helper()
		_, st, err := get(t, addr, "static.edge.test", poolOf(t, roots), false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st.PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(c1); got != "1" {
		t.Fatalf("serial %s, want 1", got)
	}
	c2, k2 := selfSigned(t, 2, "static.edge.test")
	write(c2, k2)
	reload()
	if got := serial(c2); got != "2" {
		t.Fatalf("after swapping the files: serial %s, want 2", got)
	}
	// A bad new pair: a key that does not match, then garbage.
	_, k3 := selfSigned(t, 3, "static.edge.test")
	write(c2, k3)
	reload()
	if got := serial(c2); got != "2" {
		t.Fatalf("after a mismatched key: serial %s, want 2 (the old one)", got)
	}
	write([]byte("garbage"), k2)
	if err := s.Reload(); err == nil {
		t.Fatal("Reload of a garbage file: no error")
	}
	if got := serial(c2); got != "2" {
		t.Fatalf("after a garbage file: serial %s, want 2", got)
	}
	if !strings.Contains(logs.String(), "not reloaded") || strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Errorf("log:\n%s", logs.String())
	}
	if st := s.Status(); st[0].Err == "" || st[0].Name != "static.edge.test" {
		t.Errorf("Status = %+v", st)
	}
	// SIGHUP's path: good files again.
	write(c1, k1)
	if err := s.Reload(); err != nil || serial(c1) != "1" {
		t.Fatalf("Reload: %v", err)
	}
}

func TestStaticBadAtStart(t *testing.T) {
	dir := t.TempDir()
	c, _ := selfSigned(t, 1, "x.test")
	_, k := selfSigned(t, 2, "x.test")
	os.WriteFile(filepath.Join(dir, "c"), c, 0o600)
	os.WriteFile(filepath.Join(dir, "k"), k, 0o600)
	for _, p := range []KeyPair{{filepath.Join(dir, "c"), filepath.Join(dir, "k")}, {filepath.Join(dir, "none"), filepath.Join(dir, "k")}} {
		if _, err := NewStatic([]KeyPair{p}, nil); err == nil || strings.Contains(err.Error(), "PRIVATE") {
			t.Errorf("NewStatic(%v) = %v, want an error naming the files", p, err)
		}
	}
}

// TestSuitesAndProtocols: TLS 1.2 and 1.3 only, ECDHE+AEAD only, ALPN h2.
func TestSuitesAndProtocols(t *testing.T) {
	c, k := selfSigned(t, 1, "s.edge.test")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c"), c, 0o600)
	os.WriteFile(filepath.Join(dir, "k"), k, 0o600)
	s, err := NewStatic([]KeyPair{{filepath.Join(dir, "c"), filepath.Join(dir, "k")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, (&Certificates{Static: s}).GetCertificate)
	dial := func(cfg *tls.Config) (*tls.ConnectionState, error) {
		cfg.ServerName, cfg.RootCAs = "s.edge.test", poolOf(t, c)
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		st := conn.ConnectionState()
		return &st, nil
	}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	cbc := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); err == nil {
		t.Error("a CBC suite accepted")
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		st, err := dial(&tls.Config{MinVersion: v, MaxVersion: v, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("version %x: %v", v, err)
		}
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("version %x: ALPN %q, want h2", v, st.NegotiatedProtocol)
		}
	}
	_, st, err := get(t, addr, "s.edge.test", poolOf(t, c), true, nil)
	if err != nil || st.NegotiatedProtocol != "h2" {
		t.Fatalf("HTTP/2 client: %v, %v", err, st)
	}
}
