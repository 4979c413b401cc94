package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"
)

// Defaults used when a Config field is zero.
const (
	// DefaultMemoryBytes bounds the memory tier: 256 MiB holds the widget
	// in every coding many times over plus ~100k small tenant configs.
	DefaultMemoryBytes = 256 << 20
	// DefaultMaxMemoryObject is the largest body held whole in memory;
	// larger bodies live on disk only and are streamed from there.
	DefaultMaxMemoryObject = 8 << 20
	// objectOverhead is charged per object on top of its bodies, so that
	// a flood of tiny (or negative) entries is bounded too.
	objectOverhead = 512
)

// Config configures a Cache. The zero value of every field means its default.
type Config struct {
	// Dir is the disk tier's directory. Required: the disk tier is what
	// lets the edge survive restarts and origin outages.
	Dir string
	// DiskBytes bounds the disk tier. Zero means no bound.
	DiskBytes int64
	// MemoryBytes bounds the memory tier (bodies plus a small per-object
	// overhead). Zero means DefaultMemoryBytes.
	MemoryBytes int64
	// MaxMemoryObject is the largest body the memory tier holds. Zero
	// means DefaultMaxMemoryObject.
	MaxMemoryObject int64
	// OnEvict, when set, is called for every memory-tier eviction.
	OnEvict func()
}

// Cache is the two-tier object cache: memory (ristretto, bounded by
// bytes) over disk (bounded by bytes, survives restarts). It is safe for
// concurrent use.
type Cache struct {
	mem       *ristretto.Cache[string, *Object]
	disk      *Disk
	maxObject int64
	dir       string

	fills  singleflight.Group // per object key: one origin fetch
	derive singleflight.Group // per variant key: one transcoding
	writes sync.WaitGroup     // fills and derivations in flight, for Close

	diskHits atomic.Uint64 // memory hits are ristretto's own (striped) count
	version  atomic.Int64
}

// Open opens the cache, indexing the disk tier.
func Open(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cache: no directory for the disk tier")
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	if cfg.MaxMemoryObject == 0 {
		cfg.MaxMemoryObject = DefaultMaxMemoryObject
	}
	if cfg.MaxMemoryObject > cfg.MemoryBytes {
		cfg.MaxMemoryObject = cfg.MemoryBytes
	}
	// The disk tier indexes itself in the background and answers lookups
	// meanwhile, so a restarted edge serves its cache at once.
	disk, err := OpenDiskAsync(cfg.Dir, cfg.DiskBytes)
	if err != nil {
		return nil, fmt.Errorf("cache: opening disk tier: %w", err)
	}
	// Spool files are unlinked as soon as they are made; one left here
	// means a crash in between.
	if leftovers, err := filepath.Glob(filepath.Join(cfg.Dir, ".spool-*")); err == nil {
		for _, f := range leftovers {
			os.Remove(f)
		}
	}
	// Counters: ristretto advises 10x the number of items expected when
	// full; assume items of ~4 KiB on average.
	counters := cfg.MemoryBytes / 4096 * 10
	if counters < 10000 {
		counters = 10000
	}
	onEvict := cfg.OnEvict
	mem, err := ristretto.NewCache(&ristretto.Config[string, *Object]{
		NumCounters:        counters,
		MaxCost:            cfg.MemoryBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
		Metrics:            true, // striped counters: cheap, and /metrics needs them
		OnEvict: func(*ristretto.Item[*Object]) {
			if onEvict != nil {
				onEvict()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: memory tier: %w", err)
	}
	return &Cache{mem: mem, disk: disk, maxObject: cfg.MaxMemoryObject, dir: cfg.Dir}, nil
}

// Close waits for fills and derivations in flight to finish writing, then
// releases the memory tier.
func (c *Cache) Close() error {
	c.writes.Wait()
	<-c.disk.Indexed()
	c.mem.Close()
	return nil
}

// Meta describes one object version as the origin gave it, and how long
// it stays fresh. It is stored with every variant on disk, so any file
// alone can rebuild the object after a restart.
type Meta struct {
	// Status is 200, or the origin's status for a negative entry (404).
	Status       int       `json:"status"`
	ContentType  string    `json:"type,omitempty"`
	Coding       string    `json:"coding,omitempty"` // content coding of the stored body; "" = identity
	ETag         string    `json:"etag,omitempty"`   // the origin's ETag
	LastModified time.Time `json:"lastModified"`
	CacheControl string    `json:"cacheControl,omitempty"` // the origin's Cache-Control
	Size         int64     `json:"size"`                   // stored body length
	Fetched      time.Time `json:"fetched"`                // when the origin last gave or confirmed this version
	Expires      time.Time `json:"expires"`                // end of freshness
	// StaleWhileRevalidate is how long after Expires the copy may still be
	// served at once while one background revalidation runs (RFC 5861).
	StaleWhileRevalidate time.Duration `json:"swr,omitempty"`
	// StaleIfError is how long after Expires the copy may be served when
	// the origin fails (RFC 5861).
	StaleIfError time.Duration `json:"sie,omitempty"`
	// Version tells this stored version from any other of the same key,
	// so a variant file left from an older version is never served.
	// Store sets it.
	Version int64 `json:"version"`
	// Compressible records the caller's verdict at fill time that
	// compressed variants are worth deriving, so it is not re-decided on
	// every request.
	Compressible bool `json:"compressible,omitempty"`
	// Transient marks an Object made by Transient: never stored, so
	// nothing may be derived from it.
	Transient bool `json:"-"`
}

// Fresh reports whether the entry is fresh at now.
func (m *Meta) Fresh(now time.Time) bool { return now.Before(m.Expires) }

// Revalidating reports whether, at now, the entry is expired but within
// its stale-while-revalidate window.
func (m *Meta) Revalidating(now time.Time) bool {
	return !m.Fresh(now) && now.Before(m.Expires.Add(m.StaleWhileRevalidate))
}

// Usable reports whether the entry may be served at now when the origin
// fails: fresh, or within its stale-if-error window.
func (m *Meta) Usable(now time.Time) bool { return now.Before(m.Expires.Add(m.StaleIfError)) }

// Age is how long ago the origin last gave or confirmed this version
// (RFC 9111 §5.1), in whole seconds, never negative.
func (m *Meta) Age(now time.Time) int64 {
	if a := now.Sub(m.Fetched); a > 0 {
		return int64(a / time.Second)
	}
	return 0
}

// Object is one cached object version and the variants derived from it.
// Its Meta never changes; a refreshed or replaced version is a new Object.
type Object struct {
	Key  string
	Meta Meta

	variants atomic.Pointer[[]*Variant] // copy on write
}

// Variant is an object's body in one content coding.
type Variant struct {
	Coding string // "identity", "gzip", "br", "zstd"
	ETag   string
	Size   int64
	body   []byte // nil when the body lives on disk only
	spool  *spool // set while a large body is still arriving
}

// variantMeta is what a variant's disk file carries: the object's meta
// plus the variant's own ETag.
type variantMeta struct {
	Meta
	VariantETag string `json:"variantETag"`
}

// MaxMemoryObject is the largest body held in memory; larger ones are
// stored with StoreStreaming.
func (c *Cache) MaxMemoryObject() int64 { return c.maxObject }

// Body is an open variant body: in memory, an open disk file, or a
// transfer still arriving.
type Body struct {
	mem    []byte
	file   *DiskEntry
	stream *spoolReader
}

// sendfileMin is the body size from which Open prefers the disk file
// even when the body is in memory: copying a large body into the socket
// costs more than opening its file and letting the kernel send it from
// the page cache (sendfile(2)), as nginx does. A 1 KiB config is cheaper
// from memory.
const sendfileMin = 64 << 10

// Open opens v's body. Large bodies are opened from their disk file (see
// sendfileMin) when it still holds this version, else from memory; a
// body only on disk must still be there. Close the Body when done.
func (c *Cache) Open(obj *Object, v *Variant) (*Body, error) {
	if v.spool != nil {
		return &Body{stream: &spoolReader{s: v.spool}}, nil
	}
	if v.body != nil && v.Size < sendfileMin {
		return &Body{mem: v.body}, nil
	}
	e, err := c.disk.Get(variantKey(obj.Key, v.Coding))
	if err == nil && !sameVersion(e, obj, v) {
		// Replaced by a newer version since obj was looked up.
		e.Close()
		err = fmt.Errorf("%w: replaced by another version", fs.ErrNotExist)
	}
	switch {
	case err == nil:
		return &Body{file: e}, nil
	case v.body != nil:
		return &Body{mem: v.body}, nil
	}
	return nil, fmt.Errorf("cache: opening %q (%s): %w", obj.Key, v.Coding, err)
}

// sameVersion reports whether the disk entry e holds variant v of obj.
func sameVersion(e *DiskEntry, obj *Object, v *Variant) bool {
	if e.Size != v.Size {
		return false
	}
	var vm struct {
		Version int64 `json:"version"`
	}
	return json.Unmarshal(e.Meta, &vm) == nil && vm.Version == obj.Meta.Version
}

// ReadSeeker returns the body as an io.ReadSeeker, for http.ServeContent.
func (b *Body) ReadSeeker() io.ReadSeeker {
	switch {
	case b.stream != nil:
		return b.stream
	case b.file != nil:
		return b.file.Body
	}
	return bytes.NewReader(b.mem)
}

// WriteTo writes the whole body to w: one Write from memory, or the file
// handed to w so that a net/http response sends it with sendfile(2).
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	switch {
	case b.stream != nil:
		return io.Copy(w, b.stream)
	case b.file != nil:
		return b.file.WriteTo(w)
	}
	n, err := w.Write(b.mem)
	return int64(n), err
}

// Close releases the body's file, if any.
func (b *Body) Close() error {
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}

// variantKey names a variant's disk file. NUL cannot occur in an
// object key (paths with NUL are rejected before they reach the cache).
func variantKey(key, coding string) string { return key + "\x00" + coding }

// Lookup returns the cached object for key from memory, else from disk
// (promoting it to memory), or nil when neither holds it. Stale objects
// are returned too: freshness is the caller's decision.
func (c *Cache) Lookup(key string) *Object {
	if obj, ok := c.mem.Get(key); ok {
		return obj
	}
	raw, ok := c.disk.Meta(key)
	if !ok {
		return nil
	}
	var m Meta
	if err := json.Unmarshal(raw, &m); err != nil {
		_ = c.disk.Delete(key)
		return nil
	}
	c.diskHits.Add(1)
	obj := &Object{Key: key, Meta: m}
	obj.variants.Store(&[]*Variant{})
	c.mem.Set(key, obj, objectOverhead)
	return obj
}

// Variant returns obj's variant in coding, from memory or disk, or nil
// when it is not cached.
func (c *Cache) Variant(obj *Object, coding string) *Variant {
	for _, v := range *obj.variants.Load() {
		if v.Coding == coding {
			return v
		}
	}
	e, err := c.disk.Get(variantKey(obj.Key, coding))
	if err != nil {
		return nil
	}
	defer e.Close()
	var vm variantMeta
	if err := json.Unmarshal(e.Meta, &vm); err != nil || vm.Version != obj.Meta.Version {
		// A leftover of another version of the object.
		return nil
	}
	v := &Variant{Coding: coding, ETag: vm.VariantETag, Size: e.Size}
	if e.Size <= c.maxObject {
		body, err := e.ReadBody()
		if err != nil {
			return nil
		}
		v.body = body
	}
	c.addVariant(obj, v)
	return v
}

// addVariant attaches v to obj in memory and charges its size.
func (c *Cache) addVariant(obj *Object, v *Variant) {
	for {
		old := obj.variants.Load()
		vs := make([]*Variant, 0, len(*old)+1)
		for _, o := range *old {
			if o.Coding != v.Coding {
				vs = append(vs, o)
			}
		}
		vs = append(vs, v)
		if obj.variants.CompareAndSwap(old, &vs) {
			c.mem.Set(obj.Key, obj, obj.cost())
			return
		}
	}
}

func (obj *Object) cost() int64 {
	n := int64(objectOverhead)
	for _, v := range *obj.variants.Load() {
		n += int64(len(v.body))
	}
	return n
}

// Fill runs fetch once for all concurrent callers with the same key and
// returns its object to each. fetch runs with a context detached from any
// one caller's cancellation (bounded by timeout), so a client that goes
// away does not fail the fill for the others, and a finished fill is
// cached even when its first caller left. Callers wait until their own
// ctx is done.
func (c *Cache) Fill(ctx context.Context, key string, timeout time.Duration, fetch func(ctx context.Context) (*Object, error)) (obj *Object, shared bool, err error) {
	ch := c.fills.DoChan(key, func() (any, error) {
		c.writes.Add(1)
		defer c.writes.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		obj, err := fetch(fctx)
		if err == nil && obj.Streaming() {
			// The body keeps arriving after the fill returns: keep its
			// context (and the origin's response) alive until it ends.
			go func() { obj.waitStreamed(); cancel() }()
		} else {
			cancel()
		}
		return obj, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Shared, r.Err
		}
		return r.Val.(*Object), r.Shared, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// Store caches a new object version under key: meta, and its body as the
// origin sent it (coding meta.Coding, ETag etag). It replaces any
// previous version and its variants. The body is streamed to disk; when
// it fits the memory tier it is kept in memory too. size is the expected
// length, or -1; a body of another length is an error and stores nothing.
func (c *Cache) Store(key string, meta Meta, etag string, body io.Reader, size int64) (*Object, error) {
	c.writes.Add(1)
	defer c.writes.Done()
	meta.Version = c.nextVersion()
	old := c.Lookup(key)
	keep := ""
	var vs []*Variant
	if body != nil {
		v := &Variant{Coding: codingName(meta.Coding), ETag: etag}
		if err := c.putStream(key, meta, v, body, size); err != nil {
			return nil, err
		}
		meta.Size = v.Size
		keep = v.Coding
		vs = append(vs, v)
	}
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("cache: encoding meta of %q: %w", key, err)
	}
	if _, err := c.disk.Put(key, raw, bytes.NewReader(nil), 0); err != nil {
		return nil, fmt.Errorf("cache: storing %q: %w", key, err)
	}
	obj := &Object{Key: key, Meta: meta}
	obj.variants.Store(&vs)
	c.mem.Set(key, obj, obj.cost())
	if old != nil {
		c.dropVariants(key, keep)
	}
	return obj, nil
}

// nextVersion returns a number never returned before by this process and
// larger than any from an earlier run (barring clock jumps of years).
func (c *Cache) nextVersion() int64 {
	now := time.Now().UnixNano()
	for {
		last := c.version.Load()
		next := max(now, last+1)
		if c.version.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Refresh records that the origin confirmed obj's version (a 304): it
// returns and caches a copy of obj with the new freshness, keeping obj's
// variants, which stay valid: nothing is transferred or derived again.
func (c *Cache) Refresh(obj *Object, fetched, expires time.Time, swr, sie time.Duration) (*Object, error) {
	c.writes.Add(1)
	defer c.writes.Done()
	meta := obj.Meta
	meta.Fetched, meta.Expires = fetched, expires
	meta.StaleWhileRevalidate, meta.StaleIfError = swr, sie
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("cache: encoding meta of %q: %w", obj.Key, err)
	}
	if _, err := c.disk.Put(obj.Key, raw, bytes.NewReader(nil), 0); err != nil {
		return nil, fmt.Errorf("cache: refreshing %q: %w", obj.Key, err)
	}
	n := &Object{Key: obj.Key, Meta: meta}
	n.variants.Store(obj.variants.Load())
	c.mem.Set(n.Key, n, n.cost())
	return n, nil
}

// Transient wraps a response that must not be stored (the origin said
// no-store or private) as an Object that lives only as long as the
// request: nothing reaches memory or disk. Bodies over the memory
// object limit are refused.
func (c *Cache) Transient(key string, meta Meta, etag string, body io.Reader, size int64) (*Object, error) {
	if size < 0 || size > c.maxObject {
		return nil, fmt.Errorf("cache: uncacheable %q of %d bytes is too large to pass through", key, size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, fmt.Errorf("cache: reading body of %q: %w", key, err)
	}
	meta.Size, meta.Transient = size, true
	obj := &Object{Key: key, Meta: meta}
	obj.variants.Store(&[]*Variant{{Coding: codingName(meta.Coding), ETag: etag, Size: size, body: buf}})
	return obj, nil
}

// StoreNegative caches a negative answer (meta.Status 404, say) for key.
// Callers decide whether it may replace a good copy.
func (c *Cache) StoreNegative(key string, meta Meta) (*Object, error) {
	return c.Store(key, meta, "", nil, 0)
}

var codings = [...]string{"identity", "gzip", "br", "zstd"}

// dropVariants removes the disk files of key's variants except keep
// (already overwritten by the new version).
func (c *Cache) dropVariants(key, keep string) {
	for _, coding := range codings {
		if coding != keep {
			_ = c.disk.Delete(variantKey(key, coding))
		}
	}
}

// putStream stores v's body read from body, of size bytes (-1: unknown).
func (c *Cache) putStream(key string, meta Meta, v *Variant, body io.Reader, size int64) error {
	if size >= 0 && size <= c.maxObject {
		buf := make([]byte, size)
		if _, err := io.ReadFull(body, buf); err != nil {
			return fmt.Errorf("cache: reading body of %q: %w", key, err)
		}
		// The origin promised size bytes: more is as wrong as fewer.
		var extra [1]byte
		if n, _ := body.Read(extra[:]); n > 0 {
			return fmt.Errorf("cache: body of %q longer than its %d bytes", key, size)
		}
		return c.putBytes(key, meta, v, buf)
	}
	raw, err := json.Marshal(variantMeta{Meta: meta, VariantETag: v.ETag})
	if err != nil {
		return fmt.Errorf("cache: encoding meta of %q: %w", key, err)
	}
	if _, err := c.disk.Put(variantKey(key, v.Coding), raw, body, size); err != nil {
		return fmt.Errorf("cache: storing %q (%s): %w", key, v.Coding, err)
	}
	e, err := c.disk.Get(variantKey(key, v.Coding))
	if err != nil {
		return fmt.Errorf("cache: reopening %q (%s): %w", key, v.Coding, err)
	}
	defer e.Close()
	v.Size = e.Size
	if e.Size <= c.maxObject {
		v.body, err = e.ReadBody()
	}
	return err
}

// putBytes stores v's body buf on disk, and keeps it in memory if it fits.
func (c *Cache) putBytes(key string, meta Meta, v *Variant, buf []byte) error {
	raw, err := json.Marshal(variantMeta{Meta: meta, VariantETag: v.ETag})
	if err != nil {
		return fmt.Errorf("cache: encoding meta of %q: %w", key, err)
	}
	if _, err := c.disk.Put(variantKey(key, v.Coding), raw, bytes.NewReader(buf), int64(len(buf))); err != nil {
		return fmt.Errorf("cache: storing %q (%s): %w", key, v.Coding, err)
	}
	v.Size = int64(len(buf))
	if v.Size <= c.maxObject {
		v.body = buf
	}
	return nil
}

// Derive returns obj's variant in coding, computing it at most once for
// all concurrent callers: transcode reads the body of variant from and
// writes the body in coding. The result is cached beside the original.
func (c *Cache) Derive(obj *Object, from *Variant, coding, etag string, transcode func(dst io.Writer, src io.Reader) error) (*Variant, error) {
	flight := strconv.FormatInt(obj.Meta.Version, 36) + "\x00" + variantKey(obj.Key, coding)
	r, err, _ := c.derive.Do(flight, func() (any, error) {
		if v := c.Variant(obj, coding); v != nil {
			return v, nil
		}
		c.writes.Add(1)
		defer c.writes.Done()
		v := &Variant{Coding: coding, ETag: etag}
		if from.body != nil {
			// Small objects: transcode in memory, no disk round trip.
			var buf bytes.Buffer
			if err := transcode(&buf, bytes.NewReader(from.body)); err != nil {
				return nil, fmt.Errorf("cache: deriving %s of %q: %w", coding, obj.Key, err)
			}
			if err := c.putBytes(obj.Key, obj.Meta, v, buf.Bytes()); err != nil {
				return nil, err
			}
		} else {
			body, err := c.Open(obj, from)
			if err != nil {
				return nil, err
			}
			defer body.Close()
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(transcode(pw, body.ReadSeeker())) }()
			err = c.putStream(obj.Key, obj.Meta, v, pr, -1)
			pr.CloseWithError(err)
			if err != nil {
				return nil, fmt.Errorf("cache: deriving %s of %q: %w", coding, obj.Key, err)
			}
		}
		c.addVariant(obj, v)
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	return r.(*Variant), nil
}

// Delete drops key and its variants from both tiers.
func (c *Cache) Delete(key string) {
	c.mem.Del(key)
	_ = c.disk.Delete(key)
	c.dropVariants(key, "")
}

// Wait blocks until pending memory-tier writes are applied (ristretto
// applies Sets asynchronously). For tests and benchmarks.
func (c *Cache) Wait() { c.mem.Wait() }

// Stats is a snapshot of the cache's counters.
type Stats struct {
	MemoryBytes   int64
	MemoryHits    uint64
	DiskHits      uint64
	MemoryEvicted uint64
	Disk          DiskStats
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	m := c.mem.Metrics
	s := Stats{DiskHits: c.diskHits.Load(), Disk: c.disk.Stats()}
	if m != nil {
		s.MemoryHits = m.Hits()
		s.MemoryBytes = int64(m.CostAdded() - m.CostEvicted())
		s.MemoryEvicted = m.KeysEvicted()
	}
	return s
}

func codingName(token string) string {
	if token == "" {
		return "identity"
	}
	return token
}
