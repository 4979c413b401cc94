package dnsgeo

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// edge is a health endpoint on loopback that a test can stop, restart
// on the same address, make fail, or make hang.
type edge struct {
	t      testing.TB
	tls    bool
	addr   string
	srv    *httptest.Server
	status atomic.Int32
	hang   atomic.Bool
	hits   atomic.Int32
}

func newEdge(t testing.TB, tls bool) *edge {
	e := &edge{t: t, tls: tls}
	e.status.Store(http.StatusOK)
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *edge) start() {
	e.t.Helper()
	addr := e.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatalf("edge listen %s: %v", addr, err)
	}
	e.addr = ln.Addr().String()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		if e.hang.Load() {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(int(e.status.Load()))
	}))
	s.Listener.Close()
	s.Listener = ln
	if e.tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	e.srv = s
}

func (e *edge) stop() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
}

func (e *edge) url() string {
	if e.tls {
		return "https://" + e.addr + "/healthz"
	}
	return "http://" + e.addr + "/healthz"
}

// caFile writes the TLS edge's certificate (httptest's self-signed
// localhost CA) as a PEM file.
func (e *edge) caFile() string {
	path := filepath.Join(e.t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// healthYAML is baseYAML with health URLs and the health section.
func healthYAML(us, eu, ap, health string) string {
	y := baseYAML
	y = strings.Replace(y, `aaaa: ["2001:db8::10"]}`, fmt.Sprintf(`aaaa: ["2001:db8::10"], health: %q}`, us), 1)
	y = strings.Replace(y, `aaaa: ["2001:db8:1::10"]}`, fmt.Sprintf(`aaaa: ["2001:db8:1::10"], health: %q}`, eu), 1)
	y = strings.Replace(y, `ap-south-1: {a: [203.0.113.10]}`, fmt.Sprintf(`ap-south-1: {a: [203.0.113.10], health: %q}`, ap), 1)
	return y + "health: " + health + "\n"
}

// routedTo asks for cdn's A records as a client in subnet would.
func routedTo(t testing.TB, ts *testServer, subnet string) []string {
	t.Helper()
	r := exchange(t, ts.addr, "udp", withECS(question("cdn.example.test.", dns.TypeA, 1232), subnet))
	return addrs(r.Answer)
}

func regionUp(t testing.TB, s *Server, name string) bool {
	t.Helper()
	for _, r := range s.RegionStatus() {
		if r.Region == name {
			return r.Up
		}
	}
	t.Fatalf("no region %s", name)
	return false
}

// TestHealthFallRise covers point 3's state machine over real HTTP and
// HTTPS edges: one lost probe changes nothing, Fall failures take a
// region out at once, Rise successes bring it back.
func TestHealthFallRise(t *testing.T) {
	us, eu, ap := newEdge(t, true), newEdge(t, false), newEdge(t, false)
	cfg := mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(),
		fmt.Sprintf("{interval: 2s, timeout: 1s, fall: 2, rise: 2, ca_file: %q}", us.caFile())))
	clock := newClock()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ts := startServer(t, cfg, mustTable(t, baseCSV), Options{Now: clock.Now, Logger: log})
	ctx := context.Background()
	round := func() { clock.Advance(2 * time.Second); ts.ProbeAll(ctx) }
	const euClient = "198.51.100.0/24" // eu-west-1 first, us-west-2 second

	round()
	for _, r := range ts.RegionStatus() {
		if !r.Up || r.Successes != 1 || r.LastError != "" {
			t.Fatalf("%s after a good round: %+v", r.Region, r)
		}
	}
	if us.hits.Load() != 1 {
		t.Fatalf("https edge probed %d times, want 1 (certificate trusted via ca_file)", us.hits.Load())
	}
	if got := routedTo(t, ts, euClient); !slices.Equal(got, regionA["eu-west-1"]) {
		t.Fatalf("healthy: %v", got)
	}

	// One lost probe: no flap.
	eu.stop()
	round()
	if !regionUp(t, ts.Server, "eu-west-1") || !slices.Equal(routedTo(t, ts, euClient), regionA["eu-west-1"]) {
		t.Fatal("one failed probe took the region out")
	}
	eu.start()
	round()
	// The count starts over: one more failure is still not enough.
	eu.stop()
	round()
	if !regionUp(t, ts.Server, "eu-west-1") {
		t.Fatal("failures were not reset by a success")
	}
	round() // second consecutive failure
	if regionUp(t, ts.Server, "eu-west-1") {
		t.Fatal("region still up after fall=2 failures")
	}
	if got := routedTo(t, ts, euClient); !slices.Equal(got, regionA["us-west-2"]) {
		t.Fatalf("down region still answered: %v", got)
	}
	st := ts.RegionStatus()[slices.IndexFunc(ts.RegionStatus(), func(r RegionStatus) bool { return r.Region == "eu-west-1" })]
	if !st.LastChange.Equal(clock.Now()) || st.LastError == "" {
		t.Errorf("status %+v: want last change now and an error", st)
	}

	// Back: one success is not enough, two are.
	eu.start()
	round()
	if regionUp(t, ts.Server, "eu-west-1") {
		t.Fatal("up after one success, rise=2")
	}
	round()
	if !regionUp(t, ts.Server, "eu-west-1") || !slices.Equal(routedTo(t, ts, euClient), regionA["eu-west-1"]) {
		t.Fatal("not back after rise=2 successes")
	}

	// Health changes are logged, structured.
	for _, want := range []string{`"msg":"region down","region":"eu-west-1"`, `"consecutive_failures":2`, `"msg":"region up","region":"eu-west-1"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}

	// A 5xx is a failure, like no answer.
	eu.status.Store(http.StatusServiceUnavailable)
	round()
	round()
	if regionUp(t, ts.Server, "eu-west-1") {
		t.Fatal("503 did not count as a failure")
	}
}

// TestHealthTLSVerified: without the CA, the HTTPS edge's certificate
// does not verify, and the region goes down (unlike Route53's HTTPS
// checks, which skip verification).
func TestHealthTLSVerified(t *testing.T) {
	us, eu, ap := newEdge(t, true), newEdge(t, false), newEdge(t, false)
	cfg := mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1}"))
	s, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.ProbeAll(context.Background())
	st := s.RegionStatus()
	for _, r := range st {
		if (r.Region == "us-west-2") == r.Up {
			t.Errorf("%+v", r)
		}
	}
	if i := slices.IndexFunc(st, func(r RegionStatus) bool { return r.Region == "us-west-2" }); !strings.Contains(st[i].LastError, "certificate") {
		t.Errorf("error %q, want a certificate error", st[i].LastError)
	}
}

// TestHealthTimeout: an edge that accepts and never answers fails by
// the timeout, not by hanging the prober.
func TestHealthTimeout(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	eu.hang.Store(true)
	cfg := mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{interval: 1s, timeout: 100ms, fall: 1}"))
	s, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.ProbeAll(context.Background())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("round took %v with a 100ms timeout", took)
	}
	if regionUp(t, s, "eu-west-1") || !regionUp(t, s, "us-west-2") {
		t.Errorf("status %+v", s.RegionStatus())
	}
}

// TestFailoverTime measures point 3's target with the defaults
// (interval 2s, fall 2) on a clock the test controls: from the moment an
// edge dies to the first answer that avoids it, in prober time. The
// worst case is interval×fall (plus the timeout for an edge that hangs
// rather than refuses): 4 s, under the 6 s target.
func TestFailoverTime(t *testing.T) {
	for _, offset := range []time.Duration{10 * time.Millisecond, time.Second, 1990 * time.Millisecond} {
		t.Run(fmt.Sprint("fail ", offset, " after a probe"), func(t *testing.T) {
			us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
			cfg := mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{}"))
			if cfg.Health.Interval != 2*time.Second || cfg.Health.Fall != 2 {
				t.Fatalf("defaults changed: %+v", cfg.Health)
			}
			clock := newClock()
			ts := startServer(t, cfg, mustTable(t, baseCSV), Options{Now: clock.Now})
			ctx := context.Background()
			// Rounds run at base + k×interval, as Run's ticker would.
			base := clock.Now()
			ts.ProbeAll(ctx)
			clock.Advance(offset)
			eu.stop()
			failAt := clock.Now()
			var elapsed time.Duration
			for k := 1; k <= 10; k++ {
				clock.Advance(base.Add(time.Duration(k) * cfg.Health.Interval).Sub(clock.Now()))
				ts.ProbeAll(ctx)
				if got := routedTo(t, ts, "198.51.100.0/24"); !slices.Contains(got, "198.51.100.10") {
					elapsed = clock.Now().Sub(failAt)
					break
				}
			}
			want := cfg.Health.Interval*time.Duration(cfg.Health.Fall) - offset
			t.Logf("edge failed %v after a probe: every new answer avoided it %v later (bound interval×fall = %v)", offset, elapsed, cfg.Health.Interval*time.Duration(cfg.Health.Fall))
			if elapsed == 0 || elapsed > 6*time.Second || elapsed != want {
				t.Fatalf("failover took %v, want %v (under 6s)", elapsed, want)
			}
		})
	}
}

// TestAllDownAnswersAll: when every region is down, the answer has all
// of them rather than nothing.
func TestAllDownAnswersAll(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	ts := startServer(t, mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1}")), mustTable(t, baseCSV), Options{})
	us.stop()
	eu.stop()
	ap.stop()
	ts.ProbeAll(context.Background())
	got := routedTo(t, ts, "203.0.113.0/24")
	want := []string{"203.0.113.10", "198.51.100.10", "192.0.2.10", "192.0.2.11"} // the client's order
	if !slices.Equal(got, want) {
		t.Fatalf("all down: %v, want %v", got, want)
	}
}

// TestHealthStateSurvivesReload: a reload keeps the health of regions
// whose URL did not change.
func TestHealthStateSurvivesReload(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	y := healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1}")
	ts := startServer(t, mustConfig(t, y), mustTable(t, baseCSV), Options{})
	eu.stop()
	ts.ProbeAll(context.Background())
	if err := ts.Update(mustConfig(t, strings.Replace(y, "ttl: 20", "ttl: 30", 1)), ts.Table()); err != nil {
		t.Fatal(err)
	}
	if regionUp(t, ts.Server, "eu-west-1") {
		t.Fatal("reload forgot that eu-west-1 is down")
	}
}

// TestRunTicks: Run probes at start and on every tick.
func TestRunTicks(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	tick := make(chan time.Time)
	s, err := New(mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1}")), nil, Options{Tick: tick})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	// Run takes a tick only between rounds: after the second send, the
	// round of the first tick (and the first round) are complete.
	eu.stop()
	tick <- time.Now()
	tick <- time.Now()
	if regionUp(t, s, "eu-west-1") || us.hits.Load() < 2 {
		t.Errorf("after two rounds: eu up=%v, us probed %d times", regionUp(t, s, "eu-west-1"), us.hits.Load())
	}
	cancel()
	<-done
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
