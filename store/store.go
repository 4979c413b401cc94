// Package store keeps small objects that every edge of a fleet shares: the
// ACME certificate cache, TLS session-ticket keys, leases, and the purge
// journal. A Store lives in S3 (s3://BUCKET/PREFIX, shared by all edges)
// or in a directory (dir:PATH, one machine, or a shared file system).
//
// Besides Get, Put, Delete and List, a Store has Create: write only if
// the key does not exist yet, atomically, even between edges. That one
// operation is enough to build leases (see Lease), so that of 20 edges
// starting at once, one orders a certificate and the others wait for it.
//
// The contract, which every implementation keeps (certmagic's Storage is
// the model):
//
//   - Keys are slash-separated paths: non-empty elements, no "." or "..",
//     no leading or trailing slash, no backslash or NUL (fs.ValidPath plus
//     those two). Another key is an error that wraps ErrInvalidKey.
//   - "Not there" is an error that wraps fs.ErrNotExist (Get only;
//     Delete of a missing key succeeds). Any other error means the store
//     could not be asked (unreachable, refused credentials, missing
//     bucket) and must not be taken for "not there": callers that create
//     what is missing (a certificate order) would otherwise act on an
//     outage.
//   - "Already there" is an error that wraps fs.ErrExist (Create only).
//   - Writes are atomic: a reader sees the old bytes or the new ones,
//     never a mix or a prefix.
//   - Every method is safe for concurrent use, from one process and from
//     many processes sharing the store, and returns when ctx is done.
//   - Values are small (kilobytes): they are read and written whole.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/edgecdn/edge/internal/s3client"
)

// Store is a shared key-value store of small objects. See the package
// comment for the contract.
type Store interface {
	// Get returns the value of key, or an error wrapping fs.ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put writes value under key, replacing any value there.
	Put(ctx context.Context, key string, value []byte) error
	// Create writes value under key only if key does not exist; if it
	// does, it returns an error wrapping fs.ErrExist and changes nothing.
	// Of any number of concurrent Creates of one key, at most one
	// succeeds.
	Create(ctx context.Context, key string, value []byte) error
	// Delete removes key. A key that does not exist is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys that start with prefix, sorted. The prefix is
	// a plain string prefix ("leases/a" matches "leases/ab/1").
	List(ctx context.Context, prefix string) ([]string, error)
	// String names the store for logs: "s3://BUCKET/PREFIX", "dir:PATH".
	String() string
}

// ErrInvalidKey is wrapped by the error for a key outside the syntax in
// the package comment.
var ErrInvalidKey = errors.New("invalid store key")

// checkKey enforces the key syntax of the package comment.
func checkKey(key string) error {
	if key == "" || key == "." || !fs.ValidPath(key) || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w %q", ErrInvalidKey, key)
	}
	return nil
}

// Open opens the store a flag names:
//
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=D&header_timeout=D]
//	dir:PATH
//
// The s3:// URL takes the same parameters as -origin (internal/s3client).
// A dir: store creates PATH (mode 0700) if it is missing. Open does not
// contact S3. Errors name the spec (any password in it redacted).
func Open(ctx context.Context, spec string) (Store, error) {
	switch {
	case strings.HasPrefix(spec, "s3://"):
		u, err := s3client.ParseURL(spec)
		if err != nil {
			return nil, fmt.Errorf("store %q: %w", s3client.Redact(spec), err)
		}
		b, err := s3client.New(ctx, u, "s3 store")
		if err != nil {
			return nil, fmt.Errorf("store %q: %w", s3client.Redact(spec), err)
		}
		return NewS3(b), nil
	case strings.HasPrefix(spec, "dir:"):
		path := strings.TrimPrefix(spec, "dir:")
		if path == "" {
			return nil, fmt.Errorf("store %q: empty path (want dir:PATH)", spec)
		}
		d, err := NewDir(path)
		if err != nil {
			return nil, fmt.Errorf("store %q: %w", spec, err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("store %q: unknown scheme (want s3://BUCKET[/PREFIX] or dir:PATH)", s3client.Redact(spec))
}
