package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// baseline is the quiet stretch before a scenario's fault.
func (w *World) baseline() time.Duration {
	return min(max(w.o.Duration/5, 2*time.Second), 5*time.Second)
}

// settle is how long a scenario watches after its fault is undone.
func (w *World) settle() time.Duration {
	return min(max(w.o.Duration/10, 2*time.Second), 5*time.Second)
}

// failoverBound is the time by which every browser of a failed region
// should have been answered by another: dnsgeo's documented bound on
// the time until every client avoids it (interval × fall + timeout +
// TTL, dnsgeo/README.md "Failover timing"), plus what a browser adds
// before it asks again: a DNS timeout (its nearest dnsgeo failed with
// the region) and its next page load (failed connects, then a think
// time).
func (w *World) failoverBound() time.Duration {
	return w.dnsgeoBound() + dnsTimeout + 2*connectTimeout + thinkTime*5/4
}

// dnsgeoBound is dnsgeo's own bound: interval × fall + timeout + TTL.
func (w *World) dnsgeoBound() time.Duration {
	return 2*w.o.HealthInterval + min(time.Second, w.o.HealthInterval*4/5) + w.o.DNSTTL
}

// wait sleeps d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	if !sleep(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// until polls cond every 200 ms until it holds (true) or limit passes.
func until(ctx context.Context, limit time.Duration, cond func() bool) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := wait(ctx, 200*time.Millisecond); err != nil {
			return false, err
		}
	}
}

// firstSuccess returns, for each browser of region pop, the start of its
// first successful request since from that region where says yes to;
// browsers without one are missing from the map.
func (w *World) firstSuccess(pop int, from time.Duration, where func(region int) bool) map[int]time.Duration {
	out := map[int]time.Duration{}
	for _, r := range w.rec.between(from, w.rec.now()+time.Hour) {
		if r.Pop != pop || !r.ok() || !where(r.Region) {
			continue
		}
		if _, ok := out[r.Browser]; !ok {
			out[r.Browser] = r.End
		}
	}
	return out
}

// allMoved returns when the last browser of pop was answered where says
// (the latest of their first answers since from), and whether all were.
func (w *World) allMoved(pop int, from time.Duration, where func(int) bool) (time.Duration, bool) {
	first := w.firstSuccess(pop, from, where)
	if len(first) < w.o.Clients {
		return 0, false
	}
	var last time.Duration
	for _, t := range first {
		last = max(last, t)
	}
	return last, true
}

// steady: traffic with nothing wrong. Every population should be
// answered by its lowest-RTT region (its own).
func (w *World) steady(ctx context.Context) (*Result, error) {
	res := w.open(Steady, "")
	if err := wait(ctx, w.o.Duration); err != nil {
		return nil, err
	}
	recs := w.close(res)
	best := 0
	for _, r := range recs {
		if r.ok() && r.Region == w.lowestRTT(r.Pop) {
			best++
		}
	}
	res.goal("requests answered by the browser's lowest-RTT region", pct(best, len(recs)), "≥ 99 %", len(recs) > 0 && float64(best) >= 0.99*float64(len(recs)))
	w.common(res, recs)
	for k, r := range w.net.regions {
		var ds []time.Duration
		for _, rec := range recs {
			if rec.Pop == k && rec.ok() && rec.Object == 0 {
				ds = append(ds, rec.End-rec.Start)
			}
		}
		if len(ds) > 0 {
			res.figure(r+" browsers: widget fetch time p50 / p99", fmt.Sprintf("%s / %s", ms(percentile(ds, 50)), ms(percentile(ds, 99))))
		}
	}
	return res, nil
}

// lowestRTT is the region of lowest round trip for region pop's
// browsers, by the matrix: their own.
func (w *World) lowestRTT(pop int) int {
	best := 0
	for j, r := range w.net.regions {
		if RTT(w.net.regions[pop], r) < RTT(w.net.regions[pop], w.net.regions[best]) {
			best = j
		}
	}
	return best
}

// regionOutage: region-loss (kill every process of the region) or
// region-partition (cut its link), then restore it, with dnsgeo's
// fallback on or off.
func (w *World) regionOutage(ctx context.Context, partition, fallback bool) (*Result, error) {
	name, what := RegionLoss, "killed every process of "
	if partition {
		name, what = RegionPartition, "cut the link of "
	}
	if err := w.useFallback(ctx, fallback); err != nil {
		return nil, err
	}
	victim := 0
	vname := w.net.regions[victim]
	res := w.open(name, fmt.Sprintf("fallback %s", onOff(fallback)))
	if err := wait(ctx, w.baseline()); err != nil {
		return nil, err
	}
	t0 := w.rec.event(what + vname)
	if partition {
		if err := w.partition(ctx, victim, true); err != nil {
			return nil, err
		}
	} else {
		w.killRegion(victim)
	}
	elsewhere := func(r int) bool { return r >= 0 && r != victim }
	limit := 4 * w.failoverBound()
	moved, err := until(ctx, max(limit, w.o.Duration), func() bool {
		_, ok := w.allMoved(victim, t0, elsewhere)
		return ok && w.rec.now()-t0 >= w.o.Duration
	})
	if err != nil {
		return nil, err
	}
	movedAt, _ := w.allMoved(victim, t0, elsewhere)
	t1 := w.rec.event("restoring " + vname)
	if partition {
		err = w.partition(ctx, victim, false)
	} else {
		err = w.restoreRegion(ctx, victim)
	}
	if err != nil {
		return nil, err
	}
	t2 := w.rec.event(vname + " serving again")
	home := func(r int) bool { return r == victim }
	back, err := until(ctx, limit, func() bool { _, ok := w.allMoved(victim, t2, home); return ok })
	if err != nil {
		return nil, err
	}
	backAt, _ := w.allMoved(victim, t2, home)
	if err := wait(ctx, w.settle()); err != nil {
		return nil, err
	}
	recs := w.close(res)

	var failed, failedVictim, viaFallback int
	var lastFailAt time.Duration
	for _, r := range recs {
		if r.Start < t0 {
			continue
		}
		if !r.ok() {
			failed++
			if r.Pop == victim {
				failedVictim++
				lastFailAt = max(lastFailAt, r.End)
			}
		} else if r.Pop == victim && r.Addr >= w.net.edges {
			viaFallback++
		}
	}
	res.figure("requests failed (all regions' browsers)", fmt.Sprintf("%d of %d", failed, countFrom(recs, t0)))
	res.figure(vname+" browsers: requests failed", fmt.Sprintf("%d", failedVictim))
	if failedVictim > 0 {
		res.figure(vname+" browsers: last failure after the fault", secs(lastFailAt-t0))
	}
	bound := w.failoverBound()
	goal := fmt.Sprintf("≤ %s (dnsgeo's %s, + %s for a browser's DNS timeout and next page load)", secs(bound), secs(w.dnsgeoBound()), secs(bound-w.dnsgeoBound()))
	if moved {
		res.goal(fmt.Sprintf("time until every %s browser was answered by another region", vname), secs(movedAt-t0), goal, movedAt-t0 <= bound)
	} else {
		res.goal(fmt.Sprintf("time until every %s browser was answered by another region", vname), "not within "+secs(max(limit, w.o.Duration)), goal, false)
	}
	res.figure(vname+" browsers: answers through the fallback address", strconv.Itoa(viaFallback))
	var slow []time.Duration
	for _, r := range recs {
		if r.Pop == victim && r.ok() && r.Start >= t0 && r.Start < t1 {
			slow = append(slow, r.End-r.Start)
		}
	}
	if len(slow) > 0 {
		res.figure(vname+" browsers: time of the requests answered during the outage, p50 / p99", fmt.Sprintf("%s / %s", ms(percentile(slow, 50)), ms(percentile(slow, 99))))
	}
	res.figure("restore took (processes started, or link up, until serving)", secs(t2-t1))
	if back {
		res.figure(fmt.Sprintf("time until every %s browser was answered by %s again", vname, vname), secs(backAt-t2))
	} else {
		res.goal(fmt.Sprintf("time until every %s browser was answered by %s again", vname, vname), "not within "+secs(limit), "≤ "+secs(limit), false)
	}
	w.common(res, recs)
	return res, nil
}

// s3Loss: the primary bucket fails, then the replica too, then both
// come back. Every object the browsers ask for is cached.
func (w *World) s3Loss(ctx context.Context) (*Result, error) {
	res := w.open(S3Loss, "")
	if err := wait(ctx, w.baseline()); err != nil {
		return nil, err
	}
	before := w.s3Faulted(rolePrimary)
	for _, row := range w.s3p {
		for _, ps := range row {
			ps[roleReplica].mark()
		}
	}
	t0 := w.rec.event("primary bucket down (503)")
	w.setS3(rolePrimary, s3Down)
	if err := wait(ctx, max(w.o.Duration/2, 12*time.Second)); err != nil {
		return nil, err
	}
	var replicaAt time.Time
	for _, row := range w.s3p {
		for _, ps := range row {
			if f := ps[roleReplica].firstSince(); !f.IsZero() && (replicaAt.IsZero() || f.Before(replicaAt)) {
				replicaAt = f
			}
		}
	}
	primaryTries := w.s3Faulted(rolePrimary) - before
	t1 := w.rec.event("replica down too (503)")
	w.setS3(roleReplica, s3Down)
	if err := wait(ctx, max(w.o.Duration/2, 12*time.Second)); err != nil {
		return nil, err
	}
	t2 := w.rec.event("S3 back")
	w.setS3(rolePrimary, s3Pass)
	w.setS3(roleReplica, s3Pass)
	if err := wait(ctx, w.settle()); err != nil {
		return nil, err
	}
	recs := w.close(res)
	var failed, stale, during int
	for _, r := range recs {
		if r.Start < t0 || r.Start >= t2 {
			continue
		}
		during++
		if !r.ok() {
			failed++
		}
		if r.Stale {
			stale++
		}
	}
	res.goal("requests failed while S3 failed (every object cached)", fmt.Sprintf("%d of %d", failed, during), "0", failed == 0)
	res.figure("responses served stale", fmt.Sprintf("%d", stale))
	if replicaAt.IsZero() {
		res.figure("time until the replica was used", "not used")
	} else {
		res.figure("time until the replica was used (first request at its S3 side)", secs(w.rec.since(replicaAt)-t0))
	}
	res.figure("requests to the primary while it failed, all edges", fmt.Sprintf("%d in %s (circuit breakers)", primaryTries, secs(t1-t0)))
	w.common(res, recs)
	return res, nil
}

func (w *World) s3Faulted(role int) int64 {
	var n int64
	for _, row := range w.s3p {
		for _, ps := range row {
			_, f := ps[role].snapshot()
			n += f
		}
	}
	return n
}

// release uploads a new version and purges it everywhere with the CLI
// (tag, then URL with --verify, then warm), all regions up; then again
// with one region cut off during the purge.
func (w *World) release(ctx context.Context) ([]*Result, error) {
	a, err := w.releaseOnce(ctx, -1)
	if err != nil {
		return nil, err
	}
	b, err := w.releaseOnce(ctx, len(w.net.regions)-1)
	if err != nil {
		return nil, err
	}
	return []*Result{a, b}, nil
}

func (w *World) releaseOnce(ctx context.Context, cut int) (*Result, error) {
	variant := "all regions up"
	if cut >= 0 {
		variant = w.net.regions[cut] + " cut off during the purge"
	}
	res := w.open(Release, variant)
	if err := wait(ctx, w.baseline()); err != nil {
		return nil, err
	}
	if cut >= 0 {
		w.rec.event("cut the link of " + w.net.regions[cut])
		if err := w.partition(ctx, cut, true); err != nil {
			return nil, err
		}
		// dnsgeo takes the region out before the release, as it would
		// have by the time a pipeline runs.
		if err := wait(ctx, 2*w.o.HealthInterval+time.Second); err != nil {
			return nil, err
		}
	}
	v := w.version + 1
	for _, o := range w.objects {
		o.add(body(o, v))
		for _, b := range []string{bucketPrimary, bucketReplica} {
			if err := w.s3.put(ctx, b, o.key(), o.get(v), o.contentType, o.cacheControl, o.tags(v)); err != nil {
				return nil, err
			}
		}
	}
	w.version = v
	w.rec.event(fmt.Sprintf("uploaded release %d", v))

	pctx, stopPoll := context.WithCancel(ctx)
	served := w.pollVersions(pctx, v)
	tPurge := w.rec.event("purge started")
	var urls []string
	for _, o := range w.objects {
		urls = append(urls, "https://"+cdnHost+o.path)
	}
	extra := []string{}
	if cut >= 0 {
		extra = append(extra, "--allow-catchup")
	}
	tag := w.purge(ctx, append([]string{"tag", fmt.Sprintf("release-%d", v-1)}, extra...))
	verify := w.purge(ctx, append(append([]string{"url"}, urls...), append([]string{"--verify", "--origin", s3URL(bucketPrimary, sitePrefix, w.s3.endpoint())}, extra...)...))
	tDone := w.rec.event("purge --verify said done")
	w.doneAt = append(w.doneAt, Released{Version: v, At: tDone, CutOff: cut})
	warm := w.purge(ctx, append(append([]string{"warm"}, urls...), extra...))
	w.rec.event("warmed")

	reachable := func(e *edgeProc) bool { return e.region != cut }
	everyEdge := func(ok func(*edgeProc) bool) (time.Duration, bool) {
		var last time.Duration
		for _, e := range w.allEdges() {
			if !ok(e) {
				continue
			}
			at, done := served(e)
			if !done {
				return 0, false
			}
			last = max(last, at)
		}
		return last, true
	}
	newEverywhere, _ := until(ctx, 10*time.Second, func() bool { _, ok := everyEdge(reachable); return ok })
	allAt, _ := everyEdge(reachable)
	var healAt time.Duration
	back := true
	if cut >= 0 {
		if err := wait(ctx, w.baseline()); err != nil {
			stopPoll()
			return nil, err
		}
		healAt = w.rec.event("healed the link of " + w.net.regions[cut])
		w.doneAt[len(w.doneAt)-1].Healed = healAt
		if err := w.partition(ctx, cut, false); err != nil {
			stopPoll()
			return nil, err
		}
		home := func(r int) bool { return r == cut }
		var err error
		back, err = until(ctx, 4*w.failoverBound(), func() bool {
			_, ok := w.allMoved(cut, healAt, home)
			_, edges := everyEdge(func(*edgeProc) bool { return true })
			return ok && edges
		})
		if err != nil {
			stopPoll()
			return nil, err
		}
	}
	if err := wait(ctx, w.settle()); err != nil {
		stopPoll()
		return nil, err
	}
	stopPoll()
	recs := w.close(res)

	for _, c := range []struct {
		what string
		run  purgeRun
	}{{"purge tag release-" + strconv.Itoa(v-1), tag}, {"purge url --verify", verify}, {"purge warm", warm}} {
		value := fmt.Sprintf("%d, %s", c.run.status, secs(c.run.took))
		if c.what == "purge warm" && cut >= 0 {
			// warm has no journal: the edges it cannot reach are not
			// warmed, and it says so.
			res.figure(c.what+": exit status, time", value)
		} else {
			res.goal(c.what+": exit status, time", value, "0", c.run.status == 0)
		}
		if c.run.status != 0 {
			res.note(fmt.Sprintf("`%s` said:\n\n```\n%s\n```", c.what, strings.TrimSpace(c.run.output)))
		}
	}
	scope := "every edge"
	if cut >= 0 {
		scope = "every edge outside " + w.net.regions[cut]
	}
	if newEverywhere {
		res.goal("time until "+scope+" served the new version (from the purge's start)", secs(allAt-tPurge), "< 2 s", allAt-tPurge < 2*time.Second)
	} else {
		res.goal("time until "+scope+" served the new version (from the purge's start)", "not within 10 s", "< 2 s", false)
	}
	var old, oldCut int
	for _, r := range recs {
		if r.Version > 0 && r.Version < w.expected(r.Start) {
			old++
			if r.Region == cut {
				oldCut++
			}
		}
	}
	res.goal("requests that got the old version after the CLI said done", strconv.Itoa(old), "0", old == 0)
	if cut >= 0 {
		at, edgesNew := everyEdge(func(e *edgeProc) bool { return e.region == cut })
		if edgesNew {
			res.figure(w.net.regions[cut]+": time from the heal until its edges served the new version", secs(max(at-healAt, 0)))
		}
		res.goal(w.net.regions[cut]+": requests it answered with the old version once reachable again", strconv.Itoa(oldCut), "0", oldCut == 0)
		if oldCut > 0 {
			var first, last time.Duration = -1, 0
			for _, r := range recs {
				if r.Region == cut && r.Version > 0 && r.Version < w.expected(r.Start) {
					if first < 0 {
						first = r.Start
					}
					last = max(last, r.Start)
				}
			}
			res.figure(w.net.regions[cut]+": those requests started", fmt.Sprintf("from +%s to +%s after the heal", secs(first-healAt), secs(last-healAt)))
		}
		if !back {
			res.goal("browsers of "+w.net.regions[cut]+" back on it, its edges on the new version", "not within "+secs(4*w.failoverBound()), "yes", false)
		}
	}
	w.common(res, recs)
	return res, nil
}

// expected is the oldest version a request started at t may get: the
// newest release the CLI had said done by then.
func (w *World) expected(t time.Duration) int {
	return (&Report{Released: w.doneAt}).Expected(t)
}

// purgeRun is one run of the purge CLI.
type purgeRun struct {
	status int
	took   time.Duration
	output string
}

// purge runs the purge CLI with args, through the journal, as a release
// pipeline would (in the lab's namespace, reaching every edge's admin
// listener and S3 directly).
func (w *World) purge(ctx context.Context, args []string) purgeRun {
	args = append(args, "--journal", s3URL(bucketControl, "journal", w.s3.endpoint()), "--token-file", w.tokenFile)
	if w.o.PurgeTimeout > 0 {
		args = append(args, "--timeout", w.o.PurgeTimeout.String())
	}
	cmd := exec.CommandContext(ctx, w.bins.purge, args...)
	cmd.Env = childEnv(w.s3.env()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	run := purgeRun{took: time.Since(start), output: out.String()}
	if err != nil {
		run.status = -1
		if ee, ok := err.(*exec.ExitError); ok {
			run.status = ee.ExitCode()
		}
	}
	w.logf("purge %s: exit %d in %s", args[0], run.status, secs(run.took))
	return run
}

// pollVersions asks every edge directly (plain HTTP on its real
// address, every 100 ms) for the widget and a tenant config, and returns
// a function telling when each edge first served version v of both and
// kept serving it.
func (w *World) pollVersions(ctx context.Context, v int) func(*edgeProc) (time.Duration, bool) {
	var mu sync.Mutex
	since := map[*edgeProc]time.Duration{}
	for _, e := range w.allEdges() {
		client := &http.Client{Timeout: time.Second}
		base := "http://" + netip.AddrPortFrom(w.net.edgeAddr(e.region, e.idx), uint16(w.net.httpPort())).String()
		go func() {
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				at := w.rec.now()
				fresh := true
				for _, o := range []*object{w.objects[0], w.objects[1]} {
					req, _ := http.NewRequestWithContext(ctx, "GET", base+o.path, nil)
					req.Host = cdnHost
					req.Header.Set("Accept-Encoding", "identity")
					resp, err := client.Do(req)
					if err != nil {
						fresh = false
						break
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if o.version(b) != v {
						fresh = false
					}
				}
				mu.Lock()
				if _, ok := since[e]; fresh && !ok {
					since[e] = at
				} else if !fresh {
					delete(since, e)
				}
				mu.Unlock()
				sleep(ctx, 100*time.Millisecond)
			}
		}()
	}
	return func(e *edgeProc) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		at, ok := since[e]
		return at, ok
	}
}

// coldStart: every edge restarts at once, on empty caches and an empty
// certificate store, under traffic.
func (w *World) coldStart(ctx context.Context) (*Result, error) {
	res := w.open(ColdStart, "")
	if err := wait(ctx, w.baseline()); err != nil {
		return nil, err
	}
	orders := w.ca.orders()
	base := w.s3Counts()
	t0 := w.rec.event("killed every edge; emptied caches and the certificate store")
	if err := w.coldRestart(ctx); err != nil {
		return nil, err
	}
	t1 := w.rec.event("started every edge at once")
	if err := w.startEdges(ctx, w.allEdges()); err != nil {
		return nil, err
	}
	t2 := w.rec.event("every edge serving")
	every := func(r int) bool { return r >= 0 }
	for k := range w.net.regions {
		if _, err := until(ctx, 4*w.failoverBound(), func() bool { _, ok := w.allMoved(k, t1, every); return ok }); err != nil {
			return nil, err
		}
	}
	// Counted before any tenant config (10 s) expires: fills only.
	counts := w.s3Counts()
	if err := wait(ctx, w.settle()); err != nil {
		return nil, err
	}
	recs := w.close(res)
	newOrders := w.ca.orders() - orders
	res.goal("ACME orders (Pebble's count)", strconv.Itoa(newOrders), "1", newOrders == 1)
	worst, total, worstWhat := int64(0), int64(0), ""
	for k, row := range counts {
		for e := range row {
			for role, bucket := range []string{bucketPrimary, bucketReplica} {
				for key, n := range objectGETs(row[e][role], base[k][e][role], bucket, false) {
					total += n
					if n > worst {
						worst, worstWhat = n, fmt.Sprintf("%s-%d %s", w.net.regions[k], e+1, key)
					}
				}
			}
		}
	}
	res.goal("S3 GETs per object per edge (fills, coalesced)", fmt.Sprintf("at most %d (%s); %d in all for %d edges", worst, worstWhat, total, len(w.allEdges())), "≤ 1", worst <= 1)
	var firsts []time.Duration
	seen := map[[2]int]bool{}
	var failed int
	for _, r := range recs {
		if r.Start < t0 {
			continue
		}
		if !r.ok() {
			failed++
			continue
		}
		if r.Start >= t1 && !seen[[2]int{r.Pop, r.Browser}] {
			seen[[2]int{r.Pop, r.Browser}] = true
			firsts = append(firsts, r.End-r.Start)
		}
	}
	if len(firsts) > 0 {
		res.figure("first response of each browser after the start: p50 / p90 / p99 / max", fmt.Sprintf("%s / %s / %s / %s (%d browsers)",
			ms(percentile(firsts, 50)), ms(percentile(firsts, 90)), ms(percentile(firsts, 99)), ms(percentile(firsts, 100)), len(firsts)))
	}
	res.figure("time from the start until every edge served HTTPS", secs(t2-t1))
	res.figure("requests failed while no edge ran", strconv.Itoa(failed))
	w.common(res, recs)
	return res, nil
}

// s3Counts snapshots every S3 proxy's counts: [region][edge][role].
func (w *World) s3Counts() [][]([3]map[string]int64) {
	var out [][]([3]map[string]int64)
	for _, row := range w.s3p {
		var r [][3]map[string]int64
		for _, ps := range row {
			var c [3]map[string]int64
			for i, p := range ps {
				c[i], _ = p.snapshot()
			}
			r = append(r, c)
		}
		out = append(out, r)
	}
	return out
}

// common adds the figures every scenario reports.
func (w *World) common(res *Result, recs []record) {
	wrong := 0
	for _, r := range recs {
		if strings.HasPrefix(r.Err, "wrong bytes") {
			wrong++
		}
	}
	res.goal("responses with wrong bytes", strconv.Itoa(wrong), "0", wrong == 0)
	res.Requests = len(recs)
}

func countFrom(recs []record, t time.Duration) int {
	n := 0
	for _, r := range recs {
		if r.Start >= t {
			n++
		}
	}
	return n
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func pct(n, of int) string {
	if of == 0 {
		return "no requests"
	}
	return fmt.Sprintf("%.2f %% (%d of %d)", 100*float64(n)/float64(of), n, of)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
