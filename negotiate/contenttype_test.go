package negotiate

import "testing"

func TestCompressible(t *testing.T) {
	const big = 100 << 10
	tests := []struct {
		name         string
		contentType  string
		cacheControl string
		size         int64
		want         bool
	}{
		{"javascript", "text/javascript; charset=utf-8", "", big, true},
		{"application/javascript", "application/javascript", "", big, true},
		{"json", "application/json", "", big, true},
		{"json upper case with params", "Application/JSON ; Charset=UTF-8", "", big, true},
		{"+json suffix", "application/vnd.api+json", "", big, true},
		{"manifest", "application/manifest+json", "", big, true},
		{"+xml suffix", "application/rss+xml", "", big, true},
		{"application/xml", "application/xml", "", big, true},
		{"html", "text/html", "", big, true},
		{"css", "text/css", "", big, true},
		{"plain text", "text/plain", "", big, true},
		{"csv", "text/csv", "", big, true},
		{"svg", "image/svg+xml", "", big, true},
		{"ico", "image/x-icon", "", big, true},
		{"ico iana", "image/vnd.microsoft.icon", "", big, true},
		{"bmp", "image/bmp", "", big, true},
		{"wasm", "application/wasm", "", big, true},
		{"ttf", "font/ttf", "", big, true},
		{"otf", "font/otf", "", big, true},
		{"eot", "application/vnd.ms-fontobject", "", big, true},
		{"legacy ttf name", "application/x-font-ttf", "", big, true},
		{"tar", "application/x-tar", "", big, true},
		{"unknown size counts as large", "text/css", "", -1, true},
		{"exactly MinSize", "text/css", "", MinSize, true},

		{"below MinSize", "text/css", "", MinSize - 1, false},
		{"empty body", "text/css", "", 0, false},
		{"no-transform", "text/css", "no-transform", big, false},
		{"no-transform in a list", "text/css", "public, max-age=31536000, No-Transform", big, false},
		{"no-transform with odd spacing", "text/css", "max-age=60 ,\tno-transform\t", big, false},
		{"no-transform inside a quoted value is not the directive", "text/css", `private="no-transform, x"`, big, true},
		{"no-transform-ish is not no-transform", "text/css", "no-transformers", big, true},
		{"png", "image/png", "", big, false},
		{"jpeg", "image/jpeg", "", big, false},
		{"webp", "image/webp", "", big, false},
		{"avif", "image/avif", "", big, false},
		{"gif", "image/gif", "", big, false},
		{"audio", "audio/mpeg", "", big, false},
		{"video", "video/mp4", "", big, false},
		{"woff", "font/woff", "", big, false},
		{"woff2", "font/woff2", "", big, false},
		{"legacy woff name", "application/font-woff", "", big, false},
		{"zip", "application/zip", "", big, false},
		{"gzip", "application/gzip", "", big, false},
		{"7z", "application/x-7z-compressed", "", big, false},
		{"rar", "application/vnd.rar", "", big, false},
		{"bzip2", "application/x-bzip2", "", big, false},
		{"zstd", "application/zstd", "", big, false},
		{"epub (+zip)", "application/epub+zip", "", big, false},
		{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "", big, false},
		{"pdf", "application/pdf", "", big, false},
		{"octet-stream", "application/octet-stream", "", big, false},
		{"unknown type", "application/x-something", "", big, false},
		{"empty type", "", "", big, false},
		{"garbage type", ";;;", "", big, false},
		{"no subtype", "text/", "", big, false},
		{"no slash", "text", "", big, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compressible(tt.contentType, tt.cacheControl, tt.size); got != tt.want {
				t.Errorf("Compressible(%q, %q, %d) = %v, want %v", tt.contentType, tt.cacheControl, tt.size, got, tt.want)
			}
		})
	}
}

func TestContentType(t *testing.T) {
	tests := []struct {
		name   string
		stored string
		key    string
		want   string
	}{
		{"stored wins", "text/css", "a/b.js", "text/css"},
		{"stored kept with params", "application/json; charset=utf-8", "x", "application/json; charset=utf-8"},
		{"stored trimmed", " text/plain ", "x.js", "text/plain"},
		{"S3 binary placeholder", "binary/octet-stream", "widget/9.32.0/auth0.min.js", "text/javascript; charset=utf-8"},
		{"octet-stream placeholder", "application/octet-stream", "a.css", "text/css; charset=utf-8"},
		{"octet-stream placeholder upper case", "Application/Octet-Stream", "a.json", "application/json"},
		{"empty stored, js", "", "a.js", "text/javascript; charset=utf-8"},
		{"mjs", "", "a.mjs", "text/javascript; charset=utf-8"},
		{"upper-case extension", "", "A.JS", "text/javascript; charset=utf-8"},
		{"json", "", "tenants/acme/config.json", "application/json"},
		{"source map", "", "a.min.js.map", "application/json"},
		{"svg", "", "logo.svg", "image/svg+xml"},
		{"wasm", "", "x.wasm", "application/wasm"},
		{"webp", "", "x.webp", "image/webp"},
		{"avif", "", "x.avif", "image/avif"},
		{"woff2", "", "f.woff2", "font/woff2"},
		{"woff", "", "f.woff", "font/woff"},
		{"ttf", "", "f.ttf", "font/ttf"},
		{"html", "", "index.html", "text/html; charset=utf-8"},
		{"ico", "", "favicon.ico", "image/vnd.microsoft.icon"},
		{"webmanifest", "", "site.webmanifest", "application/manifest+json"},
		{"dot in directory, none in name", "", "v1.2/LICENSE", "application/octet-stream"},
		{"no extension", "", "README", "application/octet-stream"},
		{"trailing dot", "", "file.", "application/octet-stream"},
		{"unknown extension", "", "x.qqqzzz", "application/octet-stream"},
		{"empty key", "", "", "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContentType(tt.stored, tt.key); got != tt.want {
				t.Errorf("ContentType(%q, %q) = %q, want %q", tt.stored, tt.key, got, tt.want)
			}
		})
	}
}
