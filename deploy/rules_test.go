package deploy

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite kubernetes/monitoring/prometheusrule.yaml from prometheus/edge-rules.yaml")

const (
	rulesPath          = "prometheus/edge-rules.yaml"
	rulesTestPath      = "prometheus/edge-rules.test.yaml"
	prometheusRulePath = "kubernetes/monitoring/prometheusrule.yaml"
	runbookPath        = "RUNBOOK.md"
	runbookURL         = "https://github.com/edgecdn/edge/blob/main/deploy/RUNBOOK.md#"
)

// promtool returns the promtool to run: on $PATH (make test puts ./bin
// first), else the repository's bin/ (scripts/install-tools.sh). Without
// one the test skips, saying how to get it.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if p, err := filepath.Abs("../bin/promtool"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("promtool not found: run scripts/install-tools.sh (or apt-get install prometheus) to check the rules with it")
	return ""
}

// runPromtool runs promtool with args in dir and fails with its output.
func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "prometheus", "check", "rules", filepath.Base(rulesPath))
	runPromtool(t, "prometheus", "check", "config", "--syntax-only", "scrape.yaml")
}

func TestPromtoolTestRules(t *testing.T) {
	out := runPromtool(t, "prometheus", "test", "rules", filepath.Base(rulesTestPath))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not say SUCCESS:\n%s", out)
	}
}

// loadRules decodes the rule file strictly.
func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.UnmarshalStrict(readFile(t, rulesPath), &rf); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	return rf
}

// ruleTests is promtool's unit-test file, the fields these tests use.
type ruleTests struct {
	RuleFiles          []string `json:"rule_files"`
	EvaluationInterval string   `json:"evaluation_interval"`
	Tests              []struct {
		Name        string `json:"name"`
		Interval    string `json:"interval"`
		InputSeries []struct {
			Series string `json:"series"`
			Values string `json:"values"`
		} `json:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
		PromqlExprTest []struct {
			Expr       string `json:"expr"`
			EvalTime   string `json:"eval_time"`
			ExpSamples []struct {
				Labels string  `json:"labels"`
				Value  float64 `json:"value"`
			} `json:"exp_samples"`
		} `json:"promql_expr_test"`
	} `json:"tests"`
}

func loadRuleTests(t *testing.T) ruleTests {
	t.Helper()
	var rt ruleTests
	if err := yaml.UnmarshalStrict(readFile(t, rulesTestPath), &rt); err != nil {
		t.Fatalf("%s: %v", rulesTestPath, err)
	}
	return rt
}

// TestEveryAlertIsTestedAndDocumented: each alert has a unit test in
// which it fires and one in which it must not, a severity, a summary,
// and a runbook link to a section RUNBOOK.md has. Each recording rule is
// used by an alert or checked by a promql_expr_test.
func TestEveryAlertIsTestedAndDocumented(t *testing.T) {
	rf, rt := loadRules(t), loadRuleTests(t)
	fires, quiet := map[string]bool{}, map[string]bool{}
	var exprTests []string
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
		for _, e := range tc.PromqlExprTest {
			exprTests = append(exprTests, e.Expr)
		}
	}
	anchors := runbookAnchors(t)
	alerts := map[string]bool{}
	var alertExprs []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			alertExprs = append(alertExprs, r.Expr)
			if !fires[r.Alert] {
				t.Errorf("alert %s: no test in which it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s: no test in which it must not fire (exp_alerts: [])", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary", r.Alert)
			}
			u := r.Annotations["runbook_url"]
			if !strings.HasPrefix(u, runbookURL) {
				t.Errorf("alert %s: runbook_url %q, want %s…", r.Alert, u, runbookURL)
			} else if a := strings.TrimPrefix(u, runbookURL); !anchors[a] {
				t.Errorf("alert %s: runbook_url names #%s, a section RUNBOOK.md does not have", r.Alert, a)
			}
		}
	}
	for a := range fires {
		if !alerts[a] {
			t.Errorf("%s tests alert %s, which the rules do not have", rulesTestPath, a)
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record == "" {
				continue
			}
			used := false
			for _, e := range append(alertExprs, exprTests...) {
				used = used || strings.Contains(e, r.Record)
			}
			if !used {
				t.Errorf("recording rule %s is neither used by an alert nor checked by a promql_expr_test", r.Record)
			}
		}
	}
}

// runbookAnchors returns the anchors GitHub gives RUNBOOK.md's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	for _, line := range strings.Split(string(readFile(t, runbookPath)), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		out[a] = true
	}
	return out
}

// TestPrometheusRuleMatchesRuleFile: the PrometheusRule holds the rule
// file's groups, exactly. -update rewrites it.
func TestPrometheusRuleMatchesRuleFile(t *testing.T) {
	rules := readFile(t, rulesPath)
	if *update {
		i := bytes.Index(rules, []byte("\ngroups:"))
		if i < 0 {
			t.Fatal("no groups: in the rule file")
		}
		var b bytes.Buffer
		b.WriteString(prometheusRuleHeader)
		for _, line := range strings.SplitAfter(string(rules[i+1:]), "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("  ")
			}
			b.WriteString(line)
		}
		if err := os.WriteFile(prometheusRulePath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, prometheusRulePath), &pr); err != nil {
		t.Fatalf("%s: %v", prometheusRulePath, err)
	}
	if !reflect.DeepEqual(pr.Spec, loadRules(t)) {
		t.Fatalf("%s differs from %s: run go test ./deploy -run TestPrometheusRuleMatchesRuleFile -update", prometheusRulePath, rulesPath)
	}
}

const prometheusRuleHeader = `# Generated from deploy/prometheus/edge-rules.yaml (the same groups, for
# the Prometheus Operator); deploy's tests keep the two equal. Regenerate
# with: go test ./deploy -run TestPrometheusRuleMatchesRuleFile -update
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: edge
spec:
`
