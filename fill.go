package edge

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/negotiate"
	"github.com/edgecdn/edge/origin"
)

// errTooManyMisses: the client already has its share of requests
// waiting on the origin.
var errTooManyMisses = errors.New("edge: too many concurrent misses from one client")

// lookup finds the object for r: a fresh copy at once; an expired one at
// once too while one background request revalidates it, or while every
// origin is known down; else one fill from the origin.
func (h *Handler) lookup(r *http.Request, s *site, p string) (*cache.Object, result, error) {
	obj := h.cache.Lookup(s.key(p))
	if obj == nil {
		return h.fill(r.Context(), r.RemoteAddr, s, p, nil, nil)
	}
	now := h.now()
	if obj.SoftPurged() {
		return h.revalidatePurged(r, s, p, obj, now) // admin_purge.go
	}
	w := s.window(p, &obj.Meta)
	switch {
	case w.fresh(now):
		return obj, resultHit, nil
	case w.revalidating(now):
		h.revalidate(s, p, obj)
		return obj, resultRevalidating, nil
	case w.usable(now) && s.allDown():
		// Every origin is known down: do not make the client wait for a
		// timeout to learn what we already know.
		return obj, resultStale, nil
	}
	return h.fill(r.Context(), r.RemoteAddr, s, p, obj, nil)
}

// fill gets a fresh copy of p from the origin, coalesced with every
// concurrent request for it. stale is the copy the cache holds, if any: it
// makes the fetch conditional, and is served when the origin fails (the
// failure is logged). broken, when set, is a cached version whose body
// has gone: it is fetched again however fresh it looks.
//
// client (the request's RemoteAddr; "" for the edge's own background
// work) is charged against the miss limiter only when its request starts
// a fetch: requests that join a fetch in flight cost the origin nothing.
func (h *Handler) fill(ctx context.Context, client string, s *site, p string, stale, broken *cache.Object) (*cache.Object, result, error) {
	key := s.key(p)
	led := false
	fetch := func(ctx context.Context) (*cache.Response, error) {
		led = true
		if client != "" {
			release, ok := h.misses.acquire(client)
			if !ok {
				return nil, errTooManyMisses
			}
			defer release()
		}
		return h.fetch(ctx, s, p, stale, broken)
	}
	obj, _, err := h.cache.Fill(ctx, key, h.fetchTimeout, fetch)
	if errors.Is(err, errTooManyMisses) && !led {
		// The fetch we joined was refused for its leader's client, not
		// ours: lead one of our own.
		obj, _, err = h.cache.Fill(ctx, key, h.fetchTimeout, fetch)
	}
	switch {
	case err != nil && stale != nil && s.window(p, &stale.Meta).usable(h.now()) && ctx.Err() == nil && !errors.Is(err, errTooManyMisses):
		h.errorLog.Warn("origin failed: the cached copy is served meanwhile (stale-if-error)", h.failure(s, p, err)...)
		return stale, resultStale, nil
	case err != nil:
		return nil, resultError, err
	case obj.Meta.Transient:
		return obj, resultPass, nil
	case !led:
		return obj, resultCollapsed, nil
	case stale != nil && obj.Meta.Version == stale.Meta.Version:
		return obj, resultRevalidated, nil
	}
	return obj, resultMiss, nil
}

// failure is the attributes of a failure's log record: the site's
// namespace, the object path and key, the origin and the error.
func (h *Handler) failure(s *site, p string, err error) []any {
	return []any{"site", s.CacheNamespace, "path", p, "key", s.key(p), "origin", s.Origin.String(), "err", err}
}

// revalidate refreshes stale in the background, at most once at a time
// per key however many requests see it stale.
func (h *Handler) revalidate(s *site, p string, stale *cache.Object) {
	key := s.key(p)
	if _, busy := h.revalidating.LoadOrStore(key, struct{}{}); busy {
		return
	}
	started := h.goBackground(func(ctx context.Context) {
		defer h.revalidating.Delete(key)
		// An origin failure with the copy still usable is logged by fill.
		if _, _, err := h.fill(ctx, "", s, p, stale, nil); err != nil && ctx.Err() == nil {
			h.errorLog.Warn("background revalidation failed", h.failure(s, p, err)...)
		}
	})
	if !started {
		h.revalidating.Delete(key)
	}
}

// fetch asks the origin for p and says what the cache should store. It
// runs once per key at a time (see fill).
func (h *Handler) fetch(ctx context.Context, s *site, p string, stale, broken *cache.Object) (*cache.Response, error) {
	now := h.now()
	// A fill that finished just before this one began has the answer
	// (groupcache's Group.load makes the same check).
	if cur := h.cache.Lookup(s.key(p)); cur != nil && s.window(p, &cur.Meta).fresh(now) && !cur.SoftPurged() && (broken == nil || cur.Meta.Version != broken.Meta.Version) {
		return &cache.Response{Current: cur}, nil
	}
	var cond origin.Conditions
	if stale != nil && stale.Meta.Status == http.StatusOK && stale.Meta.ETag != "" {
		cond.IfNoneMatch = stale.Meta.ETag
	}
	start := time.Now()
	o, err := s.Origin.Get(ctx, p, cond)
	h.metrics.originSecs.WithLabelValues(s.CacheNamespace).Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "ok").Inc()
	case errors.Is(err, origin.ErrNotModified) && stale != nil:
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "not_modified").Inc()
		meta := stale.Meta
		meta.Fetched, meta.Origin = now, originFreshness(parseCacheControl(stale.Meta.CacheControl))
		return &cache.Response{Confirmed: stale, Meta: meta}, nil
	case errors.Is(err, origin.ErrNotFound):
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "not_found").Inc()
		// A misconfigured replica or prefix answers 404: it may not wipe
		// a good copy. A usable copy keeps being served (stale-if-error);
		// objects are removed on purpose by purging them.
		if stale != nil && stale.Meta.Status == http.StatusOK && s.window(p, &stale.Meta).usable(now) {
			return nil, err
		}
		return &cache.Response{Meta: cache.Meta{Status: http.StatusNotFound, Fetched: now, Origin: &cache.OriginFreshness{}}}, nil
	case errors.Is(err, origin.ErrForbidden):
		// S3 answers 403 to everything when the credentials are wrong,
		// expired or lack s3:GetObject: a failure of the origin, like a
		// 5xx (a stale copy is served, else a 502), never a cached 404.
		// (Without s3:ListBucket S3 also answers 403 for missing keys:
		// grant it, so that 404 means 404.)
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "forbidden").Inc()
		return nil, err
	default:
		h.metrics.originReqs.WithLabelValues(s.CacheNamespace, "error").Inc()
		return nil, err
	}
	cc := parseCacheControl(o.CacheControl)
	ct := negotiate.ContentType(o.ContentType, p)
	meta := cache.Meta{
		Status:       http.StatusOK,
		ContentType:  ct,
		Coding:       strings.ToLower(strings.TrimSpace(o.ContentEncoding)),
		ETag:         o.ETag,
		LastModified: o.LastModified,
		CacheControl: o.CacheControl,
		Size:         o.Size,
		Fetched:      now,
		Origin:       originFreshness(cc),
		Tags:         o.SurrogateKeys,
	}
	if stored, known := negotiate.ParseContentEncoding(o.ContentEncoding); known {
		// The cache names variants by coding: "identity", "gzip", ...
		meta.Coding = stored.Token()
		meta.Compressible = negotiate.Compressible(ct, o.CacheControl, o.Size)
	}
	return &cache.Response{Meta: meta, Body: o.Body, NoStore: cc.noStore || cc.private}, nil
}
