package cache

import (
	"bytes"
	"encoding/json"
	"io"
	"sync/atomic"
	"time"

	"github.com/edgecdn/edge/cache/internal/disk"
)

// Meta describes one object version as the origin gave it, and how long
// it stays fresh. It is stored with every variant on disk, so any file
// alone can rebuild the object after a restart.
type Meta struct {
	// Status is 200, or the origin's status for a negative entry (404).
	Status       int       `json:"status"`
	ContentType  string    `json:"type,omitempty"`
	Coding       string    `json:"coding,omitempty"` // content coding of the stored body, lower case; "" = identity
	ETag         string    `json:"etag,omitempty"`   // the origin's ETag
	LastModified time.Time `json:"lastModified"`
	CacheControl string    `json:"cacheControl,omitempty"` // the origin's Cache-Control
	// Size is the stored body's length: set by Fill from what arrived. A
	// Response gives the length the origin announced, or -1 for unknown.
	Size    int64     `json:"size"`
	Fetched time.Time `json:"fetched"` // when the origin last gave or confirmed this version
	Expires time.Time `json:"expires"` // end of freshness
	// StaleWhileRevalidate is how long after Expires the copy may still be
	// served at once while one background revalidation runs (RFC 5861).
	StaleWhileRevalidate time.Duration `json:"swr,omitempty"`
	// StaleIfError is how long after Expires the copy may be served when
	// the origin fails (RFC 5861).
	StaleIfError time.Duration `json:"sie,omitempty"`
	// Version tells this stored version from any other of the same key,
	// so a variant file left from an older version is never served. Fill
	// sets it.
	Version int64 `json:"version"`
	// Compressible records the caller's verdict at fill time that
	// compressed variants are worth deriving, so it is not re-decided on
	// every request.
	Compressible bool `json:"compressible,omitempty"`
	// Undecodable, when set, says why the stored body cannot be
	// transcoded (it is not valid in its own coding): remembered so that
	// the failure is met, logged and counted once per version. Open sets
	// it.
	Undecodable string `json:"undecodable,omitempty"`
	// Transient marks an object the origin forbade storing: it lives only
	// as long as the requests that asked for it.
	Transient bool `json:"-"`
	// Tags are the object's surrogate keys, by which a purge can select
	// it (the origin's x-amz-meta-surrogate-key).
	Tags []string `json:"tags,omitempty"`
	// SoftPurged marks a version a soft purge selected: it is revalidated
	// before it is served again, and served stale only when the origin
	// fails. A revalidation clears it (Fill).
	SoftPurged bool `json:"softPurged,omitempty"`
	// Checked is the sequence number of the newest purge this version
	// has been checked against (see purge.go). Fill sets it.
	Checked int64 `json:"checked,omitempty"`
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

	variants    atomic.Pointer[[]*variant] // copy on write
	undecodable atomic.Pointer[string]     // Meta.Undecodable, or found since
	checked     atomic.Int64               // Meta.Checked, or checked up to since
}

func newObject(key string, m Meta, vs []*variant) *Object {
	obj := &Object{Key: key, Meta: m}
	obj.variants.Store(&vs)
	obj.checked.Store(m.Checked)
	if m.Undecodable != "" {
		obj.undecodable.Store(&m.Undecodable)
	}
	return obj
}

// Undecodable returns why obj's stored body cannot be transcoded into
// other codings, or "" when that is not known to fail.
func (obj *Object) Undecodable() string {
	if r := obj.undecodable.Load(); r != nil {
		return *r
	}
	return ""
}

// variant is an object's body in one content coding.
type variant struct {
	coding string // "identity", "gzip", "zstd", "br", or the stored coding's token
	etag   string
	size   int64
	body   []byte // nil when the body lives on disk only
	spool  *spool // set while a large body is still arriving
}

// find returns obj's variant in coding from memory, or nil.
func (obj *Object) find(coding string) *variant {
	for _, v := range *obj.variants.Load() {
		if v.coding == coding {
			return v
		}
	}
	return nil
}

// cost is what obj is charged in the memory tier: its bodies held in
// memory, plus a fixed overhead.
func (obj *Object) cost() int64 {
	n := int64(objectOverhead)
	for _, v := range *obj.variants.Load() {
		n += int64(len(v.body))
	}
	return n
}

// variantMeta is what a variant's disk file carries: the object's meta
// plus the variant's own ETag.
type variantMeta struct {
	Meta
	VariantETag string `json:"variantETag"`
}

func decodeMeta(raw []byte) (Meta, error) {
	var m Meta
	err := json.Unmarshal(raw, &m)
	return m, err
}

// variantKey names a variant's disk file. NUL cannot occur in an object
// key (paths with NUL are rejected before they reach the cache).
func variantKey(key, coding string) string { return key + "\x00" + coding }

// storedCoding is the name of the variant the origin sent.
func storedCoding(m *Meta) string {
	if m.Coding == "" {
		return "identity"
	}
	return m.Coding
}

// Body is an open variant body: in memory, an open disk file, or a
// transfer still arriving. Close it when done.
type Body struct {
	// Coding is the body's content coding: "identity", "gzip", "zstd",
	// "br", or a stored coding the edge cannot decode.
	Coding string
	// ETag is the variant's entity tag ("" when the origin gave none).
	ETag string
	// Size is the body's length.
	Size int64

	mem    []byte
	file   *disk.Entry
	stream *spoolReader
}

// ReadSeeker returns the body as an io.ReadSeeker, for http.ServeContent.
func (b Body) ReadSeeker() io.ReadSeeker {
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
func (b Body) WriteTo(w io.Writer) (int64, error) {
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
func (b Body) Close() error {
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}
