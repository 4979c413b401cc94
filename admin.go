package edge

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin listener: /metrics (Prometheus text),
// /stats (cache counters as JSON), /healthz and /debug/pprof/. It belongs
// on its own listener, never on the public one.
//
// With a token, every path but /healthz requires
// "Authorization: Bearer <token>" (Prometheus sends it with
// authorization.credentials_file); without one, it is open, for a
// listener on loopback.
func (h *Handler) AdminHandler(token string) http.Handler {
	mux := h.adminMux()
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if r.URL.Path != "/healthz" && subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="edge admin"`)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// ParseAdminToken checks a token read from a file: one line of at least
// 16 printable characters, surrounding whitespace ignored.
func ParseAdminToken(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) < 16 {
		return "", errShortToken
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return "", errTokenChars
		}
	}
	return s, nil
}

var (
	errShortToken = errors.New("admin token: shorter than 16 characters")
	errTokenChars = errors.New("admin token: must be one word of printable characters")
)

func (h *Handler) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h.cache.Stats())
	})
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
