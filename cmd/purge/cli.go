package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/journal"
	"github.com/edgecdn/edge/store"
)

// progressFrom is the number of edges from which progress lines are
// printed (to stderr) as answers come in: about ten per fan-out.
const progressFrom = 20

// maxAnswer bounds what is read of an edge's answer.
const maxAnswer = 4 << 20

// cli is one run of a command.
type cli struct {
	o       *options
	stdout  io.Writer
	stderr  io.Writer
	now     func() time.Time
	journal *journal.Journal
	// unlisted says why some registered edges are unknown (registry
	// entries that could not be read): the run cannot say "every edge".
	unlisted string

	mu         sync.Mutex
	transports map[string]*http.Transport // by TLS server name ("" for the default)
}

func newCLI(o *options, stdout, stderr io.Writer) *cli {
	return &cli{o: o, stdout: stdout, stderr: stderr, now: time.Now, transports: map[string]*http.Transport{}}
}

// outcome is what one edge answered one request.
type outcome struct {
	Name   string `json:"name,omitempty"`
	Region string `json:"region,omitempty"`
	URL    string `json:"url"`
	// Status: "ok" (confirmed), "catch-up" (unreachable, registered in the
	// journal: it applies the purge on its return), "failed".
	Status     string  `json:"status"`
	Entries    int64   `json:"entries"`
	Pending    bool    `json:"pending,omitempty"`
	Duplicate  bool    `json:"duplicate,omitempty"`
	Warning    string  `json:"warning,omitempty"`
	LatencyMS  float64 `json:"latency_ms"`
	Attempts   int     `json:"attempts"`
	Error      string  `json:"error,omitempty"`
	HTTPStatus int     `json:"http_status,omitempty"`

	// Answer is the edge's own answer, for warm and status.
	Answer json.RawMessage `json:"answer,omitempty"`
	answer json.RawMessage
	target *target
}

const (
	statusOK      = "ok"
	statusCatchUp = "catch-up"
	statusFailed  = "failed"
)

// catchUpText is what an unreachable registered edge's line says.
const catchUpText = "will apply on return (journal)"

// requestReport is one request (one host) and every edge's outcome.
type requestReport struct {
	ID       string            `json:"id,omitempty"`
	Host     string            `json:"host,omitempty"`
	Request  edge.PurgeRequest `json:"request"`
	Journal  string            `json:"journal,omitempty"` // "written", or why not
	Outcomes []*outcome        `json:"edges"`
}

// report is the --json document.
type report struct {
	Command  string           `json:"command"`
	Mode     string           `json:"mode,omitempty"`
	Requests []*requestReport `json:"requests"`
	Verify   []verifyResult   `json:"verify,omitempty"`
	Notes    []string         `json:"notes,omitempty"`
	Summary  summary          `json:"summary"`
	OK       bool             `json:"ok"`
	Exit     int              `json:"exit_status"`
}

type summary struct {
	Edges     int      `json:"edges"`
	Confirmed int      `json:"confirmed"`
	CatchUp   int      `json:"catch_up"`
	Failed    int      `json:"failed"`
	NotOK     []string `json:"not_confirmed,omitempty"`
}

func (c *cli) run(ctx context.Context, reqs []edge.PurgeRequest) int {
	rep := &report{Command: c.o.command}
	if c.o.journal != "" {
		st, err := store.Open(ctx, c.o.journal)
		if err != nil {
			fmt.Fprintf(c.stderr, "purge: --journal: %v\n", err)
			return exitUsage
		}
		c.journal = journal.New(st)
	}
	targets, notes, err := c.targets(ctx)
	if err != nil {
		fmt.Fprintf(c.stderr, "purge: %v\n", err)
		return exitNotAll
	}
	rep.Notes = notes
	if !c.o.json {
		for _, n := range notes {
			fmt.Fprintf(c.stderr, "purge: %s\n", n)
		}
	}
	if len(targets) == 0 {
		fmt.Fprintln(c.stderr, "purge: no edge to send to (none given, none found by DNS, none in the registry)")
		return exitNoTarget
	}
	purging := c.o.command != "warm" && c.o.command != "status"
	if purging {
		rep.Mode = "soft"
		if c.o.hard {
			rep.Mode = "hard"
		}
	}
	journalOK := true
	for _, req := range reqs {
		rr := &requestReport{Host: req.Host}
		switch c.o.command {
		case "warm":
			rr.Request = req
			body, _ := json.Marshal(struct {
				URLs []string `json:"urls"`
				Host string   `json:"host,omitempty"`
			}{req.URLs, req.Host})
			rr.Outcomes = c.fanout(ctx, targets, "POST", "/warm", body, false)
			for _, oc := range rr.Outcomes {
				c.checkWarm(oc)
				oc.Answer = oc.answer
			}
		case "status":
			rr.Request = req
			q := url.Values{"path": {req.URLs[0]}}
			if req.Host != "" {
				q.Set("host", req.Host)
			}
			rr.Outcomes = c.fanout(ctx, targets, "GET", "/cache?"+q.Encode(), nil, false)
			for _, oc := range rr.Outcomes {
				oc.Answer = oc.answer
			}
		default:
			rr.ID = journal.NewID(c.now())
			req.ID = rr.ID
			rr.Request = req
			if c.journal != nil {
				if err := c.record(ctx, req); err != nil {
					journalOK = false
					rr.Journal = err.Error()
					fmt.Fprintf(c.stderr, "purge: writing the journal failed: %v: sending to the edges anyway; edges that are down will NOT catch up\n", err)
				} else {
					rr.Journal = "written"
				}
			}
			body, _ := json.Marshal(req)
			rr.Outcomes = c.fanout(ctx, targets, "POST", "/purge", body, c.journal != nil && rr.Journal == "written")
		}
		rep.Requests = append(rep.Requests, rr)
	}
	if c.o.verify {
		rep.Verify = c.verify(ctx, reqs, rep.Requests)
	}
	if purging && c.journal != nil && journalOK {
		c.compact(ctx)
	}
	return c.finish(rep, journalOK)
}

// record writes req to the journal.
func (c *cli) record(ctx context.Context, req edge.PurgeRequest) error {
	mode := journal.Soft
	if req.Soft != nil && !*req.Soft {
		mode = journal.Hard
	}
	by := ""
	if u, err := user.Current(); err == nil {
		by = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		by += "@" + h
	}
	t, _ := journal.ParseID(req.ID)
	r := journal.Record{ID: req.ID, Time: t, URLs: req.URLs, Prefixes: req.Prefixes, Tags: req.Tags, All: req.All, Host: req.Host, Mode: mode, By: by}
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	return c.journal.Append(ctx, r)
}

// compact deletes the journal's records older than --retention, after a
// purge; a failure is only reported (the next purge tries again).
func (c *cli) compact(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*c.o.timeout)
	defer cancel()
	records, edges, err := c.journal.Compact(ctx, c.now().Add(-c.o.retention))
	switch {
	case err != nil:
		fmt.Fprintf(c.stderr, "purge: compacting the journal failed (the next purge tries again): %v\n", err)
	case records+edges > 0 && !c.o.json:
		fmt.Fprintf(c.stderr, "purge: journal compacted: %d records and %d registry entries older than %s deleted\n", records, edges, c.o.retention)
	}
}

// transport returns the HTTP transport for a TLS server name.
func (c *cli) transport(serverName string) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tr, ok := c.transports[serverName]; ok {
		return tr
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	tr.DisableCompression = true
	if serverName != "" {
		tr.TLSClientConfig = &tls.Config{ServerName: serverName}
	}
	c.transports[serverName] = tr
	return tr
}

// fanout sends one request to every target, --concurrency at a time,
// each within --timeout with up to --retries retries, and classifies the
// answers. journalWritten: unreachable registered edges will catch up.
func (c *cli) fanout(ctx context.Context, targets []*target, method, path string, body []byte, journalWritten bool) []*outcome {
	out := make([]*outcome, len(targets))
	sem := make(chan struct{}, c.o.concurrency)
	var wg sync.WaitGroup
	var answered atomic.Int64
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = c.send(ctx, t, method, path, body, journalWritten)
			c.progress(answered.Add(1), len(targets))
		}()
	}
	wg.Wait()
	return out
}

// progress prints "N/M edges answered" about ten times over a fan-out
// to many edges.
func (c *cli) progress(n int64, total int) {
	if total < progressFrom || c.o.json {
		return
	}
	if step := int64(total+9) / 10; n%step == 0 || n == int64(total) {
		c.mu.Lock()
		fmt.Fprintf(c.stderr, "purge: %d/%d edges answered\n", n, total)
		c.mu.Unlock()
	}
}

// send does one request to one edge, with retries.
func (c *cli) send(ctx context.Context, t *target, method, path string, body []byte, journalWritten bool) *outcome {
	oc := &outcome{URL: t.URL, Name: t.Name, Region: t.Region, target: t}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	client := &http.Client{Transport: c.transport(t.serverName)}
	var lastErr error
	for attempt := 0; ; attempt++ {
		oc.Attempts = attempt + 1
		req, err := http.NewRequestWithContext(ctx, method, t.URL+path, bytes.NewReader(body))
		if err != nil {
			lastErr = err
			break
		}
		req.Header.Set("Authorization", "Bearer "+c.o.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		var answer []byte
		if err == nil {
			answer, err = io.ReadAll(io.LimitReader(res.Body, maxAnswer))
			res.Body.Close()
		}
		retryAfter := time.Duration(0)
		switch {
		case err != nil:
			lastErr = err
		case res.StatusCode == http.StatusOK:
			oc.HTTPStatus = res.StatusCode
			oc.LatencyMS = ms(time.Since(start))
			oc.Status = statusOK
			oc.answer = answer
			c.readAnswer(oc, answer)
			return oc
		default:
			oc.HTTPStatus = res.StatusCode
			lastErr = fmt.Errorf("%s: %s", res.Status, errorText(answer))
			if res.StatusCode != http.StatusTooManyRequests && res.StatusCode < 500 {
				// The edge refused the request itself (401, 403, 400):
				// asking again changes nothing.
				oc.LatencyMS = ms(time.Since(start))
				oc.Status, oc.Error = statusFailed, lastErr.Error()
				return oc
			}
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
				retryAfter = time.Duration(s) * time.Second
			}
		}
		if attempt >= c.o.retries || ctx.Err() != nil {
			break
		}
		// Jittered exponential backoff: 200 ms, 400 ms, ... (or the
		// edge's Retry-After), within the edge's --timeout.
		wait := time.Duration(float64(200*time.Millisecond<<attempt) * (0.5 + rand.Float64()))
		wait = max(wait, retryAfter)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
	}
	oc.LatencyMS = ms(time.Since(start))
	oc.Error = lastErr.Error()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		oc.Error = fmt.Sprintf("no answer within --timeout %s: %v", c.o.timeout, lastErr)
	}
	oc.Status = statusFailed
	if journalWritten && t.Registered {
		oc.Status = statusCatchUp
	}
	return oc
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// errorText is an edge's {"error": ...} answer, or the answer's start.
func errorText(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// readAnswer takes the edge's identity and counts from its answer.
func (c *cli) readAnswer(oc *outcome, answer []byte) {
	var a struct {
		Name      string `json:"name"`
		Region    string `json:"region"`
		Entries   int64  `json:"entries"`
		Pending   bool   `json:"pending"`
		Duplicate bool   `json:"duplicate"`
		Warning   string `json:"warning"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		oc.Status, oc.Error = statusFailed, "the answer is not the edge's JSON: "+err.Error()
		return
	}
	if a.Name != "" {
		oc.Name, oc.Region = a.Name, a.Region
		if oc.target.Name == "" {
			oc.target.Name, oc.target.Region = a.Name, a.Region
		}
	}
	oc.Entries, oc.Pending, oc.Duplicate, oc.Warning = a.Entries, a.Pending, a.Duplicate, a.Warning
}

// checkWarm fails an edge whose warm answer has a URL that could not be
// fetched.
func (c *cli) checkWarm(oc *outcome) {
	if oc.Status != statusOK {
		return
	}
	var a struct {
		URLs []struct {
			URL    string `json:"url"`
			Result string `json:"result"`
			Error  string `json:"error"`
		} `json:"urls"`
	}
	if json.Unmarshal(oc.answer, &a) != nil {
		return
	}
	var bad []string
	for _, u := range a.URLs {
		if u.Result == "error" || u.Result == "stale" {
			bad = append(bad, u.URL+": "+u.Error)
		}
	}
	oc.Entries = int64(len(a.URLs) - len(bad))
	if len(bad) > 0 {
		oc.Status, oc.Error = statusFailed, strings.Join(bad, "; ")
	}
}

// finish prints the report and returns the exit status.
func (c *cli) finish(rep *report, journalOK bool) int {
	// An edge is confirmed when it confirmed every request.
	type agg struct {
		label  string
		status string
		errs   []string
	}
	var order []string
	edges := map[string]*agg{}
	for _, rr := range rep.Requests {
		for _, oc := range rr.Outcomes {
			a, ok := edges[oc.URL]
			if !ok {
				a = &agg{status: statusOK}
				edges[oc.URL] = a
				order = append(order, oc.URL)
			}
			a.label = oc.target.label()
			switch {
			case oc.Status == statusFailed:
				a.status = statusFailed
				a.errs = append(a.errs, oc.Error)
			case oc.Status == statusCatchUp && a.status == statusOK:
				a.status = statusCatchUp
				a.errs = append(a.errs, oc.Error)
			}
		}
	}
	verified := true
	for _, v := range rep.Verify {
		if !v.OK {
			verified = false
			if a, ok := edges[v.URL]; ok && a.status == statusOK {
				a.status = statusFailed
			}
		}
	}
	s := &rep.Summary
	s.Edges = len(order)
	if c.unlisted != "" && !c.o.allowCatch {
		s.NotOK = append(s.NotOK, c.unlisted)
	}
	for _, u := range order {
		a := edges[u]
		switch a.status {
		case statusOK:
			s.Confirmed++
		case statusCatchUp:
			s.CatchUp++
			if !c.o.allowCatch {
				s.NotOK = append(s.NotOK, a.label+" ("+catchUpText+")")
			}
		default:
			s.Failed++
			s.NotOK = append(s.NotOK, a.label+": "+strings.Join(a.errs, "; "))
		}
	}
	rep.OK = len(s.NotOK) == 0 && journalOK && verified
	rep.Exit = exitOK
	if !rep.OK {
		rep.Exit = exitNotAll
	}
	if c.o.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(c.stderr, "purge: writing the report: %v\n", err)
			return exitNotAll
		}
		return rep.Exit
	}
	c.printLines(rep)
	return rep.Exit
}

// printLines prints one line per edge and request, then the summary.
func (c *cli) printLines(rep *report) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, rr := range rep.Requests {
		if len(rep.Requests) > 1 || rr.ID != "" {
			what := rr.ID
			if rr.Host != "" {
				what += " (host " + rr.Host + ")"
			}
			if rr.Journal != "" {
				what += " journal: " + rr.Journal
			}
			fmt.Fprintf(tw, "# %s %s\n", c.o.command, strings.TrimSpace(what))
		}
		for _, oc := range rr.Outcomes {
			name, region := oc.Name, oc.Region
			if name == "" {
				name = oc.URL
			}
			if region == "" {
				region = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, region, c.statusText(oc), c.detail(oc), fmtLatency(oc.LatencyMS))
		}
	}
	tw.Flush()
	for _, v := range rep.Verify {
		if !v.OK {
			fmt.Fprintf(c.stdout, "verify: %s: %s\n", v.label(), v.Problem)
		}
	}
	s := rep.Summary
	line := fmt.Sprintf("%s: %d edges: %d confirmed", c.o.command, s.Edges, s.Confirmed)
	if s.CatchUp > 0 {
		line += fmt.Sprintf(", %d %s", s.CatchUp, catchUpText)
		if c.o.allowCatch {
			line += " (allowed)"
		}
	}
	if s.Failed > 0 {
		line += fmt.Sprintf(", %d failed", s.Failed)
	}
	if len(rep.Verify) > 0 {
		ok := 0
		for _, v := range rep.Verify {
			if v.OK {
				ok++
			}
		}
		line += fmt.Sprintf("; verified %d/%d", ok, len(rep.Verify))
	}
	fmt.Fprintln(c.stdout, line)
	if len(s.NotOK) > 0 {
		fmt.Fprintln(c.stderr, "purge: not confirmed by:")
		for _, n := range s.NotOK {
			fmt.Fprintf(c.stderr, "  %s\n", n)
		}
	}
}

func (c *cli) statusText(oc *outcome) string {
	switch oc.Status {
	case statusCatchUp:
		return catchUpText
	case statusOK:
		if c.o.command == "status" {
			var e edge.CacheEntry
			if err := json.Unmarshal(oc.answer, &e); err != nil {
				return "unreadable answer"
			}
			return e.Status
		}
		if oc.Duplicate {
			return "ok (already applied)"
		}
	}
	return oc.Status
}

func (c *cli) detail(oc *outcome) string {
	if oc.Status != statusOK {
		return oc.Error
	}
	switch c.o.command {
	case "status":
		var e edge.CacheEntry
		if err := json.Unmarshal(oc.answer, &e); err != nil {
			return err.Error()
		}
		var parts []string
		if e.ETag != "" {
			parts = append(parts, "etag "+e.ETag)
		}
		if e.Expires != nil {
			parts = append(parts, "expires "+e.Expires.Format(time.RFC3339))
		}
		if e.Purged != "" {
			parts = append(parts, e.Purged+"-purged")
		}
		var cs []string
		for _, v := range e.Variants {
			cs = append(cs, v.Coding)
		}
		if len(cs) > 0 {
			parts = append(parts, "variants "+strings.Join(cs, ","))
		}
		return strings.Join(parts, "  ")
	case "warm":
		return fmt.Sprintf("%d urls warmed", oc.Entries)
	}
	d := fmt.Sprintf("%d entries", oc.Entries)
	if oc.Pending {
		d += " so far (still applying)"
	}
	if oc.Warning != "" {
		d += "; " + oc.Warning
	}
	return d
}

func fmtLatency(msec float64) string {
	if msec >= 1000 {
		return strconv.FormatFloat(msec/1000, 'f', 1, 64) + "s"
	}
	return strconv.FormatFloat(msec, 'f', 0, 64) + "ms"
}
