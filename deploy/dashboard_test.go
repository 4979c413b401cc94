package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

const dashboardPath = "grafana/edge.json"

// query is one query of a dashboard panel.
type query struct{ panel, expr string }

// dashboardQueries parses the dashboard and returns every panel's
// queries, rows' nested panels included.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardPath), &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, query{p.Title, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// dashboard is the part of Grafana's dashboard JSON the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// TestDashboard: the dashboard parses; its panels have unique ids, a
// place on the grid, the dashboard's data source variable; its queries
// are valid PromQL (promtool checks them as rules) and cover what an
// operator looks for. TestMetricsExist checks the metrics they name.
func TestDashboard(t *testing.T) {
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardPath), &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard without uid or title: provisioning by file needs a stable uid")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Error("no datasource variable: the dashboard would depend on a data source's name")
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %d %q: gridPos %+v", p.ID, p.Title, p.GridPos)
			}
			if p.Type != "row" && p.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: data source %v, want ${datasource}", p.Title, p.Datasource)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("panel %q: a query without expr or with a missing or repeated refId", p.Title)
				}
				refs[tg.RefID] = true
				if tg.Datasource["uid"] != "${datasource}" {
					t.Errorf("panel %q: query data source %v", p.Title, tg.Datasource)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	// What the dashboard must show, by the metric that shows it.
	used := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, s := range selectors(t, grafanaVars.Replace(q.expr)) {
			used[s.name] = true
		}
	}
	for what, metric := range map[string]string{
		"requests and hit ratio by region and encoding": "edge_requests_total",
		"origin latency":                  "edge_origin_request_seconds_bucket",
		"origin errors":                   "edge_origin_requests_total",
		"circuit states":                  "edge_origin_state",
		"stale served (must-serve paths)": "edge_must_serve",
		"purges":                          "edge_purges_total",
		"journal lag":                     "edge_purge_journal_lag_seconds",
		"certificate expiry":              "edge_tls_certificate_expiry_seconds",
		"dnsgeo answers by region":        "dnsgeo_answers_total",
		"failovers":                       "dnsgeo_region_up",
	} {
		if !used[metric] {
			t.Errorf("the dashboard does not show %s (%s)", what, metric)
		}
	}
}

// TestDashboardQueriesArePromQL has promtool, Prometheus's own parser,
// check every query, given as a recording rule.
func TestDashboardQueriesArePromQL(t *testing.T) {
	promtool(t)
	rf := ruleFile{Groups: []ruleGroup{{Name: "dashboard"}}}
	for i, q := range dashboardQueries(t) {
		rf.Groups[0].Rules = append(rf.Groups[0].Rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: grafanaVars.Replace(q.expr)})
	}
	b, err := json.Marshal(rf) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "check", "rules", "dashboard.rules.yaml")
}
