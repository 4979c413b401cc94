package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func testOpen(t testing.TB, dir string, maxBytes int64) *Store {
	t.Helper()
	d, err := openSync(dir, maxBytes)
	if err != nil {
		t.Fatalf("openSync(%q, %d): %v", dir, maxBytes, err)
	}
	return d
}

func testPut(t testing.TB, d *Store, key string, meta, body []byte) int64 {
	t.Helper()
	n, err := d.Put(key, meta, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return n
}

// testGet returns key's meta and body as read through Body.
func testGet(d *Store, key string) (meta, body []byte, err error) {
	e, err := d.Get(key)
	if err != nil {
		return nil, nil, err
	}
	defer e.Close()
	body, err = io.ReadAll(e.Body)
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) != e.Size {
		return nil, nil, fmt.Errorf("read %d body bytes, Size says %d", len(body), e.Size)
	}
	return e.Meta, body, nil
}

// testBody is n bytes that differ with seed, so swapped bodies show.
func testBody(n int, seed string) []byte {
	b := make([]byte, n)
	x := uint32(2166136261)
	for i := 0; i < len(seed); i++ {
		x = (x ^ uint32(seed[i])) * 16777619
	}
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// testFiles lists the regular files under dir, relative to it.
func testFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

func testExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		key  string
		meta []byte
		body []byte
	}{
		{"empty body", "a", []byte(`{"v":1}`), nil},
		{"empty meta", "b", nil, []byte("hello")},
		{"empty key", "", []byte("m"), []byte("x")},
		{"one byte", "c", []byte("m"), []byte{0}},
		{"variant key with NUL", "/widget.js\x00gzip", []byte(`{"etag":"\"abc\""}`), testBody(5000, "w")},
		{"body over one buffer", "big", []byte("m"), testBody(3*bufSize+17, "big")},
		{"body exactly one buffer", "buf", nil, testBody(bufSize, "buf")},
		{"largest meta", "meta", testBody(maxMeta, "meta"), []byte("b")},
		{"largest key", strings.Repeat("k", maxKey), []byte("m"), []byte("b")},
		{"unicode key", "/héllo/wörld.json", []byte("m"), []byte("{}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testOpen(t, t.TempDir(), 0)
			n := testPut(t, d, tt.key, tt.meta, tt.body)
			if want := int64(headerSize + len(tt.key) + len(tt.meta) + len(tt.body)); n != want {
				t.Errorf("Put returned %d, want file size %d", n, want)
			}
			if fi, err := os.Stat(d.path(tt.key)); err != nil || fi.Size() != n {
				t.Errorf("file: %v, %v; want %d bytes", fi, err, n)
			}
			if !has(d, tt.key) {
				t.Error("Has = false after Put")
			}
			if m, ok := d.Meta(tt.key); !ok || !bytes.Equal(m, tt.meta) {
				t.Errorf("Meta = %.20q, %v", m, ok)
			}
			// Twice: the first Get verifies the body, the second does not.
			for i := range 2 {
				meta, body, err := testGet(d, tt.key)
				if err != nil {
					t.Fatalf("Get #%d: %v", i, err)
				}
				if !bytes.Equal(meta, tt.meta) || !bytes.Equal(body, tt.body) {
					t.Fatalf("Get #%d: meta %.20q body %d bytes; want %.20q, %d bytes", i, meta, len(body), tt.meta, len(tt.body))
				}
			}
			e, err := d.Get(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if len(tt.body) > 1 {
				if _, err := e.Body.Seek(1, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				rest, _ := io.ReadAll(e.Body)
				if !bytes.Equal(rest, tt.body[1:]) {
					t.Error("Body after Seek(1) differs")
				}
			}
			whole, err := e.ReadBody()
			if err != nil || !bytes.Equal(whole, tt.body) {
				t.Errorf("ReadBody = %d bytes, %v; want %d", len(whole), err, len(tt.body))
			}
			if s := d.Stats(); s.Entries != 1 || s.Bytes != n {
				t.Errorf("Stats = %+v, want 1 entry of %d bytes", s, n)
			}
		})
	}
}

func TestPutRefuses(t *testing.T) {
	tests := []struct {
		name string
		key  string
		meta []byte
	}{
		{"key too long", strings.Repeat("k", maxKey+1), nil},
		{"meta too long", "k", make([]byte, maxMeta+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, 0)
			if _, err := d.Put(tt.key, tt.meta, strings.NewReader("b"), 1); err == nil {
				t.Fatal("Put succeeded")
			}
			if has(d, tt.key) || len(testFiles(t, dir)) != 0 {
				t.Error("something was stored")
			}
		})
	}
}

func TestGetAbsent(t *testing.T) {
	d := testOpen(t, t.TempDir(), 0)
	if _, err := d.Get("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(absent) = %v, want fs.ErrNotExist", err)
	}
	if has(d, "nope") {
		t.Error("Has(absent)")
	}
	if _, ok := d.Meta("nope"); ok {
		t.Error("Meta(absent) ok")
	}
	if err := d.Delete("nope"); err != nil {
		t.Errorf("Delete(absent) = %v", err)
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	d := testOpen(t, dir, 0)
	testPut(t, d, "k", []byte("v1"), testBody(3000, "v1"))
	if _, _, err := testGet(d, "k"); err != nil { // verified: the replacement must not inherit that
		t.Fatal(err)
	}
	n := testPut(t, d, "k", []byte("v2"), testBody(100, "v2"))
	meta, body, err := testGet(d, "k")
	if err != nil || string(meta) != "v2" || !bytes.Equal(body, testBody(100, "v2")) {
		t.Fatalf("Get after replace = %q, %d bytes, %v", meta, len(body), err)
	}
	if s := d.Stats(); s.Entries != 1 || s.Bytes != n {
		t.Errorf("Stats = %+v, want 1 entry of %d bytes", s, n)
	}
	if files := testFiles(t, dir); len(files) != 1 {
		t.Errorf("files = %v, want one", files)
	}
}

func TestDelete(t *testing.T) {
	dir := t.TempDir()
	d := testOpen(t, dir, 0)
	testPut(t, d, "a", nil, []byte("A"))
	nb := testPut(t, d, "b", nil, []byte("BB"))
	if err := d.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if has(d, "a") || testExists(d.path("a")) {
		t.Error("a still there after Delete")
	}
	if _, err := d.Get("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(deleted) = %v", err)
	}
	if _, b, err := testGet(d, "b"); err != nil || string(b) != "BB" {
		t.Errorf("Get(b) = %q, %v", b, err)
	}
	if s := d.Stats(); s.Entries != 1 || s.Bytes != nb {
		t.Errorf("Stats = %+v", s)
	}
	// Deleted stays deleted across a restart.
	if d2 := testOpen(t, dir, 0); has(d2, "a") || !has(d2, "b") {
		t.Error("restart resurrected a or lost b")
	}
}

// TestDeleteFailureKeepsEntry: a delete the disk refuses leaves the
// entry indexed (and says so), so that it can be tried again and the
// next start's scan does not bring back what the index had forgotten.
func TestDeleteFailureKeepsEntry(t *testing.T) {
	dir := t.TempDir()
	fsys := &refusingFS{}
	d, err := Open(dir, Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	<-d.Indexed()
	testPut(t, d, "k", []byte("m"), []byte("body"))
	fsys.refuse.Store(true)
	if err := d.Delete("k"); err == nil {
		t.Fatal("Delete succeeded on a disk that refuses removes")
	}
	if _, ok := d.Meta("k"); !ok {
		t.Fatal("a failed Delete dropped the entry from the index")
	}
	fsys.refuse.Store(false)
	if err := d.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Meta("k"); ok {
		t.Fatal("deleted entry still indexed")
	}
}

// refusingFS fails every Remove while refuse is set.
type refusingFS struct {
	OSFS
	refuse atomic.Bool
}

func (f *refusingFS) Remove(name string) error {
	if f.refuse.Load() {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EROFS}
	}
	return os.Remove(name)
}

func TestOpenEntryOutlivesDelete(t *testing.T) {
	d := testOpen(t, t.TempDir(), 0)
	body := testBody(10000, "x")
	testPut(t, d, "k", nil, body)
	e, err := d.Get("k")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := d.Delete("k"); err != nil {
		t.Fatal(err)
	}
	got, err := e.ReadBody()
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("ReadBody after Delete = %d bytes, %v", len(got), err)
	}
}

func TestKeys(t *testing.T) {
	d := testOpen(t, t.TempDir(), 0)
	want := []string{"/a", "/b", "/c/d", "/e\x00gzip"}
	for _, k := range want {
		testPut(t, d, k, nil, []byte(k))
	}
	var got []string
	d.Keys(func(k string) bool { got = append(got, k); return true })
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Keys = %q, want %q", got, want)
	}

	n := 0
	d.Keys(func(string) bool { n++; return false })
	if n != 1 {
		t.Errorf("Keys visited %d after fn returned false, want 1", n)
	}

	// fn may call Delete (purge by prefix) without deadlocking.
	d.Keys(func(k string) bool {
		if strings.HasPrefix(k, "/c") || strings.HasPrefix(k, "/e") {
			if err := d.Delete(k); err != nil {
				t.Error(err)
			}
		}
		return true
	})
	got = got[:0]
	d.Keys(func(k string) bool { got = append(got, k); return true })
	slices.Sort(got)
	if !slices.Equal(got, want[:2]) {
		t.Errorf("Keys after purge = %q, want %q", got, want[:2])
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	d := testOpen(t, dir, 0)
	const n = 200
	for i := range n {
		k := fmt.Sprintf("/tenant/%d.json", i)
		testPut(t, d, k, []byte("meta "+k), testBody(i*37, k))
	}
	before := d.Stats()

	d2 := testOpen(t, dir, 0)
	if s := d2.Stats(); s.Entries != before.Entries || s.Bytes != before.Bytes || s.Corrupt != 0 {
		t.Errorf("Stats after restart = %+v, before %+v", s, before)
	}
	for i := range n {
		k := fmt.Sprintf("/tenant/%d.json", i)
		if m, ok := d2.Meta(k); !ok || string(m) != "meta "+k {
			t.Errorf("Meta(%q) = %q, %v", k, m, ok)
		}
		meta, body, err := testGet(d2, k)
		if err != nil || string(meta) != "meta "+k || !bytes.Equal(body, testBody(i*37, k)) {
			t.Errorf("Get(%q) = %q, %d bytes, %v", k, meta, len(body), err)
		}
	}
}

// testMutation changes the file at path; pre is the offset of the body.
type testMutation func(t *testing.T, path string, pre int64)

func testFlip(off func(pre, size int64) int64) testMutation {
	return func(t *testing.T, path string, pre int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off(pre, int64(len(b)))] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func testTruncate(size func(pre, size int64) int64) testMutation {
	return func(t *testing.T, path string, pre int64) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size(pre, fi.Size())); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruption(t *testing.T) {
	at := func(o int64) func(int64, int64) int64 { return func(int64, int64) int64 { return o } }
	tests := []struct {
		name    string
		mutate  testMutation
		restart bool
		// atOpen: openSync drops the file (else Get finds it corrupt).
		atOpen bool
	}{
		{"body byte, same process", testFlip(func(pre, size int64) int64 { return pre + 100 }), false, false},
		{"body byte, after restart", testFlip(func(pre, size int64) int64 { return pre + 100 }), true, false},
		{"first body byte", testFlip(func(pre, size int64) int64 { return pre }), true, false},
		{"last body byte", testFlip(func(pre, size int64) int64 { return size - 1 }), true, false},
		{"body byte past one buffer", testFlip(func(pre, size int64) int64 { return pre + bufSize + 3 }), true, false},
		{"magic", testFlip(at(0)), true, true},
		{"version", testFlip(at(4)), true, true},
		{"reserved", testFlip(at(6)), true, true},
		{"key length", testFlip(at(8)), true, true},
		{"meta length", testFlip(at(12)), true, true},
		{"body length low", testFlip(at(16)), true, true},
		{"body length high", testFlip(at(23)), true, true},
		{"time written", testFlip(at(26)), true, true},
		{"body checksum", testFlip(at(32)), true, true},
		{"header checksum", testFlip(at(39)), true, true},
		{"key byte", testFlip(at(headerSize + 1)), true, true},
		{"meta byte", testFlip(func(pre, size int64) int64 { return pre - 1 }), true, true},
		{"header byte, same process", testFlip(at(10)), false, false},
		{"meta byte, same process", testFlip(func(pre, size int64) int64 { return pre - 1 }), false, false},
		{"truncated by one byte", testTruncate(func(pre, size int64) int64 { return size - 1 }), true, true},
		{"truncated to its header", testTruncate(func(pre, size int64) int64 { return pre }), true, true},
		{"truncated inside its header", testTruncate(func(pre, size int64) int64 { return 20 }), true, true},
		{"truncated to zero", testTruncate(func(pre, size int64) int64 { return 0 }), true, true},
		{"extended by one byte", testTruncate(func(pre, size int64) int64 { return size + 1 }), true, true},
		{"truncated, same process", testTruncate(func(pre, size int64) int64 { return size - 1 }), false, false},
		{"truncated to zero, same process", testTruncate(func(pre, size int64) int64 { return 0 }), false, false},
	}
	const key = "/widget.js\x00identity"
	meta := []byte(`{"etag":"\"v1\""}`)
	body := testBody(bufSize+1000, "widget")
	pre := int64(headerSize + len(key) + len(meta))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, 0)
			testPut(t, d, key, meta, body)
			testPut(t, d, "other", nil, []byte("intact"))
			path := d.path(key)
			tt.mutate(t, path, pre)
			if tt.restart {
				d = testOpen(t, dir, 0)
				if got := has(d, key); got == tt.atOpen {
					t.Fatalf("after restart Has = %v, want %v", got, !tt.atOpen)
				}
				if tt.atOpen && d.Stats().Corrupt != 1 {
					t.Errorf("Stats.Corrupt = %d, want 1", d.Stats().Corrupt)
				}
			}
			_, _, err := testGet(d, key)
			if tt.atOpen {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Get = %v, want fs.ErrNotExist", err)
				}
			} else {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("Get = %v, want ErrCorrupt", err)
				}
				if d.Stats().Corrupt != 1 {
					t.Errorf("Stats.Corrupt = %d, want 1", d.Stats().Corrupt)
				}
				// The second Get: it is gone.
				if _, err := d.Get(key); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("second Get = %v, want fs.ErrNotExist", err)
				}
			}
			if has(d, key) {
				t.Error("Has = true after the corrupt file was found")
			}
			if testExists(path) {
				t.Error("corrupt file still on disk")
			}
			if s := d.Stats(); s.Entries != 1 || s.Bytes != int64(headerSize+len("other")+len("intact")) {
				t.Errorf("Stats = %+v, want only the other entry", s)
			}
			if _, b, err := testGet(d, "other"); err != nil || string(b) != "intact" {
				t.Errorf("other entry: %q, %v", b, err)
			}
			// The caller refetches and stores it again.
			testPut(t, d, key, meta, body)
			if _, b, err := testGet(d, key); err != nil || !bytes.Equal(b, body) {
				t.Errorf("Get after re-Put: %d bytes, %v", len(b), err)
			}
		})
	}
}

// TestSmallBodyCheckedAtOpen: a file that fits in indexing's first read
// is checked whole there (size and body), and dropped at once when bad.
func TestSmallBodyCheckedAtOpen(t *testing.T) {
	tests := []struct {
		name   string
		mutate testMutation
	}{
		{"body byte flipped", testFlip(func(pre, size int64) int64 { return size - 1 })},
		{"extended by one byte", testTruncate(func(pre, size int64) int64 { return size + 1 })},
		{"truncated by one byte", testTruncate(func(pre, size int64) int64 { return size - 1 })},
		{"extended to the peek size", testTruncate(func(pre, size int64) int64 { return indexPeek })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, 0)
			testPut(t, d, "bad", []byte("m"), []byte("small body"))
			testPut(t, d, "good", []byte("m"), []byte("small body"))
			tt.mutate(t, d.path("bad"), 0)
			d = testOpen(t, dir, 0)
			if has(d, "bad") || testExists(d.path("bad")) || d.Stats().Corrupt != 1 {
				t.Errorf("bad small file kept: Has %v, Stats %+v", has(d, "bad"), d.Stats())
			}
			d.mu.Lock()
			verified := d.index["good"].verified
			d.mu.Unlock()
			if !verified {
				t.Error("good small file not marked verified at open")
			}
		})
	}
}

// TestEveryByteFlipped flips each byte of a small file in turn: no
// flip may go unnoticed, whether found at openSync (after a restart) or at
// the first Get (of a file written in this process).
func TestEveryByteFlipped(t *testing.T) {
	const key = "/k"
	meta, body := []byte(`{"m":1}`), []byte("0123456789abcdef")
	dir := t.TempDir()
	for i := range headerSize + len(key) + len(meta) + len(body) {
		for _, restart := range []bool{false, true} {
			d := testOpen(t, dir, 0)
			testPut(t, d, key, meta, body)
			path := d.path(key)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[i] ^= 1 << (i % 8)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if restart {
				d = testOpen(t, dir, 0)
			}
			if _, got, err := testGet(d, key); err == nil {
				t.Fatalf("byte %d flipped (restart %v): Get returned %q", i, restart, got)
			} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("byte %d flipped (restart %v): Get = %v", i, restart, err)
			}
			if testExists(path) {
				t.Fatalf("byte %d flipped (restart %v): file kept", i, restart)
			}
		}
	}
}

func TestOpenCleansUp(t *testing.T) {
	dir := t.TempDir()
	d := testOpen(t, dir, 0)
	testPut(t, d, "k", nil, []byte("body"))
	fan := filepath.Dir(d.path("k"))
	temps := []string{
		filepath.Join(fan, testTempName),
		filepath.Join(dir, "00", "00", testTempName),
	}
	for _, p := range temps {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("torn"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Not ours: left alone.
	foreign := []string{filepath.Join(dir, "README"), filepath.Join(fan, "notes.txt")}
	for _, p := range foreign {
		if err := os.WriteFile(p, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A valid file under the wrong name (as a hash collision would look):
	// it cannot be found under its key, so it is dropped.
	wrong := filepath.Join(dir, "ff", "ff", strings.Repeat("f", 64))
	if err := os.MkdirAll(filepath.Dir(wrong), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, encodePrefix(nil, "other", nil, 0, 0, 0), 0o600); err != nil {
		t.Fatal(err)
	}

	d = testOpen(t, dir, 0)
	for _, p := range append(temps, wrong) {
		if testExists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range foreign {
		if !testExists(p) {
			t.Errorf("%s removed", p)
		}
	}
	if _, b, err := testGet(d, "k"); err != nil || string(b) != "body" {
		t.Errorf("Get(k) = %q, %v", b, err)
	}
	if has(d, "other") {
		t.Error("misplaced file indexed")
	}
	if s := d.Stats(); s.Entries != 1 || s.Corrupt != 1 {
		t.Errorf("Stats = %+v, want 1 entry, 1 corrupt", s)
	}
}

const testTempName = tempPrefix + "12345"

// TestGetOtherKey: a file that holds another key than the one whose
// name it has reads as absent.
func TestGetOtherKey(t *testing.T) {
	dir := t.TempDir()
	d := testOpen(t, dir, 0)
	testPut(t, d, "a", nil, []byte("A"))
	testPut(t, d, "b", nil, []byte("B"))
	if err := os.Rename(d.path("a"), d.path("b")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := testGet(d, "b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(b) = %q, %v; want fs.ErrNotExist", b, err)
	}
}

// testFailingReader yields n bytes of body, then err.
type testFailingReader struct {
	n   int
	err error
}

func (r *testFailingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	m := min(len(p), r.n, 1000)
	for i := range p[:m] {
		p[i] = 'x'
	}
	r.n -= m
	return m, nil
}

func TestPutBodyFails(t *testing.T) {
	tests := []struct {
		name     string
		after    int // body bytes before the error
		previous bool
	}{
		{"at once", 0, false},
		{"midway", 10, false},
		{"after flushes", 3 * bufSize, false},
		{"replacing an entry", 5000, true},
		{"replacing an entry, after flushes", 3 * bufSize, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, 0)
			var before []string
			if tt.previous {
				testPut(t, d, "k", []byte("old"), []byte("old body"))
				before = testFiles(t, dir)
			}
			boom := errors.New("connection reset")
			_, err := d.Put("k", []byte("new"), &testFailingReader{n: tt.after, err: boom}, -1)
			if !errors.Is(err, boom) {
				t.Fatalf("Put = %v, want it to wrap %v", err, boom)
			}
			if files := testFiles(t, dir); !slices.Equal(files, before) {
				t.Errorf("files = %q, want %q (no temp left)", files, before)
			}
			if !tt.previous {
				if has(d, "k") || d.Stats().Entries != 0 {
					t.Error("entry stored")
				}
				return
			}
			if m, b, err := testGet(d, "k"); err != nil || string(m) != "old" || string(b) != "old body" {
				t.Errorf("previous entry: %q %q %v", m, b, err)
			}
		})
	}
}

func TestPutExpectedSize(t *testing.T) {
	small, big := testBody(100, "s"), testBody(2*bufSize+5, "b")
	tests := []struct {
		name     string
		body     []byte
		expected int64
		ok       bool
	}{
		{"exact", small, 100, true},
		{"unknown", small, -1, true},
		{"empty, exact", nil, 0, true},
		{"one short", small, 101, false},
		{"one long", small, 99, false},
		{"empty, expected some", nil, 1, false},
		{"some, expected empty", small, 0, false},
		{"big, exact", big, int64(len(big)), true},
		{"big, one short", big, int64(len(big)) + 1, false},
		{"big, one long", big, int64(len(big)) - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, 0)
			_, err := d.Put("k", nil, bytes.NewReader(tt.body), tt.expected)
			if (err == nil) != tt.ok {
				t.Fatalf("Put = %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				if has(d, "k") || len(testFiles(t, dir)) != 0 {
					t.Error("something stored")
				}
				return
			}
			if _, b, err := testGet(d, "k"); err != nil || !bytes.Equal(b, tt.body) {
				t.Errorf("Get = %d bytes, %v", len(b), err)
			}
		})
	}
}

// testKB is a body that makes a file of exactly 1 KiB under a key of
// 3 bytes and no meta.
var testKB = testBody(1024-headerSize-3, "kb")

func TestEviction(t *testing.T) {
	const bound = 10 << 10
	type op struct {
		get bool
		key string
	}
	put := func(ks ...string) []op {
		var ops []op
		for _, k := range ks {
			ops = append(ops, op{key: k})
		}
		return ops
	}
	get := func(k string) []op { return []op{{get: true, key: k}} }
	ten := []string{"k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09"}
	tests := []struct {
		name      string
		ops       [][]op
		want      []string // keys held at the end
		evictions uint64
	}{
		{"fits exactly", [][]op{put(ten...)}, ten, 0},
		{"oldest goes first", [][]op{put(ten...), put("k10", "k11")},
			append(slices.Clone(ten[2:]), "k10", "k11"), 2},
		{"a Get refreshes", [][]op{put(ten...), get("k00"), get("k01"), put("k10", "k11", "k12")},
			[]string{"k00", "k01", "k05", "k06", "k07", "k08", "k09", "k10", "k11", "k12"}, 3},
		{"a re-Put refreshes", [][]op{put(ten...), put("k00"), put("k10")},
			[]string{"k00", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10"}, 1},
		{"everything turns over", [][]op{put(ten...), put("a00", "a01", "a02", "a03", "a04", "a05", "a06", "a07", "a08", "a09")},
			[]string{"a00", "a01", "a02", "a03", "a04", "a05", "a06", "a07", "a08", "a09"}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, bound)
			for _, ops := range tt.ops {
				for _, o := range ops {
					if o.get {
						if _, _, err := testGet(d, o.key); err != nil {
							t.Fatalf("Get(%s): %v", o.key, err)
						}
						continue
					}
					if n := testPut(t, d, o.key, nil, testKB); n != 1024 {
						t.Fatalf("file of %d bytes, the test wants 1024", n)
					}
					if b := d.Stats().Bytes; b > bound {
						t.Fatalf("after Put(%s): %d bytes, over the bound", o.key, b)
					}
				}
			}
			var got []string
			d.Keys(func(k string) bool { got = append(got, k); return true })
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("keys = %q, want %q", got, tt.want)
			}
			s := d.Stats()
			if s.Evictions != tt.evictions || s.Entries != len(tt.want) || s.Bytes != int64(1024*len(tt.want)) {
				t.Errorf("Stats = %+v, want %d evictions, %d entries", s, tt.evictions, len(tt.want))
			}
			if files := testFiles(t, dir); len(files) != len(tt.want) {
				t.Errorf("%d files on disk, want %d", len(files), len(tt.want))
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	const bound = 10 << 10
	tests := []struct {
		name     string
		size     int // file size
		expected bool
		ok       bool
	}{
		{"exactly the bound", bound, true, true},
		{"exactly the bound, size unknown", bound, false, true},
		{"one over, size known", bound + 1, true, false},
		{"one over, size unknown", bound + 1, false, false},
		{"far over, size unknown", 10 * bound, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, bound)
			testPut(t, d, "old", nil, []byte("x"))
			body := testBody(tt.size-headerSize-3, "big")
			expected := int64(-1)
			if tt.expected {
				expected = int64(len(body))
			}
			_, err := d.Put("big", nil, bytes.NewReader(body), expected)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				// It alone fills the bound: everything else goes.
				if has(d, "old") || !has(d, "big") || d.Stats().Bytes != bound {
					t.Errorf("Stats = %+v", d.Stats())
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Put = %v, want ErrTooLarge", err)
			}
			if has(d, "big") || !has(d, "old") || d.Stats().Evictions != 0 {
				t.Errorf("after ErrTooLarge: Stats %+v", d.Stats())
			}
			if files := testFiles(t, dir); len(files) != 1 {
				t.Errorf("files = %q, want only old", files)
			}
		})
	}
}

func TestOpenEvictsToBound(t *testing.T) {
	dir := t.TempDir()
	d := testOpen(t, dir, 0)
	keys := []string{"k03", "k01", "k04", "k00", "k02"} // oldest first
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return clock } // the files' recency, which the reopened store goes by
	for _, k := range keys {
		testPut(t, d, k, nil, testKB)
		clock = clock.Add(time.Second)
	}
	d = testOpen(t, dir, 3<<10)
	var got []string
	d.Keys(func(k string) bool { got = append(got, k); return true })
	slices.Sort(got)
	if want := []string{"k00", "k02", "k04"}; !slices.Equal(got, want) {
		t.Errorf("keys = %q, want the newest %q", got, want)
	}
	if s := d.Stats(); s.Bytes != 3<<10 || s.Evictions != 2 {
		t.Errorf("Stats = %+v", s)
	}
	if n := len(testFiles(t, dir)); n != 3 {
		t.Errorf("%d files, want 3", n)
	}
}

// testVersioned is a body that names its version: "version|" and
// bytes derived from it, n bytes in all.
func testVersioned(version string, n int) []byte {
	head := version + "|"
	return append([]byte(head), testBody(n-len(head), version)...)
}

// testCheckVersioned checks that body is whole (one version's, not a
// mix) and belongs to key, and that meta is that version's, as Put wrote it.
func testCheckVersioned(key string, meta, body []byte) error {
	version, _, ok := strings.Cut(string(body), "|")
	if !ok || !strings.HasPrefix(version, key+"-") || !bytes.Equal(body, testVersioned(version, len(body))) {
		return fmt.Errorf("torn or foreign body (%.20q)", body)
	}
	if string(meta) != version {
		return fmt.Errorf("meta %q written by Put with body %q", meta, version)
	}
	return nil
}

// TestConcurrent runs Put, Get, Meta, Delete and Keys on a few
// shared keys (run it with -race). Every body is derived from its meta, so
// a Get that mixed two versions shows; at the end the index must agree with
// the files, and a restart must see the same.
func TestConcurrent(t *testing.T) {
	for _, bound := range []int64{0, 40 << 10} {
		t.Run(fmt.Sprintf("bound=%d", bound), func(t *testing.T) {
			dir := t.TempDir()
			d := testOpen(t, dir, bound)
			keys := []string{"a", "b", "c", "d", "e", "f"}
			const workers, ops = 6, 300
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range ops {
						key := keys[(w*7+i)%len(keys)]
						version := fmt.Sprintf("%s-%d-%d", key, w, i)
						switch i % 6 {
						case 0, 1:
							body := testVersioned(version, 500+(w*131+i*17)%9000)
							if _, err := d.Put(key, []byte(version), bytes.NewReader(body), int64(len(body))); err != nil {
								t.Error(err)
								return
							}
						case 2, 3:
							meta, body, err := testGet(d, key)
							if errors.Is(err, fs.ErrNotExist) {
								continue
							}
							if err != nil {
								t.Errorf("Get(%s): %v", key, err)
								return
							}
							if err := testCheckVersioned(key, meta, body); err != nil {
								t.Errorf("Get(%s): %v", key, err)
								return
							}
						case 4:
							if m, ok := d.Meta(key); ok && !strings.HasPrefix(string(m), key+"-") {
								t.Errorf("Meta(%s) = %q", key, m)
								return
							}
						case 5:
							if (w+i)%4 == 0 {
								d.Keys(func(string) bool { return true })
							} else if err := d.Delete(key); err != nil {
								t.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()

			s := d.Stats()
			if bound > 0 && s.Bytes > bound {
				t.Errorf("%d bytes, over the bound %d", s.Bytes, bound)
			}
			if s.Corrupt != 0 {
				t.Errorf("Stats.Corrupt = %d", s.Corrupt)
			}
			files := testFiles(t, dir)
			var total int64
			for _, f := range files {
				if strings.Contains(f, tempPrefix) {
					t.Errorf("temp file left: %s", f)
				}
				fi, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				total += fi.Size()
			}
			if len(files) != s.Entries || total != s.Bytes {
				t.Errorf("files: %d totalling %d bytes; index: %+v", len(files), total, s)
			}
			d2 := testOpen(t, dir, bound)
			for _, k := range keys {
				if has(d, k) != has(d2, k) {
					t.Errorf("%s: Has %v before restart, %v after", k, has(d, k), has(d2, k))
				}
				m1, _ := d.Meta(k)
				m2, _ := d2.Meta(k)
				if !bytes.Equal(m1, m2) {
					t.Errorf("%s: meta %q before restart, %q after", k, m1, m2)
				}
				if !has(d2, k) {
					continue
				}
				meta, body, err := testGet(d2, k)
				if err == nil {
					err = testCheckVersioned(k, meta, body)
				}
				if err != nil {
					t.Errorf("%s after restart: %v", k, err)
				}
			}
		})
	}
}
