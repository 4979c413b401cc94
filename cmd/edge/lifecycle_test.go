package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"

	"github.com/edgecdn/edge/internal/s3test"
)

// lines is an io.Writer that keeps what it gets as lines and signals
// each new one, so a test can wait for a log record.
type lines struct {
	mu      sync.Mutex
	partial bytes.Buffer
	lines   []string
	changed chan struct{} // gets a value (without blocking) per new line
}

func newLines() *lines { return &lines{changed: make(chan struct{}, 1)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial.Write(p)
	for {
		line, err := l.partial.ReadString('\n')
		if err != nil {
			l.partial.WriteString(line) // incomplete: keep it
			return len(p), nil
		}
		l.lines = append(l.lines, line)
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

// find returns the first line containing s, decoded, or nil.
func (l *lines) find(t *testing.T, s string) map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not a JSON log line: %q", line)
			}
			return rec
		}
	}
	return nil
}

// waitFor returns the first line containing s, decoded, waiting for it;
// it fails when run ends first.
func (l *lines) waitFor(t *testing.T, s string, done <-chan int) map[string]any {
	t.Helper()
	for {
		if rec := l.find(t, s); rec != nil {
			return rec
		}
		select {
		case <-l.changed:
		case code := <-done:
			t.Fatalf("exited with %d before logging %q:\n%s", code, s, l.String())
		}
	}
}

// TestCircuitChangesLoggedAndOriginsClosed: an origin whose circuit opens
// is logged with its name and last error; at shutdown the origins'
// probers stop (the Failovers are closed), so nothing outlives run.
func TestCircuitChangesLoggedAndOriginsClosed(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	proxy.SetFault(s3test.Fault{Status: 500})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan net.Addr, 1)
	done := make(chan int, 1)
	stderr := newLines()
	var stdout bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0",
			"-origin", proxy.OriginURL("assets", ""), "-must-serve", "/w.js", "-origin-attempt-timeout", "2s"},
			&stdout, stderr, hooks{ready: func(h, _ net.Addr) { addrs <- h }})
	}()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a.String()
	case code := <-done:
		t.Fatalf("exited with %d:\n%s", code, stderr.String())
	}
	// Each request tries the origin twice: three make the five failures
	// in a row that open the circuit.
	for range 3 {
		res, err := http.Get(base + "/w.js")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 502 {
			t.Fatalf("status %d, want 502", res.StatusCode)
		}
	}
	rec := stderr.waitFor(t, "origin circuit open", done)
	if rec["origin"] != "s3://assets" || !strings.Contains(rec["err"].(string), "500") {
		t.Errorf("circuit record: %v", rec)
	}
	if rec := stderr.waitFor(t, "origin failed: no usable copy to serve", done); rec["key"] != "s3://assets/w.js" {
		t.Errorf("origin failure record: %v", rec)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit status %d", code)
	}
	var stacks bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&stacks, 1)
	if strings.Contains(stacks.String(), "origin.(*Failover).probe") {
		t.Errorf("an origin prober outlived run:\n%s", stacks.String())
	}
}

// TestCacheNamespaceFromConfig: a site's cache namespace is its first
// origin's name from the configuration, so adding a replica (which wraps
// the origins differently) keeps every cache key.
func TestCacheNamespaceFromConfig(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	for _, origins := range [][]string{{"dir:" + dirA}, {"dir:" + dirA, "dir:" + dirB}} {
		o, err := parseFlags(append([]string{"-cache-dir", t.TempDir()}, flagsFor("-origin", origins)...), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		sites, closeOrigins, err := loadSites(context.Background(), o, discardLog)
		if err != nil {
			t.Fatal(err)
		}
		closeOrigins()
		if got := sites[0].CacheNamespace; got != "dir:"+dirA {
			t.Errorf("origins %q: namespace %q, want the first origin's name", origins, got)
		}
	}
}

func flagsFor(name string, values []string) []string {
	var out []string
	for _, v := range values {
		out = append(out, name, v)
	}
	return out
}

var discardLog = slog.New(slog.DiscardHandler)
