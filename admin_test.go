package edge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/edgecdn/edge/cache"
)

func TestAdminToken(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	const token = "s3cret-token-0123456789"
	admin := te.h.AdminHandler(token)
	for _, tc := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer wrong-token-0123456789", http.StatusUnauthorized},
		{"/metrics", "Basic " + token, http.StatusUnauthorized},
		{"/metrics", "Bearer " + token, http.StatusOK},
		{"/stats", "", http.StatusUnauthorized},
		{"/stats", "Bearer " + token, http.StatusOK},
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK}, // load balancers probe without secrets
	} {
		r := httptest.NewRequest("GET", tc.path, nil)
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s with %q: status %d, want %d", tc.path, tc.auth, w.Code, tc.want)
		}
	}
	w := httptest.NewRecorder()
	te.h.AdminHandler("").ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Errorf("no token configured: status %d", w.Code)
	}
}

func TestParseAdminToken(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"s3cret-token-0123456789\n", "s3cret-token-0123456789", true},
		{"  s3cret-token-0123456789  ", "s3cret-token-0123456789", true},
		{"short", "", false},
		{"", "", false},
		{"two words in the token file", "", false},
		{"tab\tseparated-token-0123", "", false},
	} {
		got, err := ParseAdminToken(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %q, %v", tc.in, got, err)
		}
	}
}
