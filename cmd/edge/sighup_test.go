//go:build unix

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUP sends the signal to the real binary: an edge with HTTPS
// re-reads its static certificate, and no edge, with HTTPS or without,
// stops (Go's default for SIGHUP).
func TestSIGHUP(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "edge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile, "cdn.edge.test")
	leaf := func(addr string) []byte {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "cdn.edge.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw
	}
	fileDER := func() []byte {
		t.Helper()
		b, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := pem.Decode(b)
		return p.Bytes
	}

	withTLS := startBinary(t, bin, "-cache-dir", filepath.Join(dir, "a"), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-https", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile)
	httpsAddr := withTLS.waitFor(t, "edge serving")["https"].(string)
	if !bytes.Equal(leaf(httpsAddr), fileDER()) {
		t.Fatal("the edge does not serve the certificate in -tls-cert")
	}
	// A new pair, renamed into place as an operator's tooling would.
	writeSelfSigned(t, certFile+".new", keyFile+".new", "cdn.edge.test")
	os.Rename(keyFile+".new", keyFile)
	os.Rename(certFile+".new", certFile)
	withTLS.cmd.Process.Signal(syscall.SIGHUP)
	withTLS.waitFor(t, "SIGHUP: certificates and ticket keys re-read")
	served := fileDER()
	if !bytes.Equal(leaf(httpsAddr), served) {
		t.Error("after SIGHUP the edge still serves the previous certificate")
	}
	// A broken file: SIGHUP says so, and the certificate in use stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	withTLS.cmd.Process.Signal(syscall.SIGHUP)
	withTLS.waitFor(t, "SIGHUP: not everything reloaded; what failed keeps what it had")
	if !bytes.Equal(leaf(httpsAddr), served) {
		t.Error("after a SIGHUP with a broken file the edge no longer serves the certificate it had")
	}

	plain := startBinary(t, bin, "-cache-dir", filepath.Join(dir, "b"), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	adminAddr := plain.waitFor(t, "edge serving")["admin"].(string)
	plain.cmd.Process.Signal(syscall.SIGHUP)
	plain.waitFor(t, "SIGHUP: nothing to reload; flags and -config are read at start (restart the edge to apply a change)")
	resp, err := http.Get("http://" + adminAddr + "/healthz")
	if err != nil {
		t.Fatalf("the edge without HTTPS stopped on SIGHUP: %v", err)
	}
	resp.Body.Close()
	if _, err := tls.Dial("tcp", httpsAddr, &tls.Config{ServerName: "cdn.edge.test", InsecureSkipVerify: true}); err != nil {
		t.Fatalf("the edge with HTTPS stopped on SIGHUP: %v", err)
	}
}

// binaryEdge is an edge process and its JSON log records, in order.
type binaryEdge struct {
	cmd *exec.Cmd
	log chan map[string]any // closed when the process closes stderr
}

// startBinary runs bin with args until the test ends (then SIGTERM).
func startBinary(t *testing.T, bin string, args ...string) *binaryEdge {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &binaryEdge{cmd: cmd, log: make(chan map[string]any, 10000)}
	go func() {
		defer close(p.log)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				p.log <- rec
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	return p
}

// waitFor returns the next log record whose msg is msg; it fails if the
// process exits first, or after a minute (a bound for a hung test only).
func (p *binaryEdge) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case rec, ok := <-p.log:
			if !ok {
				t.Fatalf("the edge exited before logging %q", msg)
			}
			if rec["msg"] == msg {
				return rec
			}
		case <-timeout:
			t.Fatalf("no log record %q within a minute", msg)
		}
	}
}
