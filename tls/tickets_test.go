package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/store"
)

// TestResumeAcrossEdges: a session started on edge A resumes on edge B,
// both with keys from one store (S3), over TLS 1.3 and 1.2; keys rotate
// daily without breaking sessions issued before.
func TestResumeAcrossEdges(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "keys")
	ctx := ctx10(t)
	clk := &testClock{}
	certPEM, keyPEM := selfSigned(t, 1, "r.edge.test")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "k"), keyPEM, 0o600)
	static, err := NewStatic([]KeyPair{{filepath.Join(dir, "c"), filepath.Join(dir, "k")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var edges []*Tickets
	var addrs []string
	for range 2 {
		s, err := store.Open(ctx, srv.OriginURL("keys", "region-1"))
		if err != nil {
			t.Fatal(err)
		}
		tk, err := NewTickets(TicketsConfig{Store: s, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		addr, cfg := serve(t, (&Certificates{Static: static}).GetCertificate)
		tk.Apply(cfg)
		if err := tk.Check(ctx); err != nil {
			t.Fatal(err)
		}
		edges, addrs = append(edges, tk), append(addrs, addr)
	}
	if a, b := edges[0].Keys(), edges[1].Keys(); len(a) != 1 || len(b) != 1 || a[0] != b[0] {
		t.Fatalf("edges hold different keys: %d and %d", len(a), len(b))
	}
	roots := poolOf(t, certPEM)
	resumes := func(from, to string, version uint16) bool {
		t.Helper()
		cache := tls.NewLRUClientSessionCache(4)
		if _, st, err := getVersion(t, from, roots, cache, version); err != nil || st.DidResume {
			t.Fatalf("first connection: %v (resumed: %v)", err, st != nil && st.DidResume)
		}
		_, st, err := getVersion(t, to, roots, cache, version)
		if err != nil {
			t.Fatal(err)
		}
		return st.DidResume
	}
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		if !resumes(addrs[0], addrs[1], v) {
			t.Errorf("version %x: a session from edge A did not resume on edge B", v)
		}
	}

	// A session issued before a rotation still resumes after it.
	cache := tls.NewLRUClientSessionCache(4)
	if _, _, err := getVersion(t, addrs[0], roots, cache, tls.VersionTLS13); err != nil {
		t.Fatal(err)
	}
	clk.advance(25 * time.Hour)
	edges[1].Check(ctx) // rotates: a new key, decrypt-only for now
	edges[0].Check(ctx) // loads it
	if k := edges[0].Keys(); len(k) != 2 {
		t.Fatalf("after a day: %d keys, want 2", len(k))
	}
	if _, st, err := getVersion(t, addrs[1], roots, cache, tls.VersionTLS13); err != nil || !st.DidResume {
		t.Fatalf("a session from before the rotation did not resume: %v", err)
	}
	// Once active, the new key encrypts on both edges.
	clk.advance(DefaultTicketActivation + time.Minute)
	edges[0].Check(ctx)
	edges[1].Check(ctx)
	if !resumes(addrs[1], addrs[0], tls.VersionTLS13) {
		t.Error("no resumption after the new key became active")
	}
	// Two more rotations: the newest and the previous two are kept.
	for range 2 {
		clk.advance(25 * time.Hour)
		edges[0].Check(ctx)
	}
	if k := edges[0].Keys(); len(k) != 3 {
		t.Errorf("after three rotations: %d keys, want 3 (the newest and the previous two)", len(k))
	}
}

func getVersion(t *testing.T, addr string, roots *x509.CertPool, cache tls.ClientSessionCache, v uint16) (string, *tls.ConnectionState, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "r.edge.test", RootCAs: roots, ClientSessionCache: cache, MinVersion: v, MaxVersion: v})
	if err != nil {
		return "", nil, err
	}
	defer conn.Close()
	// A request and its answer: TLS 1.3 tickets arrive after the handshake.
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: r.edge.test\r\nConnection: close\r\n\r\n")); err != nil {
		return "", nil, err
	}
	b, _ := io.ReadAll(conn)
	st := conn.ConnectionState()
	return string(b), &st, nil
}

// TestTicketFile: an operator's file is read, never written; a bad new
// file keeps the keys in use.
func TestTicketFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket-keys")
	k1 := TicketKey{Created: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	k1.Key[0] = 1
	os.WriteFile(path, FormatTicketKeys([]TicketKey{k1}), 0o600)
	tk, err := NewTickets(TicketsConfig{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Check(context.Background()); err != nil || len(tk.Keys()) != 1 {
		t.Fatalf("Check: %v, %d keys", err, len(tk.Keys()))
	}
	os.WriteFile(path, []byte("2026-11-02T00:00:00Z nothex\n"), 0o600)
	if err := tk.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Check of a bad file = %v, want an error naming line 1", err)
	}
	if k := tk.Keys(); len(k) != 1 || k[0] != k1 {
		t.Fatal("a bad file replaced the keys in use")
	}
	if ok, _ := tk.Status(); ok {
		t.Error("Status ok after a failed update")
	}
}

func TestParseTicketKeys(t *testing.T) {
	key := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in      string
		n       int
		errPart string
	}{
		{"2026-11-30T08:00:00Z " + key + "\n", 1, ""},
		{"# c\n\n2026-11-29T08:00:00Z " + strings.Repeat("cd", 32) + "\n2026-11-30T08:00:00Z " + key + "\n", 2, ""},
		{"", 0, "no key"},
		{"2026-11-30T08:00:00Z\n", 0, "line 1"},
		{"yesterday " + key, 0, "RFC 3339"},
		{"2026-11-30T08:00:00Z " + key[:62], 0, "64 hex"},
		{"2026-11-30T08:00:00Z " + strings.Repeat("zz", 32), 0, "not hex"},
		{"2026-11-30T08:00:00Z " + strings.Repeat("00", 32), 0, "zeros"},
		{"2026-11-30T08:00:00Z " + key + "\n2026-11-29T08:00:00Z " + key, 0, "line 2: duplicate"},
	} {
		keys, err := ParseTicketKeys([]byte(tc.in))
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.errPart)
			}
			if err != nil && strings.Contains(err.Error(), key[:16]) {
				t.Errorf("%q: the error quotes the key", tc.in)
			}
			continue
		}
		if err != nil || len(keys) != tc.n {
			t.Errorf("%q: %d keys, %v", tc.in, len(keys), err)
		}
		if len(keys) == 2 && keys[0].Created.Before(keys[1].Created) {
			t.Errorf("%q: not newest first", tc.in)
		}
	}
}

func FuzzParseTicketKeys(f *testing.F) {
	f.Add([]byte("2026-11-30T08:00:00Z " + strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("# x\n2026-11-30T08:00:00+02:00 " + strings.Repeat("0f", 32) + "\n2025-01-01T00:00:00Z " + strings.Repeat("f0", 32)))
	f.Add([]byte("\n\n#"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseTicketKeys(b)
		if err != nil {
			return
		}
		again, err := ParseTicketKeys(FormatTicketKeys(keys))
		if err != nil || len(again) != len(keys) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range keys {
			if again[i].Key != keys[i].Key || !again[i].Created.Equal(keys[i].Created) {
				t.Fatalf("round trip changed key %d", i)
			}
		}
	})
}
