package tls

import (
	"strings"
	"testing"

	"github.com/edgecdn/edge/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Each managed name has its renewal-failure counter from the start, at 0:
// an alert on increase() then sees the first failure, and a dashboard
// shows the name before anything has failed.
func TestRenewalFailuresStartAtZero(t *testing.T) {
	s, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewACME(ACMEConfig{Store: s, Domains: []string{"CDN.edge.test.", "b.edge.test"}, Directory: "https://127.0.0.1:1/dir"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := (&Certificates{ACME: a}).Register(reg); err != nil {
		t.Fatal(err)
	}
	want := `# HELP edge_tls_renewal_failures_total Failed attempts to obtain or renew an ACME certificate, by name.
# TYPE edge_tls_renewal_failures_total counter
edge_tls_renewal_failures_total{name="b.edge.test"} 0
edge_tls_renewal_failures_total{name="cdn.edge.test"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "edge_tls_renewal_failures_total"); err != nil {
		t.Fatal(err)
	}
}
