package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin listener: /metrics (Prometheus text),
// /stats (cache counters as JSON), /healthz, /livez (livez.go),
// /debug/pprof/, and the purge API: POST /purge, POST /warm, GET /cache
// (admin_purge.go, warm.go). It belongs on its own listener, never on the
// public one.
//
// With a token, every path but /healthz and /livez requires
// "Authorization: Bearer <token>" (Prometheus sends it with
// authorization.credentials_file); a request without it, or with another,
// gets 401, is logged, and does nothing. Without a token, the listener is
// open (for one on loopback), except the purge API, which answers 403:
// purging is never open.
func (h *Handler) AdminHandler(token string) http.Handler {
	mux := h.adminMux(token != "")
	if token == "" {
		return mux
	}
	// Compare digests, so that neither the token's bytes nor its length
	// show in the time a refusal takes.
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if r.URL.Path != "/healthz" && r.URL.Path != "/livez" && subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			h.errorLog.Warn("admin: request refused: missing or wrong bearer token", "method", r.Method, "path", r.URL.Path, "remote", remoteIP(r))
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

func (h *Handler) adminMux(purgeAllowed bool) *http.ServeMux {
	mux := http.NewServeMux()
	if purgeAllowed {
		mux.HandleFunc("POST /purge", h.servePurge)
		mux.HandleFunc("POST /warm", h.serveWarm)
		mux.HandleFunc("GET /cache", h.serveCache)
	} else {
		mux.HandleFunc("/purge", purgeDisabled)
		mux.HandleFunc("/warm", purgeDisabled)
		mux.HandleFunc("/cache", purgeDisabled)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h.cache.Stats())
	})
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /livez", livez)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
