// Package edge is the HTTP side of the CDN: the Handler that answers
// browsers and the admin endpoints beside it.
//
// A request travels: Host → site (origin, rules); URL path → cleaned
// object path and cache key; cache lookup (memory, then disk); on a miss
// or an expired copy, one coalesced origin fetch, conditional when a copy
// is held; Accept-Encoding → the content coding to send (package
// negotiate); the variant in that coding, derived once from the stored
// object and cached beside it; then http.ServeContent for conditional
// requests, Range and HEAD.
//
// The cache key is the site's first origin's name plus the object path
// (replicas added behind it keep the cache). The query
// string is not part of it and is not forwarded: S3 objects have no query
// semantics, and cache-busting query strings would only fragment the
// cache. The Accept-Encoding header is never part of the key either: the
// chosen coding is.
package edge
