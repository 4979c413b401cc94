//go:build unix

package edge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
)

// chromium returns the path of a Chromium to drive, or skips the test.
// scripts/install-tools.sh installs Debian's when it runs as root.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on this machine (apt-get install chromium, or make tools as root): the browser tests are skipped")
	return ""
}

// runPage loads url in headless Chromium, lets its scripts run, and
// returns the text of the page's #out element.
func runPage(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", url)
	// Chromium starts helper processes: put them in one group and end it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.Output()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	m := regexp.MustCompile(`<pre id="out">([^<]*)</pre>`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no #out in the page Chromium rendered:\n%s", out)
	}
	return string(m[1])
}

// TestBrowserFetchesAcrossOrigins: a page on one origin (a customer's
// login page) fetches a tenant config from the edge on another, with a
// custom request header (so Chromium sends a preflight). With CORS on,
// Chromium lets the script read it; with CORS off it blocks the read, as
// it does in production.
func TestBrowserFetchesAcrossOrigins(t *testing.T) {
	browser := chromium(t)
	config := `{"tenant":"acme","connection":"Username-Password"}`
	var page *httptest.Server
	page = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body><pre id="out">pending</pre><script>
fetch(%q, {headers: {"X-Widget-Version": "9.32.0"}})
  .then(r => r.text().then(t => document.getElementById("out").textContent = "ok " + r.status + " " + t))
  .catch(e => document.getElementById("out").textContent = "blocked " + e);
</script></body></html>`, r.URL.Query().Get("src"))
	}))
	defer page.Close()

	for _, tc := range []struct {
		name string
		cors *CORS
		want string
	}{
		{"cors on", &CORS{AllowOrigins: []string{page.URL}, AllowHeaders: []string{"X-Widget-Version"}}, "ok 200 " + config},
		{"cors off", nil, "blocked TypeError: Failed to fetch"},
		{"other origin allowed", &CORS{AllowOrigins: []string{"https://login.other.example"}, AllowHeaders: []string{"X-Widget-Version"}}, "blocked TypeError: Failed to fetch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEdge(t, Site{CORS: tc.cors}, cache.Config{})
			te.org.put("/tenants/acme.json", memObject{body: []byte(config), contentType: "application/json"})
			edge := httptest.NewServer(te.h)
			defer edge.Close()
			got := runPage(t, browser, page.URL+"/?src="+edge.URL+"/tenants/acme.json")
			if strings.TrimSpace(got) != tc.want {
				t.Fatalf("the page says %q, want %q", got, tc.want)
			}
		})
	}
}
