package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
)

// POST /warm and GET /cache: fetching objects ahead of browsers after a
// release, and saying what the edge holds for one URL.

// WarmRequest is the body of POST /warm: {"urls": ["/widget/v2/login.js"], "host": "cdn.example.com"}.
type WarmRequest struct {
	URLs []string `json:"urls"`
	Host string   `json:"host,omitempty"`
}

// maxWarmURLs bounds one warm request; warmConcurrency, the fetches it
// runs at once (each makes at most one origin request).
const (
	maxWarmURLs     = 1000
	warmConcurrency = 4
)

// DecodeWarmRequest reads and validates a warm request.
func DecodeWarmRequest(r io.Reader) (WarmRequest, error) {
	var w WarmRequest
	if err := decodeStrict(r, &w, "urls, host"); err != nil {
		return WarmRequest{}, err
	}
	switch {
	case len(w.URLs) == 0:
		return WarmRequest{}, errors.New("no urls to warm")
	case len(w.URLs) > maxWarmURLs:
		return WarmRequest{}, fmt.Errorf("%d urls: at most %d per request", len(w.URLs), maxWarmURLs)
	}
	for i, u := range w.URLs {
		if err := checkPurgePath(u, true); err != nil {
			return WarmRequest{}, fmt.Errorf("urls[%d] %q: %v", i, u, err)
		}
	}
	if err := checkHost(w.Host); err != nil {
		return WarmRequest{}, fmt.Errorf("host %q: %v", w.Host, err)
	}
	return w, nil
}

// WarmResult is the answer to a warm request.
type WarmResult struct {
	Name   string      `json:"name"`
	Region string      `json:"region,omitempty"`
	URLs   []WarmedURL `json:"urls"`
	TookMS float64     `json:"took_ms"`
}

// WarmedURL is what warming one URL did.
type WarmedURL struct {
	URL string `json:"url"`
	// Status is the origin's answer as cached (200, 404), 0 when none.
	Status int `json:"status,omitempty"`
	// Result: "fetched", "revalidated", "cached" (already fresh), "stale"
	// (the origin failed; the cached copy serves), "error".
	Result string `json:"result"`
	ETag   string `json:"etag,omitempty"`
	// Variants are the codings ready to serve.
	Variants []string `json:"variants,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Warm fetches each URL the way a request would (one coalesced,
// conditional fetch when the copy is missing, expired or soft-purged) and
// derives every coding a browser may be sent, so the first browser after
// a release gets a hit.
func (h *Handler) Warm(ctx context.Context, req WarmRequest) (WarmResult, error) {
	start := time.Now()
	s := h.route(req.Host)
	if s == nil {
		return WarmResult{}, fmt.Errorf("%w: %q", ErrUnknownHost, req.Host)
	}
	res := WarmResult{Name: h.name, Region: h.region, URLs: make([]WarmedURL, len(req.URLs))}
	sem := make(chan struct{}, warmConcurrency)
	var wg sync.WaitGroup
	for i, u := range req.URLs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res.URLs[i] = h.warmOne(ctx, s, u)
		}()
	}
	wg.Wait()
	res.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return res, nil
}

func (h *Handler) warmOne(ctx context.Context, s *site, u string) WarmedURL {
	w := WarmedURL{URL: u}
	p, ok := s.objectPath(u)
	if !ok { // validated before: a caller's bug
		w.Result, w.Error = "error", "not a path the edge serves"
		return w
	}
	obj := h.cache.Lookup(s.key(p))
	w.Result = "cached"
	if obj == nil || obj.SoftPurged() || !s.window(p, &obj.Meta).fresh(h.now()) {
		var res result
		var err error
		obj, res, err = h.fillCtx(ctx, wantFor(nil, s, p), obj, nil)
		switch {
		case err != nil:
			w.Result, w.Error = "error", err.Error()
			h.errorLog.Warn("warm: cannot fetch", h.failure(s, p, err)...)
			return w
		case res == resultStale:
			w.Result, w.Error = "stale", "the origin failed; the cached copy serves meanwhile"
		case res == resultRevalidated:
			w.Result = "revalidated"
		default:
			w.Result = "fetched"
		}
	}
	w.Status, w.ETag = obj.Meta.Status, obj.Meta.ETag
	if obj.Meta.Negative() || obj.Meta.IsIndex() {
		return w // no body: nothing to derive
	}
	set, _ := offered(obj)
	for c := range negotiate.Coding(negotiate.NumCodings) {
		if !set.Has(c) {
			continue
		}
		body, err := h.cache.Open(obj, c)
		switch {
		case errors.Is(err, cache.ErrNotCached), errors.Is(err, cache.ErrNoVariant):
			continue // evicted meanwhile (the next request fetches it), or not derivable
		case err != nil:
			h.errorLog.Warn("warm: cannot open a variant", append(h.failure(s, p, err), "coding", c.String())...)
			continue
		}
		body.Close()
		w.Variants = append(w.Variants, c.String())
	}
	return w
}

// serveWarm answers POST /warm.
func (h *Handler) serveWarm(w http.ResponseWriter, r *http.Request) {
	req, err := DecodeWarmRequest(http.MaxBytesReader(w, r.Body, MaxPurgeBody))
	if err != nil {
		h.badRequest(w, r, "warm", err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.fetchTimeout)
	defer cancel()
	res, err := h.Warm(ctx, req)
	if err != nil {
		h.badRequest(w, r, "warm", err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// CacheEntry is the answer to GET /cache?host=H&path=P: what the edge
// holds for one URL.
type CacheEntry struct {
	Name   string `json:"name"`
	Region string `json:"region,omitempty"`
	Host   string `json:"host,omitempty"`
	Path   string `json:"path"`
	Key    string `json:"key"`
	// Status is "fresh", "stale" (expired, revalidated on the next
	// request), "soft-purged" (revalidated on the next request), or
	// "not cached".
	Status string `json:"status"`
	// OriginStatus is the origin's answer cached: 200, or 404 for a
	// cached "not found".
	OriginStatus int                 `json:"origin_status,omitempty"`
	ETag         string              `json:"etag,omitempty"` // the origin's
	Fetched      *time.Time          `json:"fetched,omitempty"`
	Expires      *time.Time          `json:"expires,omitempty"`
	Variants     []cache.VariantInfo `json:"variants,omitempty"`
	Tags         []string            `json:"tags,omitempty"`
	// Purged is "soft" (the copy held is soft-purged), "hard" (hard-purged
	// and not fetched again since; known for recent hard purges), or "".
	Purged   string     `json:"purged,omitempty"`
	PurgedAt *time.Time `json:"purged_at,omitempty"`
}

// Inspect says what the edge holds for path p of the site serving host
// (the default site when host is empty). Looking is a lookup: it applies
// purges, and brings a disk object into memory.
func (h *Handler) Inspect(host, path string) (CacheEntry, error) {
	e := CacheEntry{Name: h.name, Region: h.region, Host: host, Path: path}
	s := h.route(host)
	if s == nil {
		return e, fmt.Errorf("%w: %q", ErrUnknownHost, host)
	}
	if err := checkPurgePath(path, true); err != nil {
		return e, fmt.Errorf("path %q: %v", path, err)
	}
	p, _ := s.objectPath(path) // checkPurgePath accepted it
	e.Key = s.key(p)
	obj := h.cache.Lookup(e.Key)
	if obj == nil {
		e.Status = "not cached"
		if at, ok := h.cache.HardPurged(e.Key); ok {
			e.Purged, e.PurgedAt = "hard", &at
		}
		return e, nil
	}
	now := h.now()
	win := s.window(p, &obj.Meta)
	switch {
	case obj.SoftPurged():
		e.Status, e.Purged = "soft-purged", "soft"
	case win.fresh(now):
		e.Status = "fresh"
	default:
		e.Status = "stale"
	}
	fetched, expires := obj.Meta.Fetched, win.expires
	e.OriginStatus, e.ETag, e.Fetched, e.Expires = obj.Meta.Status, obj.Meta.ETag, &fetched, &expires
	e.Tags = obj.Meta.Tags
	if obj.Meta.Status == http.StatusOK {
		e.Variants = h.cache.Variants(obj)
	}
	return e, nil
}

// serveCache answers GET /cache?host=H&path=P.
func (h *Handler) serveCache(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("path") == "" {
		h.badRequest(w, r, "cache", errors.New("give path=/the/object (and host=, for a site other than the default)"))
		return
	}
	e, err := h.Inspect(q.Get("host"), q.Get("path"))
	if err != nil {
		h.badRequest(w, r, "cache", err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
