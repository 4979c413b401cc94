// Package cache holds the edge's objects: a memory tier (ristretto,
// bounded by bytes) over a disk tier (cache/internal/disk: bounded by
// bytes, surviving restarts, checksummed), with coalesced fills and
// variants derived once.
//
// The API is small: Lookup, Fill, Open (and OpenStored), Delete.
//
// An Object is one version of an origin object: its Meta (status, type,
// stored coding, origin ETag, what the origin said about freshness) and
// its variants, one body per content coding. The cache decides nothing
// about freshness: the caller reads Meta and its own configuration.
//
// A lookup goes: memory (one ristretto Get, no I/O); else the disk index
// (in memory, no I/O) and the object's record file, promoting the object
// to memory.
//
// Fill runs one fetch per key however many callers miss at once
// (golang.org/x/sync/singleflight), detached from any one caller's
// cancellation. The caller's fetch asks the origin and says what it
// answered (a Response); the cache decides where the body lives: whole
// in memory and on disk when it fits Config.MaxMemoryObject, else
// streamed to disk through a spool that waiting callers read as it
// arrives, or held only for the callers of this fill when the origin
// forbids storing it.
//
// Open returns a variant's body in a coding. The coding the origin sent
// is stored as it came; every other is derived from it on first demand,
// once per version (large bodies in the background, straight to disk), and
// stored beside it. Open says what went wrong with a typed error:
// ErrNotCached (the stored body is gone: fetch again) or ErrNoVariant
// (that coding cannot be had: serve the stored body, or fail). A stored
// body that is not valid in its own coding is found out once, logged,
// counted and remembered. A new version drops the previous version's
// variant files, in every coding; a revalidation keeps them.
//
// The disk is never the reason a request fails: a write that fails
// degrades the cache to memory, logged and shown by DiskHealth, and is
// retried with a backoff until it works again.
//
// Purge selects objects by exact key, key prefix or surrogate key (tag),
// soft (marked SoftPurged: the caller revalidates before serving, and
// may serve stale when the origin fails) or hard (deleted from both
// tiers). It is in force when it returns, also across restarts (the
// state is in Dir/purges.log); a lookup pays one comparison for it, and a
// background pass (purge.go) applies it to every entry, then drops it.
package cache
