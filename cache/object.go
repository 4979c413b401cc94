package cache

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
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
	// Origin is what the origin said about how long this version may be
	// used. The edge's own defaults (site, rule, flags) are not stored:
	// the caller applies them when it serves the object, so a change of
	// configuration applies to what is already cached. Nil only in
	// records written before it existed; see Legacy.
	Origin *OriginFreshness `json:"origin,omitempty"`
	// Legacy holds the windows of a record written before Origin
	// existed, computed then with the configuration of the time: used
	// until the object is next revalidated, which writes Origin.
	Legacy *LegacyFreshness `json:"-"`
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
	// HasBody marks a response of another status than 200 that came with
	// a body (an HTTP origin's 404 page, a 301): it is stored and served
	// like a 200. Without it, a status other than 200 is a negative
	// entry: no body (S3's 404).
	HasBody bool `json:"hasBody,omitempty"`
	// Header holds the response header fields to give back with the
	// stored response (an HTTP origin's, less those the edge computes or
	// must not store); nil for S3 and directories.
	Header map[string][]string `json:"header,omitempty"`
	// Vary lists the request fields the responses for this object's URL
	// vary on. On an index entry (Status 0, see IsIndex) it tells the
	// caller where to look: the response for a request is under another
	// key, made from the request's values of these fields.
	Vary []string `json:"vary,omitempty"`
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

// IsIndex reports whether the entry is an index of a URL whose
// responses vary (Meta.Vary), not a response.
func (m *Meta) IsIndex() bool { return m.Status == 0 && m.Vary != nil }

// Negative reports whether the entry is an answer without a body (S3's
// 404), not a response to serve.
func (m *Meta) Negative() bool { return m.Status != 200 && !m.HasBody && !m.IsIndex() }

// OriginFreshness is what an origin said about how long an answer may be
// used, as a shared cache reads it (RFC 9111, RFC 5861). A field whose
// Has is false was not said: the edge's configuration decides it.
type OriginFreshness struct {
	// TTL is the freshness lifetime: s-maxage, else max-age; 0 for
	// no-cache (revalidate before every use).
	TTL    time.Duration `json:"ttl,omitempty"`
	HasTTL bool          `json:"hasTTL,omitempty"`
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows
	// after the lifetime.
	StaleWhileRevalidate    time.Duration `json:"swr,omitempty"`
	HasStaleWhileRevalidate bool          `json:"hasSWR,omitempty"`
	StaleIfError            time.Duration `json:"sie,omitempty"`
	HasStaleIfError         bool          `json:"hasSIE,omitempty"`
	// Heuristic is a lifetime the origin implied rather than said (a
	// tenth of the time since Last-Modified, RFC 9111 §4.2.2), for when
	// neither it nor the configuration gives one.
	Heuristic    time.Duration `json:"heuristic,omitempty"`
	HasHeuristic bool          `json:"hasHeuristic,omitempty"`
	// InitialAge is how old the response already was when it arrived
	// (RFC 9111 §4.2.3): its age at any later time is this plus how
	// long it has been stored.
	InitialAge time.Duration `json:"initialAge,omitempty"`
	// NoStale: the origin forbids serving the response stale
	// (must-revalidate, proxy-revalidate).
	NoStale bool `json:"noStale,omitempty"`
}

// LegacyFreshness is how records written before OriginFreshness existed
// stored freshness: the end of it, and the stale windows after it.
type LegacyFreshness struct {
	Expires              time.Time
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
}

// legacyRecord is the part of an old record that LegacyFreshness reads.
type legacyRecord struct {
	Expires time.Time     `json:"expires"`
	SWR     time.Duration `json:"swr"`
	SIE     time.Duration `json:"sie"`
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
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, err
	}
	if m.Origin == nil {
		var old legacyRecord
		if err := json.Unmarshal(raw, &old); err != nil {
			return m, err
		}
		m.Legacy = &LegacyFreshness{Expires: old.Expires, StaleWhileRevalidate: old.SWR, StaleIfError: old.SIE}
	}
	return m, nil
}

// variantKey names a variant's disk file. Paths with NUL are rejected
// before they reach the cache, so an object key holds NUL only where the
// root package's Vary keys put it (see isVariantKey).
func variantKey(key, coding string) string { return key + "\x00" + coding }

// isVariantKey reports whether a disk key is a variant file's: a record
// key, NUL, and a coding. A record key holds NUL only as its last byte
// (the Vary responses' keys of the root package end in one), so a key
// whose last NUL has something after it is a variant's.
func isVariantKey(key string) bool {
	i := strings.LastIndexByte(key, 0)
	return i >= 0 && i < len(key)-1
}

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
