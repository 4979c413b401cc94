package dnsgeo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// scrape returns the Prometheus text of srv's /metrics.
func scrape(t testing.TB, srv *Server) string {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestMetrics covers point 6: queries by type and rcode, answers by
// region, region health and probe latency, RRL (in TestRRLOverTheWire),
// /healthz and /status, on a real admin listener.
func TestMetrics(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	ts := startServer(t, mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1}")), mustTable(t, baseCSV), Options{})
	eu.stop()
	ts.ProbeAll(context.Background())
	exchange(t, ts.addr, "udp", question("cdn.example.test.", dns.TypeA, 1232))                            // default order: us-west-2
	exchange(t, ts.addr, "udp", withECS(question("cdn.example.test.", dns.TypeA, 1232), "203.0.113.0/24")) // table: ap-south-1
	exchange(t, ts.addr, "udp", question("nope.example.test.", dns.TypeAAAA, 1232))
	exchange(t, ts.addr, "tcp", question("example.org.", dns.TypeMX, 1232))

	admin := httptest.NewServer(ts.AdminHandler())
	defer admin.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	for _, want := range []string{
		`dnsgeo_queries_total{rcode="NOERROR",type="A"} 2`,
		`dnsgeo_queries_total{rcode="NXDOMAIN",type="AAAA"} 1`,
		`dnsgeo_queries_total{rcode="REFUSED",type="MX"} 1`,
		// 127.0.0.1 prefers eu-west-1, which is down: us-west-2 answers.
		`dnsgeo_answers_total{region="us-west-2",source="table"} 1`,
		`dnsgeo_answers_total{region="ap-south-1",source="table"} 1`,
		`dnsgeo_region_up{region="eu-west-1"} 0`,
		`dnsgeo_region_up{region="us-west-2"} 1`,
		`dnsgeo_region_probe_duration_seconds{region="us-west-2"}`,
		`dnsgeo_region_probes_total{region="eu-west-1",result="fail"} 1`,
		`dnsgeo_rrl_responses_total{action="dropped"} 0`,
		`dnsgeo_latency_prefixes 6`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz %d %q", code, body)
	}
	code, body = get("/status")
	var st struct {
		Zone    string
		Regions []RegionStatus
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Zone != "example.test." || len(st.Regions) != 3 {
		t.Errorf("/status %d %v %s", code, err, body)
	}
}

// TestBADVERSLabel: a query with an EDNS version we do not speak is
// answered BADVERS and counted under rcode="BADVERS", the name the
// README documents, over UDP and TCP (miekg/dns names rcode 16 BADSIG,
// its TSIG meaning).
func TestBADVERSLabel(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), nil, Options{})
	for _, network := range []string{"udp", "tcp"} {
		q := question("cdn.example.test.", dns.TypeA, 1232)
		q.IsEdns0().SetVersion(1)
		if r := exchange(t, ts.addr, network, q); r.Rcode != dns.RcodeBadVers {
			t.Fatalf("%s: rcode %d, want BADVERS", network, r.Rcode)
		}
	}
	body := scrape(t, ts.Server)
	if want := `dnsgeo_queries_total{rcode="BADVERS",type="A"} 2`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %s", want)
	}
	if strings.Contains(body, "BADSIG") {
		t.Error("BADVERS counted as BADSIG")
	}
}

// Before any reload, every reload series is there at 0, so that an
// alert on increase(dnsgeo_reloads_total{result="error"}) sees the first
// refused file.
func TestReloadCountersStartAtZero(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	body := scrape(t, ts.Server)
	for _, want := range []string{
		`dnsgeo_reloads_total{file="config",result="error"} 0`,
		`dnsgeo_reloads_total{file="config",result="ok"} 0`,
		`dnsgeo_reloads_total{file="latency",result="error"} 0`,
		`dnsgeo_reloads_total{file="latency",result="ok"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
