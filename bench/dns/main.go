// Command dns benchmarks dnsgeo against Knot DNS and NSD serving the
// same names as a static zone, on this machine, and measures dnsgeo's
// failover time on the wall clock. It writes a markdown report to
// bench/results/dns-<date>.md.
//
//	go run ./bench/dns              # or bench/dns/run.sh, which installs what is missing
//	go run ./bench/dns -runs 5 -duration 8s -skip nsd
//
// Each server is pinned to CPU 0 with taskset, dnsperf to CPU 1. Every
// server gets the same workloads: the mixed one (60 % routed A, the
// rest AAAA, a CNAME, the SOA, NXDOMAIN) and routed A with an ECS
// option in every query. A throughput run (as fast as dnsperf can send,
// bounded outstanding queries) gives queries per second, and the CPU
// time the server and dnsperf used; a fixed-rate run gives latency
// percentiles. The runs are repeated in rounds, the servers in a
// rotating order, and the report gives medians and each round's ratio
// to Knot measured in that round: on a shared machine the load changes
// between runs. Only loopback is used. Servers missing on the machine
// are skipped with a message.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

type options struct {
	duration   time.Duration // throughput run per server and workload
	latencyDur time.Duration // fixed-rate run per server
	rate       int           // queries per second of the fixed-rate run
	runs       int           // rounds of throughput runs
	prefixes   int           // latency table size for dnsgeo
	failoverN  int           // failover measurements
	out        string        // report directory
	skip       map[string]bool
	serverCPU  string
	serverCPUs map[int]bool // serverCPU, parsed
	loadgenCPU string
}

func main() {
	var o options
	var skip string
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "throughput run per server and workload")
	flag.DurationVar(&o.latencyDur, "latency-duration", 4*time.Second, "fixed-rate latency run per server")
	flag.IntVar(&o.rate, "rate", 5000, "queries per second of the latency run (below every server's capacity, so it measures service time, not queueing)")
	flag.IntVar(&o.runs, "runs", 3, "rounds of throughput runs; the report gives medians")
	flag.IntVar(&o.prefixes, "prefixes", 100000, "prefixes in dnsgeo's latency table")
	flag.IntVar(&o.failoverN, "failover-runs", 3, "failover measurements")
	flag.StringVar(&o.out, "out", "", "report directory (default: bench/results in the module)")
	flag.StringVar(&skip, "skip", "", "comma-separated: dnsgeo, knot, nsd, failover")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "taskset CPU list of the servers")
	flag.StringVar(&o.loadgenCPU, "loadgen-cpu", "1", "taskset CPU list of dnsperf")
	flag.Parse()
	var err error
	if o.serverCPUs, err = parseCPUList(o.serverCPU); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dns: -server-cpu:", err)
		os.Exit(2)
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s != "" {
			o.skip[s] = true
		}
	}
	// Bound the whole run: every server started once per round, each
	// workload, warm-up and start-up, latency runs, failover.
	perServer := time.Duration(len(workloads))*(o.duration+2*time.Second) + 20*time.Second
	limit := time.Duration(o.runs)*3*perServer + 3*(o.latencyDur+5*time.Second) + time.Duration(o.failoverN)*40*time.Second + time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dns:", err)
		os.Exit(1)
	}
}

// workload is one query stream: a query file and dnsperf options.
type workload struct {
	name  string
	about string
	file  string
	extra []string
}

// The workloads of the issue (#13): the mixed one, and routed A with an
// ECS option (family 1, source /24, scope 0, 203.0.113.0) in every
// query, which dnsgeo routes by its latency table and Knot and NSD
// answer from the static zone.
var workloads = []workload{
	{"mixed", "60 % `cdn A` (routed), 10 % each `cdn AAAA`, `www A` (a CNAME to `cdn`), the SOA, `nope A` (NXDOMAIN); no ECS", "queries.txt", nil},
	{"routed A + ECS", "`cdn A` with an ECS option (203.0.113.0/24) in every query", "routed.txt", []string{"-E", "8:00011800cb0071"}},
}

// sample is one throughput run.
type sample struct {
	qps        float64
	lost       float64 // percent
	avg        float64 // seconds
	serverCPU  float64 // CPU seconds the server's process used during the run
	busy       float64 // CPU seconds the server's CPUs were busy (softirq and other processes included)
	loadgenCPU float64 // CPU seconds dnsperf used
	seconds    float64 // the run's length
	rcodes     string
}

// result is one server's figures.
type result struct {
	name    string
	version string
	skipped string              // why, when skipped
	runs    map[string][]sample // by workload name, one per round
	round   map[string][]int    // by workload name: the round of each sample
	lat     latency             // fixed-rate run, mixed workload
	errs    []string            // runs that failed
}

type latency struct {
	p50, p90, p99, p999, max float64 // seconds
	lost                     float64 // percent
}

func run(ctx context.Context, o options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "results")
	}
	dir, err := os.MkdirTemp("", "bench-dns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	load := loadAverage()

	fmt.Println("building dnsgeo ...")
	bin := filepath.Join(dir, "dnsgeo")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/dnsgeo")
	build.Dir, build.Stdout, build.Stderr = root, os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building dnsgeo: %w", err)
	}
	if err := writeFiles(dir, o.prefixes); err != nil {
		return err
	}

	type server struct {
		key   string
		start func(ctx context.Context, port int) (*exec.Cmd, string, error)
	}
	servers := []server{
		{"dnsgeo", func(ctx context.Context, port int) (*exec.Cmd, string, error) {
			return startDNSGeo(ctx, o, dir, bin, port)
		}},
		{"knot", func(ctx context.Context, port int) (*exec.Cmd, string, error) { return startKnot(ctx, o, dir, port) }},
		{"nsd", func(ctx context.Context, port int) (*exec.Cmd, string, error) { return startNSD(ctx, o, dir, port) }},
	}
	names := map[string]string{"dnsgeo": "dnsgeo", "knot": "Knot DNS", "nsd": "NSD"}
	results := make([]*result, len(servers))
	for i, s := range servers {
		results[i] = &result{name: names[s.key], runs: map[string][]sample{}, round: map[string][]int{}}
		switch {
		case o.skip[s.key]:
			results[i].skipped = "skipped (-skip)"
		case lookPath("dnsperf") == "" || lookPath("taskset") == "":
			results[i].skipped = "dnsperf or taskset not installed (run bench/dns/install-deps.sh as root)"
		}
	}
	// All servers run for the whole benchmark (an idle one uses no CPU
	// to speak of), so that the runs compared with each other follow
	// one another within seconds: the machine's load changes slower.
	ports := make([]int, len(servers))
	cmds := make([]*exec.Cmd, len(servers))
	defer func() {
		for _, c := range cmds {
			stopCmd(c)
		}
	}()
	for i, s := range servers {
		r := results[i]
		if r.skipped != "" {
			fmt.Printf("%s: %s\n", r.name, r.skipped)
			continue
		}
		ports[i] = freePort()
		cmd, version, err := s.start(ctx, ports[i])
		if err != nil {
			r.skipped = err.Error()
			fmt.Printf("%s: %s\n", r.name, r.skipped)
			continue
		}
		cmds[i], r.version = cmd, version
		if err := waitReady(ctx, ports[i], 15*time.Second); err != nil {
			r.skipped = "did not answer: " + err.Error()
			fmt.Printf("%s: %s\n", r.name, r.skipped)
			continue
		}
		// Warm up: caches, page faults, the Go heap.
		_ = pinned(ctx, o.loadgenCPU, "dnsperf", append(dnsperfArgs(dir, ports[i], workloads[0]), "-l", "1", "-c", "4", "-q", "200")...).Run()
	}
	for round := range o.runs {
		for _, w := range workloads {
			for k := range servers {
				i := (k + round) % len(servers) // rotate, so no server always runs first
				r := results[i]
				if r.skipped != "" {
					continue
				}
				fmt.Printf("round %d/%d, %s, %s: throughput %v ...\n", round+1, o.runs, w.name, r.name, o.duration)
				smp, err := throughput(ctx, o, dir, ports[i], w, cmds[i].Process.Pid)
				if err != nil {
					r.errs = append(r.errs, fmt.Sprintf("round %d, %s: %v", round+1, w.name, err))
					continue
				}
				r.runs[w.name] = append(r.runs[w.name], smp)
				r.round[w.name] = append(r.round[w.name], round)
			}
		}
	}
	for i, r := range results {
		if r.skipped != "" {
			continue
		}
		fmt.Printf("%s: latency at %d qps %v ...\n", r.name, o.rate, o.latencyDur)
		var err error
		if r.lat, err = fixedRate(ctx, o, dir, ports[i], workloads[0]); err != nil {
			r.errs = append(r.errs, "latency run: "+err.Error())
		}
	}
	for i := range cmds {
		stopCmd(cmds[i])
		cmds[i] = nil
	}

	var failovers []time.Duration
	var failErr error
	if !o.skip["failover"] {
		for i := 0; i < o.failoverN; i++ {
			d, err := failover(ctx, dir, bin, i)
			if err != nil {
				failErr = err
				break
			}
			fmt.Printf("failover run %d: %v\n", i+1, d.Round(time.Millisecond))
			failovers = append(failovers, d)
		}
	}

	report := renderReport(o, results, failovers, failErr, load, time.Since(start))
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(o.out, "dns-"+time.Now().Format("2006-01-02")+".md")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(report)
	fmt.Println("report written to", path)
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the module (go run ./bench/dns)")
	}
	return filepath.Dir(mod), nil
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort() int {
	for {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// The zone every server serves. dnsgeo routes cdn; its latency table
// sends 127.0.0.0/8 to us-west-2, so it answers what the static zone
// holds. www is a CNAME to cdn, answered with the chase by all three.
const zoneFile = `$ORIGIN bench.test.
$TTL 3600
@	IN	SOA	ns1.bench.test. hostmaster.bench.test. 1 3600 600 604800 60
@	IN	NS	ns1.bench.test.
@	IN	NS	ns2.bench.test.
ns1	IN	A	192.0.2.53
ns2	IN	A	192.0.2.54
www	300	IN	CNAME	cdn
cdn	20	IN	A	192.0.2.10
cdn	20	IN	A	192.0.2.11
cdn	20	IN	AAAA	2001:db8::10
`

const dnsgeoConfig = `zone: bench.test.
ttl: 20
soa: {ns: ns1.bench.test., mbox: hostmaster.bench.test., negative_ttl: 60}
ns: [ns1.bench.test., ns2.bench.test.]
records:
  - "ns1 3600 IN A 192.0.2.53"
  - "ns2 3600 IN A 192.0.2.54"
  - "www 300 IN CNAME cdn"
routed: [cdn]
regions:
  us-west-2: {a: [192.0.2.10, 192.0.2.11], aaaa: ["2001:db8::10"]}
  eu-west-1: {a: [198.51.100.10], aaaa: ["2001:db8:1::10"]}
  ap-south-1: {a: [203.0.113.10]}
default_order: [us-west-2, eu-west-1, ap-south-1]
rrl: {enabled: false}   # as Knot and NSD here: measure serving, not limiting
`

// queryMix is one pass of the query file: mostly the routed name, as a
// CDN's DNS sees, plus the CNAME, the apex and misses.
var queryMix = []string{
	"cdn.bench.test A", "cdn.bench.test A", "cdn.bench.test A", "cdn.bench.test A",
	"cdn.bench.test A", "cdn.bench.test AAAA", "www.bench.test A", "bench.test SOA",
	"nope.bench.test A", "cdn.bench.test A",
}

func writeFiles(dir string, prefixes int) error {
	var q bytes.Buffer
	for range 100 {
		for _, l := range queryMix {
			q.WriteString(l + "\n")
		}
	}
	var csv bytes.Buffer
	csv.WriteString("prefix,region,rtt_ms\n127.0.0.0/8,us-west-2,1\n127.0.0.0/8,eu-west-1,80\n")
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for len(seen) < prefixes {
		p := fmt.Sprintf("%d.%d.%d.0/24", 1+r.IntN(126), r.IntN(256), r.IntN(256))
		if seen[p] {
			continue
		}
		seen[p] = true
		for _, reg := range []string{"us-west-2", "eu-west-1", "ap-south-1"} {
			fmt.Fprintf(&csv, "%s,%s,%d\n", p, reg, 1+r.IntN(300))
		}
	}
	csv.WriteString("203.0.113.0/24,ap-south-1,5\n203.0.113.0/24,us-west-2,200\n")
	files := map[string][]byte{
		"queries.txt":     q.Bytes(),
		"routed.txt":      []byte("cdn.bench.test A\n"),
		"bench.test.zone": []byte(zoneFile),
		"dnsgeo.yaml":     []byte(dnsgeoConfig),
		"latency.csv":     csv.Bytes(),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func pinned(ctx context.Context, cpus string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "taskset", append([]string{"-c", cpus, name}, args...)...)
}

func startDNSGeo(ctx context.Context, o options, dir, bin string, port int) (*exec.Cmd, string, error) {
	cmd := pinned(ctx, o.serverCPU, bin, "-config", filepath.Join(dir, "dnsgeo.yaml"), "-latency", filepath.Join(dir, "latency.csv"),
		"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-admin", "")
	cmd.Stderr = mustCreate(filepath.Join(dir, "dnsgeo.log"))
	v, _ := exec.Command("go", "version").Output()
	return cmd, strings.TrimSpace(strings.TrimPrefix(string(v), "go version ")), cmd.Start()
}

func startKnot(ctx context.Context, o options, dir string, port int) (*exec.Cmd, string, error) {
	knotd := lookPath("knotd")
	if knotd == "" {
		return nil, "", errors.New("knotd not installed (apt-get install knot, or bench/dns/install-deps.sh)")
	}
	kdir := filepath.Join(dir, "knot")
	if err := os.MkdirAll(filepath.Join(kdir, "db"), 0o755); err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`server:
    listen: 127.0.0.1@%d
    rundir: %s
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: %s/db
control:
    listen: %s/knot.sock
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: %s
    file: "%%s.zone"
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: bench.test
`, port, kdir, kdir, kdir, dir)
	confPath := filepath.Join(kdir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	v, _ := exec.Command(knotd, "--version").Output()
	cmd := pinned(ctx, o.serverCPU, knotd, "-c", confPath)
	cmd.Stdout = mustCreate(filepath.Join(kdir, "knot.log"))
	cmd.Stderr = cmd.Stdout
	return cmd, strings.TrimSpace(string(v)), cmd.Start()
}

func startNSD(ctx context.Context, o options, dir string, port int) (*exec.Cmd, string, error) {
	nsd := lookPath("nsd")
	if nsd == "" {
		return nil, "", errors.New("nsd not installed (apt-get install nsd, or bench/dns/install-deps.sh)")
	}
	ndir := filepath.Join(dir, "nsd")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`server:
    ip-address: 127.0.0.1@%d
    server-count: 1
    zonesdir: %s
    zonelistfile: %s/zone.list
    database: ""
    pidfile: %s/nsd.pid
    xfrdfile: %s/xfrd.state
    xfrdir: %s
    logfile: %s/nsd.log
    username: ""
    verbosity: 0
    hide-version: yes
remote-control:
    control-enable: no
zone:
    name: bench.test
    zonefile: bench.test.zone
`, port, dir, ndir, ndir, ndir, ndir, ndir)
	if rrlBuilt(nsd) {
		conf = strings.Replace(conf, "    hide-version: yes\n", "    hide-version: yes\n    rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n", 1)
	}
	confPath := filepath.Join(ndir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	v, _ := exec.Command(nsd, "-v").CombinedOutput()
	version := strings.TrimSpace(strings.SplitN(string(v), "\n", 2)[0])
	cmd := pinned(ctx, o.serverCPU, nsd, "-d", "-c", confPath)
	cmd.Stdout = mustCreate(filepath.Join(ndir, "stdout.log"))
	cmd.Stderr = cmd.Stdout
	return cmd, version, cmd.Start()
}

// rrlBuilt reports whether nsd knows the rrl options (built with
// --enable-ratelimit, as Debian's is): its rate limit is on by default
// and would throttle a benchmark from one address.
func rrlBuilt(nsd string) bool {
	check := filepath.Join(filepath.Dir(nsd), "nsd-checkconf")
	f, err := os.CreateTemp("", "nsd-rrl-*.conf")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	f.WriteString("server:\n    rrl-ratelimit: 0\n")
	f.Close()
	return exec.Command(check, f.Name()).Run() == nil
}

func mustCreate(path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		panic(err)
	}
	return f
}

func stopCmd(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	// taskset execs the server, so the pid is the server's.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func waitReady(ctx context.Context, port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("bench.test.", dns.TypeSOA)
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var r *dns.Msg
		if r, _, err = c.Exchange(m, fmt.Sprintf("127.0.0.1:%d", port)); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no SOA answer within %v: %v", limit, err)
}

var (
	reQPS     = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	reLost    = regexp.MustCompile(`Queries lost:\s+\d+ \(([\d.]+)%\)`)
	reAvg     = regexp.MustCompile(`Average Latency \(s\):\s+([\d.]+) \(min [\d.]+, max ([\d.]+)\)`)
	reStdev   = regexp.MustCompile(`Latency StdDev \(s\):\s+([\d.]+)`)
	reRcodes  = regexp.MustCompile(`Response codes:\s+(.*)`)
	reVerbose = regexp.MustCompile(`^> (\S+) .* ([\d.]+)$`)
)

// dnsperfArgs are the dnsperf options of workload w against port.
func dnsperfArgs(dir string, port int, w workload) []string {
	args := []string{"-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", filepath.Join(dir, w.file), "-T", "1"}
	return append(args, w.extra...)
}

// throughput runs dnsperf as fast as it goes (4 sockets, up to 200
// queries outstanding) against port, and measures the CPU time that
// the server (process pid and its children) and dnsperf used.
func throughput(ctx context.Context, o options, dir string, port int, w workload, pid int) (sample, error) {
	before, busyBefore := treeCPU(pid), cpuBusy(o.serverCPUs)
	t0 := time.Now()
	cmd := pinned(ctx, o.loadgenCPU, "dnsperf", append(dnsperfArgs(dir, port, w), "-l", secs(o.duration), "-c", "4", "-q", "200")...)
	out, err := cmd.CombinedOutput()
	smp := sample{seconds: time.Since(t0).Seconds(), serverCPU: treeCPU(pid) - before, busy: cpuBusy(o.serverCPUs) - busyBefore}
	if err != nil {
		return smp, fmt.Errorf("dnsperf: %v: %s", err, lastLines(out, 5))
	}
	if ps := cmd.ProcessState; ps != nil {
		smp.loadgenCPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	s := string(out)
	smp.qps = atof(match(reQPS, s, 1))
	smp.lost = atof(match(reLost, s, 1))
	smp.avg = atof(match(reAvg, s, 1))
	smp.rcodes = match(reRcodes, s, 1)
	if smp.qps == 0 {
		return smp, fmt.Errorf("no queries per second in dnsperf's output: %s", lastLines(out, 5))
	}
	return smp, nil
}

// fixedRate runs dnsperf at o.rate queries per second, verbose, and
// returns the latency percentiles of every response.
func fixedRate(ctx context.Context, o options, dir string, port int, w workload) (latency, error) {
	var l latency
	cmd := pinned(ctx, o.loadgenCPU, "dnsperf", append(dnsperfArgs(dir, port, w), "-l", secs(o.latencyDur), "-c", "4", "-Q", strconv.Itoa(o.rate), "-v")...)
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return l, err
	}
	if err := cmd.Start(); err != nil {
		return l, err
	}
	var lat []float64
	var tail []string
	sc := bufio.NewScanner(outPipe)
	for sc.Scan() {
		line := sc.Text()
		if m := reVerbose.FindStringSubmatch(line); m != nil {
			lat = append(lat, atof(m[2]))
			continue
		}
		tail = append(tail, line)
	}
	if err := cmd.Wait(); err != nil {
		return l, fmt.Errorf("dnsperf -v: %v", err)
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return l, errors.New("no latencies from dnsperf -v")
	}
	q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	l.p50, l.p90, l.p99, l.p999, l.max = q(0.50), q(0.90), q(0.99), q(0.999), lat[len(lat)-1]
	l.lost = atof(match(reLost, strings.Join(tail, "\n"), 1))
	return l, nil
}

// parseCPUList parses a taskset CPU list: "0", "0,2", "0-3".
func parseCPUList(list string) (map[int]bool, error) {
	cpus := map[int]bool{}
	for _, part := range strings.Split(list, ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && found {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%q: want CPU numbers and ranges, comma-separated (0,2 or 0-3)", list)
		}
		for c := a; c <= b; c++ {
			cpus[c] = true
		}
	}
	return cpus, nil
}

// cpuBusy returns the seconds the CPUs in want have been busy, from /proc/stat: user, nice, system,
// irq and softirq time. Unlike a process's own CPU time, this counts
// the kernel's network work done for the server in softirq context
// (loopback delivery, ksoftirqd), which is not charged to the process,
// and also whatever else ran on those CPUs.
func cpuBusy(want map[int]bool) float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	const hz = 100 // USER_HZ
	ticks := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		c, err := strconv.Atoi(f[0][3:])
		if err != nil || !want[c] {
			continue
		}
		for _, i := range []int{1, 2, 3, 6, 7} { // user nice system irq softirq
			n, _ := strconv.Atoi(f[i])
			ticks += n
		}
	}
	return float64(ticks) / hz
}

// treeCPU returns the CPU seconds (user and system) used so far by
// process pid, its threads and its live descendants (NSD serves from a
// child), and by the children it has reaped.
func treeCPU(pid int) float64 {
	const hz = 100 // USER_HZ, the unit of /proc/*/stat times on Linux
	type proc struct{ ppid, ticks int }
	procs := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ticks := 0
		for _, i := range []int{11, 12} { // utime, stime
			n, _ := strconv.Atoi(f[i])
			ticks += n
		}
		if p == pid {
			for _, i := range []int{13, 14} { // cutime, cstime
				n, _ := strconv.Atoi(f[i])
				ticks += n
			}
		}
		procs[p] = proc{ppid, ticks}
	}
	total := 0
	for p, pr := range procs {
		for q := p; q > 1; q = procs[q].ppid {
			if q == pid {
				total += pr.ticks
				break
			}
			if _, ok := procs[q]; !ok {
				break
			}
		}
	}
	return float64(total) / hz
}

func secs(d time.Duration) string { return strconv.Itoa(max(1, int(d.Seconds()))) }

func match(re *regexp.Regexp, s string, i int) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[i]
	}
	return ""
}

func atof(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// failover starts dnsgeo with two regions whose health endpoints are
// HTTP servers in this process, waits a random fraction of the probe
// interval, kills the preferred region's endpoint, and measures the
// wall-clock time until dnsgeo's answers avoid it (and keep avoiding it).
// Defaults: interval 2s, timeout 1s, fall 2.
func failover(ctx context.Context, dir, bin string, run int) (time.Duration, error) {
	type endpoint struct {
		srv  *http.Server
		addr string
	}
	startEndpoint := func() (*endpoint, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })}
		go s.Serve(ln)
		return &endpoint{s, ln.Addr().String()}, nil
	}
	a, err := startEndpoint()
	if err != nil {
		return 0, err
	}
	defer a.srv.Close()
	b, err := startEndpoint()
	if err != nil {
		return 0, err
	}
	defer b.srv.Close()
	fdir := filepath.Join(dir, fmt.Sprintf("failover%d", run))
	os.MkdirAll(fdir, 0o755)
	cfg := fmt.Sprintf(`zone: bench.test.
soa: {ns: ns1.bench.test., mbox: hostmaster.bench.test.}
ns: [ns1.bench.test.]
routed: [cdn]
regions:
  near: {a: [192.0.2.1], health: "http://%s/healthz"}
  far: {a: [192.0.2.2], health: "http://%s/healthz"}
rrl: {enabled: false}
`, a.addr, b.addr)
	os.WriteFile(filepath.Join(fdir, "dnsgeo.yaml"), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(fdir, "latency.csv"), []byte("prefix,region,rtt_ms\n127.0.0.0/8,near,1\n127.0.0.0/8,far,50\n"), 0o644)
	port := freePort()
	cmd := exec.CommandContext(ctx, bin, "-config", filepath.Join(fdir, "dnsgeo.yaml"), "-latency", filepath.Join(fdir, "latency.csv"),
		"-listen", fmt.Sprintf("127.0.0.1:%d", port), "-admin", "")
	cmd.Stderr = mustCreate(filepath.Join(fdir, "dnsgeo.log"))
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer stopCmd(cmd)

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	ask := func() (string, error) {
		m := new(dns.Msg)
		m.SetQuestion("cdn.bench.test.", dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return "", err
		}
		if len(r.Answer) != 1 {
			return "", fmt.Errorf("answer %v", r.Answer)
		}
		return r.Answer[0].(*dns.A).A.String(), nil
	}
	if err := waitReady(ctx, port, 10*time.Second); err != nil {
		return 0, err
	}
	if got, err := ask(); err != nil || got != "192.0.2.1" {
		return 0, fmt.Errorf("before failure: %q %v", got, err)
	}
	// Fail at a random point of the probe cycle.
	time.Sleep(time.Duration(rand.Int64N(int64(2 * time.Second))))
	failedAt := time.Now()
	a.srv.Close() // the region's edge dies: connections refused
	for time.Since(failedAt) < 30*time.Second {
		got, err := ask()
		if err == nil && got == "192.0.2.2" {
			took := time.Since(failedAt)
			// Every answer after that avoids it.
			for range 20 {
				if g, err := ask(); err != nil || g != "192.0.2.2" {
					return 0, fmt.Errorf("answer went back to %q (%v) after failover", g, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			return took, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, errors.New("no failover within 30s")
}
