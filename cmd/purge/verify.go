package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/origin"
)

// verifyPoll is how often --verify asks again the edges that still serve
// another version.
const verifyPoll = 500 * time.Millisecond

// verifyResult is one URL on one edge.
type verifyResult struct {
	Name       string `json:"name,omitempty"`
	URL        string `json:"url"` // the edge's admin URL
	Host       string `json:"host,omitempty"`
	Path       string `json:"path"`
	OriginETag string `json:"origin_etag,omitempty"`
	EdgeETag   string `json:"edge_etag,omitempty"`
	OK         bool   `json:"ok"`
	Problem    string `json:"problem,omitempty"`
}

func (v verifyResult) label() string {
	n := v.Name
	if n == "" {
		n = v.URL
	}
	return n + " " + v.Host + v.Path
}

// notFound stands for "the origin has no such object" in place of an
// ETag.
const notFound = "(not found)"

// verify checks that every edge that confirmed a URL purge now serves the
// origin's current version of each URL: it reads the ETag from the origin
// (S3 HeadObject, with the same credentials chain as the edges), has each
// edge warm the URL (fetching it as a browser's request would) and
// compares the edge's /cache answer, asking again the edges that differ
// until 3 × --timeout has passed.
func (c *cli) verify(ctx context.Context, reqs []edge.PurgeRequest, reports []*requestReport) []verifyResult {
	ctx, cancel := context.WithTimeout(ctx, 3*c.o.timeout)
	defer cancel()
	org, err := origin.Parse(ctx, c.o.origin)
	if err != nil {
		return []verifyResult{{URL: "--origin", Problem: err.Error()}}
	}
	var results []verifyResult
	for i, req := range reqs {
		want := map[string]string{}
		for _, p := range req.URLs {
			obj, err := origin.Stat(ctx, org, p)
			switch {
			case errors.Is(err, origin.ErrNotFound):
				want[p] = notFound
			case err != nil:
				return append(results, verifyResult{URL: "--origin", Host: req.Host, Path: p, Problem: "reading the current ETag: " + err.Error()})
			default:
				want[p] = obj.ETag
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, oc := range reports[i].Outcomes {
			if oc.Status != statusOK {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs := c.verifyEdge(ctx, oc.target, req.Host, want)
				mu.Lock()
				results = append(results, rs...)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	return results
}

// verifyEdge checks every URL of want on one edge, until each matches or
// ctx ends.
func (c *cli) verifyEdge(ctx context.Context, t *target, host string, want map[string]string) []verifyResult {
	got := map[string]string{}
	problems := map[string]string{}
	pending := make([]string, 0, len(want))
	for p := range want {
		pending = append(pending, p)
	}
	for len(pending) > 0 {
		// Warm: the edge fetches each URL as a browser's request would
		// (revalidating a soft-purged copy), then says what it holds.
		body, _ := json.Marshal(struct {
			URLs []string `json:"urls"`
			Host string   `json:"host,omitempty"`
		}{pending, host})
		if oc := c.send(ctx, t, "POST", "/warm", body, false); oc.Status != statusOK {
			for _, p := range pending {
				problems[p] = "warm: " + oc.Error
			}
		}
		var still []string
		for _, p := range pending {
			q := url.Values{"path": {p}}
			if host != "" {
				q.Set("host", host)
			}
			oc := c.send(ctx, t, "GET", "/cache?"+q.Encode(), nil, false)
			if oc.Status != statusOK {
				problems[p] = "cache: " + oc.Error
				still = append(still, p)
				continue
			}
			var e edge.CacheEntry
			if err := json.Unmarshal(oc.answer, &e); err != nil {
				problems[p] = "cache: an answer that is not an entry: " + err.Error()
				still = append(still, p)
				continue
			}
			switch {
			case want[p] == notFound && (e.Status == "not cached" || e.OriginStatus == 404):
				got[p] = notFound
				delete(problems, p)
			case e.OriginStatus == 200 && e.ETag == want[p] && e.Status == "fresh":
				got[p] = e.ETag
				delete(problems, p)
			default:
				got[p] = e.ETag
				problems[p] = fmt.Sprintf("serves %s (%s), the origin has %s", orNone(e.ETag), e.Status, want[p])
				still = append(still, p)
			}
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			for _, p := range pending {
				problems[p] += " (after retrying for 3 × --timeout)"
			}
			pending = nil
		case <-time.After(verifyPoll):
		}
	}
	var out []verifyResult
	for p, w := range want {
		out = append(out, verifyResult{Name: t.Name, URL: t.URL, Host: host, Path: p, OriginETag: w, EdgeETag: got[p],
			OK: problems[p] == "", Problem: problems[p]})
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
