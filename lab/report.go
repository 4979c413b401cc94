package lab

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Result is one scenario's figures.
type Result struct {
	Scenario string // one of Scenarios
	Variant  string // "fallback on", "all regions up", …; "" when there is one
	From, To time.Duration
	Figures  []Figure
	Notes    []string // what the report shows beside the table (the CLI's words on a failure)
	Requests int      // browsers' requests in the scenario
}

// Figure is one measured value, and its goal when it has one.
type Figure struct {
	Name, Value string
	Goal        string // "" when the figure is reported, not judged
	Met         bool   // meaningful when Goal is set
}

// Title is the scenario's name and variant.
func (r *Result) Title() string {
	if r.Variant == "" {
		return r.Scenario
	}
	return r.Scenario + " (" + r.Variant + ")"
}

func (r *Result) figure(name, value string) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: value})
}

func (r *Result) goal(name, value, goal string, met bool) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: value, Goal: goal, Met: met})
}

func (r *Result) note(s string) { r.Notes = append(r.Notes, s) }

// Missed returns the figures whose goal was not met.
func (r *Result) Missed() []Figure {
	var out []Figure
	for _, f := range r.Figures {
		if f.Goal != "" && !f.Met {
			out = append(out, f)
		}
	}
	return out
}

// Line is the scenario's one line on stdout: its title, its headline
// figures and goals, ok or MISSED.
func (r *Result) Line() string {
	var parts []string
	for _, f := range r.Figures {
		if f.Goal == "" {
			continue
		}
		mark := "ok"
		if !f.Met {
			mark = "MISSED"
		}
		parts = append(parts, fmt.Sprintf("%s %s (goal %s) %s", f.Name, f.Value, f.Goal, mark))
	}
	status := "ok"
	if len(r.Missed()) > 0 {
		status = "MISSED"
	}
	return fmt.Sprintf("%-40s %-6s %s", r.Title()+":", status, strings.Join(parts, "; "))
}

// open starts a scenario's result and its span on the timeline.
func (w *World) open(scenario, variant string) *Result {
	res := &Result{Scenario: scenario, Variant: variant}
	w.rec.begin(res.Title())
	res.From = w.rec.now()
	w.logf("scenario %s", res.Title())
	return res
}

// close ends the scenario's span and returns its requests.
func (w *World) close(res *Result) []record {
	w.rec.end()
	res.To = w.rec.now()
	w.results = append(w.results, res)
	return w.rec.between(res.From, res.To)
}

// Report is a run's results: what was built, the measured latency
// table, each scenario's figures, and every request for the chart.
type Report struct {
	Date       time.Time
	Version    string // the edge's (git describe)
	Mode       Mode
	Loopback   string // why the run used loopback mode, when it did
	Options    Options
	Regions    []string
	Table      [][]time.Duration // measured: [browsers' region][region]
	Prefixes   []string          // the browsers' networks, as the table has them
	DNSConfig  string            // the dnsgeo config, as served
	Results    []*Result
	Records    []record
	Paths      []string // the objects' paths, by record.Object
	Spans      []span
	Took       time.Duration
	EdgeFlags  []string // one edge's flags, as an example
	Interrupts string   // why the run ended early, when it did
	// Released is when the purge CLI said each release was on every
	// edge: a request started later must not get an older version.
	Released []Released
	// Dir is the directory the run wrote (removed at its end), and Pids
	// every process it started: for tests that check nothing is left.
	Dir  string
	Pids []int
}

// Released is one release: its version, and when the CLI said done;
// with the region that was cut off during its purge, and when that
// region's link came back.
type Released struct {
	Version int
	At      time.Duration
	CutOff  int           // region index; -1: none
	Healed  time.Duration // when CutOff's link came back
}

// Expected is the oldest version a request started at t may get.
func (r *Report) Expected(t time.Duration) int {
	v := 1
	for _, d := range r.Released {
		if d.At <= t {
			v = max(v, d.Version)
		}
	}
	return v
}

// RequestsStats counts the browsers' requests of the run: all, failed,
// with wrong bytes, and with a version older than Expected: answered by
// an edge the purge reached (old), or by a region that was cut off
// during the purge, after its link came back (oldHealed: it had to
// catch up from the journal by itself).
func (r *Report) RequestsStats() (all, failed, wrong, old, oldHealed int) {
	for _, rec := range r.Records {
		all++
		if !rec.ok() {
			failed++
		}
		if strings.HasPrefix(rec.Err, "wrong bytes") {
			wrong++
		}
		if rec.Version == 0 || rec.Version >= r.Expected(rec.Start) {
			continue
		}
		healed := false
		for _, d := range r.Released {
			if d.CutOff >= 0 && rec.Region == d.CutOff && rec.Start >= d.Healed && d.Version > rec.Version {
				healed = true
			}
		}
		if healed {
			oldHealed++
		} else {
			old++
		}
	}
	return
}

// Missed reports whether any goal was missed.
func (r *Report) Missed() bool {
	for _, res := range r.Results {
		if len(res.Missed()) > 0 {
			return true
		}
	}
	return false
}

func (w *World) report() *Report {
	recs, spans := w.rec.all()
	rep := &Report{Date: w.rec.start, Version: w.bins.version, Mode: w.net.mode, Loopback: w.why, Options: w.o,
		Regions: w.net.regions, Table: w.table, Results: w.results, Records: recs, Spans: spans, Took: w.rec.now(),
		Released: w.doneAt, Dir: w.dir, Pids: w.procs.pids()}
	for k := range w.net.regions {
		rep.Prefixes = append(rep.Prefixes, w.net.clientPrefix(k).String())
	}
	for _, o := range w.objects {
		rep.Paths = append(rep.Paths, o.path)
	}
	rep.DNSConfig = strings.ReplaceAll(w.dnsgeoConfig(), w.dir, "$RUN")
	if es := w.allEdges(); len(es) > 0 {
		for _, a := range es[0].args {
			rep.EdgeFlags = append(rep.EdgeFlags, strings.ReplaceAll(a, w.dir, "$RUN"))
		}
	}
	return rep
}

// Save writes the report's Markdown and PNG chart into dir, named by
// date and version, and returns their paths.
func (r *Report) Save(dir string) (md, png string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	base := "lab-" + r.Date.UTC().Format("2006-01-02")
	if v := strings.Trim(strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			return c
		}
		return -1
	}, r.Version), "-."); v != "" {
		base += "-" + v
	}
	md, png = filepath.Join(dir, base+".md"), filepath.Join(dir, base+".png")
	var img bytes.Buffer
	if err := r.WritePNG(&img); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(png, img.Bytes(), 0o644); err != nil {
		return "", "", err
	}
	var doc bytes.Buffer
	if err := r.WriteMarkdown(&doc, filepath.Base(png)); err != nil {
		return "", "", err
	}
	return md, png, os.WriteFile(md, doc.Bytes(), 0o644)
}

// WriteMarkdown writes the report; chart is the PNG's file name, beside
// it.
func (r *Report) WriteMarkdown(out io.Writer, chart string) error {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "# edge-lab report, %s\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "The whole CDN on one machine (`make lab`, `go run ./cmd/edge-lab`): edge %s, %d regions (%s), %d edge(s) per region, %d browsers per region, %s per scenario; dnsgeo TTL %s, probes every %s; edges' `-purge-poll` %s. The run took %s.\n\n",
		orDev(r.Version), len(r.Regions), strings.Join(r.Regions, ", "), o.EdgesPerRegion, o.Clients, o.Duration, o.DNSTTL, o.HealthInterval, o.PurgePoll, r.Took.Round(time.Second))
	if r.Interrupts != "" {
		fmt.Fprintf(&b, "**The run ended early: %s.** The scenarios below are those that finished.\n\n", r.Interrupts)
	}
	r.writeMode(&b)
	b.WriteString("## Summary\n\n| scenario | figure | value | goal | |\n|---|---|---|---|---|\n")
	for _, res := range r.Results {
		for _, f := range res.Figures {
			if f.Goal == "" {
				continue
			}
			mark := "ok"
			if !f.Met {
				mark = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", res.Title(), f.Name, f.Value, f.Goal, mark)
		}
	}
	fmt.Fprintf(&b, "\n![requests per second by the region that answered, failures in red](%s)\n\n", chart)
	b.WriteString("Requests per second by the region that answered them (one line per region), failed requests in red below the axis, scenarios shaded, the lab's actions as ticks.\n\n")
	b.WriteString("## Latency\n\nThe round trips the lab injects, and the latency table dnsgeo loaded, measured by the lab before dnsgeo started: from each region's browsers, the median of five connections to each region, timed from the connect to the end of the TLS handshake (through the lab's user-space proxies a TCP connect completes locally, so the handshake's round trip carries the path's latency).\n\n")
	b.WriteString("| browsers of | network |")
	for _, reg := range r.Regions {
		fmt.Fprintf(&b, " %s: injected / measured |", reg)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(r.Regions)) + "\n")
	for k, from := range r.Regions {
		fmt.Fprintf(&b, "| %s | %s |", from, r.Prefixes[k])
		for j, to := range r.Regions {
			m := "–"
			if k < len(r.Table) {
				m = ms(r.Table[k][j])
			}
			fmt.Fprintf(&b, " %s / %s |", ms(RTT(from, to)), m)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n## Scenarios\n\n")
	for _, res := range r.Results {
		fmt.Fprintf(&b, "### %s\n\n%s From %s to %s of the run, %d requests.\n\n", res.Title(), scenarioText[res.Scenario], secs(res.From), secs(res.To), res.Requests)
		for _, sp := range r.Spans {
			if sp.Name == res.Title() && len(sp.Events) > 0 {
				b.WriteString("What the lab did:\n\n")
				for _, e := range sp.Events {
					fmt.Fprintf(&b, "- +%s: %s\n", secs(e.At-sp.From), e.Label)
				}
				b.WriteString("\n")
			}
		}
		b.WriteString("| figure | value | goal |\n|---|---|---|\n")
		for _, f := range res.Figures {
			goal := f.Goal
			if goal != "" && !f.Met {
				goal += " **missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", f.Name, f.Value, goal)
		}
		b.WriteString("\n")
		fails := failureKinds(r.Records, res.From, res.To)
		if fails != "" {
			fmt.Fprintf(&b, "Failed requests by cause: %s.\n\n", fails)
		}
		for _, n := range res.Notes {
			b.WriteString(n + "\n\n")
		}
	}
	b.WriteString("## How the world was built\n\n")
	b.WriteString("- S3: versitygw with a `primary` and a `replica` bucket holding the same objects, and a `control` bucket for the certificate store, the session-ticket keys (one prefix per region) and the purge journal. Each edge reaches S3 through its own counting proxy, which is where S3 requests are counted and S3 fails on cue.\n")
	b.WriteString("- ACME: Pebble, with challenge validation always passing (the lab does not route Pebble's validation requests to the edges); orders, finalization, the certificates and the shared store with its lease are real.\n")
	b.WriteString("- Objects: `/widget/login.js` (174,827 bytes of minified JavaScript, `max-age=3600`, tags `widget release-N`) and four tenant configs `/tenants/*.json` (about 1 KB, `max-age=10`, tags `tenants release-N`). Every version's bytes are known to the browsers, which check each body after decoding.\n")
	fmt.Fprintf(&b, "- Browsers: each its own DNS cache (the answer's TTL) and connection pool (HTTP/2); `Accept-Encoding: gzip, deflate, br, zstd`, `Origin: %s`; addresses tried in order, %s per address for TCP and TLS; DNS servers nearest first, %s each; a request fails after %s; a page load (the widget, then the tenant config) every ~%s. They do not cache responses: every load reaches the CDN.\n", pageOrigin, connectTimeout, dnsTimeout, requestTimeout, thinkTime)
	b.WriteString("- One edge's flags:\n\n```\nedge " + strings.Join(quoteArgs(r.EdgeFlags), " ") + "\n```\n\n")
	b.WriteString("- The dnsgeo config every region's server loaded (the `fallback` line as the last scenario left it):\n\n```yaml\n" + r.DNSConfig + "```\n")
	_, err := io.WriteString(out, b.String())
	return err
}

func (r *Report) writeMode(b *strings.Builder) {
	if r.Mode == ModeNetns {
		b.WriteString("Mode: **network namespaces**. Each region is a namespace with a veth on a bridge (its link is what region-partition cuts), and each region's browsers are a namespace of their own; edges, dnsgeo, versitygw and Pebble run as separate processes. Latency is added in user space (netem does not work on this kernel): toxiproxy's latency toxic on every TCP path between namespaces, a delayer for DNS over UDP, each in the namespace it starts from.\n\n")
		return
	}
	fmt.Fprintf(b, "Mode: **loopback addresses** (no network namespaces here: %s). Every region has its own loopback addresses (127.0.1.x, 127.0.2.x, …) in one namespace, and the browsers reach each region through the lab's latency proxies. What this mode cannot show:\n\n", orDev(r.Loopback))
	b.WriteString("- A partition is the lab's proxies into the region hanging (and its DNS datagrams dropped), not a link going down: connections already open see their bytes dropped rather than held.\n")
	b.WriteString("- dnsgeo's health probes and the edges' S3 requests travel without the matrix's latency.\n")
	b.WriteString("- Nothing stops a process from reaching another region's real address directly; only the lab's own traffic is routed through the proxies.\n\n")
}

var scenarioText = map[string]string{
	Steady:          "Traffic with nothing wrong: every region's browsers should be answered by their lowest-RTT region (their own).",
	RegionLoss:      "Every process of the first region (its edges and its dnsgeo) is killed mid-traffic, then started again.",
	RegionPartition: "The first region's link goes down mid-traffic (connections hang rather than being refused), then comes back.",
	S3Loss:          "The primary bucket fails (503 at every edge's S3 endpoint), then the replica too, then both come back. Every object the browsers ask for is cached.",
	Release:         "A new version of every object is uploaded to both buckets, then `purge tag release-N` and `purge url … --verify --origin …` through the journal, then `purge warm`.",
	ColdStart:       "Every edge is killed, its disk cache deleted, and the shared certificate store and ticket keys emptied; then every edge starts at once, under traffic.",
}

// failureKinds summarizes failed requests in [from, to) by cause.
func failureKinds(recs []record, from, to time.Duration) string {
	count := map[string]int{}
	var order []string
	for _, r := range recs {
		if r.Start < from || r.Start >= to || r.ok() {
			continue
		}
		if count[r.Err] == 0 {
			order = append(order, r.Err)
		}
		count[r.Err]++
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%d × %s", count[k], k))
	}
	return strings.Join(parts, "; ")
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "?&* ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func orDev(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// WriteCSV writes every request of the run, one per line, for analysis
// beyond the report: times in seconds since the run began, the
// browser's region and number, the object, the region that answered
// ("" for none), the position of the address that answered in the DNS
// answer, the status, the version served, whether it was stale, and
// the error.
func (r *Report) WriteCSV(out io.Writer) error {
	cw := csv.NewWriter(out)
	cw.Write([]string{"start_s", "end_s", "browsers_of", "browser", "path", "answered_by", "address", "status", "version", "stale", "error"})
	name := func(k int) string {
		if k < 0 || k >= len(r.Regions) {
			return ""
		}
		return r.Regions[k]
	}
	for _, rec := range r.Records {
		cw.Write([]string{
			strconv.FormatFloat(rec.Start.Seconds(), 'f', 3, 64), strconv.FormatFloat(rec.End.Seconds(), 'f', 3, 64),
			name(rec.Pop), strconv.Itoa(rec.Browser), r.Paths[rec.Object], name(rec.Region), strconv.Itoa(rec.Addr),
			strconv.Itoa(rec.Status), strconv.Itoa(rec.Version), strconv.FormatBool(rec.Stale), rec.Err,
		})
	}
	cw.Flush()
	return cw.Error()
}
