package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgecdn/edge/cache"
)

// /livez is the liveness probe: 200 without a token whatever the edge's
// health, so that Kubernetes takes an edge that cannot serve out of the
// load balancer (/healthz, readiness) without restarting it in a loop.
func TestLivezIsCheapAndAlwaysUp(t *testing.T) {
	te := newTestEdge(t, Site{MustServe: []string{"/widget/v1/login.js"}}, cache.Config{})
	te.org.down.Store(true)
	admin := te.h.AdminHandler("s3cret-token-0123456789")
	get := func(method, path string) (int, string) {
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w.Code, w.Body.String()
	}
	if code, _ := get("GET", "/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with the must-serve path never fetched: %d, want 503", code)
	}
	if code, body := get("GET", "/livez"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/livez while unhealthy: %d %q, want 200 ok", code, body)
	}
	te.h.Drain()
	if code, _ := get("GET", "/livez"); code != http.StatusOK {
		t.Fatalf("/livez while draining: %d, want 200", code)
	}
	if code, _ := get("POST", "/livez"); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /livez: %d, want 405", code)
	}
	if code, _ := get("GET", "/livez/x"); code != http.StatusUnauthorized {
		t.Fatalf("GET /livez/x without a token: %d, want 401 (only /livez itself is exempt)", code)
	}
}
