package deploy

// A real edge and a real dnsgeo, started with the Deployment's own flags
// and config files (addresses on loopback, S3 replaced by directories),
// scraped: every metric the rules, their unit tests and the dashboard
// name must be in what they export, and the probes the Deployment
// declares must answer.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgecdn/edge"
	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binary builds cmd/edge and cmd/dnsgeo once per test run and returns
// the path of name.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "deploy-test-bin-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", binDir + "/"}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/edgecdn/edge/cmd/edge", "github.com/edgecdn/edge/cmd/dnsgeo")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/edge cmd/dnsgeo: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is a process started by a test, with its JSON log lines.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

// start runs bin with args; the process is stopped (SIGTERM, then
// SIGKILL) when the test ends.
func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(bin), done: make(chan struct{}), changed: make(chan struct{}, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.changed <- struct{}{}:
			default:
			}
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

// waitLog returns the first log record whose msg is msg, waiting for it;
// it fails when the process exits first, or after a minute.
func (p *proc) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		p.mu.Lock()
		for _, line := range p.lines {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
				p.mu.Unlock()
				return rec
			}
		}
		all := strings.Join(p.lines, "\n")
		p.mu.Unlock()
		select {
		case <-p.changed:
		case <-p.done:
			t.Fatalf("%s exited before logging %q:\n%s", p.name, msg, all)
		case <-timeout:
			t.Fatalf("%s: no %q within a minute:\n%s", p.name, msg, all)
		}
	}
}

// eventually calls f until it returns "", every 50 ms for at most 30 s,
// then fails with what f last said. For states a process reaches on its
// own (a probe round, a refresh), which the test can only observe.
func eventually(t *testing.T, f func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := f()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scraped is a /metrics scrape: each metric family, and each series
// name (a histogram's _bucket, _sum and _count), with its label names
// and the values seen for each.
type scraped struct {
	families map[string]*dto.MetricFamily
	labels   map[string]map[string]map[string]bool // series name → label → values
}

func scrape(t *testing.T, url, token string) scraped {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	s := scraped{families: fams, labels: map[string]map[string]map[string]bool{}}
	for name, mf := range fams {
		names := []string{name}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names = []string{name + "_bucket", name + "_sum", name + "_count"}
		case dto.MetricType_SUMMARY:
			names = append(names, name+"_sum", name+"_count")
		}
		for _, n := range names {
			ls := map[string]map[string]bool{}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if ls[lp.GetName()] == nil {
						ls[lp.GetName()] = map[string]bool{}
					}
					ls[lp.GetName()][lp.GetValue()] = true
				}
			}
			if strings.HasSuffix(n, "_bucket") {
				ls["le"] = map[string]bool{}
			}
			s.labels[n] = ls
		}
	}
	return s
}

// targetLabels are added by Prometheus (the PodMonitor, the scrape
// config): a query may match on them though no process exports them.
var targetLabels = map[string]bool{"region": true, "pod": true, "namespace": true, "job": true, "instance": true, "container": true, "endpoint": true}

// check reports what is wrong with sel against the scrapes: a metric
// nobody exports, a label it does not have, a value it never takes.
// With values false, only names are checked (unit-test series carry
// made-up values).
func check(sel selector, scrapes []scraped, values bool) string {
	for _, s := range scrapes {
		ls, ok := s.labels[sel.name]
		if !ok {
			continue
		}
		for _, m := range sel.matchers {
			vals, ok := ls[m.Label]
			switch {
			case !ok && !targetLabels[m.Label]:
				return fmt.Sprintf("%s has no label %q (it has %v)", sel.name, m.Label, sortedKeys(ls))
			case ok && values && !m.IsRegexp && !m.IsNegative && !vals[m.Value]:
				return fmt.Sprintf("%s{%s=%q}: the label never takes that value (it takes %v)", sel.name, m.Label, m.Value, sortedKeys(vals))
			}
		}
		return ""
	}
	return fmt.Sprintf("%s: no edge or dnsgeo exports it", sel.name)
}

func TestMetricsExist(t *testing.T) {
	dir := overlays(t)[0]
	objs := build(t, dir)
	edgeScrape, dnsScrape := runEdgeAndDnsgeo(t, objs)
	scrapes := []scraped{edgeScrape, dnsScrape}

	// The rules' expressions, and the recording rules they define.
	rf := loadRules(t)
	records := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = true
			}
		}
	}
	checkExpr := func(where, expr string, values bool) {
		for _, sel := range selectors(t, expr) {
			if records[sel.name] {
				continue
			}
			if msg := check(sel, scrapes, values); msg != "" {
				t.Errorf("%s: %s", where, msg)
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			checkExpr(rulesPath+": "+r.Record+r.Alert, r.Expr, true)
		}
	}
	// The unit tests' input series: a series named or labelled unlike the
	// real one would make an alert's test pass on a query that never
	// matches in production.
	for _, tc := range loadRuleTests(t).Tests {
		for _, in := range tc.InputSeries {
			checkExpr(rulesTestPath+": "+tc.Name, in.Series, false)
		}
	}
	// The dashboard's queries.
	for _, q := range dashboardQueries(t) {
		checkExpr(dashboardPath+": "+q.panel, grafanaVars.Replace(q.expr), true)
	}
}

// runEdgeAndDnsgeo starts the edge and dnsgeo of the build objs as the
// Deployments would, on loopback, and returns their scrapes once every
// series that appears after a first event (a request, a purge, a probe)
// has had one.
func runEdgeAndDnsgeo(t *testing.T, objs []object) (edgeScrape, dnsScrape scraped) {
	t.Helper()
	dep := get[*appsv1.Deployment](t, objs, "Deployment", "edge")
	spec := &dep.Spec.Template.Spec
	c := container(t, spec, "edge")
	env := containerEnv(t, objs, c, downward)
	f := parseArgs(t, c.Args, env)
	tmp := t.TempDir()

	// The config file and the token, as the volumes hold them.
	cfgVol, cfgKey := mountedFile(t, spec, c, f.one(t, "config"))
	cfgFile := filepath.Join(tmp, cfgKey)
	os.WriteFile(cfgFile, []byte(configMap(t, objs, cfgVol.ConfigMap.Name).Data[cfgKey]), 0o644)
	cfg, err := edge.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	const token = "deploy-test-token-0123456789"
	tokenFile := filepath.Join(tmp, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)

	// S3 is replaced by directories: the origins hold every must-serve
	// path; the certificate store holds a certificate for every domain,
	// valid for 90 days (so no ACME order is due).
	var mustServe []string
	for _, s := range cfg.Sites {
		mustServe = append(mustServe, s.MustServe...)
	}
	domains := strings.Split(f.one(t, "domains"), ",")
	certDir := filepath.Join(tmp, "certs")
	os.MkdirAll(certDir, 0o755)
	roots := x509.NewCertPool()
	caFile := filepath.Join(tmp, "edge-ca.pem")
	for _, d := range domains {
		keyPEM, certPEM := selfSigned(t, d)
		os.WriteFile(filepath.Join(certDir, d), append(keyPEM, certPEM...), 0o600)
		roots.AppendCertsFromPEM(certPEM)
		b, _ := os.ReadFile(caFile)
		os.WriteFile(caFile, append(b, certPEM...), 0o644)
	}
	origins := 0
	var args []string
	for i, name := range f.order {
		v := f.values[name][indexAmong(f.order, i)]
		switch name {
		case "http", "https", "admin":
			v = "127.0.0.1:0"
		case "admin-token-file":
			v = tokenFile
		case "config":
			v = cfgFile
		case "cache-dir":
			v = filepath.Join(tmp, "cache")
		case "origin":
			origins++
			od := filepath.Join(tmp, fmt.Sprintf("origin%d", origins))
			for _, p := range mustServe {
				os.MkdirAll(filepath.Dir(filepath.Join(od, p)), 0o755)
				os.WriteFile(filepath.Join(od, p), []byte(strings.Repeat("/* must-serve */\n", 100)), 0o644)
			}
			v = "dir:" + od
		case "cert-cache":
			v = "dir:" + certDir
		case "ticket-keys", "purge-journal":
			v = "dir:" + filepath.Join(tmp, name)
		}
		if f.bools[name] {
			args = append(args, "-"+name)
		} else {
			args = append(args, "-"+name+"="+v)
		}
	}
	// Never Let's Encrypt from a test: nothing listens on port 1.
	args = append(args, "-acme-directory=https://127.0.0.1:1/directory")
	ep := start(t, binary(t, "edge"), args...)
	rec := ep.waitLog(t, "edge serving")
	adminURL, httpsAddr := "http://"+rec["admin"].(string), rec["https"].(string)

	// The probes the Deployment declares answer on the admin listener,
	// without the token the rest of it requires.
	for what, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		url := adminURL + probe.HTTPGet.Path
		eventually(t, func() string {
			res, err := http.Get(url)
			if err != nil {
				return err.Error()
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				return fmt.Sprintf("%s probe GET %s: %d %s", what, url, res.StatusCode, b)
			}
			return ""
		})
	}
	if res, err := http.Get(adminURL + "/metrics"); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin /metrics without the token: %v %v, want 401", res, err)
	}

	// Traffic, over HTTPS (plain HTTP is redirected): every must-serve
	// path, a request refused before the cache, a purge.
	host := cfg.Sites[0].Hosts[0]
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
		},
		DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	for _, p := range append(mustServe, "/x/%2e%2e/y") {
		req, _ := http.NewRequest("GET", "https://"+host+p, nil)
		req.Header.Set("Accept-Encoding", "br, gzip")
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s over HTTPS: %v", p, err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if want := 200; strings.Contains(p, "%2e") && res.StatusCode != 400 || !strings.Contains(p, "%2e") && res.StatusCode != want {
			t.Fatalf("GET %s over HTTPS: %d", p, res.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", adminURL+"/purge", strings.NewReader(`{"urls": ["`+mustServe[0]+`"], "host": "`+host+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("POST /purge: %v %v", res, err)
	}
	edgeScrape = scrape(t, adminURL+"/metrics", token)

	// dnsgeo, with the ConfigMap's files: its own region probed through
	// the real edge's HTTPS /healthz (the certificate checked, as in
	// production), the others at a closed port.
	dnsDep := get[*appsv1.Deployment](t, objs, "Deployment", "dnsgeo")
	dc := container(t, &dnsDep.Spec.Template.Spec, "dnsgeo")
	df := parseArgs(t, dc.Args, containerEnv(t, objs, dc, downward))
	region := f.one(t, "region")
	var dargs []string
	qname := ""
	for _, name := range df.order {
		v := df.values[name][0]
		switch name {
		case "listen", "admin":
			v = "127.0.0.1:0"
		case "config", "latency":
			vol, key := mountedFile(t, &dnsDep.Spec.Template.Spec, dc, v)
			text := configMap(t, objs, vol.ConfigMap.Name).Data[key]
			if name == "config" {
				text, qname = probeLoopback(t, text, region, "https://"+httpsAddr+"/healthz", caFile)
			}
			v = filepath.Join(tmp, key)
			os.WriteFile(v, []byte(text), 0o644)
		}
		dargs = append(dargs, "-"+name+"="+v)
	}
	dp := start(t, binary(t, "dnsgeo"), dargs...)
	drec := dp.waitLog(t, "serving")
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	if _, err := dns.Exchange(m, drec["dns"].(string)); err != nil {
		t.Fatalf("DNS query to dnsgeo: %v", err)
	}
	dnsAdmin := "http://" + drec["admin"].(string)
	eventually(t, func() string {
		dnsScrape = scrape(t, dnsAdmin+"/metrics", "")
		up := dnsScrape.families["dnsgeo_region_up"]
		for _, s := range up.GetMetric() {
			if s.GetLabel()[0].GetValue() == region && s.GetGauge().GetValue() == 1 {
				// Both series of a probe: one scrape can hold one and not
				// the other, as the registry gathers its collectors
				// concurrently while a probe records.
				for _, name := range []string{"dnsgeo_region_probes_total", "dnsgeo_region_probe_duration_seconds"} {
					if dnsScrape.families[name] == nil {
						return "no " + name + " yet"
					}
				}
				return ""
			}
		}
		return fmt.Sprintf("dnsgeo does not see region %s (the real edge) up: %v", region, up)
	})
	return edgeScrape, dnsScrape
}

// indexAmong returns how many times order[i] is in order before i: the
// index of its value among a repeated flag's.
func indexAmong(order []string, i int) int {
	n := 0
	for _, x := range order[:i] {
		if x == order[i] {
			n++
		}
	}
	return n
}

// selfSigned returns a key and a self-signed certificate for name, in
// PEM, valid for 90 days from an hour ago.
func selfSigned(t *testing.T, name string) (keyPEM, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// probeLoopback rewrites a dnsgeo config so that its probes stay on this
// machine: region's health URL becomes url (trusting caFile), every other
// region's a closed port, probed every half second. It returns the new
// config and the first routed name, fully qualified.
func probeLoopback(t *testing.T, text, region, url, caFile string) (string, string) {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	regions, _ := cfg["regions"].(map[string]any)
	if _, ok := regions[region]; !ok {
		t.Fatalf("dnsgeo.yaml has no region %s, the overlay's", region)
	}
	for name, r := range regions {
		r := r.(map[string]any)
		r["health"] = "https://127.0.0.1:1/healthz"
		if name == region {
			r["health"] = url
		}
	}
	health, _ := cfg["health"].(map[string]any)
	if health == nil {
		health = map[string]any{}
		cfg["health"] = health
	}
	health["interval"], health["timeout"], health["ca_file"] = "500ms", "400ms", caFile
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	zone, _ := cfg["zone"].(string)
	routed, _ := cfg["routed"].([]any)
	if len(routed) == 0 {
		t.Fatal("dnsgeo.yaml routes no name")
	}
	name := routed[0].(string)
	switch {
	case name == "@":
		name = zone
	case !strings.HasSuffix(name, "."):
		name += "." + zone
	}
	return string(out), name
}
