// Package cache holds the edge's objects: a memory tier (ristretto,
// bounded by bytes) over a disk tier (bounded by bytes, surviving
// restarts, checksummed), and coalesced fills.
//
// An Object is one version of an origin object: its Meta (status, type,
// stored coding, origin ETag, freshness and stale windows) and its
// variants, one body per content coding. The variant in the coding the
// origin sent is stored by Store; every other coding is derived once by
// Derive and stored beside it. Variants share their object's fate: a new
// version (Store) drops them, a revalidation (Refresh) keeps them.
//
// A lookup goes: memory (one ristretto Get, no I/O); else the disk index
// (in memory, no I/O) and the object's record file, promoting the object
// to memory. A variant's body is in memory when it fits
// Config.MaxMemoryObject, else it is read from its disk file.
//
// Fill runs one fetch per key however many callers miss at once
// (golang.org/x/sync/singleflight), detached from any one caller's
// cancellation. The cache decides nothing about HTTP or origins: the
// caller's fetch function does, and tells the cache what to store.
//
// Purge selects objects by exact key, key prefix or surrogate key (tag),
// soft (marked SoftPurged: the caller revalidates before serving, and
// may serve stale when the origin fails) or hard (deleted from both
// tiers). It is in force when it returns, also across restarts (the
// state is in Dir/purges.log); a lookup pays one comparison for it, and a
// background pass (purge.go) applies it to every entry, then drops it.
package cache
