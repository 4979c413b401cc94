package edge

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
)

func corsEdge(t *testing.T) *testEdge {
	t.Helper()
	tenMinutes := Duration(10 * time.Minute)
	te := newTestEdge(t, Site{
		CORS: &CORS{
			AllowOrigins:  []string{"https://login.customer.com", "https://app.example.org"},
			AllowHeaders:  []string{"X-Widget-Version"},
			ExposeHeaders: []string{"ETag"},
			MaxAge:        &tenMinutes,
		},
		Headers:       map[string]string{"X-Content-Type-Options": "nosniff"},
		RemoveHeaders: []string{"Last-Modified"},
		Rules: []Rule{
			{Prefix: "/public/", CORS: &CORS{AllowOrigins: []string{"*"}},
				Headers: map[string]string{"Timing-Allow-Origin": "*", "Vary": "X-Tenant"}},
		},
	}, cache.Config{})
	te.org.put("/tenants/acme.json", memObject{body: text(3000), contentType: "application/json"})
	te.org.put("/public/w.js", memObject{body: text(3000)})
	return te
}

func TestCORSOnResponses(t *testing.T) {
	te := corsEdge(t)
	for _, tc := range []struct {
		name, path, origin string
		hdr                []string
		status             int
		acao, vary         string
	}{
		{"allowed origin", "/tenants/acme.json", "https://login.customer.com", nil, 200, "https://login.customer.com", "Accept-Encoding, Origin"},
		{"second allowed origin", "/tenants/acme.json", "https://app.example.org", nil, 200, "https://app.example.org", "Accept-Encoding, Origin"},
		{"other origin", "/tenants/acme.json", "https://evil.example", nil, 200, "", "Accept-Encoding, Origin"},
		{"no Origin: still Vary", "/tenants/acme.json", "", nil, 200, "", "Accept-Encoding, Origin"},
		{"origin differing in case", "/tenants/acme.json", "https://LOGIN.customer.com", nil, 200, "", "Accept-Encoding, Origin"},
		{"304", "/tenants/acme.json", "https://login.customer.com", []string{"If-None-Match", "*"}, 304, "https://login.customer.com", "Accept-Encoding, Origin"},
		{"404", "/tenants/none.json", "https://login.customer.com", nil, 404, "https://login.customer.com", "Origin"},
		{"any origin, rule", "/public/w.js", "https://whoever.example", nil, 200, "*", "Accept-Encoding, X-Tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := append([]string{"Accept-Encoding", "gzip"}, tc.hdr...)
			if tc.origin != "" {
				hdr = append(hdr, "Origin", tc.origin)
			}
			res := te.get(t, "GET", tc.path, hdr...)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.acao {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.acao)
			}
			if got := strings.Join(res.Header.Values("Vary"), ", "); got != tc.vary {
				t.Errorf("Vary %q, want %q", got, tc.vary)
			}
			if tc.acao != "" && tc.acao != "*" && res.Header.Get("Access-Control-Expose-Headers") != "ETag" {
				t.Errorf("Access-Control-Expose-Headers %q", res.Header.Get("Access-Control-Expose-Headers"))
			}
		})
	}
	// One stored object whatever the origins: one origin request per path.
	if n := te.org.gets.Load(); n != 3 {
		t.Errorf("origin requests %d, want 3 (one per path)", n)
	}
}

func TestCORSPreflight(t *testing.T) {
	te := corsEdge(t)
	pre := func(origin, method, headers string) *http.Response {
		hdr := []string{"Origin", origin, "Access-Control-Request-Method", method}
		if headers != "" {
			hdr = append(hdr, "Access-Control-Request-Headers", headers)
		}
		return te.get(t, "OPTIONS", "/tenants/acme.json", hdr...)
	}
	res := pre("https://login.customer.com", "GET", "x-widget-version")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 204 || len(body) != 0 {
		t.Fatalf("allowed preflight: %d %q", res.StatusCode, body)
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":  "https://login.customer.com",
		"Access-Control-Allow-Methods": "GET, HEAD",
		"Access-Control-Allow-Headers": "X-Widget-Version",
		"Access-Control-Max-Age":       "600",
	} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s %q, want %q", k, got, v)
		}
	}
	for _, tc := range []struct{ origin, method, headers, why string }{
		{"https://evil.example", "GET", "", "origin"},
		{"https://login.customer.com", "DELETE", "", "method"},
		{"https://login.customer.com", "GET", "x-widget-version, authorization", "authorization"},
	} {
		res := pre(tc.origin, tc.method, tc.headers)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(string(body), tc.why) {
			t.Errorf("refused preflight (%s): %d %q %q", tc.why, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), body)
		}
	}
	// "*": any origin, no Vary: Origin needed for the answer's origin.
	res = te.get(t, "OPTIONS", "/public/w.js", "Origin", "https://x.example", "Access-Control-Request-Method", "GET")
	if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight under *: %d %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	// OPTIONS that is not a preflight, or on a site without CORS: 405.
	if res := te.get(t, "OPTIONS", "/tenants/acme.json"); res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("plain OPTIONS: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	plain := newTestEdge(t, Site{}, cache.Config{})
	if res := plain.get(t, "OPTIONS", "/a.js", "Origin", "https://x.example", "Access-Control-Request-Method", "GET"); res.StatusCode != 405 {
		t.Errorf("preflight without cors: %d", res.StatusCode)
	}
	if res := plain.get(t, "OPTIONS", "*"); res.StatusCode != 405 {
		t.Errorf("OPTIONS *: %d", res.StatusCode)
	}
	if n := te.org.gets.Load(); n != 0 {
		t.Errorf("preflights reached the origin %d times", n)
	}
}

func TestResponseHeaders(t *testing.T) {
	te := corsEdge(t)
	for _, hdr := range [][]string{nil, {"If-None-Match", "*"}} {
		res := te.get(t, "GET", "/tenants/acme.json", hdr...)
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%d: X-Content-Type-Options %q", res.StatusCode, res.Header.Get("X-Content-Type-Options"))
		}
		if res.Header.Get("Last-Modified") != "" {
			t.Errorf("%d: Last-Modified %q not removed", res.StatusCode, res.Header.Get("Last-Modified"))
		}
	}
	res := te.get(t, "GET", "/public/w.js")
	if res.Header.Get("Timing-Allow-Origin") != "*" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("rule headers over site headers: %v", res.Header)
	}
	if res := te.get(t, "GET", "/tenants/none.json"); res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("404: %v", res.Header)
	}
}

// TestInvalidRangeIgnored: a Range that does not parse is ignored (RFC
// 9110 §14.2): 200 with the whole body; an unsatisfiable one is 416.
func TestInvalidRangeIgnored(t *testing.T) {
	te := newTestEdge(t, Site{}, cache.Config{})
	te.org.put("/a.js", memObject{body: text(2000)})
	for _, tc := range []struct {
		rng    string
		status int
	}{
		{"bytes=abc", 200}, {"bytes=5-2", 200}, {"items=0-10", 200}, {"bytes=", 200},
		{"bytes=0-9", 206}, {"bytes=-10", 206}, {"bytes=5000-", 416},
	} {
		res := te.get(t, "GET", "/a.js", "Range", tc.rng)
		if res.StatusCode != tc.status {
			t.Errorf("Range %q: %d, want %d", tc.rng, res.StatusCode, tc.status)
		}
		if body := readBody(t, res); tc.status == 200 && len(body) != 2000 {
			t.Errorf("Range %q: %d bytes", tc.rng, len(body))
		}
	}
}
