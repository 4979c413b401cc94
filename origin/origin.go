// Package origin fetches objects from where they live: S3 (through
// aws-sdk-go-v2), a local directory, or any fs.FS such as the embedded demo
// site.
//
// An Origin hands back the object exactly as stored: an object stored
// gzip-encoded in S3 comes back as the gzip bytes with ContentEncoding
// "gzip". Decoding and re-encoding is the negotiate package's job, caching
// the cache package's.
//
// Parse builds an Origin from a spec ("s3://BUCKET/PREFIX", "dir:PATH");
// NewS3, NewDir and NewFS build one directly. Failover wraps one or more
// origins with per-attempt timeouts, bounded retries, ordered failover
// and a circuit breaker per origin; the edge always serves through one.
package origin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Errors an Origin returns, wrapped with context; test them with errors.Is.
var (
	// ErrNotFound means the origin has no object under the key (S3 404
	// NoSuchKey, a missing file). It is cacheable as a negative answer.
	ErrNotFound = errors.New("origin: object not found")
	// ErrForbidden means the origin refused access (S3 403). With broken
	// credentials S3 answers 403 for everything, so callers must not let it
	// evict a good cached copy.
	ErrForbidden = errors.New("origin: access denied")
	// ErrNotModified answers a conditional Get whose validators still match.
	ErrNotModified = errors.New("origin: not modified")
)

// Conditions make a Get conditional, for revalidating a cached copy.
// The zero value means an unconditional Get.
type Conditions struct {
	IfNoneMatch     string    // the cached copy's origin ETag, quoted
	IfModifiedSince time.Time // the cached copy's Last-Modified
	// Header holds request header fields for an origin that speaks HTTP
	// to send as they are (Authorization, Cookie, X-Forwarded-For, Via,
	// ...). S3 and directories ignore it.
	Header http.Header
}

// Object is one object as the origin stores it.
type Object struct {
	// Body is the stored bytes, never decoded. The caller must close it.
	Body io.ReadCloser
	// Size is the length of Body in bytes, or -1 when unknown.
	Size         int64
	ETag         string // quoted, as the origin sent it
	LastModified time.Time
	// ContentType is as stored; "" when the origin has none. S3 always
	// has one: objects uploaded without a type report a generic
	// "binary/octet-stream" or "application/octet-stream", which callers
	// may treat as unknown.
	ContentType     string
	ContentEncoding string // as stored: "" (identity), "gzip", ...
	CacheControl    string // as stored; "" when none
	// Status is the HTTP status of an origin that speaks HTTP; 0 means
	// 200. S3 and directories only answer 200 (the rest are errors).
	Status int
	// Header is every response header field an HTTP origin sent, but the
	// hop-by-hop ones; nil for S3 and directories.
	Header http.Header
	// SurrogateKeys are the object's purge tags: for S3, the user
	// metadata x-amz-meta-surrogate-key, split on white space (Fastly's
	// Surrogate-Key syntax). Nil when the object has none.
	SurrogateKeys []string
}

// Origin is where objects come from. Implementations are safe for
// concurrent use and honour ctx cancellation and deadlines.
//
// Get returns ErrNotFound, ErrForbidden or ErrNotModified (wrapped) for
// those outcomes; any other error is a failure of the origin (network,
// 5xx, throttling) that callers may retry elsewhere or answer from stale.
type Origin interface {
	Get(ctx context.Context, key string, cond Conditions) (*Object, error)
	// String names the origin for logs and metrics, without credentials.
	String() string
}

// A Stater can describe an object without transferring its body (S3
// HeadObject). Stat returns the Object with a nil Body, and the errors
// Get does.
type Stater interface {
	Stat(ctx context.Context, key string) (*Object, error)
}

// Stat describes the object under key as Get would, without its body:
// with the origin's Stat when it has one, else by a Get whose body is
// closed at once. The purge CLI's --verify reads the current ETag so.
func Stat(ctx context.Context, o Origin, key string) (*Object, error) {
	if s, ok := o.(Stater); ok {
		return s.Stat(ctx, key)
	}
	obj, err := o.Get(ctx, key, Conditions{})
	if err != nil {
		return nil, err
	}
	obj.Body.Close()
	obj.Body = nil
	return obj, nil
}

// parseSurrogateKeys splits a Surrogate-Key value into its keys (white
// space separated), or nil when there are none.
func parseSurrogateKeys(v string) []string {
	keys := strings.Fields(v)
	if len(keys) == 0 {
		return nil
	}
	return keys
}
