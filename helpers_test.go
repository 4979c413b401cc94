package edge

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/origin"
)

// memOrigin is an in-process origin for fast unit tests: objects with the
// metadata S3 would give, a request counter, and an optional gate that
// holds every Get until the test releases it. The end-to-end tests use
// the real S3 server instead.
type memOrigin struct {
	mu      sync.Mutex
	objects map[string]memObject
	gets    atomic.Int64
	gate    chan struct{} // when non-nil, Get waits for it to close
	entered chan struct{} // when non-nil, closed by the first Get
	arrived chan struct{} // when non-nil, gets a value per Get
	once    sync.Once
	down    atomic.Bool // when set, Get fails like an unreachable origin
}

type memObject struct {
	body                                []byte
	contentType, encoding, cacheControl string
	lastModified                        time.Time
}

func newMemOrigin() *memOrigin { return &memOrigin{objects: map[string]memObject{}} }

func (o *memOrigin) put(key string, obj memObject) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if obj.lastModified.IsZero() {
		obj.lastModified = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	o.objects[key] = obj
}

func (o *memOrigin) String() string { return "mem:test" }

func (o *memOrigin) Get(ctx context.Context, key string, cond origin.Conditions) (*origin.Object, error) {
	o.gets.Add(1)
	if o.entered != nil {
		o.once.Do(func() { close(o.entered) })
	}
	if o.arrived != nil {
		o.arrived <- struct{}{}
	}
	if g := o.gate; g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if o.down.Load() {
		return nil, fmt.Errorf("mem origin: connection refused")
	}
	o.mu.Lock()
	obj, ok := o.objects[key]
	o.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("mem origin %q: %w", key, origin.ErrNotFound)
	}
	sum := md5.Sum(obj.body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	if cond.IfNoneMatch == etag {
		return nil, origin.ErrNotModified
	}
	return &origin.Object{
		Body:            io.NopCloser(bytes.NewReader(obj.body)),
		Size:            int64(len(obj.body)),
		ETag:            etag,
		LastModified:    obj.lastModified,
		ContentType:     obj.contentType,
		ContentEncoding: obj.encoding,
		CacheControl:    obj.cacheControl,
	}, nil
}

// clock is a test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testEdge is a Handler over a memOrigin with its own cache directory.
type testEdge struct {
	h     *Handler
	cache *cache.Cache
	org   *memOrigin
	clock *clock
	dir   string
}

func newTestEdge(t testing.TB, site Site, cfg cache.Config) *testEdge {
	t.Helper()
	te := &testEdge{org: newMemOrigin(), clock: newClock(), dir: cfg.Dir}
	if te.dir == "" {
		te.dir = t.TempDir()
	}
	cfg.Dir = te.dir
	var err error
	te.cache, err = cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { te.cache.Close() })
	if site.Origin == nil {
		site.Origin = te.org
	}
	te.h, err = NewHandler(Options{Cache: te.cache, Sites: []Site{withDefaults(site)}, Now: te.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return te
}

// get sends a request through the handler; hdr are header pairs.
func (te *testEdge) get(t testing.TB, method, target string, hdr ...string) *http.Response {
	t.Helper()
	return serve(te.h, method, target, hdr...)
}

// serve runs one request through h, in process; hdr are header pairs.
func serve(h http.Handler, method, target string, hdr ...string) *http.Response {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func readBody(t testing.TB, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// text returns n bytes of compressible, JavaScript-like text.
func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "function f%d(a,b){return a.login(b,%d)||window.widget%d;}\n", i, i*7, i%13)
	}
	return b.Bytes()[:n]
}

// waitBackground waits for the handler's background work started so far
// (revalidations) to finish.
func waitBackground(h *Handler) { h.background.Wait() }

// logs is a slog.Handler that keeps what it is given, for tests that
// check what the edge logs.
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

// matching returns the records whose message contains s.
func (l *logs) matching(s string) []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []slog.Record
	for _, r := range l.records {
		if strings.Contains(r.Message, s) {
			out = append(out, r)
		}
	}
	return out
}

// attrs returns a record's attributes as strings.
func attrs(r slog.Record) map[string]string {
	m := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	return m
}

// newTestLogger is a logger into l.
func newTestLogger(l *logs) *slog.Logger { return slog.New(l) }

// withDefaults fills the zero durations of s with the defaults the
// flags give, as cmd/edge does: most tests care about one window at a
// time. (Site itself takes zero as zero.)
func withDefaults(s Site) Site {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&s.TTL, DefaultTTL}, {&s.NegativeTTL, DefaultNegativeTTL}, {&s.StaleWhileRevalidate, DefaultStaleWhileRevalidate}, {&s.StaleIfError, DefaultStaleIfError}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return s
}
