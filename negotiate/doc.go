// Package negotiate decides which content coding a response gets and
// produces that coding.
//
// # The model
//
// The origin (S3) keeps exactly one variant of each object: whatever the
// uploader stored, usually plain (identity) and sometimes gzip. Clients
// want different codings: a modern browser wants br or zstd, an old one
// gzip, curl and scripts nothing at all. So the edge derives every other
// coding from the stored variant once, on the first request that wants
// it, caches that variant beside the stored one, and serves it from
// cache after that. No compression happens on the hot path.
//
// This package owns the decisions and the transformations, and nothing
// else: it knows nothing about caches or S3.
//
//   - [Choose] reads a request's Accept-Encoding and picks the [Coding]
//     to serve among the ones the caller can offer (RFC 9110 §12.5.3).
//     It does not allocate. A request without Accept-Encoding gets
//     [Identity]; see Choose for why.
//   - [ParseContentEncoding] maps a stored Content-Encoding to a Coding,
//     or says the edge cannot decode it and must serve it as stored.
//   - [Compressible] decides whether deriving compressed variants of an
//     object is worth it at all (size, type, Cache-Control: no-transform).
//   - [ContentType] repairs the Content-Type S3 reports when the uploader
//     did not set one.
//   - [VariantETag] gives every variant its own entity tag, as RFC 9110
//     §8.8.3.3 requires of representations that differ in coding.
//   - [Transcode] converts a stream from one coding to another.
//
// # How a miss flows
//
// The caller (the edge handler) does, in order:
//
//	stored, ok := negotiate.ParseContentEncoding(obj.ContentEncoding)
//	if !ok {
//		// serve the object exactly as stored, no negotiation
//	}
//	// The stored coding can always be served, and Identity can always be
//	// derived from it (Choose falls back to Identity).
//	offered := negotiate.SetOf(negotiate.Identity, stored)
//	if negotiate.Compressible(ct, obj.CacheControl, obj.Size) {
//		offered = negotiate.All
//	}
//	c := negotiate.Choose(r.Header.Values("Accept-Encoding"), offered)
//	// cache lookup on (key, c); on a miss for a derived variant:
//	err := negotiate.Transcode(variantFile, storedBody, stored, c)
//	etag := negotiate.VariantETag(obj.ETag, stored, c)
//
// The cache key uses the chosen Coding, never the raw header: raw
// Accept-Encoding values differ between browsers and versions and would
// fragment the cache into copies of the same few bytes.
//
// # Levels
//
// Encoders use the best compression that still encodes a ~175 KB
// minified JavaScript file in well under 50 ms on one core, because a
// variant is encoded while a client waits for its miss; see the level
// constants in transcode.go for the measurements. Encoders at those
// levels are large (tens of MB of tables each) and slow to build, so a
// few are kept idle across garbage collections (codecs.go).
package negotiate
