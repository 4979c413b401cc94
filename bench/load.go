package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed report.lua
var wrkScript string

// percentiles are the points of each latency distribution the harness
// keeps: the report's p50/p99/p99.9 and enough more to draw the curve.
var percentiles = []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 98, 99, 99.5, 99.7, 99.8, 99.9, 99.95, 99.99, 99.995, 99.999, 100}

// measurement is one timed run of one scenario against one server.
type measurement struct {
	Requests   int64
	Duration   time.Duration // as the generator measured it
	Bytes      int64         // response bytes, headers included
	Errors     int64         // connect, read, write and timeout errors
	BadStatus  int64         // responses with an unexpected status
	Latency    []pctValue    // the distribution, at percentiles
	ServerCPU  time.Duration // user+system of every server process
	GenCPU     time.Duration // user+system of the load generator
	OriginReqs int64
	// Other is the busy fraction of the server core spent on anything
	// but the server: other processes on the machine (noise).
	Other float64
}

// pctValue is one point of a latency distribution.
type pctValue struct {
	P   float64
	Lat time.Duration
}

func (m *measurement) rps() float64 { return float64(m.Requests) / m.Duration.Seconds() }

// cpuPer100k is server CPU seconds per 100,000 requests.
func (m *measurement) cpuPer100k() float64 {
	if m.Requests == 0 {
		return 0
	}
	return m.ServerCPU.Seconds() / float64(m.Requests) * 1e5
}

// serverUtil and genUtil are the busy fraction of one core.
func (m *measurement) serverUtil() float64 { return m.ServerCPU.Seconds() / m.Duration.Seconds() }
func (m *measurement) genUtil() float64    { return m.GenCPU.Seconds() / m.Duration.Seconds() }

// at returns the latency at percentile p (the nearest point at or above).
func (m *measurement) at(p float64) time.Duration {
	for _, v := range m.Latency {
		if v.P >= p {
			return v.Lat
		}
	}
	if len(m.Latency) > 0 {
		return m.Latency[len(m.Latency)-1].Lat
	}
	return 0
}

// wrk drives servers at full speed with wrk, pinned to the generator core.
type wrk struct {
	script string // path of report.lua with the percentiles filled in
	cpu    int
}

func newWrk(dir string, cpu int) (*wrk, error) {
	ps := make([]string, len(percentiles))
	for i, p := range percentiles {
		ps[i] = strconv.FormatFloat(p, 'g', -1, 64)
	}
	path := filepath.Join(dir, "report.lua")
	if err := os.WriteFile(path, []byte(strings.Replace(wrkScript, "PERCENTILES", strings.Join(ps, ", "), 1)), 0o644); err != nil {
		return nil, err
	}
	return &wrk{script: path, cpu: cpu}, nil
}

// args is the wrk command line for a run.
func (w *wrk) args(url string, conns int, d time.Duration, headers []string) []string {
	args := []string{"wrk", "-t1", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--timeout", "5s", "-s", w.script}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	if w.cpu >= 0 {
		args = append([]string{"taskset", "-c", strconv.Itoa(w.cpu)}, args...)
	}
	return args
}

// run drives s for d and measures it. expectStatus says which responses
// are not errors (wrk counts every status >= 400 as an error).
func (w *wrk) run(ctx context.Context, s *server, o *originServer, path string, conns int, d time.Duration, headers []string, expect404 bool) (*measurement, error) {
	argv := w.args(s.url(path), conns, d, headers)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	pids := s.pids()
	cpu0, org0 := cpuTime(pids), o.total.Load()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("wrk against %s: %v\n%s", s.name, err, out.String())
	}
	cpu1, org1 := cpuTime(pids), o.total.Load()
	if s.proc.exited() {
		return nil, fmt.Errorf("%s died under load: %v\n%s", s.name, s.proc.err, s.proc.tail())
	}
	m, err := parseWrk(out.String())
	if err != nil {
		return nil, fmt.Errorf("wrk against %s: %w\n%s", s.name, err, out.String())
	}
	m.ServerCPU, m.OriginReqs = cpu1-cpu0, org1-org0
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.GenCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if expect404 {
		m.BadStatus = 0 // every answer is a 404; the probe checked them
	}
	return m, nil
}

// wrkSummary is what report.lua prints.
type wrkSummary struct {
	Requests   int64        `json:"requests"`
	DurationUS int64        `json:"duration_us"`
	Bytes      int64        `json:"bytes"`
	Connect    int64        `json:"connect"`
	Read       int64        `json:"read"`
	Write      int64        `json:"write"`
	Status     int64        `json:"status"`
	Timeout    int64        `json:"timeout"`
	Pct        [][2]float64 `json:"pct"`
}

func parseWrk(out string) (*measurement, error) {
	i := strings.Index(out, "BENCHJSON ")
	if i < 0 {
		return nil, errors.New("no summary in wrk's output")
	}
	line, _, _ := strings.Cut(out[i+len("BENCHJSON "):], "\n")
	var s wrkSummary
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return nil, fmt.Errorf("parsing wrk's summary: %w", err)
	}
	if s.Requests == 0 || s.DurationUS == 0 {
		return nil, errors.New("wrk completed no request")
	}
	m := &measurement{
		Requests:  s.Requests,
		Duration:  time.Duration(s.DurationUS) * time.Microsecond,
		Bytes:     s.Bytes,
		Errors:    s.Connect + s.Read + s.Write + s.Timeout,
		BadStatus: s.Status,
	}
	for _, p := range s.Pct {
		m.Latency = append(m.Latency, pctValue{P: p[0], Lat: time.Duration(p[1]) * time.Microsecond})
	}
	return m, nil
}

// stampedeResult is one burst of concurrent requests for a cold object.
type stampedeResult struct {
	Latencies  []time.Duration // to the last byte, one per request, sorted
	TTFB       []time.Duration // to the response headers, sorted
	Statuses   map[int]int
	Errors     int
	OriginReqs int64
	ServerCPU  time.Duration
	Wall       time.Duration // first request sent to last response read
}

// stampede opens n keep-alive connections to s (each warmed with a
// request for a cached object, so the server has accepted them all), then
// sends on every one of them at once a GET for path, a cold object, and
// times each response to its last byte.
func stampede(ctx context.Context, s *server, o *originServer, path, warmPath string, n int, headers []string) (*stampedeResult, error) {
	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	conns := make([]*conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.c.Close()
		}
	}()
	d := net.Dialer{Timeout: 5 * time.Second}
	for range n {
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, fmt.Errorf("stampede: dialing %s: %w", s.name, err)
		}
		conns = append(conns, &conn{c: c, br: bufio.NewReaderSize(c, 64<<10)})
	}
	req := func(p string) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench-stampede\r\n", p, s.addr)
		for _, h := range headers {
			b.WriteString(h + "\r\n")
		}
		b.WriteString("\r\n")
		return b.Bytes()
	}
	// do sends raw on c and reads the response: its status, and the
	// time its headers arrived.
	do := func(c *conn, raw []byte) (int, time.Time, error) {
		_ = c.c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.c.Write(raw); err != nil {
			return 0, time.Time{}, err
		}
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return 0, time.Time{}, err
		}
		headers := time.Now()
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, headers, err
	}
	// Warm every connection, a few at a time.
	warm := req(warmPath)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var warmErr error
	var mu sync.Mutex
	for _, c := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, _, err := do(c, warm); err != nil {
				mu.Lock()
				warmErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if warmErr != nil {
		return nil, fmt.Errorf("stampede: warming connections to %s: %w", s.name, warmErr)
	}
	time.Sleep(200 * time.Millisecond)

	raw := req(path)
	res := &stampedeResult{Statuses: map[int]int{}, Latencies: make([]time.Duration, 0, n)}
	start := make(chan struct{})
	pids := s.pids()
	cpu0, org0 := cpuTime(pids), o.total.Load()
	for _, c := range conns {
		wg.Go(func() {
			<-start
			t := time.Now()
			status, headers, err := do(c, raw)
			lat := time.Since(t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errors++
				return
			}
			res.Statuses[status]++
			res.Latencies = append(res.Latencies, lat)
			res.TTFB = append(res.TTFB, headers.Sub(t))
		})
	}
	time.Sleep(50 * time.Millisecond) // every goroutine parked on start
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.Wall = time.Since(t0)
	// The fill may still be finishing its write to disk; the origin count
	// is already final.
	time.Sleep(100 * time.Millisecond)
	res.ServerCPU, res.OriginReqs = cpuTime(pids)-cpu0, o.total.Load()-org0
	slices.Sort(res.Latencies)
	slices.Sort(res.TTFB)
	return res, nil
}

// quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// memoryResult is one server caching objects totalling a given size.
type memoryResult struct {
	Objects      int
	Bytes        int64 // body bytes received in the first pass
	RSSStart     int64 // all server processes, once ready
	RSSAfter     int64 // after the first pass, settled
	SecondOrigin int64 // origin requests during a second pass over the same objects
	SecondHits   int   // responses the server marked as hits on the second pass
	DiskBytes    int64 // the server's directory (disk cache) after the run
	Fill         time.Duration
}

// fillObjects requests mem/0.bin … mem/(n-1).bin from s with a few
// connections and returns the body bytes received.
func fillObjects(ctx context.Context, s *server, n int, onResponse func(http.Header)) (int64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var total int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				resp, err := client.Get(s.url(fmt.Sprintf("/%s%d.bin", memPrefix, i)))
				if err == nil {
					var nb int64
					nb, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					mu.Lock()
					total += nb
					if onResponse != nil {
						onResponse(resp.Header)
					}
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("object %d from %s: %w", i, s.name, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return total, firstErr
}

// dirSize is the bytes of regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
