package negotiate

import "testing"

func TestVariantETag(t *testing.T) {
	tests := []struct {
		name   string
		origin string
		stored Coding
		c      Coding
		want   string
	}{
		{"stored coding keeps the tag", `"abc"`, Identity, Identity, `"abc"`},
		{"gzip from identity", `"abc"`, Identity, Gzip, `"abc-gzip"`},
		{"zstd from identity", `"abc"`, Identity, Zstd, `"abc-zstd"`},
		{"br from identity", `"abc"`, Identity, Brotli, `"abc-br"`},
		{"gzip-stored keeps the tag", `"abc"`, Gzip, Gzip, `"abc"`},
		{"identity from gzip", `"abc"`, Gzip, Identity, `"abc-identity"`},
		{"br from gzip", `"abc"`, Gzip, Brotli, `"abc-br"`},
		{"weak", `W/"abc"`, Identity, Brotli, `W/"abc-br"`},
		{"weak stored", `W/"abc"`, Identity, Identity, `W/"abc"`},
		{"S3 multipart tag", `"d41d8cd98f00b204e9800998ecf8427e-3"`, Identity, Gzip, `"d41d8cd98f00b204e9800998ecf8427e-3-gzip"`},
		{"surrounding space trimmed", ` "abc" `, Identity, Identity, `"abc"`},
		{"unquoted gets quoted", `abc`, Identity, Identity, `"abc"`},
		{"unquoted variant", `abc`, Identity, Zstd, `"abc-zstd"`},
		{"weak unquoted", `W/abc`, Identity, Gzip, `W/"abc-gzip"`},
		{"half quoted", `"abc`, Identity, Gzip, `"abc-gzip"`},
		{"inner quote dropped", `a"b"c`, Identity, Identity, `"abc"`},
		{"controls and spaces dropped", "a b\r\nc", Identity, Gzip, `"abc-gzip"`},
		{"empty quoted tag is a tag", `""`, Identity, Gzip, `"-gzip"`},
		{"empty origin: no tag", ``, Identity, Gzip, ``},
		{"empty origin, stored coding: no tag", ``, Identity, Identity, ``},
		{"only a quote: no tag", `"`, Identity, Gzip, ``},
		{"only W/: no tag", `W/`, Gzip, Identity, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VariantETag(tt.origin, tt.stored, tt.c); got != tt.want {
				t.Errorf("VariantETag(%q, %v, %v) = %q, want %q", tt.origin, tt.stored, tt.c, got, tt.want)
			}
		})
	}
}

// TestVariantETagDistinct checks that no two codings of one object share
// a tag, for every stored coding, including origin tags that already end
// in one of our suffixes.
func TestVariantETagDistinct(t *testing.T) {
	origins := []string{`"abc"`, `W/"abc"`, `"abc-gzip"`, `"abc-br-zstd"`, `"-identity"`, `abc`, `""`, `"x-br"`}
	for _, origin := range origins {
		for _, stored := range codings {
			seen := map[string]Coding{}
			for _, c := range codings {
				tag := VariantETag(origin, stored, c)
				if tag == "" {
					t.Fatalf("VariantETag(%q, %v, %v) is empty", origin, stored, c)
				}
				if prev, dup := seen[tag]; dup {
					t.Errorf("origin %q stored as %v: %v and %v share tag %q", origin, stored, prev, c, tag)
				}
				seen[tag] = c
			}
		}
	}
}
