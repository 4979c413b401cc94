package edge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/origin"
)

func TestHealthTellsTheTruth(t *testing.T) {
	te := newTestEdge(t, Site{
		TTL: time.Minute, StaleWhileRevalidate: time.Nanosecond, StaleIfError: time.Hour,
		MustServe: []string{"/widget/v1/login.js", "/tenants/acme.json"},
	}, cache.Config{})
	te.org.put("/widget/v1/login.js", memObject{body: text(5000)})
	te.org.put("/tenants/acme.json", memObject{body: text(1500)})

	health := func() (int, string) {
		res := te.get(t, "GET", "/healthz?verbose")
		return res.StatusCode, string(readBody(t, res))
	}
	// Never fetched: not healthy, even though nothing has failed yet.
	if code, body := health(); code != 503 || !strings.Contains(body, "not cached") {
		t.Fatalf("before warming: %d %q", code, body)
	}
	te.h.warm(context.Background())
	te.cache.Wait()
	if code, body := health(); code != 200 || strings.Count(body, ": fresh") != 2 {
		t.Fatalf("warm: %d %q", code, body)
	}
	// The origin goes away: stale copies within stale-if-error still serve.
	te.org.down.Store(true)
	te.clock.Advance(30 * time.Minute)
	te.h.warm(context.Background())
	if code, body := health(); code != 200 || !strings.Contains(body, "within stale-if-error") {
		t.Fatalf("origin down, within the window: %d %q", code, body)
	}
	// Past the window the edge cannot serve the widget: it must say so.
	te.clock.Advance(time.Hour)
	res := te.get(t, "GET", "/healthz")
	if body := string(readBody(t, res)); res.StatusCode != 503 || !strings.Contains(body, "/widget/v1/login.js: stale") {
		t.Fatalf("past the window: %d %q", res.StatusCode, body)
	}
	// The origin comes back: the warmer refreshes, health recovers.
	te.org.down.Store(false)
	te.h.warm(context.Background())
	te.cache.Wait()
	if code, body := health(); code != 200 {
		t.Fatalf("recovered: %d %q", code, body)
	}
	te.h.Drain()
	if code, body := health(); code != 503 || !strings.Contains(body, "draining") {
		t.Fatalf("draining: %d %q", code, body)
	}
}

func TestHealthWithoutMustServe(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	if res := te.get(t, "GET", "/healthz"); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// components is a Component with a fixed report.
type components []ComponentHealth

func (c components) Health() []ComponentHealth { return c }

func TestHealthShowsComponentsWithoutFailing(t *testing.T) {
	c, err := cache.New(cache.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h, err := NewHandler(Options{Cache: c, Sites: []Site{withDefaults(Site{Origin: newMemOrigin()})}, Components: []Component{components{
		{Name: "certificate cdn.example.com", OK: true, Detail: "expires in 61d"},
		{Name: "purge journal", OK: false, Detail: "unreachable for 2m"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	res := serve(h.AdminHandler(""), "GET", "/healthz?verbose")
	body := string(readBody(t, res))
	if res.StatusCode != 200 {
		t.Fatalf("a degraded component failed /healthz: %d %q", res.StatusCode, body)
	}
	for _, want := range []string{"certificate cdn.example.com: ok (expires in 61d)\n", "purge journal: degraded (unreachable for 2m)\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("/healthz?verbose lacks %q:\n%s", want, body)
		}
	}
}

// TestHealthOriginLines: /healthz?verbose tells an origin's last error
// with its age, and once the origin answers again, as history.
func TestHealthOriginLines(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   origin.OriginState
		want string
	}{
		{origin.OriginState{State: origin.Closed}, "closed"},
		{origin.OriginState{State: origin.Closed, LastError: "connection refused", LastErrorAt: now.Add(-5 * time.Minute)},
			"closed (answering; last failure 5m0s ago: connection refused)"},
		{origin.OriginState{State: origin.Closed, ConsecutiveFailures: 2, LastError: "503 SlowDown", LastErrorAt: now.Add(-3 * time.Second)},
			"closed (2 failures in a row, the last 3s ago: 503 SlowDown)"},
		{origin.OriginState{State: origin.Open, ConsecutiveFailures: 7, LastError: "timeout", LastErrorAt: now.Add(-time.Second), LastChange: now.Add(-time.Minute)},
			"open for 1m0s (7 failures in a row, the last 1s ago: timeout)"},
	} {
		if got := originLine(tc.st, now); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
