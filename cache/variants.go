package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"

	"github.com/edgecdn/edge/negotiate"
)

// Errors of Open. Each says what the caller should do.
var (
	// ErrNotCached: the object's stored body is no longer cached (its
	// file was evicted or found corrupt). Fetch the object again.
	ErrNotCached = errors.New("cache: stored body not cached")
	// ErrNoVariant: the object cannot be had in that coding, now or ever
	// (the error says which): its stored body cannot be decoded, it is a
	// transient object too large to transcode, or a large variant is
	// being derived in the background. Serve the stored body (OpenStored)
	// to a client that accepts its coding; fail the others.
	ErrNoVariant = errors.New("cache: no variant in that coding")
)

// derivable names the variants the cache can derive, indexed by coding.
var derivable = func() (names [negotiate.NumCodings]string) {
	for c := range negotiate.Coding(negotiate.NumCodings) {
		names[c] = c.String()
	}
	return names
}()

// isDerivable reports whether name is a coding the cache derives.
func isDerivable(name string) bool {
	for _, n := range derivable {
		if n == name {
			return true
		}
	}
	return false
}

// Open opens obj's body in coding. A variant not cached yet is derived
// from the stored body, once per object version however many callers ask
// (transcoding small bodies while the caller waits; large ones, over
// MaxMemoryObject, in the background while callers get ErrNoVariant),
// and cached beside it.
//
// A stored body that cannot be transcoded (it is not valid in its own
// coding) is found out once per version: the failure is logged, counted
// and remembered, and Open returns ErrNoVariant for other codings from
// then on, without trying again. The object itself stays cached: clients
// that accept its stored coding get it as stored, and the origin is not
// asked again.
func (c *Cache) Open(obj *Object, coding negotiate.Coding) (Body, error) {
	if obj.Meta.Negative() || obj.Meta.IsIndex() {
		return Body{}, fmt.Errorf("cache: %q is a negative entry (%d)", obj.Key, obj.Meta.Status)
	}
	if b, ok := c.openCached(obj, coding.String()); ok {
		return b, nil
	}
	stored, known := negotiate.ParseContentEncoding(obj.Meta.Coding)
	switch {
	case !known:
		return Body{}, fmt.Errorf("%w: %q is stored in coding %q, which the edge cannot decode", ErrNoVariant, obj.Key, obj.Meta.Coding)
	case coding == stored:
		return Body{}, fmt.Errorf("%w: %q (%s)", ErrNotCached, obj.Key, coding)
	case obj.Undecodable() != "":
		return Body{}, fmt.Errorf("%w: %q: %s", ErrNoVariant, obj.Key, obj.Undecodable())
	}
	src := c.variant(obj, stored.String())
	if src == nil {
		return Body{}, fmt.Errorf("%w: %q (%s)", ErrNotCached, obj.Key, stored)
	}
	v, err := c.derive(obj, src, stored, coding)
	if err != nil {
		return Body{}, err
	}
	b, err := c.openVariant(obj, v)
	if err != nil {
		return Body{}, fmt.Errorf("%w: %q (%s): %w", ErrNotCached, obj.Key, coding, err)
	}
	return b, nil
}

// OpenStored opens obj's body as the origin sent it, in whatever coding
// (Meta.Coding), including codings the edge cannot decode. It returns
// ErrNotCached when that body is no longer cached.
func (c *Cache) OpenStored(obj *Object) (Body, error) {
	if obj.Meta.Negative() || obj.Meta.IsIndex() {
		return Body{}, fmt.Errorf("cache: %q is a negative entry (%d)", obj.Key, obj.Meta.Status)
	}
	if b, ok := c.openCached(obj, storedCoding(&obj.Meta)); ok {
		return b, nil
	}
	return Body{}, fmt.Errorf("%w: %q (%s)", ErrNotCached, obj.Key, storedCoding(&obj.Meta))
}

// openCached opens obj's variant named coding if it is cached. A variant
// whose file has gone is forgotten, so it is made again.
func (c *Cache) openCached(obj *Object, coding string) (Body, bool) {
	v := c.variant(obj, coding)
	if v == nil {
		return Body{}, false
	}
	b, err := c.openVariant(obj, v)
	if err != nil {
		c.forget(obj, v)
		return Body{}, false
	}
	return b, true
}

// sendfileMin is the body size from which a body is sent from its disk
// file even when it is in memory: copying a large body into the socket
// costs more than opening its file and letting the kernel send it from
// the page cache (sendfile(2)), as nginx does. A 1 KiB config is cheaper
// from memory.
const sendfileMin = 64 << 10

// openVariant opens v's body: the spool while it arrives, memory for
// small bodies, else its disk file when it still holds this version,
// else memory.
func (c *Cache) openVariant(obj *Object, v *variant) (Body, error) {
	b := Body{Coding: v.coding, ETag: v.etag, Size: v.size}
	switch {
	case v.spool != nil:
		b.stream = &spoolReader{s: v.spool}
		return b, nil
	case v.body != nil && v.size < sendfileMin:
		b.mem = v.body
		return b, nil
	}
	e, err := c.disk.Get(variantKey(obj.Key, v.coding))
	if err == nil && !sameVersion(e.Meta, obj) {
		// Replaced by a newer version since obj was looked up.
		e.Close()
		err = fmt.Errorf("%w: replaced by another version", fs.ErrNotExist)
	}
	switch {
	case err == nil && e.Size == v.size:
		b.file = e
		return b, nil
	case err == nil:
		e.Close()
		err = fmt.Errorf("file of %d bytes, variant of %d", e.Size, v.size)
	}
	if v.body != nil {
		b.mem = v.body
		return b, nil
	}
	return Body{}, fmt.Errorf("cache: opening %q (%s): %w", obj.Key, v.coding, err)
}

// sameVersion reports whether a variant file's meta is obj's version.
func sameVersion(raw []byte, obj *Object) bool {
	var vm struct {
		Version int64 `json:"version"`
	}
	return json.Unmarshal(raw, &vm) == nil && vm.Version == obj.Meta.Version
}

// VariantInfo describes one cached variant of an object.
type VariantInfo struct {
	Coding string `json:"coding"`         // "identity", "gzip", "br", "zstd", or a stored coding
	ETag   string `json:"etag,omitempty"` // the variant's own
	Size   int64  `json:"size"`           // -1 while still arriving from the origin
}

// Variants lists obj's variants that are cached, in memory or on disk,
// without reading their bodies (the disk tier's index answers).
func (c *Cache) Variants(obj *Object) []VariantInfo {
	codings := derivable[:]
	if s := storedCoding(&obj.Meta); !isDerivable(s) {
		codings = append([]string{s}, codings...)
	}
	var out []VariantInfo
	for _, coding := range codings {
		if v := obj.find(coding); v != nil {
			out = append(out, VariantInfo{Coding: coding, ETag: v.etag, Size: v.size})
			continue
		}
		if obj.Meta.Transient {
			continue
		}
		raw, ok := c.disk.Meta(variantKey(obj.Key, coding))
		if !ok {
			continue
		}
		var vm variantMeta
		if json.Unmarshal(raw, &vm) != nil || vm.Version != obj.Meta.Version {
			continue
		}
		size, _ := c.disk.Size(variantKey(obj.Key, coding))
		out = append(out, VariantInfo{Coding: coding, ETag: vm.VariantETag, Size: size})
	}
	return out
}

// variant returns obj's variant in coding, from memory or disk, or nil
// when it is not cached.
func (c *Cache) variant(obj *Object, coding string) *variant {
	if v := obj.find(coding); v != nil {
		return v
	}
	if obj.Meta.Transient {
		return nil
	}
	e, err := c.disk.Get(variantKey(obj.Key, coding))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("cache: reading a variant failed", "key", obj.Key, "coding", coding, "err", err)
		}
		return nil
	}
	defer e.Close()
	var vm variantMeta
	if err := json.Unmarshal(e.Meta, &vm); err != nil || vm.Version != obj.Meta.Version {
		// A leftover of another version of the object.
		return nil
	}
	v := &variant{coding: coding, etag: vm.VariantETag, size: e.Size}
	if e.Size <= c.maxObject {
		body, err := e.ReadBody()
		if err != nil {
			c.log.Warn("cache: reading a variant failed", "key", obj.Key, "coding", coding, "err", err)
			return nil
		}
		v.body = body
	}
	c.addVariant(obj, v)
	return v
}

// addVariant attaches v to obj in memory (replacing one of its coding)
// and charges its size.
func (c *Cache) addVariant(obj *Object, v *variant) {
	for {
		old := obj.variants.Load()
		vs := make([]*variant, 0, len(*old)+1)
		for _, o := range *old {
			if o.coding != v.coding {
				vs = append(vs, o)
			}
		}
		vs = append(vs, v)
		if obj.variants.CompareAndSwap(old, &vs) {
			if !obj.Meta.Transient {
				c.mem.Set(obj.Key, obj, obj.cost())
			}
			return
		}
	}
}

// forget detaches v from obj (its file has gone).
func (c *Cache) forget(obj *Object, v *variant) {
	for {
		old := obj.variants.Load()
		vs := make([]*variant, 0, len(*old))
		for _, o := range *old {
			if o != v {
				vs = append(vs, o)
			}
		}
		if obj.variants.CompareAndSwap(old, &vs) {
			return
		}
	}
}

// derive returns obj's variant in coding to, transcoded from src (in
// coding from), computing it at most once for all concurrent callers.
func (c *Cache) derive(obj *Object, src *variant, from, to negotiate.Coding) (*variant, error) {
	flight := strconv.FormatInt(obj.Meta.Version, 36) + "\x00" + variantKey(obj.Key, to.String())
	if src.body == nil {
		// A large body: transcode it in the background, straight to disk,
		// and serve the stored coding meanwhile. A client waiting seconds
		// for its first byte is worse than one getting a larger body.
		if obj.Meta.Transient || src.spool != nil {
			return nil, fmt.Errorf("%w: %q is too large to transcode before it is stored", ErrNoVariant, obj.Key)
		}
		if _, busy := c.deriving.LoadOrStore(flight, struct{}{}); !busy {
			c.writes.Add(1) // before Open returns, so Close waits for it
			go func() {
				defer c.writes.Done()
				defer c.deriving.Delete(flight)
				// At most half the cores transcode large bodies at once:
				// a release of many large files must not starve hits.
				c.largeDerivations <- struct{}{}
				defer func() { <-c.largeDerivations }()
				c.deriveLarge(obj, src, from, to)
			}()
		}
		return nil, fmt.Errorf("%w: %q: the %s variant is being derived", ErrNoVariant, obj.Key, to)
	}
	r, err, _ := c.derivations.Do(flight, func() (any, error) {
		if v := c.variant(obj, to.String()); v != nil {
			return v, nil
		}
		var buf bytes.Buffer
		if err := negotiate.Transcode(&buf, bytes.NewReader(src.body), from, to); err != nil {
			return nil, c.deriveFailed(obj, to, err)
		}
		c.deriveCount[to].Add(1)
		v := &variant{coding: to.String(), etag: c.variantETag(obj, from, to), size: int64(buf.Len()), body: buf.Bytes()}
		if !obj.Meta.Transient {
			c.writes.Add(1)
			defer c.writes.Done()
			c.putVariant(obj, v, bytes.NewReader(v.body), v.size)
		}
		c.addVariant(obj, v)
		return v, nil
	})
	if err != nil {
		return nil, err
	}
	return r.(*variant), nil
}

// deriveLarge transcodes a large stored body into coding to, streaming it
// into the variant's disk file, and attaches the variant to obj. It is
// skipped while the disk takes no writes: a large variant lives on disk
// only. Failures are logged (deriveFailed).
func (c *Cache) deriveLarge(obj *Object, src *variant, from, to negotiate.Coding) {
	if v := c.variant(obj, to.String()); v != nil {
		return
	}
	body, err := c.openVariant(obj, src)
	if err != nil {
		return // the stored body went: the next Open refetches
	}
	defer body.Close()
	v := &variant{coding: to.String(), etag: c.variantETag(obj, from, to)}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(negotiate.Transcode(pw, body.ReadSeeker(), from, to)) }()
	counted := &countingReader{r: pr}
	stored, err := c.put(variantKey(obj.Key, v.coding), variantMeta{Meta: obj.Meta, VariantETag: v.etag}, counted, -1)
	pr.CloseWithError(errors.New("cache: derivation abandoned"))
	if err != nil {
		c.deriveFailed(obj, to, err)
		return
	}
	if stored {
		// Else the disk cannot hold it now: the stored coding serves.
		c.deriveCount[to].Add(1)
		v.size = counted.n
		c.addVariant(obj, v)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// variantETag is the ETag of obj's variant in coding to.
func (c *Cache) variantETag(obj *Object, from, to negotiate.Coding) string {
	if obj.Meta.ETag == "" {
		return ""
	}
	return negotiate.VariantETag(obj.Meta.ETag, from, to)
}

// deriveFailed handles a failed transcoding of obj into coding to. When
// the stored body is at fault (negotiate.ErrCorrupt), obj is marked
// undecodable, once: logged, counted, and written to its object record so
// that a restart remembers it too. It returns the error for Open.
func (c *Cache) deriveFailed(obj *Object, to negotiate.Coding, err error) error {
	if !errors.Is(err, negotiate.ErrCorrupt) {
		// Reading our own copy failed (an I/O error): nothing is learnt
		// about the object; the next request tries again.
		c.log.Warn("cache: transcoding failed", "key", obj.Key, "coding", to.String(), "err", err)
		return fmt.Errorf("%w: %q: %w", ErrNoVariant, obj.Key, err)
	}
	reason := err.Error()
	// Once per version: per Object, and per record, since one version
	// can be in more than one Object (a lookup from disk while the fill's
	// own is not in memory yet).
	if obj.undecodable.CompareAndSwap(nil, &reason) && (obj.Meta.Transient || c.rememberUndecodable(obj, reason)) {
		c.deriveFailures[to].Add(1)
		c.log.Error("cache: stored body is not valid in its content coding: served only as stored, to clients that accept that coding",
			"key", obj.Key, "stored_coding", obj.Meta.Coding, "coding", to.String(), "etag", obj.Meta.ETag, "err", err)
	}
	return fmt.Errorf("%w: %q: %s", ErrNoVariant, obj.Key, reason)
}

// rememberUndecodable writes obj's record again with the reason, so that
// the failure is not met again after a restart, unless obj has been
// replaced meanwhile (a purge's mark on the record is kept). It reports
// whether the reason is new to the record (false: another Object of the
// version recorded it first).
func (c *Cache) rememberUndecodable(obj *Object, reason string) bool {
	first := true
	_, _, _ = c.rewriteRecord(obj.Key, obj.Meta.Version, func(cur *Meta) *Meta {
		if cur.Undecodable != "" {
			first = false
			return nil
		}
		cur.Undecodable = reason
		return cur
	})
	return first
}
