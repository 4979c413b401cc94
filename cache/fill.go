package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// Response is what the origin answered a fill, for Fill to store. Exactly
// one of its forms is used:
//
//   - Current set: the copy the cache holds is already current (a fill
//     that finished just before this one began): Fill returns it as it is.
//   - Confirmed set: the origin confirmed the held copy (a 304 to a
//     conditional request). Fill keeps its body and variants, nothing is
//     transferred or derived again, and Meta carries its new freshness.
//   - No Body, and a Meta.Status other than 200: a negative answer (404),
//     stored without a body.
//   - Otherwise a new version: Meta and Body, the body as the origin sent
//     it, in coding Meta.Coding, of Meta.Size bytes (-1: unknown), at any
//     status.
type Response struct {
	Meta Meta
	// Body is closed by Fill.
	Body io.ReadCloser
	// Key, when set, is where the response is stored instead of the
	// fill's key: a response that varies belongs under its URL's key
	// plus the request's values of the fields it varies on.
	Key string
	// Index, when set, is a key (the URL's) at which to record that its
	// responses vary on Meta.Vary, so that later lookups find Key.
	Index string
	// NoStore says the origin forbids storing this answer (no-store,
	// private): it is served to the requests of this fill and never
	// written to memory or disk.
	NoStore   bool
	Confirmed *Object
	Current   *Object
}

// FetchFunc asks the origin for one key on behalf of Fill. Fill runs it
// with a context detached from any one caller's cancellation (see Fill).
type FetchFunc func(ctx context.Context) (*Response, error)

// Fill runs fetch once for all concurrent callers with the same key and
// stores what it answers, deciding where the body lives:
//
//   - a body of up to MaxMemoryObject bytes is read whole, kept in memory
//     and written to disk;
//   - a larger body, or one of unknown length, streams into a spool file
//     that every waiting caller reads as it arrives, and is committed to
//     disk once complete (served from disk after that);
//   - a NoStore body is held (in memory, or spooled when large) only for
//     the callers of this fill.
//
// A disk that fails never fails a fill: the object is kept in memory
// (large ones are passed through to the callers waiting), and the disk
// is reported degraded (see DiskHealth).
//
// fetch runs with a context detached from any one caller's cancellation
// and bounded by timeout, so a client that goes away does not fail the
// fill for the others, and a finished fill is cached even when its first
// caller left. Callers wait until their own ctx is done. shared reports
// whether the caller joined a fill another caller started.
func (c *Cache) Fill(ctx context.Context, key string, timeout time.Duration, fetch FetchFunc) (obj *Object, shared bool, err error) {
	seen := c.purge.last.Load()
	obj, shared, err = c.fillOnce(ctx, key, timeout, fetch)
	if err != nil || obj.Meta.Transient || obj.checked.Load() >= seen {
		return obj, shared, err
	}
	// The fill began before a purge this caller had already seen: what
	// it got may be what the purge removes. Check it, and fetch again
	// (once) if the purge selects it.
	checked := c.recheck(obj, nil)
	if checked != nil && (!checked.Meta.SoftPurged || obj.Meta.SoftPurged) {
		return checked, shared, nil
	}
	return c.fillOnce(ctx, key, timeout, fetch)
}

// FillAlone is Fill without coalescing: fetch runs for this caller only,
// whoever else is filling key. For requests whose answer may be theirs
// alone (a request with credentials to an HTTP origin, or one the origin
// answered with a response it forbids storing): sharing the fetch would
// give one client's answer to another. What fetch answers is stored as by
// Fill, when it may be.
func (c *Cache) FillAlone(ctx context.Context, key string, timeout time.Duration, fetch FetchFunc) (*Object, error) {
	c.writes.Add(1)
	defer c.writes.Done()
	stamp := c.purge.enterFill()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	obj, streaming, err := c.fill(fctx, key, stamp, fetch)
	if streaming {
		go func() { obj.waitStreamed(); cancel() }()
	} else {
		cancel()
		c.purge.exitFill(stamp)
	}
	return obj, err
}

// fillOnce runs or joins one fill of key (see Fill).
func (c *Cache) fillOnce(ctx context.Context, key string, timeout time.Duration, fetch FetchFunc) (*Object, bool, error) {
	ch := c.fills.DoChan(key, func() (any, error) {
		c.writes.Add(1)
		defer c.writes.Done()
		// Purges recorded from now on may concern what the origin sends.
		stamp := c.purge.enterFill()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		obj, streaming, err := c.fill(fctx, key, stamp, fetch)
		if streaming {
			// The body keeps arriving after the fill returns: keep its
			// context (and the origin's response) alive until it ends.
			// storeStreaming ends the stamp once the body is stored.
			go func() { obj.waitStreamed(); cancel() }()
		} else {
			cancel()
			c.purge.exitFill(stamp)
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

// fill runs one fetch and applies its Response. The result is stamped
// with stamp (Meta.Checked). streaming reports that the body is still
// arriving (storeStreaming), which then ends the stamp.
func (c *Cache) fill(ctx context.Context, key string, stamp int64, fetch FetchFunc) (obj *Object, streaming bool, err error) {
	resp, err := fetch(ctx)
	if err != nil {
		return nil, false, err
	}
	switch {
	case resp.Current != nil:
		return resp.Current, false, nil
	case resp.Confirmed != nil:
		return c.refresh(resp.Confirmed, resp.Meta, stamp), false, nil
	}
	if resp.Key != "" {
		key = resp.Key
	}
	if resp.Index != "" && !resp.NoStore {
		c.storeIndex(resp.Index, resp.Meta.Vary, stamp)
	}
	switch {
	case resp.Body == nil && resp.Meta.Status != 200:
		meta := resp.Meta
		meta.Checked, meta.SoftPurged = stamp, false
		return c.storeNegative(key, meta), false, nil
	case resp.Body == nil:
		return nil, false, fmt.Errorf("cache: response for %q has status 200 and no body", key)
	}
	meta := resp.Meta
	meta.HasBody = meta.Status != 200
	meta.Version = c.nextVersion()
	meta.Transient = resp.NoStore
	meta.Checked, meta.SoftPurged = stamp, false
	body := resp.Body
	if meta.Size < 0 {
		// Unknown length: read what fits in memory, and stream the rest.
		head, complete, err := readUpTo(body, c.maxObject)
		if err != nil {
			body.Close()
			return nil, false, fmt.Errorf("cache: reading body of %q: %w", key, err)
		}
		if !complete {
			return c.storeStreaming(key, meta, struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(head), body), body}), true, nil
		}
		body.Close()
		meta.Size = int64(len(head))
		return c.storeBytes(key, meta, head), false, nil
	}
	if meta.Size > c.maxObject {
		// Too large for memory: callers get the bytes as they land rather
		// than after the whole transfer.
		return c.storeStreaming(key, meta, body), true, nil
	}
	defer body.Close()
	buf := make([]byte, meta.Size)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, false, fmt.Errorf("cache: reading body of %q: %w", key, err)
	}
	// The origin promised Size bytes: more is as wrong as fewer.
	var extra [1]byte
	if n, _ := body.Read(extra[:]); n > 0 {
		return nil, false, fmt.Errorf("cache: body of %q longer than its %d bytes", key, meta.Size)
	}
	return c.storeBytes(key, meta, buf), false, nil
}

// readUpTo reads r until its end or until more than limit bytes arrived.
// complete reports which: then head is the whole body.
func readUpTo(r io.Reader, limit int64) (head []byte, complete bool, err error) {
	head, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	return head, int64(len(head)) <= limit, nil
}

// storeBytes caches a new version whose whole body is buf, unless it is
// transient.
func (c *Cache) storeBytes(key string, meta Meta, buf []byte) *Object {
	v := &variant{coding: storedCoding(&meta), etag: meta.ETag, size: int64(len(buf)), body: buf}
	obj := newObject(key, meta, []*variant{v})
	if !meta.Transient {
		c.replace(obj, v)
	}
	return obj
}

// replace makes obj (whose stored body is v, complete) the cached version
// of its key: its variant file, then its object record, are written to
// disk, the files of the previous version's other variants removed, and
// obj is set in memory. A disk that fails leaves obj in memory only.
func (c *Cache) replace(obj *Object, v *variant) {
	old := c.Lookup(obj.Key)
	if c.putVariant(obj, v, bytes.NewReader(v.body), v.size) {
		c.putRecord(obj)
	}
	c.setVersion(obj)
	if old != nil {
		c.dropVariantFiles(obj.Key, old.Meta.Coding, v.coding)
	}
}

// putVariant writes v's disk file, with body read from r. It reports
// whether the file was written.
func (c *Cache) putVariant(obj *Object, v *variant, r io.Reader, size int64) bool {
	ok, err := c.put(variantKey(obj.Key, v.coding), variantMeta{Meta: obj.Meta, VariantETag: v.etag}, r, size)
	if err != nil {
		// The body is in memory or in a complete spool: it cannot fail.
		c.log.Error("cache: writing a variant failed", "key", obj.Key, "coding", v.coding, "err", err)
	}
	return ok
}

// putRecord writes obj's object record: its meta, which Lookup reads.
func (c *Cache) putRecord(obj *Object) {
	mu := c.recordLock(obj.Key)
	mu.Lock()
	defer mu.Unlock()
	// The record has no body, so put cannot fail on it.
	_, _ = c.put(obj.Key, obj.Meta, nil, 0)
}

// refresh records that the origin confirmed held's version: it caches and
// returns a copy of held with meta's freshness (Fetched and Origin) and
// the fields the confirmation brought (Header, CacheControl, Tags: a 304
// updates them, RFC 9111 §4.3.4), keeping held's variants, which stay
// valid. The new freshness holds in
// memory even when the disk cannot take it, so a full disk never makes
// every request revalidate. The confirmation ends a soft purge; the copy
// is stamped with stamp.
func (c *Cache) refresh(held *Object, meta Meta, stamp int64) *Object {
	m := held.Meta
	m.SoftPurged, m.Checked = false, stamp
	m.Fetched, m.Origin, m.Legacy = meta.Fetched, meta.Origin, nil
	if meta.Header != nil {
		m.Header = meta.Header
	}
	if meta.CacheControl != "" {
		m.CacheControl = meta.CacheControl
	}
	if meta.Tags != nil {
		m.Tags = meta.Tags
	}
	if r := held.undecodable.Load(); r != nil {
		m.Undecodable = *r
	}
	obj := newObject(held.Key, m, *held.variants.Load())
	if !m.Transient {
		c.putRecord(obj)
		c.setVersion(obj)
	}
	return obj
}

// storeIndex records at key (a URL's) that its responses vary on the
// request fields vary: the responses are stored under keys the caller
// makes from a request's values of them.
func (c *Cache) storeIndex(key string, vary []string, stamp int64) {
	if cur := c.Lookup(key); cur != nil && cur.Meta.IsIndex() && slices.Equal(cur.Meta.Vary, vary) {
		return // as it is
	}
	meta := Meta{Vary: vary, Fetched: c.now(), Checked: stamp, Version: c.nextVersion()}
	obj := newObject(key, meta, nil)
	c.putRecord(obj)
	c.setVersion(obj)
}

// storeNegative caches a negative answer (meta.Status 404, say) for key,
// replacing any version it had. Callers decide whether it may replace a
// good copy.
func (c *Cache) storeNegative(key string, meta Meta) *Object {
	meta.Version = c.nextVersion()
	meta.Size = 0
	obj := newObject(key, meta, nil)
	old := c.Lookup(key)
	c.putRecord(obj)
	c.setVersion(obj)
	if old != nil {
		c.dropVariantFiles(key, old.Meta.Coding, "")
	}
	return obj
}

// storeStreaming caches a new version whose body is too large for
// memory (or of unknown length, and too large). It returns at once with
// an Object whose body readers follow the transfer as it lands in a
// spool; the copy continues in the background, then the body is
// committed to the disk tier (as replace would). If the transfer fails,
// readers get an error at the point it failed and nothing is cached.
// body is closed when the copy ends, and the fill's purge stamp
// (meta.Checked) then ended. Called from a fill, whose context stays
// alive until then.
func (c *Cache) storeStreaming(key string, meta Meta, body io.ReadCloser) *Object {
	sp := c.newSpool(meta.Size)
	v := &variant{coding: storedCoding(&meta), etag: meta.ETag, size: meta.Size, spool: sp}
	obj := newObject(key, meta, []*variant{v})
	previous := ""
	if !meta.Transient {
		if old := c.Lookup(key); old != nil {
			previous = storedCoding(&old.Meta)
		}
		// New requests follow the spool too until it is committed.
		c.setVersion(obj)
	}
	c.writes.Add(1)
	go func() {
		defer c.writes.Done()
		defer c.purge.exitFill(meta.Checked)
		n, err := io.Copy(sp, body)
		body.Close()
		if err == nil && meta.Size >= 0 && n != meta.Size {
			err = fmt.Errorf("cache: body of %q is %d bytes, not %d", key, n, meta.Size)
		}
		sp.finish(err)
		switch {
		case err != nil && !meta.Transient:
			c.mem.Del(key)
		case err == nil && !meta.Transient:
			c.commitSpool(obj, v, n, previous)
		}
	}()
	return obj
}

// commitSpool moves a complete spool into the cache: the variant file and
// the object record to disk, then the object, now served from its disk
// file, to memory; the files of the previous version (stored in coding
// previous; "" for none) go. When the disk cannot take it the body is not
// cached: the readers of this fill had it, and the next request fetches
// again.
func (c *Cache) commitSpool(streamed *Object, v *variant, size int64, previous string) {
	meta := streamed.Meta
	meta.Size = size
	final := &variant{coding: v.coding, etag: v.etag, size: size}
	obj := newObject(streamed.Key, meta, []*variant{final})
	if !c.putVariant(obj, final, io.NewSectionReader(v.spool, 0, size), size) {
		c.mem.Del(obj.Key)
		return
	}
	c.putRecord(obj)
	c.setVersion(obj)
	if previous != "" {
		c.dropVariantFiles(obj.Key, previous, final.coding)
	}
}

// Streaming reports whether obj's stored body is still arriving.
func (obj *Object) Streaming() bool {
	for _, v := range *obj.variants.Load() {
		if v.spool != nil && !v.spool.ended() {
			return true
		}
	}
	return false
}

// waitStreamed blocks until obj's stored body, if streaming, has ended.
func (obj *Object) waitStreamed() {
	for _, v := range *obj.variants.Load() {
		if v.spool != nil {
			_, _ = v.spool.wait(-1)
		}
	}
}
