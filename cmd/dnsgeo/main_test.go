package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// syncBuffer collects the JSON log lines of run.
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

// waitLog waits for a log line with msg and returns it decoded.
func waitLog(t *testing.T, logs *syncBuffer, msg string, done <-chan int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
				return rec
			}
		}
		select {
		case code := <-done:
			t.Fatalf("run exited %d before logging %q:\n%s", code, msg, logs)
		case <-time.After(10 * time.Millisecond): // the log is written by another goroutine
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, logs)
	return nil
}

const testConfig = `zone: example.test.
ttl: 20
soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
ns: [ns1.example.test.]
routed: [cdn]
regions:
  us-west-2: {a: [192.0.2.10]}
  eu-west-1: {a: [198.51.100.10]}
default_order: [us-west-2, eu-west-1]
`

func query(t *testing.T, addr string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("cdn.example.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		out = append(out, rr.(*dns.A).A.String())
	}
	return out
}

// TestRunSignals: flags, JSON logs, SIGHUP reload, SIGTERM graceful stop.
func TestRunSignals(t *testing.T) {
	dir := t.TempDir()
	cfg, csv := filepath.Join(dir, "dnsgeo.yaml"), filepath.Join(dir, "latency.csv")
	os.WriteFile(cfg, []byte(testConfig), 0o644)
	os.WriteFile(csv, []byte("prefix,region,rtt_ms\n"), 0o644)

	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-config", cfg, "-latency", csv, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, os.Stdout, logs)
	}()
	rec := waitLog(t, logs, "serving", done)
	addr := rec["dns"].(string)
	if got := query(t, addr); len(got) != 1 || got[0] != "192.0.2.10" {
		t.Fatalf("default order: %v", got)
	}

	// SIGHUP: reload. The table now sends loopback to eu-west-1.
	os.WriteFile(csv, []byte("prefix,region,rtt_ms\n127.0.0.0/8,eu-west-1,1\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitLog(t, logs, "reload requested", done)
	deadline := time.Now().Add(5 * time.Second)
	for got := query(t, addr); len(got) != 1 || got[0] != "198.51.100.10"; got = query(t, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: %v\n%s", got, logs)
		}
		time.Sleep(10 * time.Millisecond) // the reload runs on Run's goroutine
	}

	// SIGTERM: graceful stop, exit 0.
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	waitLog(t, logs, "stopped", nil)
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(testConfig+"colour: blue\n"), 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected arguments"},
		// Bad input exits 2, as edge does.
		{[]string{"-config", bad, "-listen", "127.0.0.1:0", "-admin", ""}, 2, `bad.yaml:10: colour: unknown field "colour"`},
		{[]string{"-config", filepath.Join(dir, "missing.yaml")}, 2, "no such file"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"-version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "dnsgeo ") {
		t.Errorf("-version: %d %q", code, out.String())
	}
}
