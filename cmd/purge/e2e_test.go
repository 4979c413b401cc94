package main

// End to end: three edge processes in front of the real S3 server
// (versitygw), sharing a purge journal on it, purged with the CLI. Each
// edge reaches S3 through its own fault proxy, so one can be cut off
// from S3 (or have its admin port unreachable) while the others are not.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/journal"
	"github.com/edgecdn/edge/negotiate"
	"github.com/edgecdn/edge/store"
)

var (
	buildOnce sync.Once
	edgeBin   string
	buildErr  error
)

// edgeBinary builds cmd/edge once per test run.
func edgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edge-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		edgeBin = filepath.Join(dir, "edge")
		args := []string{"build", "-o", edgeBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/edgecdn/edge/cmd/edge")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build cmd/edge: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return edgeBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if edgeBin != "" {
		os.RemoveAll(filepath.Dir(edgeBin))
	}
	os.Exit(code)
}

// fleet is the S3 server, the journal and the edges.
type fleet struct {
	t       *testing.T
	srv     *s3test.Server
	journal string // the CLI's -journal (straight to S3)
	origin  string // the CLI's --origin
	token   string // token file
	edges   []*proc
}

// proc is one edge process.
type proc struct {
	name, dir string
	proxy     *s3test.FaultProxy
	extra     []string // more flags
	s3Down    bool     // its proxy refuses S3 requests: it cannot register

	cmd           *exec.Cmd
	done          chan struct{}
	log           *logLines
	public, admin string
}

func startFleet(t *testing.T, n int) *fleet {
	t.Helper()
	edgeBinary(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "assets")
	srv.CreateBucket(t, "journal")
	f := &fleet{t: t, srv: srv, journal: srv.OriginURL("journal", "prod"), origin: srv.OriginURL("assets", "site")}
	f.token = filepath.Join(t.TempDir(), "token")
	os.WriteFile(f.token, []byte(token+"\n"), 0o600)
	for i := range n {
		p := &proc{name: fmt.Sprintf("edge-%d", i+1), dir: t.TempDir(), proxy: s3test.NewFaultProxy(t, srv.Endpoint())}
		f.edges = append(f.edges, p)
		f.start(p)
	}
	return f
}

// start runs p's edge process and waits until it serves.
func (f *fleet) start(p *proc) {
	t := f.t
	t.Helper()
	args := []string{
		"-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-cache-dir", p.dir,
		"-origin", p.proxy.OriginURL("assets", "site"), "-origin-attempt-timeout", "2s",
		"-purge-journal", p.proxy.OriginURL("journal", "prod"), "-purge-poll", "1s",
		"-name", p.name, "-region", "region-" + p.name[len(p.name)-1:], "-admin-token-file", f.token,
		"-ttl", "1h", "-must-serve", "",
	}
	args = append(args, p.extra...)
	p.cmd = exec.Command(edgeBinary(t), args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.log = newLogLines()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.log.add(sc.Text())
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	rec := p.log.waitFor(t, "edge serving", p.done)
	p.public, p.admin = "http://"+rec["http"].(string), "http://"+rec["admin"].(string)
	if !p.s3Down {
		p.log.waitFor(t, "purge journal: registered", p.done) // the CLI finds it from now on
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop", p.name)
	}
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// get fetches path from the edge in coding ae and returns the decoded
// body.
func (p *proc) get(t *testing.T, path, ae string) (int, []byte, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.public+path, nil)
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.name, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	coding, known := negotiate.ParseContentEncoding(res.Header.Get("Content-Encoding"))
	if !known {
		t.Fatalf("%s %s: Content-Encoding %q", p.name, path, res.Header.Get("Content-Encoding"))
	}
	var out bytes.Buffer
	if err := negotiate.Transcode(&out, bytes.NewReader(raw), coding, negotiate.Identity); err != nil {
		t.Fatalf("%s %s (%s): decoding: %v", p.name, path, coding, err)
	}
	return res.StatusCode, out.Bytes(), res.Header.Get("Cache-Status")
}

var codings = []string{"", "gzip", "br", "zstd"}

// expect checks that every edge serves want at path, decoded exact, in
// every coding.
func (f *fleet) expect(t *testing.T, path string, want []byte, edges ...*proc) {
	t.Helper()
	if len(edges) == 0 {
		edges = f.edges
	}
	for _, p := range edges {
		for _, ae := range codings {
			code, body, cs := p.get(t, path, ae)
			if code != 200 || !bytes.Equal(body, want) {
				t.Fatalf("%s %s (%q): %d %q (%s), want %q", p.name, path, ae, code, trim(body), cs, trim(want))
			}
		}
	}
}

func trim(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// body is a version of an object: compressible text, distinct per
// version.
func body(name string, version int) []byte {
	return []byte(strings.Repeat(fmt.Sprintf("/* %s v%d */ function login(){return %d}\n", name, version, version), 60))
}

func (f *fleet) put(t *testing.T, key string, b []byte, tags string) {
	t.Helper()
	opts := s3test.PutOptions{ContentType: "application/javascript"}
	if tags != "" {
		opts.Metadata = map[string]string{"surrogate-key": tags}
	}
	f.srv.Put(t, "assets", "site"+key, b, opts)
}

// cli runs the purge CLI against the fleet's journal and returns its
// exit status and JSON report.
func (f *fleet) cli(t *testing.T, args ...string) (int, report, string) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--journal", f.journal, "--token-file", f.token, "--json", "--timeout", "3s")
	code := run(context.Background(), args, &out, &errb, func(string) string { return "" })
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("purge %q: not JSON (%v):\n%s\n%s", args, err, out.String(), errb.String())
	}
	return code, rep, errb.String()
}

// slowest is the largest per-edge latency of a purge: the time for it to
// take effect on every edge it reached.
func slowest(rep report) time.Duration {
	var d float64
	for _, rr := range rep.Requests {
		for _, oc := range rr.Outcomes {
			d = max(d, oc.LatencyMS)
		}
	}
	return time.Duration(d * float64(time.Millisecond))
}

// waitServes waits until p serves want at path, or fails after limit.
func waitServes(t *testing.T, p *proc, path string, want []byte, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, b, _ := p.get(t, path, "br")
		if code == 200 && bytes.Equal(b, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still serves %q at %s after %s, want %q", p.name, trim(b), path, limit, trim(want))
		}
		time.Sleep(20 * time.Millisecond) // observing the edge from outside; the bound above fails the test
	}
}

// TestEndToEnd runs the CLI against three real edge processes on one S3
// (versitygw) and one journal: url, tag, prefix and all, soft and hard, an
// edge down, partitioned or cut off from S3 during a purge.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end test with three edge processes")
	}
	f := startFleet(t, 3)
	e1, e3 := f.edges[0], f.edges[2]

	// 1. v1 through all three edges, in every coding.
	const w, acme, beta = "/widget/v1/login.js", "/tenants/acme.json", "/tenants/beta.json"
	f.put(t, w, body("widget", 1), "widget release-1")
	f.put(t, acme, body("acme", 1), "tenants release-1")
	f.put(t, beta, body("beta", 1), "tenants")
	f.expect(t, w, body("widget", 1))
	f.expect(t, acme, body("acme", 1))
	f.expect(t, beta, body("beta", 1))

	// 2. v2 and purge url: every edge serves v2 in every coding.
	f.put(t, w, body("widget", 2), "widget release-2")
	code, rep, stderr := f.cli(t, "url", "https://cdn.example.com"+w, "--verify", "--origin", f.origin)
	if code != 0 || rep.Summary.Confirmed != 3 || len(rep.Verify) != 3 {
		t.Fatalf("purge url: exit %d, %+v\n%s", code, rep.Summary, stderr)
	}
	t.Logf("purge url, direct: in effect on all three edges after %s (slowest edge's answer)", slowest(rep))
	f.expect(t, w, body("widget", 2))

	// 3. tag and prefix.
	f.put(t, acme, body("acme", 2), "tenants release-2")
	f.put(t, w, body("widget", 3), "widget release-3")
	cliStart := time.Now()
	code, rep, stderr = f.cli(t, "tag", "release-1", "--hard")
	if code != 0 || rep.Summary.Confirmed != 3 {
		t.Fatalf("purge tag: exit %d, %+v\n%s", code, rep.Summary, stderr)
	}
	t.Logf("purge tag, direct: in effect on all three edges after %s (the whole CLI run, journal write and compaction included: %s)",
		slowest(rep), time.Since(cliStart).Round(time.Millisecond))
	f.expect(t, acme, body("acme", 2))
	f.expect(t, w, body("widget", 2)) // tagged release-2 when cached: not selected
	f.put(t, beta, body("beta", 2), "tenants")
	code, rep, stderr = f.cli(t, "prefix", "/tenants/")
	if code != 0 || rep.Summary.Confirmed != 3 {
		t.Fatalf("purge prefix: exit %d, %+v\n%s", code, rep.Summary, stderr)
	}
	t.Logf("purge prefix, direct: in effect on all three edges after %s", slowest(rep))
	f.expect(t, beta, body("beta", 2))
	f.expect(t, acme, body("acme", 2))

	// An edge that misses the purge: stopped, purged (hard), started
	// with S3 reachable: its first answer is the new version.
	e3.stop(t)
	f.put(t, w, body("widget", 4), "widget")
	code, rep, stderr = f.cli(t, "url", w, "--hard")
	if code != exitNotAll || rep.Summary.CatchUp != 1 || !strings.Contains(strings.Join(rep.Summary.NotOK, " "), "edge-3 (will apply on return (journal))") {
		t.Fatalf("purge with edge 3 down: exit %d, %+v\n%s", code, rep.Summary, stderr)
	}
	f.start(e3)
	if code, b, cs := e3.get(t, w, "br"); code != 200 || !bytes.Equal(b, body("widget", 4)) {
		t.Fatalf("edge-3's first answer after its return: %d %q (%s), want v4", code, trim(b), cs)
	}
	f.expect(t, w, body("widget", 4))

	// Stopped again, purged, started with S3 unreachable: it serves (its
	// copy), says why on /healthz?verbose and in the lag, and applies the
	// purge as soon as S3 is back.
	e3.stop(t)
	f.put(t, w, body("widget", 5), "widget")
	if code, _, stderr := f.cli(t, "url", w, "--hard", "--allow-catchup"); code != 0 {
		t.Fatalf("--allow-catchup: exit %d\n%s", code, stderr)
	}
	e3.proxy.SetFault(s3test.Fault{Refuse: true})
	e3.s3Down = true
	f.start(e3)
	if code, b, _ := e3.get(t, w, "br"); code != 200 || !bytes.Equal(b, body("widget", 4)) {
		t.Fatalf("edge-3 with S3 unreachable: %d %q, want its copy (v4)", code, trim(b))
	}
	health := get(t, e3.public+"/healthz?verbose", "")
	if !strings.Contains(health, "ok: true") || !strings.Contains(health, "purge journal: degraded") {
		t.Fatalf("/healthz?verbose with the journal unreachable:\n%s", health)
	}
	lag1 := metric(t, e3, "edge_purge_journal_lag_seconds")
	e3.log.waitFor(t, "purge journal: cannot read the journal", e3.done) // a poll failed after the start
	if lag2 := metric(t, e3, "edge_purge_journal_lag_seconds"); lag2 <= lag1 || metric(t, e3, `edge_purge_journal_errors_total{op="mark"}`)+metric(t, e3, `edge_purge_journal_errors_total{op="list"}`) == 0 {
		t.Fatalf("lag %v then %v: not growing, or no errors counted", lag1, lag2)
	}
	e3.proxy.SetFault(s3test.Fault{})
	e3.s3Down = false
	waitServes(t, e3, w, body("widget", 5), 15*time.Second)
	if lag := metric(t, e3, "edge_purge_journal_lag_seconds"); lag > 5 {
		t.Fatalf("lag %v s after catching up", lag)
	}

	// Partitioned from its admin port but not from S3 (the registry
	// gives an address the CLI cannot reach): it catches up within
	// -purge-poll.
	e3.stop(t)
	e3.extra = []string{"-admin-url", "http://127.0.0.1:1"}
	f.start(e3)
	f.put(t, w, body("widget", 6), "widget")
	start := time.Now()
	code, rep, stderr = f.cli(t, "url", w)
	if code != exitNotAll || rep.Summary.CatchUp != 1 {
		t.Fatalf("purge with edge 3 partitioned: exit %d, %+v\n%s", code, rep.Summary, stderr)
	}
	rec := e3.log.waitFor(t, `"id":"`+rep.Requests[0].ID+`"`, e3.done)
	applied, _ := time.Parse(time.RFC3339Nano, rec["time"].(string))
	t.Logf("purge through the journal only (edge 3, -purge-poll 1s): in effect %s after the CLI started", applied.Sub(start).Round(time.Millisecond))
	waitServes(t, e3, w, body("widget", 6), 5*time.Second)

	// Journal only, on all three edges: a record written straight to the
	// journal (as a CLI that reaches no edge would).
	f.put(t, w, body("widget", 7), "widget")
	st, err := store.Open(context.Background(), f.journal)
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	r := journal.Record{ID: journal.NewID(written), Time: written, URLs: []string{w}, Mode: journal.Soft}
	if err := journal.New(st).Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var took []string
	var slowestJournal time.Duration
	for _, p := range f.edges {
		rec := p.log.waitFor(t, `"id":"`+r.ID+`"`, p.done)
		at, _ := time.Parse(time.RFC3339Nano, rec["time"].(string))
		slowestJournal = max(slowestJournal, at.Sub(written))
		took = append(took, at.Sub(written).Round(time.Millisecond).String())
	}
	t.Logf("purge through the journal only: in effect on all three edges %s after the record was written (each: %s; -purge-poll 1s)",
		slowestJournal.Round(time.Millisecond), strings.Join(took, ", "))
	f.expect(t, w, body("widget", 7))

	// Soft versus hard with S3 down: soft keeps serving stale, hard 502s.
	f.put(t, acme, body("acme", 3), "tenants")
	f.put(t, beta, body("beta", 3), "tenants")
	f.expect(t, acme, body("acme", 2))
	_, softRep, _ := f.cli(t, "url", acme)
	_, hardRep, _ := f.cli(t, "url", beta, "--hard")
	for _, rep := range []report{softRep, hardRep} {
		if rep.Summary.Confirmed != 2 {
			t.Fatalf("purge: %+v", rep.Summary)
		}
		e3.log.waitFor(t, `"id":"`+rep.Requests[0].ID+`"`, e3.done) // through the journal
	}
	for _, p := range f.edges {
		p.proxy.SetFault(s3test.Fault{Status: 503})
	}
	for _, p := range f.edges {
		if code, b, cs := p.get(t, acme, "gzip"); code != 200 || !bytes.Equal(b, body("acme", 2)) || !strings.Contains(cs, "stale-if-error") {
			t.Fatalf("%s: soft-purged with S3 down: %d %q %q", p.name, code, trim(b), cs)
		}
		if code, _, cs := p.get(t, beta, "gzip"); code != http.StatusBadGateway {
			t.Fatalf("%s: hard-purged with S3 down: %d %q, want 502", p.name, code, cs)
		}
	}
	// Restart after a hard purge: the old object is not resurrected, even
	// with S3 down.
	e1.stop(t)
	e1.s3Down = true
	f.start(e1)
	if code, b, cs := e1.get(t, beta, ""); code != http.StatusBadGateway {
		t.Fatalf("edge-1 after a restart: hard-purged object %d %q %q, want 502", code, trim(b), cs)
	}
	for _, p := range f.edges {
		p.proxy.SetFault(s3test.Fault{})
	}
	for _, p := range f.edges {
		waitServes(t, p, beta, body("beta", 3), 15*time.Second) // circuits close within their probe interval
	}
	f.expect(t, beta, body("beta", 3))

	// purge all: every object, on every edge, in every coding. Edge 3 is
	// still reachable only through the journal, and so is edge 1 until it
	// re-registers (it started with S3 down): each edge answers or
	// applies it from the journal.
	f.put(t, w, body("widget", 8), "widget")
	f.put(t, acme, body("acme", 4), "tenants")
	f.put(t, beta, body("beta", 4), "tenants")
	code, rep, stderr = f.cli(t, "all")
	if rep.Summary.Confirmed+rep.Summary.CatchUp != 3 || rep.Summary.Failed != 0 || rep.Summary.CatchUp == 0 || code != exitNotAll {
		t.Fatalf("purge all: exit %d, %+v\n%s", code, rep.Summary, stderr)
	}
	for _, p := range f.edges {
		p.log.waitFor(t, `"id":"`+rep.Requests[0].ID+`"`, p.done)
	}
	f.expect(t, w, body("widget", 8))
	f.expect(t, acme, body("acme", 4))
	f.expect(t, beta, body("beta", 4))
}

// get fetches url and returns the body.
func get(t *testing.T, url, auth string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// metric reads one sample from the edge's /metrics.
func metric(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(get(t, p.admin+"/metrics", "Bearer "+token), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("%s: no metric %s", p.name, name)
	return 0
}

// logLines keeps a process's JSON log lines and signals each new one.
type logLines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{}, 1)} }

func (l *logLines) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// waitFor returns the first line containing s (decoded), waiting for it;
// it fails when the process exits first, or after a minute.
func (l *logLines) waitFor(t *testing.T, s string, done <-chan struct{}) map[string]any {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if strings.Contains(line, s) {
				l.mu.Unlock()
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("not a JSON log line: %q", line)
				}
				return rec
			}
		}
		all := strings.Join(l.lines, "\n")
		l.mu.Unlock()
		select {
		case <-l.changed:
		case <-done:
			t.Fatalf("the edge exited before logging %q:\n%s", s, all)
		case <-timeout:
			t.Fatalf("no log line %q within a minute:\n%s", s, all)
		}
	}
}
