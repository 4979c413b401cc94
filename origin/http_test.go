package origin

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newHTTPOrigin(t *testing.T, spec string) *HTTP {
	t.Helper()
	u, err := url.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewHTTP(u)
	if err != nil {
		t.Fatalf("NewHTTP(%q): %v", spec, err)
	}
	return o
}

func TestHTTPOrigin(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		switch r.URL.Path {
		case "/app/page":
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.Header().Set("Cache-Control", "max-age=60")
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Connection", "X-Secret")
			w.Header().Set("X-Secret", "hop")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
			io.WriteString(w, "not really gzip")
		case "/app/moved":
			http.Redirect(w, r, "/app/page", http.StatusFound)
		case "/app/busy":
			w.Header().Set("Retry-After", "1")
			http.Error(w, "try later", http.StatusServiceUnavailable)
		default:
			http.Error(w, "no such page", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	o := newHTTPOrigin(t, srv.URL+"/app/")
	if o.String() != srv.URL+"/app" {
		t.Errorf("String() = %q", o.String())
	}
	ctx := context.Background()

	obj, err := o.Get(ctx, "/page?x=1", Conditions{Header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	switch {
	case string(body) != "not really gzip", obj.Status != 200, obj.ContentEncoding != "gzip", obj.ETag != `"v1"`, obj.LastModified.IsZero(), obj.CacheControl != "max-age=60":
		t.Errorf("object: %+v, body %q", obj, body)
	case obj.Header.Get("X-Secret") != "" || obj.Header.Get("Keep-Alive") != "" || obj.Header.Get("Connection") != "":
		t.Errorf("hop-by-hop fields kept: %v", obj.Header)
	case got.URL.RequestURI() != "/app/page?x=1" || got.Header.Get("X-Forwarded-For") != "203.0.113.7" || got.Header.Get("Accept-Encoding") != "gzip":
		t.Errorf("request: %s %v", got.URL.RequestURI(), got.Header)
	}

	// A 304 carries its fields.
	_, err = o.Get(ctx, "/page", Conditions{IfNoneMatch: `"v1"`})
	var nm *NotModifiedError
	if !errors.Is(err, ErrNotModified) || !errors.As(err, &nm) || nm.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("304: %v", err)
	}
	// A redirect and a 404 are answers, not followed, not errors.
	for path, status := range map[string]int{"/moved": 302, "/missing": 404} {
		obj, err := o.Get(ctx, path, Conditions{})
		if err != nil || obj.Status != status {
			t.Errorf("%s: %v %+v", path, err, obj)
			continue
		}
		obj.Body.Close()
	}
	// A 503 is a failure of the origin, keeping its answer.
	_, err = o.Get(ctx, "/busy", Conditions{})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || !strings.Contains(string(se.Body), "try later") || se.Header.Get("Retry-After") != "1" {
		t.Errorf("503: %v", err)
	}
}

func TestHTTPOriginTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	// The test server's certificate is not in the system's roots: refused.
	if _, err := newHTTPOrigin(t, srv.URL).Get(context.Background(), "/", Conditions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	obj, err := newHTTPOrigin(t, srv.URL+"?ca_file="+ca).Get(context.Background(), "/", Conditions{})
	if err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	obj.Body.Close()
}

// TestHTTPOriginHeaderTimeout: a server that never answers is given up
// after header_timeout.
func TestHTTPOriginHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	_, err := newHTTPOrigin(t, srv.URL+"?header_timeout=50ms").Get(context.Background(), "/", Conditions{})
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("held server: %v", err)
	}
}
