package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgecdn/edge/cache/internal/disk"
)

// A disk that fails a write (full, read-only, I/O errors) is degraded:
// the cache keeps serving from memory and from the origin, and tries the
// disk again once per retry interval, which doubles from diskRetryMin to
// diskRetryMax while the disk keeps failing. A write that succeeds ends
// the episode.
const (
	diskRetryMin = 5 * time.Second
	diskRetryMax = 5 * time.Minute
)

// diskHealth tracks whether the disk tier takes writes.
type diskHealth struct {
	now      func() time.Time
	log      *slog.Logger
	errors   atomic.Uint64
	degraded atomic.Bool // mirrors state.degraded, read without the lock

	mu      sync.Mutex
	since   time.Time // the episode's first failure
	lastErr error
	retryAt time.Time
	backoff time.Duration
}

func newDiskHealth(now func() time.Time, log *slog.Logger) *diskHealth {
	return &diskHealth{now: now, log: log}
}

// probe checks at start that dir takes a write, so that a cache volume
// mounted with the wrong owner shows at once (in the log and on
// /healthz?verbose) rather than as a silent memory-only edge.
func (d *diskHealth) probe(dir string, fsys disk.FS) {
	f, err := fsys.CreateTemp(dir, ".probe-*")
	if err == nil {
		_, err = f.Write([]byte("edge"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if rerr := fsys.Remove(f.Name()); err == nil {
			err = rerr
		}
	}
	if err != nil {
		d.failed(fmt.Errorf("cache directory %s is not writable: %w", dir, err))
	}
}

// allow reports whether a disk write may be tried now: always while the
// disk is healthy; while degraded, once per retry interval (the callers
// that are refused serve from memory).
func (d *diskHealth) allow() bool {
	if !d.degraded.Load() {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if now.Before(d.retryAt) {
		return false
	}
	d.retryAt = now.Add(d.backoff) // one try per interval
	return true
}

// failed records a failed write: the disk is degraded from now on.
func (d *diskHealth) failed(err error) {
	d.errors.Add(1)
	d.mu.Lock()
	now := d.now()
	first := !d.degraded.Load()
	if first {
		d.since, d.backoff = now, diskRetryMin
		d.degraded.Store(true)
	} else {
		d.backoff = min(2*d.backoff, diskRetryMax)
	}
	d.lastErr = err
	d.retryAt = now.Add(d.backoff)
	backoff := d.backoff
	d.mu.Unlock()
	if first {
		d.log.Error("cache: disk degraded: serving from memory and the origin until the disk takes writes again",
			"err", err, "retry", backoff.String())
	} else {
		d.log.Warn("cache: disk still failing", "err", err, "retry", backoff.String())
	}
}

// succeeded records a write that worked: a degraded disk has recovered.
func (d *diskHealth) succeeded() {
	if !d.degraded.Load() {
		return
	}
	d.mu.Lock()
	since := d.since
	recovered := d.degraded.CompareAndSwap(true, false)
	d.mu.Unlock()
	if recovered {
		d.log.Warn("cache: disk recovered: writes work again", "degraded_for", d.now().Sub(since).Round(time.Second).String())
	}
}

func (d *diskHealth) counters() (errors uint64, degraded bool) {
	return d.errors.Load(), d.degraded.Load()
}

// report says how the disk is, for /healthz?verbose.
func (d *diskHealth) report() (ok bool, detail string) {
	if !d.degraded.Load() {
		return true, ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	return false, fmt.Sprintf("degraded for %s, serving from memory: %v; next write tried in %s",
		now.Sub(d.since).Round(time.Second), d.lastErr, max(0, d.retryAt.Sub(now)).Round(time.Second))
}

// put writes one disk file: meta (encoded as JSON) and body, of size
// bytes (-1: unknown). It returns whether the file was written. A disk
// that is degraded, or fails this write, is the cache's problem, not the
// caller's: it is logged and counted here, and put returns false with no
// error; the caller keeps what it has in memory. An error means the body
// itself failed (its reader's error, wrapped): nothing was written.
func (c *Cache) put(key string, meta any, body io.Reader, size int64) (bool, error) {
	raw, err := json.Marshal(meta)
	if err != nil {
		return false, fmt.Errorf("cache: encoding meta of %q: %w", key, err)
	}
	if !c.diskState.allow() {
		return false, nil
	}
	_, err = c.disk.Put(key, raw, body, size)
	switch {
	case err == nil:
		c.diskState.succeeded()
		return true, nil
	case errors.Is(err, disk.ErrBody):
		return false, fmt.Errorf("cache: %w", err)
	case errors.Is(err, disk.ErrTooLarge):
		c.log.Warn("cache: object larger than the whole disk tier (-disk): not stored", "key", key, "err", err)
		return false, nil
	}
	c.diskState.failed(err)
	return false, nil
}

// deleteFile removes one disk file; a failure degrades the disk.
func (c *Cache) deleteFile(key string) {
	if err := c.disk.Delete(key); err != nil {
		c.diskState.failed(err)
	}
}

// dropVariantFiles removes the disk files of key's variants: every coding
// the edge derives, and stored, the coding the origin sent (which may be
// one the edge cannot decode), except keep.
func (c *Cache) dropVariantFiles(key, stored, keep string) {
	for _, coding := range derivable {
		if coding != keep {
			c.deleteFile(variantKey(key, coding))
		}
	}
	if s := storedCoding(&Meta{Coding: stored}); !isDerivable(s) && s != keep {
		c.deleteFile(variantKey(key, s))
	}
}
