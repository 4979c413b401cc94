// Package pebbletest runs Pebble, Let's Encrypt's ACME test CA, on
// 127.0.0.1 for tests, so that ACME code is tested against a real CA
// over real HTTPS rather than against a mock:
//
//	ca := pebbletest.Start(t, pebbletest.Options{})
//	m, err := edgetls.NewACME(edgetls.ACMEConfig{Directory: ca.Directory(), HTTPClient: ca.Client(), ...})
//	...
//	ca.Orders() // new orders Pebble has received, counted from its log
//
// The binary is <module root>/bin/pebble (`make tools`,
// scripts/install-tools.sh) or $PEBBLE. Its HTTPS certificate is signed
// by the test CA that ships in Pebble's module (test/certs/), which the
// install puts in the module cache. EDGE_SKIP_PEBBLE=1 skips such tests.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Pebble release the tests run against.
const Version = "v2.10.1"

// Options configure the CA.
type Options struct {
	// Validate, when true, has Pebble really validate challenges (no
	// PEBBLE_VA_ALWAYS_VALID): it connects to HTTPPort and TLSPort on
	// the address DNSServer answers for the name.
	Validate bool
	// HTTPPort and TLSPort are where Pebble sends HTTP-01 and TLS-ALPN-01
	// validation requests. Zero means 5002 and 5001 (unused unless
	// Validate).
	HTTPPort, TLSPort int
	// DNSServer is the resolver Pebble asks (host:port). Empty means
	// the system's.
	DNSServer string
	// Validity is the lifetime of the certificates Pebble issues. Zero
	// means Pebble's default (90 days).
	Validity time.Duration
}

// CA is a running Pebble.
type CA struct {
	addr, mgmt string
	log        *syncBuffer
	roots      *x509.CertPool // trusts Pebble's HTTPS (its minica)
	rootsFile  string
	cmd        *exec.Cmd
	done       chan struct{}
}

// Start starts Pebble on free loopback ports, waits until its directory
// answers, and registers a cleanup that kills it.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	if os.Getenv("EDGE_SKIP_PEBBLE") == "1" {
		t.Skip("EDGE_SKIP_PEBBLE=1: skipping test that needs Pebble")
	}
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("pebbletest: %v; run `make tools` (scripts/install-tools.sh) or set $PEBBLE", err)
	}
	certs, err := certsDir()
	if err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 5002
	}
	if o.TLSPort == 0 {
		o.TLSPort = 5001
	}
	dir := t.TempDir()
	var lastErr error
	for range 3 {
		ca := &CA{log: &syncBuffer{}, rootsFile: filepath.Join(certs, "pebble.minica.pem"), done: make(chan struct{})}
		if ca.addr, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if ca.mgmt, err = freePort(); err != nil {
			t.Fatal(err)
		}
		profile := map[string]any{"description": "edge tests"}
		if o.Validity > 0 {
			profile["validityPeriod"] = int64(o.Validity / time.Second)
		}
		cfg := map[string]any{"pebble": map[string]any{
			"listenAddress":                  ca.addr,
			"managementListenAddress":        ca.mgmt,
			"certificate":                    filepath.Join(certs, "localhost", "cert.pem"),
			"privateKey":                     filepath.Join(certs, "localhost", "key.pem"),
			"httpPort":                       o.HTTPPort,
			"tlsPort":                        o.TLSPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
			"retryAfter":                     map[string]int{"authz": 1, "order": 1},
			"keyAlgorithm":                   "ecdsa",
			"profiles":                       map[string]any{"default": profile},
		}}
		b, _ := json.Marshal(cfg)
		cfgPath := filepath.Join(dir, "pebble-config.json")
		if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-config", cfgPath, "-strict=false"}
		if o.DNSServer != "" {
			args = append(args, "-dnsserver", o.DNSServer)
		}
		ca.cmd = exec.Command(bin, args...)
		ca.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		if !o.Validate {
			ca.cmd.Env = append(ca.cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
		}
		ca.cmd.Stdout, ca.cmd.Stderr = ca.log, ca.log
		setProcessGroup(ca.cmd)
		pem, err := os.ReadFile(ca.rootsFile)
		if err != nil {
			t.Fatalf("pebbletest: %v", err)
		}
		ca.roots = x509.NewCertPool()
		ca.roots.AppendCertsFromPEM(pem)
		if err := ca.cmd.Start(); err != nil {
			t.Fatalf("pebbletest: starting %s: %v", bin, err)
		}
		go func() { _ = ca.cmd.Wait(); close(ca.done) }()
		if lastErr = ca.waitReady(); lastErr == nil {
			t.Cleanup(ca.stop)
			return ca
		}
		ca.stop()
		if !strings.Contains(ca.log.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("pebbletest: %v", lastErr)
	return nil
}

func (ca *CA) stop() {
	killProcessGroup(ca.cmd)
	<-ca.done
}

func (ca *CA) waitReady() error {
	deadline := time.Now().Add(20 * time.Second)
	c := ca.Client()
	c.Timeout = time.Second
	for {
		resp, err := c.Get(ca.Directory())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("directory: %s", resp.Status)
		}
		select {
		case <-ca.done:
			return fmt.Errorf("pebble exited at start:\n%s", ca.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pebble not ready: %v\n%s", err, ca.log.String())
		}
	}
}

// Directory is the ACME directory URL.
func (ca *CA) Directory() string { return "https://" + ca.addr + "/dir" }

// RootsFile is the PEM file of the CA that signed Pebble's own HTTPS
// certificate (for -acme-ca-roots).
func (ca *CA) RootsFile() string { return ca.rootsFile }

// Client returns an HTTP client that trusts Pebble's HTTPS certificate.
func (ca *CA) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.roots}}}
}

// Orders returns how many new orders Pebble has accepted, from its log
// ("Added order ... to the db"): counted at the CA, not in the client.
func (ca *CA) Orders() int { return strings.Count(ca.log.String(), "Added order ") }

// Log returns Pebble's output so far.
func (ca *CA) Log() string { return ca.log.String() }

// IssuerRoots returns a pool holding the root of the chains Pebble
// issues, fetched from its management endpoint (/roots/0): what a
// browser would trust in a test world.
func (ca *CA) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+ca.mgmt+"/roots/0", nil)
	resp, err := ca.Client().Do(req)
	if err != nil {
		t.Fatalf("pebbletest: fetching the issuing root: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebbletest: fetching the issuing root: %v %s", err, resp.Status)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebbletest: the issuing root is not PEM: %q", b)
	}
	return pool
}

// findBinary returns $PEBBLE, or <module root>/bin/pebble.
func findBinary() (string, error) {
	if p := os.Getenv("PEBBLE"); p != "" {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "pebble")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pebble not found: %w", err)
	}
	return p, nil
}

// certsDir finds Pebble's test/certs in the module cache.
func certsDir() (string, error) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com", "letsencrypt", "pebble", "v2@"+Version, "test", "certs")
	if _, err := os.Stat(filepath.Join(dir, "pebble.minica.pem")); err != nil {
		return "", fmt.Errorf("pebble's test certificates: %w (go mod download github.com/letsencrypt/pebble/v2@%s)", err, Version)
	}
	return dir, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreePort returns a free loopback TCP port number (for HTTPPort and
// TLSPort: the listener under test must then bind it).
func FreePort(t testing.TB) int {
	t.Helper()
	a, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(a)
	n, _ := strconv.Atoi(p)
	return n
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
