package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgecdn/edge/internal/s3test"
)

// stores returns a Dir and an S3 store (on versitygw, through a
// FaultProxy) for contract tests, by name.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	d, err := Open(context.Background(), "dir:"+filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "certs")
	p := s3test.NewFaultProxy(t, srv.Endpoint())
	s, err := Open(context.Background(), p.OriginURL("certs", "edge/prod"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"dir": d, "s3": s}
}

func TestContract(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := s.Get(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Get(missing) = %v, want fs.ErrNotExist", err)
			}
			if err := s.Put(ctx, "a/b", []byte("one")); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "a/b", []byte("two")); err != nil {
				t.Fatal(err)
			}
			if b, err := s.Get(ctx, "a/b"); err != nil || string(b) != "two" {
				t.Fatalf("Get(a/b) = %q, %v; want two", b, err)
			}
			if err := s.Create(ctx, "a/b", []byte("three")); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Create(existing) = %v, want fs.ErrExist", err)
			}
			if b, _ := s.Get(ctx, "a/b"); string(b) != "two" {
				t.Fatalf("a failed Create changed the value to %q", b)
			}
			if err := s.Create(ctx, "a/c", nil); err != nil {
				t.Fatal(err)
			}
			if b, err := s.Get(ctx, "a/c"); err != nil || len(b) != 0 {
				t.Fatalf("Get(a/c) = %q, %v; want empty", b, err)
			}
			if err := s.Put(ctx, "ab", []byte("x")); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				prefix string
				want   []string
			}{
				{"", []string{"a/b", "a/c", "ab"}},
				{"a", []string{"a/b", "a/c", "ab"}},
				{"a/", []string{"a/b", "a/c"}},
				{"a/c", []string{"a/c"}},
				{"z/", nil},
			} {
				got, err := s.List(ctx, tc.prefix)
				if err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("List(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
				}
			}
			if err := s.Delete(ctx, "a/b"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "a/b"); err != nil {
				t.Fatalf("Delete(missing) = %v, want nil", err)
			}
			if _, err := s.Get(ctx, "a/b"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Get after Delete = %v, want fs.ErrNotExist", err)
			}
			for _, bad := range []string{"", "/a", "a/", "a//b", "../a", "a/./b", `a\b`, "a\x00b"} {
				if err := s.Put(ctx, bad, nil); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Put(%q) = %v, want ErrInvalidKey", bad, err)
				}
				if _, err := s.Get(ctx, bad); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("Get(%q) = %v, want ErrInvalidKey", bad, err)
				}
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.Get(cctx, "a/c"); !errors.Is(err, context.Canceled) {
				t.Errorf("Get with a cancelled ctx = %v, want context.Canceled", err)
			}
		})
	}
}

// TestCreateOneWinner: of many concurrent Creates of one key, exactly one
// succeeds and the others see fs.ErrExist, also on the real S3 server.
func TestCreateOneWinner(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			const n = 20
			var wins, exists atomic.Int32
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					err := s.Create(context.Background(), "race", []byte(fmt.Sprint(i)))
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, fs.ErrExist):
						exists.Add(1)
					default:
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 || exists.Load() != n-1 {
				t.Fatalf("%d Creates won, %d saw ErrExist; want 1 and %d", wins.Load(), exists.Load(), n-1)
			}
		})
	}
}

// TestS3Errors: an unreachable S3 or a missing bucket is an error, never
// "not there" (which would make a caller order a certificate).
func TestS3Errors(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "certs")
	p := s3test.NewFaultProxy(t, srv.Endpoint())
	ctx := context.Background()
	s, err := Open(ctx, p.OriginURL("certs", ""))
	if err != nil {
		t.Fatal(err)
	}
	nob, err := Open(ctx, p.OriginURL("no-such-bucket", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nob.Get(ctx, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get in a missing bucket = %v, want an error that is not fs.ErrNotExist", err)
	}
	for _, f := range []s3test.Fault{{Status: 503}, {Status: 403}, {Refuse: true}} {
		p.SetFault(f)
		if _, err := s.Get(ctx, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get with fault %+v = %v, want an error that is not fs.ErrNotExist", f, err)
		}
		if err := s.Create(ctx, "k", nil); err == nil || errors.Is(err, fs.ErrExist) {
			t.Errorf("Create with fault %+v = %v, want an error that is not fs.ErrExist", f, err)
		}
	}
}

// TestS3RequestsEncryption: every write asks S3 for server-side
// encryption. versitygw ignores the header, so it is checked where S3
// receives it, at the proxy.
func TestS3RequestsEncryption(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "certs")
	p := s3test.NewFaultProxy(t, srv.Endpoint())
	ctx := context.Background()
	s, err := Open(ctx, p.OriginURL("certs", "p"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "key.pem", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "other.pem", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	puts := p.Seen("PUT", "/certs/p/")
	if len(puts) != 2 {
		t.Fatalf("proxy saw %d PUTs, want 2", len(puts))
	}
	for i, h := range puts {
		if got := h.Get("X-Amz-Server-Side-Encryption"); got != "AES256" {
			t.Errorf("PUT %d: x-amz-server-side-encryption = %q, want AES256", i, got)
		}
	}
	if got := puts[1].Get("If-None-Match"); got != "*" {
		t.Errorf("Create: If-None-Match = %q, want *", got)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ spec, want string }{
		{"", "unknown scheme"},
		{"ftp://x", "unknown scheme"},
		{"dir:", "empty path"},
		{"dir:" + file, "not a directory"},
		{"s3://", "s3 store: missing bucket"},
		{"s3://bkt?regoin=x", "unknown parameters regoin"},
		{"s3://AKID:topsecret@b/x", "credentials in the URL"},
	} {
		_, err := Open(context.Background(), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Open(%q) error reveals the secret: %v", tc.spec, err)
		}
	}
}

// TestDirPermissions: values may be private keys.
func TestDirPermissions(t *testing.T) {
	d, err := NewDir(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(context.Background(), "k/key.pem", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.root, filepath.Join(d.root, "k"), filepath.Join(d.root, "k", "key.pem")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want no access for group and others", p, fi.Mode().Perm())
		}
	}
	if keys, _ := d.List(context.Background(), ""); !slices.Equal(keys, []string{"k/key.pem"}) {
		t.Errorf("List = %q", keys)
	}
}
