package negotiate

import (
	"mime"
	"path"
	"strings"
)

// MinSize is the smallest body, in bytes, worth deriving compressed
// variants for. Below it the coding's framing and the extra cache entry
// cost more than the bytes saved (klauspost/compress/gzhttp uses the same
// default).
const MinSize = 1024

// octetStream is the type of bytes nobody described.
const octetStream = "application/octet-stream"

// Compressible reports whether an object is worth deriving compressed
// variants for. It is false when:
//
//   - size is below MinSize (a negative size means "unknown" and does not
//     disqualify the object);
//   - cacheControl holds the no-transform directive: RFC 9111 §5.2.2.6
//     forbids intermediaries to change the content coding;
//   - contentType is not one that is known to shrink.
//
// Only types on an allow list compress (after the parameters are removed,
// compared case-insensitively); anything else, including an unknown or
// empty type, does not. Being conservative costs a few bytes on the wire
// for an odd type; being wrong costs CPU on every miss and cache space
// for a variant no smaller than the original. The list:
//
//   - every text/* type;
//   - every type with a +json or +xml suffix (image/svg+xml,
//     application/manifest+json, application/rss+xml, ...);
//   - JavaScript, JSON, XML, WebAssembly and other text or structured
//     application types (application/javascript, application/json,
//     application/xml, application/wasm, application/x-ndjson,
//     application/yaml, application/x-sh, application/rtf,
//     application/postscript, application/x-tar, ...);
//   - uncompressed font formats: font/ttf, font/otf, font/sfnt,
//     font/collection, application/vnd.ms-fontobject and the legacy
//     application/x-font-* names;
//   - uncompressed images: image/x-icon, image/vnd.microsoft.icon,
//     image/bmp.
//
// Notably not compressed: other images (PNG, JPEG, GIF, WebP, AVIF are
// compressed already), audio/*, video/*, font/woff and font/woff2
// (compressed internally), archives and compressed files (zip, gzip, 7z,
// rar, bzip2, xz, zstd, brotli), application/pdf (its streams are
// already deflated; typical gain is a few per cent) and
// application/octet-stream (opaque bytes of any kind; [ContentType]
// resolves most of these from the key's extension first).
//
// The rules follow Caddy's encode module (an allow list) rather than
// gzhttp's (a deny list that compresses unknown types).
func Compressible(contentType, cacheControl string, size int64) bool {
	if size >= 0 && size < MinSize {
		return false
	}
	if hasDirective(cacheControl, "no-transform") {
		return false
	}
	return compressibleType(contentType)
}

func compressibleType(contentType string) bool {
	mt := strings.ToLower(mediaType(contentType))
	top, sub, ok := strings.Cut(mt, "/")
	if !ok || top == "" || sub == "" {
		return false
	}
	if top == "text" {
		return true
	}
	if strings.HasSuffix(sub, "+json") || strings.HasSuffix(sub, "+xml") {
		return true
	}
	switch mt {
	case "application/javascript",
		"application/x-javascript",
		"application/ecmascript",
		"application/json",
		"application/x-ndjson",
		"application/xml",
		"application/wasm",
		"application/yaml",
		"application/x-yaml",
		"application/toml",
		"application/graphql",
		"application/sql",
		"application/x-sh",
		"application/x-csh",
		"application/rtf",
		"application/postscript",
		"application/x-tar",
		// Fonts without their own compression.
		"font/ttf",
		"font/otf",
		"font/sfnt",
		"font/collection",
		"application/vnd.ms-fontobject",
		"application/font-sfnt",
		"application/x-font-ttf",
		"application/x-font-truetype",
		"application/x-font-otf",
		"application/x-font-opentype",
		// Uncompressed bitmaps.
		"image/x-icon",
		"image/vnd.microsoft.icon",
		"image/bmp",
		"image/x-ms-bmp":
		return true
	}
	return false
}

// mediaType returns the type/subtype part of a Content-Type value,
// without parameters and surrounding whitespace.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return trimOWS(mt)
}

// hasDirective reports whether the comma-separated list field (such as
// Cache-Control) holds the directive name, compared case-insensitively
// and ignoring any "=value".
func hasDirective(field, name string) bool {
	for field != "" {
		var d string
		d, field = nextElem(field, ',')
		dn, _, _ := strings.Cut(d, "=")
		if strings.EqualFold(trimOWS(dn), name) {
			return true
		}
	}
	return false
}

// ContentType returns the Content-Type to serve for an object stored
// under key whose origin reported the type stored.
//
// The stored type wins unless it is empty or a placeholder meaning "not
// set" (application/octet-stream or binary/octet-stream, which S3
// reports when the uploader gave no type). Then the type comes from the
// key's extension: the common web types are built in, so they resolve
// the same on every machine whatever its /etc/mime.types says (.js and
// .mjs are "text/javascript; charset=utf-8", .json and .map
// "application/json", .svg "image/svg+xml", .wasm "application/wasm",
// .woff2 "font/woff2", ...); other extensions go to
// mime.TypeByExtension. Failing all that, the type is
// "application/octet-stream".
func ContentType(stored, key string) string {
	if s := trimOWS(stored); s != "" {
		mt := mediaType(s)
		if !strings.EqualFold(mt, octetStream) && !strings.EqualFold(mt, "binary/octet-stream") {
			return s
		}
	}
	ext := strings.ToLower(path.Ext(key))
	if ext == "" || ext == "." {
		return octetStream
	}
	if t := webType(ext); t != "" {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return octetStream
}

// webType returns the type of the common web asset extensions (lower
// case, with the dot), or "". It agrees with Go's built-in table where
// that has an entry and fills its gaps.
func webType(ext string) string {
	switch ext {
	case ".js", ".mjs", ".cjs":
		return "text/javascript; charset=utf-8"
	case ".json":
		return "application/json"
	case ".map": // source maps
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".xml":
		return "text/xml; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".wasm":
		return "application/wasm"
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	case ".avif":
		return "image/avif"
	case ".ico":
		return "image/vnd.microsoft.icon"
	case ".woff":
		return "font/woff"
	case ".woff2":
		return "font/woff2"
	case ".ttf":
		return "font/ttf"
	case ".otf":
		return "font/otf"
	case ".eot":
		return "application/vnd.ms-fontobject"
	case ".pdf":
		return "application/pdf"
	}
	return ""
}
