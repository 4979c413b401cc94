package dnsgeo

import (
	"context"
	"log/slog"
	"net"
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

// writeAtomic replaces path the way operators should: a complete
// temporary file renamed over the old one.
func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The loopback resolver's table row, in two versions.
const (
	csvLoopbackEU = baseCSV
	csvLoopbackAP = "prefix,region,rtt_ms\n127.0.0.0/8,ap-south-1,1\n127.0.0.0/8,eu-west-1,9\n"
)

func cdnA(t testing.TB, addr string) (answer []string, ttl uint32) {
	t.Helper()
	r := exchange(t, addr, "udp", question("cdn.example.test.", dns.TypeA, 1232))
	if len(r.Answer) > 0 {
		ttl = r.Answer[0].Header().Ttl
	}
	return addrs(r.Answer), ttl
}

// TestReloadValidatesFirst covers point 6: a bad new file is refused
// and logged, the old one keeps serving; a good one is taken.
func TestReloadValidatesFirst(t *testing.T) {
	dir := t.TempDir()
	cfgPath, csvPath := filepath.Join(dir, "dnsgeo.yaml"), filepath.Join(dir, "latency.csv")
	writeAtomic(t, cfgPath, baseYAML)
	writeAtomic(t, csvPath, csvLoopbackEU)
	var logs syncBuffer
	rl := &Reloader{ConfigPath: cfgPath, LatencyPath: csvPath, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	cfg, table, err := rl.Load()
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, cfg, table, Options{})
	rl.Server = ts.Server

	if rl.Check() {
		t.Fatal("reloaded with nothing changed")
	}
	// A bad config: refused, old one serves.
	writeAtomic(t, cfgPath, strings.Replace(baseYAML, "ttl: 20", "ttl: 30\nbogus: 1", 1))
	if rl.Check() {
		t.Fatal("bad config taken")
	}
	if got, ttl := cdnA(t, ts.addr); ttl != 20 || !slices.Equal(got, regionA["eu-west-1"]) {
		t.Fatalf("after a bad config: %v ttl %d", got, ttl)
	}
	if want := `"msg":"config reload refused; old config keeps serving","file":"` + cfgPath + `","error":"` + cfgPath + `:4: bogus: unknown field \"bogus\""`; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs.String())
	}
	// A bad table: refused too.
	writeAtomic(t, csvPath, csvLoopbackAP+"300.0.0.0/8,x,1\n")
	if rl.Check() {
		t.Fatal("bad table taken")
	}
	if got, _ := cdnA(t, ts.addr); !slices.Equal(got, regionA["eu-west-1"]) {
		t.Fatalf("after a bad table: %v", got)
	}
	// Fixed: both taken.
	writeAtomic(t, cfgPath, strings.Replace(baseYAML, "ttl: 20", "ttl: 30", 1))
	writeAtomic(t, csvPath, csvLoopbackAP)
	if !rl.Check() {
		t.Fatal("good files not taken")
	}
	if got, ttl := cdnA(t, ts.addr); ttl != 30 || !slices.Equal(got, regionA["ap-south-1"]) {
		t.Fatalf("after good files: %v ttl %d", got, ttl)
	}
	// Reload (SIGHUP) reads both even when unchanged.
	if !rl.Reload() {
		t.Error("forced reload did nothing")
	}
	body := scrape(t, ts.Server)
	for _, want := range []string{
		`dnsgeo_reloads_total{file="config",result="error"} 1`,
		`dnsgeo_reloads_total{file="latency",result="error"} 1`,
		`dnsgeo_reloads_total{file="config",result="ok"} 2`,
		`dnsgeo_reloads_total{file="latency",result="ok"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestReloadDropsNoQuery covers "reloaded when it changes, with no
// dropped queries": clients query without pause over UDP and TCP while
// the table flips back and forth (and the config is replaced, which
// rebuilds the compiled answers); every query gets a full answer from
// the old or the new table.
func TestReloadDropsNoQuery(t *testing.T) {
	cfg := mustConfig(t, baseYAML)
	tables := []*Table{mustTable(t, csvLoopbackEU), mustTable(t, csvLoopbackAP)}
	ts := startServer(t, cfg, tables[0], Options{})

	var stop atomic.Bool
	var wg sync.WaitGroup
	var queries, failures atomic.Int64
	for _, network := range []string{"udp", "udp", "tcp"} {
		wg.Go(func() {
			c := &dns.Client{Net: network, Timeout: time.Second}
			for i := 0; !stop.Load(); i++ {
				q := question("cdn.example.test.", dns.TypeA, 1232)
				r, _, err := c.Exchange(q, ts.addr)
				queries.Add(1)
				if err != nil || r.Rcode != dns.RcodeSuccess ||
					!(slices.Equal(addrs(r.Answer), regionA["eu-west-1"]) || slices.Equal(addrs(r.Answer), regionA["ap-south-1"])) {
					failures.Add(1)
					t.Errorf("%s query %d: %v %v", network, i, err, r)
					return
				}
			}
		})
	}
	for i := range 40 {
		// Every third swap is a new config (the same file, parsed
		// again), so the compiled answers are rebuilt under load too.
		next := cfg
		if i%3 == 0 {
			next = mustConfig(t, baseYAML)
		}
		if err := ts.Update(next, tables[i%2]); err != nil {
			t.Fatal(err)
		}
		// Let some queries through between swaps.
		for n := queries.Load(); queries.Load() < n+5 && failures.Load() == 0; {
			time.Sleep(time.Millisecond)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d queries across 40 table swaps, %d failed", queries.Load(), failures.Load())
}

// TestRunReloads drives Run as cmd/dnsgeo does: files watched for
// changes, and a reload channel (SIGHUP).
func TestRunReloads(t *testing.T) {
	dir := t.TempDir()
	cfgPath, csvPath := filepath.Join(dir, "dnsgeo.yaml"), filepath.Join(dir, "latency.csv")
	writeAtomic(t, cfgPath, baseYAML)
	writeAtomic(t, csvPath, csvLoopbackEU)
	reload := make(chan struct{})
	ready := make(chan [2]net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunConfig{
			ConfigPath: cfgPath, LatencyPath: csvPath, Listen: "127.0.0.1:0", Admin: "127.0.0.1:0",
			Reload: reload, WatchInterval: 20 * time.Millisecond,
			Ready: func(d, a net.Addr) { ready <- [2]net.Addr{d, a} },
		})
	}()
	var addr string
	select {
	case a := <-ready:
		addr = a[0].String()
	case err := <-done:
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if got, _ := cdnA(t, addr); !slices.Equal(got, regionA["eu-west-1"]) {
		t.Fatalf("start: %v", got)
	}
	// File change: picked up by the watcher.
	writeAtomic(t, csvPath, csvLoopbackAP)
	deadline := time.Now().Add(5 * time.Second)
	for got, _ := cdnA(t, addr); !slices.Equal(got, regionA["ap-south-1"]); got, _ = cdnA(t, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("table change not picked up: %v", got)
		}
		time.Sleep(10 * time.Millisecond) // waiting for the watcher's next look
	}
	// The reload channel: a second send returns only once the first
	// reload is done.
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(baseYAML, "ttl: 20", "ttl: 45", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	reload <- struct{}{}
	if _, ttl := cdnA(t, addr); ttl != 45 {
		t.Fatalf("ttl %d after reload, want 45", ttl)
	}
}
