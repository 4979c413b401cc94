package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache/internal/disk"
)

// faultFS is the disk tier's file system with faults the test switches
// on: every change fails with err (EROFS, EIO), or writes fail with err
// once a file has taken failAfter bytes (ENOSPC part-way). It counts the
// files it was asked to create.
type faultFS struct {
	disk.OSFS
	mu        sync.Mutex
	err       error // nil: no fault
	failAfter int64 // with err: bytes a file takes before its writes fail; <0: CreateTemp fails
	creates   atomic.Int64
}

func (f *faultFS) set(err error, failAfter int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.failAfter = err, failAfter
}

func (f *faultFS) fault() (error, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err, f.failAfter
}

func (f *faultFS) CreateTemp(dir, pattern string) (disk.File, error) {
	f.creates.Add(1)
	err, after := f.fault()
	if err != nil && after < 0 {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: err}
	}
	file, cerr := os.CreateTemp(dir, pattern)
	if cerr != nil {
		return nil, cerr
	}
	if err == nil {
		return file, nil
	}
	return &faultFile{File: file, err: err, left: after}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err, after := f.fault(); err != nil && after < 0 {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return os.Rename(oldpath, newpath)
}

func (f *faultFS) Remove(name string) error {
	if err, after := f.fault(); err != nil && after < 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	return os.Remove(name)
}

// faultFile fails its writes once it has taken left bytes.
type faultFile struct {
	*os.File
	err  error
	left int64
}

func (f *faultFile) Write(p []byte) (int, error) {
	if int64(len(p)) > f.left {
		n, _ := f.File.Write(p[:f.left])
		f.left = 0
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: f.err}
	}
	f.left -= int64(len(p))
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.left <= 0 {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: f.err}
	}
	return f.File.WriteAt(p, off)
}

var (
	errNoSpace  = syscall.ENOSPC
	errReadOnly = syscall.EROFS
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logs is a slog.Handler that keeps what it is given.
type logs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// count returns how many records' messages contain s.
func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if strings.Contains(r.Message, s) {
			n++
		}
	}
	return n
}

// testCache is a Cache over a faultFS, a test clock and a log capture.
type testCache struct {
	*Cache
	fs    *faultFS
	clock *testClock
	logs  *logs
	dir   string
}

func newTestCache(t testing.TB, cfg Config) *testCache {
	t.Helper()
	tc := &testCache{fs: &faultFS{}, clock: newTestClock(), logs: &logs{}, dir: cfg.Dir}
	if tc.dir == "" {
		tc.dir = t.TempDir()
	}
	cfg.Dir, cfg.fs, cfg.Now, cfg.Log = tc.dir, tc.fs, tc.clock.Now, slog.New(tc.logs)
	var err error
	if tc.Cache, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}

// reopen closes the cache and opens another on the same directory.
func (tc *testCache) reopen(t testing.TB, cfg Config) *testCache {
	t.Helper()
	tc.Close()
	cfg.Dir = tc.dir
	return newTestCache(t, cfg)
}

// response is a new version of a body, as an origin would give it.
func response(body []byte, coding string, size int64) *Response {
	return &Response{
		Meta: Meta{Status: 200, ContentType: "text/javascript", Coding: coding, ETag: `"v1"`, Size: size,
			Fetched: time.Now(), Origin: &OriginFreshness{}, Compressible: true},
		Body: io.NopCloser(bytes.NewReader(body)),
	}
}

// fill fills key with resp.
func (tc *testCache) fill(t testing.TB, key string, resp *Response) *Object {
	t.Helper()
	obj, _, err := tc.Fill(context.Background(), key, time.Minute, func(context.Context) (*Response, error) { return resp, nil })
	if err != nil {
		t.Fatalf("Fill(%q): %v", key, err)
	}
	return obj
}

// read returns a function that reads the whole of an opened body: call
// it as read(t)(tc.Open(obj, coding)).
func read(t testing.TB) func(Body, error) []byte {
	return func(b Body, err error) []byte {
		t.Helper()
		return readBody(t, b, err)
	}
}

func readBody(t testing.TB, b Body, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if b.Size >= 0 && int64(buf.Len()) != b.Size {
		t.Fatalf("read %d bytes, Size says %d", buf.Len(), b.Size)
	}
	return buf.Bytes()
}

// text is n bytes of compressible, non-repeating text.
func text(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	words := []string{"login", "widget", "tenant", "config", "token", "session", "user", "edge ", "{}", "\n"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// files lists the disk tier's files (relative paths), skipping
// directories.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}
