package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge/negotiate"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func decode(t testing.TB, coding negotiate.Coding, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := negotiate.Transcode(&out, bytes.NewReader(b), coding, negotiate.Identity); err != nil {
		t.Fatalf("decoding %v: %v", coding, err)
	}
	return out.Bytes()
}

func TestFillAndOpen(t *testing.T) {
	tc := newTestCache(t, Config{})
	body := text(10 << 10)
	obj := tc.fill(t, "/w.js", response(body, "", int64(len(body))))
	for c := range negotiate.Coding(negotiate.NumCodings) {
		b, err := tc.Open(obj, c)
		got := readBody(t, b, err)
		if b.Coding != c.String() {
			t.Errorf("Open(%v) gave a %s body", c, b.Coding)
		}
		if !bytes.Equal(decode(t, c, got), body) {
			t.Errorf("Open(%v): body differs", c)
		}
	}
	// A restart finds every variant on disk: nothing is derived again.
	before := tc.Stats().Derivations
	tc = tc.reopen(t, Config{})
	obj = tc.Lookup("/w.js")
	if obj == nil {
		t.Fatal("not found after restart")
	}
	for c := range negotiate.Coding(negotiate.NumCodings) {
		if got := read(t)(tc.Open(obj, c)); !bytes.Equal(decode(t, c, got), body) {
			t.Errorf("after restart, Open(%v): body differs", c)
		}
	}
	if d := tc.Stats().Derivations; d != [negotiate.NumCodings]uint64{} || before != [negotiate.NumCodings]uint64{0, 1, 1, 1} {
		t.Errorf("derivations: %v before the restart, %v after", before, d)
	}
}

// TestUndecodableRemembered: a body stored as gzip that is not gzip (or
// is cut short) fails once per version: logged and counted once, the
// object kept, its stored bytes still served, and a restart remembers.
func TestUndecodableRemembered(t *testing.T) {
	whole := gzipped(t, text(5000))
	for name, stored := range map[string][]byte{
		"not gzip":  text(3000),
		"truncated": whole[:len(whole)/2],
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			tc := newTestCache(t, Config{})
			obj := tc.fill(t, "/bad.js", response(stored, "gzip", int64(len(stored))))
			for range 50 {
				for _, c := range []negotiate.Coding{negotiate.Identity, negotiate.Brotli, negotiate.Zstd} {
					if _, err := tc.Open(obj, c); !errors.Is(err, ErrNoVariant) {
						t.Fatalf("Open(%v) = %v, want ErrNoVariant", c, err)
					}
				}
				if got := read(t)(tc.Open(obj, negotiate.Gzip)); !bytes.Equal(got, stored) {
					t.Fatal("the stored coding is not served as stored")
				}
				if got := read(t)(tc.OpenStored(obj)); !bytes.Equal(got, stored) {
					t.Fatal("OpenStored is not the stored bytes")
				}
			}
			if n := tc.logs.count("not valid in its content coding"); n != 1 {
				t.Errorf("logged %d times, want once", n)
			}
			if f := tc.Stats().DerivationFailures; f[negotiate.Identity]+f[negotiate.Brotli]+f[negotiate.Zstd] != 1 {
				t.Errorf("failures counted %v, want 1 in all", f)
			}
			if tc.Lookup("/bad.js") == nil {
				t.Error("the object was dropped")
			}
			tc = tc.reopen(t, Config{})
			obj = tc.Lookup("/bad.js")
			if obj == nil || obj.Undecodable() == "" {
				t.Fatalf("after a restart the failure is forgotten: %+v", obj)
			}
			if _, err := tc.Open(obj, negotiate.Brotli); !errors.Is(err, ErrNoVariant) {
				t.Fatalf("after restart: Open = %v", err)
			}
			if n := tc.logs.count("not valid in its content coding"); n != 0 {
				t.Errorf("logged again after a restart (%d)", n)
			}
		})
	}
}

func TestUnknownCodingServedAsStored(t *testing.T) {
	tc := newTestCache(t, Config{})
	stored := []byte("x\x9c\xcb\x48\xcd\xc9\xc9\x07\x00\x06\x2c\x02\x15") // zlib "hello"
	obj := tc.fill(t, "/d", response(stored, "deflate", int64(len(stored))))
	for c := range negotiate.Coding(negotiate.NumCodings) {
		if _, err := tc.Open(obj, c); !errors.Is(err, ErrNoVariant) {
			t.Errorf("Open(%v) = %v, want ErrNoVariant", c, err)
		}
	}
	b, err := tc.OpenStored(obj)
	if got := readBody(t, b, err); !bytes.Equal(got, stored) || b.Coding != "deflate" {
		t.Errorf("OpenStored: %q in %q", got, b.Coding)
	}
}

// TestNewVersionDropsEveryVariantFile: replacing an object removes the
// files of all its variants, also one in a coding the edge cannot decode.
func TestNewVersionDropsEveryVariantFile(t *testing.T) {
	tc := newTestCache(t, Config{})
	old := []byte("old body in a coding we cannot read")
	tc.fill(t, "/o", response(old, "compress", int64(len(old))))
	if n := len(files(t, tc.dir)); n != 2 {
		t.Fatalf("%d files, want the record and the stored variant", n)
	}
	body := text(4000)
	obj := tc.fill(t, "/o", response(body, "", int64(len(body))))
	read(t)(tc.Open(obj, negotiate.Gzip))
	if n := len(files(t, tc.dir)); n != 3 {
		t.Errorf("%d files after a new version, want 3 (record, identity, gzip): %q", n, files(t, tc.dir))
	}
	tc.Delete("/o")
	if f := files(t, tc.dir); len(f) != 0 {
		t.Errorf("files left after Delete: %q", f)
	}
}

// TestDiskFaultsNeverFailAFill: a disk that is full, read-only or failing
// degrades the cache to memory; fills, refreshes and opens go on; writes
// are retried once per interval; a disk that heals is used again.
func TestDiskFaultsNeverFailAFill(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		failAfter int64
	}{
		{"full", errNoSpace, 100},
		{"read-only", errReadOnly, -1},
		{"io error", errors.New("input/output error"), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCache(t, Config{})
			tc.fs.set(tt.err, tt.failAfter)
			body := text(8000)
			obj := tc.fill(t, "/a.js", response(body, "", int64(len(body))))
			if got := read(t)(tc.Open(obj, negotiate.Identity)); !bytes.Equal(got, body) {
				t.Fatal("body differs")
			}
			if got := read(t)(tc.Open(obj, negotiate.Brotli)); !bytes.Equal(decode(t, negotiate.Brotli, got), body) {
				t.Fatal("br body differs")
			}
			ok, detail := tc.DiskHealth()
			if ok || !strings.Contains(detail, "degraded") {
				t.Fatalf("DiskHealth = %v %q", ok, detail)
			}
			if s := tc.Stats(); !s.DiskDegraded || s.DiskWriteErrors == 0 {
				t.Fatalf("Stats: %+v", s)
			}
			if n := tc.logs.count("disk degraded"); n != 1 {
				t.Errorf("'disk degraded' logged %d times, want 1", n)
			}

			// A 304 refreshes the copy in memory even though the disk
			// cannot take the record.
			tc.Wait()
			held := tc.Lookup("/a.js")
			meta := held.Meta
			meta.Fetched = meta.Fetched.Add(time.Hour)
			refreshed, _, err := tc.Fill(context.Background(), "/a.js", time.Minute, func(context.Context) (*Response, error) {
				return &Response{Confirmed: held, Meta: meta}, nil
			})
			if err != nil || !refreshed.Meta.Fetched.Equal(meta.Fetched) {
				t.Fatalf("refresh: %v", err)
			}
			tc.Wait()
			if got := tc.Lookup("/a.js"); !got.Meta.Fetched.Equal(meta.Fetched) {
				t.Fatal("the refreshed freshness was not kept in memory")
			}

			// Sparingly: many fills within the retry interval touch the
			// disk not at all.
			creates := tc.fs.creates.Load()
			for i := range 20 {
				tc.fill(t, "/many/"+string(rune('a'+i)), response(body, "", int64(len(body))))
			}
			if n := tc.fs.creates.Load() - creates; n != 0 {
				t.Errorf("%d disk writes tried within the retry interval, want 0", n)
			}
			// Past it, one write is tried; it fails, and the interval grows.
			errs := tc.Stats().DiskWriteErrors
			tc.clock.Advance(diskRetryMin)
			for i := range 20 {
				tc.fill(t, "/more/"+string(rune('a'+i)), response(body, "", int64(len(body))))
			}
			if n := tc.Stats().DiskWriteErrors - errs; n != 1 {
				t.Errorf("%d disk writes failed after the interval, want 1 (tried once)", n)
			}

			// The disk heals: the next try works and the cache is healthy.
			tc.fs.set(nil, 0)
			tc.clock.Advance(diskRetryMax)
			tc.fill(t, "/healed", response(body, "", int64(len(body))))
			if ok, detail := tc.DiskHealth(); !ok {
				t.Fatalf("after healing: %q", detail)
			}
			if tc.logs.count("disk recovered") != 1 {
				t.Error("recovery not logged")
			}
			tc = tc.reopen(t, Config{})
			if tc.Lookup("/healed") == nil {
				t.Error("written after healing, but not on disk")
			}
		})
	}
}

// TestLargeBodyWithDiskFailingMidway: a large body whose spool file
// fills up mid-transfer reaches its readers whole, from memory; it is not
// cached, and the disk is reported degraded.
func TestLargeBodyWithDiskFailingMidway(t *testing.T) {
	tc := newTestCache(t, Config{MaxMemoryObject: 4 << 10})
	body := text(200 << 10)
	tc.fs.set(errNoSpace, 50<<10) // the spool file takes 50 KiB, then the disk is full
	pr, pw := io.Pipe()
	resp := response(nil, "", int64(len(body)))
	resp.Body = pr
	obj := tc.fill(t, "/big.js", resp)
	go func() {
		pw.Write(body)
		pw.Close()
	}()
	if got := read(t)(tc.Open(obj, negotiate.Identity)); !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, want %d", len(got), len(body))
	}
	tc.Close() // waits for the commit, which the full disk refuses
	if ok, _ := tc.DiskHealth(); ok {
		t.Error("the disk is not reported degraded")
	}
	if files := files(t, tc.dir); len(files) != 0 {
		t.Errorf("files left: %q", files)
	}
}

// TestReadOnlyDirectoryAtStart: a cache directory that cannot be written
// (a volume mounted with the wrong owner) shows at once, naming the
// directory, and the cache serves from memory.
func TestReadOnlyDirectoryAtStart(t *testing.T) {
	dir := t.TempDir()
	fs := &faultFS{}
	fs.set(errReadOnly, -1)
	l := &logs{}
	c, err := New(Config{Dir: dir, fs: fs, Log: slog.New(l)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok, detail := c.DiskHealth()
	if ok || !strings.Contains(detail, dir) || !strings.Contains(detail, "not writable") {
		t.Fatalf("DiskHealth = %v %q: want it to name the directory", ok, detail)
	}
	if l.count("disk degraded") != 1 {
		t.Error("not logged")
	}
	tc := &testCache{Cache: c, fs: fs, dir: dir}
	body := text(3000)
	obj := tc.fill(t, "/a", response(body, "", int64(len(body))))
	if got := read(t)(c.Open(obj, negotiate.Gzip)); !bytes.Equal(decode(t, negotiate.Gzip, got), body) {
		t.Error("not served from memory")
	}
}

// TestLargeVariantDerivedInBackground: a large object's first request in
// another coding is not held up by transcoding: it gets ErrNoVariant (the
// caller serves the stored body) while the variant is derived straight to
// disk, once, and served after that.
func TestLargeVariantDerivedInBackground(t *testing.T) {
	tc := newTestCache(t, Config{MaxMemoryObject: 16 << 10})
	body := text(300 << 10)
	obj := tc.fill(t, "/big.js", response(body, "", int64(len(body))))
	tc.Close() // the spool committed to disk
	tc = tc.reopen(t, Config{MaxMemoryObject: 16 << 10})
	obj = tc.Lookup("/big.js")
	for range 10 {
		if _, err := tc.Open(obj, negotiate.Brotli); !errors.Is(err, ErrNoVariant) {
			// Already done: fine, the derivation is quick on a fast machine.
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	tc.Close() // waits for the derivation
	tc = tc.reopen(t, Config{MaxMemoryObject: 16 << 10})
	obj = tc.Lookup("/big.js")
	b, err := tc.Open(obj, negotiate.Brotli)
	got := readBody(t, b, err)
	if !bytes.Equal(decode(t, negotiate.Brotli, got), body) || b.Size >= int64(len(body)) {
		t.Fatalf("br variant: %d bytes", b.Size)
	}
}

// TestUnknownLengthBody: a body of unknown length is stored like any
// other, from memory when small, streamed when large.
func TestUnknownLengthBody(t *testing.T) {
	tc := newTestCache(t, Config{MaxMemoryObject: 8 << 10})
	for _, n := range []int{0, 100, 8 << 10, 8<<10 + 1, 100 << 10} {
		body := text(n)
		key := "/u" + strings.Repeat("x", n%7)
		resp := response(body, "", -1)
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body))) // no length known
		obj := tc.fill(t, key, resp)
		if got := read(t)(tc.OpenStored(obj)); !bytes.Equal(got, body) {
			t.Errorf("%d bytes: read %d", n, len(got))
		}
	}
}

// TestNewestVersionInMemory: versions of one key stored in quick
// succession leave the newest in memory (ristretto drops the second Set
// of a key it has not admitted yet; see setVersion).
func TestNewestVersionInMemory(t *testing.T) {
	tc := newTestCache(t, Config{MaxMemoryObject: 2 << 10})
	for i := range 200 {
		key := "/k" + strings.Repeat("x", i)
		v1, v2 := text(1000+i), text(3000+i) // v2 streams: spool, then commit
		tc.fill(t, key, response(v1, "", int64(len(v1))))
		last := tc.fill(t, key, response(v2, "", int64(len(v2))))
		tc.Wait()
		if got := tc.Lookup(key); got.Meta.Version != last.Meta.Version || got.Streaming() || got.find("identity").spool != nil {
			t.Fatalf("%s: memory holds version %d (spool %v), want the committed %d", key, got.Meta.Version, got.find("identity").spool != nil, last.Meta.Version)
		}
	}
}
