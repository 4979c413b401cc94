package negotiate

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// widgetPath is a real ~175 KB minified JavaScript file. It lives outside
// the module, so the benchmarks skip when it is absent; tests never use it.
const widgetPath = "/work/shared/assets/auth0-9.32.0.min.js"

func readWidget(b *testing.B) []byte {
	data, err := os.ReadFile(widgetPath)
	if err != nil {
		b.Skipf("widget asset not available: %v", err)
	}
	return data
}

// BenchmarkEncode measures deriving each variant from the identity
// widget, as a fill does; ratio is output size / input size.
func BenchmarkEncode(b *testing.B) {
	data := readWidget(b)
	for _, c := range []Coding{Gzip, Zstd, Brotli} {
		b.Run(c.String(), func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				if err := Transcode(&out, bytes.NewReader(data), Identity, c); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len())/float64(len(data)), "ratio")
			b.ReportMetric(float64(out.Len()), "bytes")
		})
	}
}

// BenchmarkDecode measures decoding each variant of the widget, as when
// the stored object is compressed and a client wants identity.
func BenchmarkDecode(b *testing.B) {
	data := readWidget(b)
	for _, c := range []Coding{Gzip, Zstd, Brotli} {
		var enc bytes.Buffer
		if err := Transcode(&enc, bytes.NewReader(data), Identity, c); err != nil {
			b.Fatal(err)
		}
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Transcode(io.Discard, bytes.NewReader(enc.Bytes()), c, Identity); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
