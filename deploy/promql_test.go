package deploy

import (
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
)

// selector is one vector selector of a PromQL expression: the metric's
// name and its label matchers (without the name).
type selector struct {
	name     string
	matchers []metricsql.LabelFilter
}

// selectors returns every vector selector in expr. metricsql parses
// PromQL (it is a superset); promtool, Prometheus's own parser, checks
// the same expressions for validity (TestPromtoolCheckRules,
// TestDashboardQueriesArePromQL).
func selectors(t *testing.T, expr string) []selector {
	t.Helper()
	e, err := metricsql.Parse(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var out []selector
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		me, ok := e.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, lfs := range me.LabelFilterss {
			var s selector
			for _, lf := range lfs {
				if lf.Label == "__name__" && !lf.IsRegexp && !lf.IsNegative {
					s.name = lf.Value
				} else {
					s.matchers = append(s.matchers, lf)
				}
			}
			if s.name == "" {
				t.Fatalf("%q: a selector without a metric name: the tests cannot vouch for it", expr)
			}
			out = append(out, s)
		}
	})
	return out
}

// grafanaVars are the values given to the dashboard's variables before
// its queries are parsed.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
	"$region", ".*",
)

func TestSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (region) (rate(edge_requests_total{cache="hit"}[5m]))`, []string{`edge_requests_total cache="hit"`}},
		{`histogram_quantile(0.99, sum by (le) (rate(edge_origin_request_seconds_bucket[5m])))`, []string{"edge_origin_request_seconds_bucket"}},
		{`max without (region) (dnsgeo_region_up) == 0`, []string{"dnsgeo_region_up"}},
		{`a_total > 0 unless (b_seconds - time() > 30 * 86400)`, []string{"a_total", "b_seconds"}},
		{`x and on (namespace, pod) y{z!="1",w=~"a|b"}`, []string{"x", `y z!="1" w=~"a|b"`}},
	} {
		var got []string
		for _, s := range selectors(t, tc.expr) {
			w := s.name
			for _, m := range s.matchers {
				op := "="
				switch {
				case m.IsNegative && m.IsRegexp:
					op = "!~"
				case m.IsNegative:
					op = "!="
				case m.IsRegexp:
					op = "=~"
				}
				w += " " + m.Label + op + `"` + m.Value + `"`
			}
			got = append(got, w)
		}
		if strings.Join(got, ";") != strings.Join(tc.want, ";") {
			t.Errorf("%s: %q, want %q", tc.expr, got, tc.want)
		}
	}
}
