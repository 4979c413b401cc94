package negotiate

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

var codings = []Coding{Identity, Gzip, Zstd, Brotli}

// textInput returns n bytes of deterministic, JavaScript-like text.
func textInput(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"function", "return", "var", "this", "prototype", "null", "undefined",
		"(", ")", "{", "}", ";", "=", "==", "&&", "||", "e", "t", "n", "r", ".", ",", "\"auth0\"", "0", "1"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(4) == 0 {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func randomInput(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var roundTripInputs = []struct {
	name string
	data []byte
}{
	{"empty", nil},
	{"one byte", []byte("a")},
	{"short text", []byte("hello, hello, hello, world\n")},
	{"text 70K", textInput(70 << 10)},
	{"random 40K", randomInput(40 << 10)},
	{"zeros 140K", make([]byte, 140<<10)},
}

func transcode(t testing.TB, data []byte, from, to Coding) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := Transcode(&out, bytes.NewReader(data), from, to); err != nil {
		t.Fatalf("Transcode(%v→%v) of %d bytes: %v", from, to, len(data), err)
	}
	return out.Bytes()
}

// TestTranscodeRoundTrip checks every (from, to) pair: x encoded to from,
// transcoded to to, and decoded back equals x exactly.
func TestTranscodeRoundTrip(t *testing.T) {
	for _, in := range roundTripInputs {
		encoded := map[Coding][]byte{}
		for _, c := range codings {
			encoded[c] = transcode(t, in.data, Identity, c)
		}
		for _, from := range codings {
			for _, to := range codings {
				t.Run(fmt.Sprintf("%s/%v-to-%v", in.name, from, to), func(t *testing.T) {
					mid := transcode(t, encoded[from], from, to)
					back := transcode(t, mid, to, Identity)
					if !bytes.Equal(back, in.data) {
						t.Fatalf("round trip changed the data: got %d bytes, want %d", len(back), len(in.data))
					}
					if from == to && !bytes.Equal(mid, encoded[from]) {
						t.Errorf("same-coding transcode changed the bytes")
					}
				})
			}
		}
	}
}

// TestEncodeIsStandard decodes our output with independent decoders, so a
// bug shared by our encoder and decoder cannot hide.
func TestEncodeIsStandard(t *testing.T) {
	data := textInput(50 << 10)
	decoders := map[Coding]func([]byte) ([]byte, error){
		Gzip: func(b []byte) ([]byte, error) {
			r, err := stdgzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
		Zstd: func(b []byte) ([]byte, error) {
			d, err := zstd.NewReader(nil)
			if err != nil {
				return nil, err
			}
			defer d.Close()
			return d.DecodeAll(b, nil)
		},
		Brotli: func(b []byte) ([]byte, error) {
			return io.ReadAll(brotli.NewReader(bytes.NewReader(b)))
		},
	}
	magic := map[Coding][]byte{
		Gzip: {0x1f, 0x8b},
		Zstd: {0x28, 0xb5, 0x2f, 0xfd},
	}
	for c, dec := range decoders {
		t.Run(c.String(), func(t *testing.T) {
			enc := transcode(t, data, Identity, c)
			if len(enc) >= len(data)/2 {
				t.Errorf("%v output is %d bytes for %d bytes of text; not compressed", c, len(enc), len(data))
			}
			if m := magic[c]; m != nil && !bytes.HasPrefix(enc, m) {
				t.Errorf("%v output starts % x, want % x", c, enc[:4], m)
			}
			got, err := dec(enc)
			if err != nil {
				t.Fatalf("independent %v decoder: %v", c, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("independent %v decoder got different data", c)
			}
		})
	}
}

func TestZstdWindowFitsHTTP(t *testing.T) {
	enc := transcode(t, textInput(256<<10), Identity, Zstd) // several blocks: size unknown up front
	var h zstd.Header
	if err := h.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize > zstdWindow {
		t.Errorf("zstd window %d, RFC 9659 allows at most %d", h.WindowSize, zstdWindow)
	}
}

func TestTranscodeCorrupt(t *testing.T) {
	data := textInput(20 << 10)
	type corruption struct {
		name string
		f    func(enc []byte) []byte
	}
	corruptions := []corruption{
		{"empty", func([]byte) []byte { return nil }},
		{"one byte", func(e []byte) []byte { return e[:1] }},
		{"truncated to half", func(e []byte) []byte { return e[:len(e)/2] }},
		{"last byte missing", func(e []byte) []byte { return e[:len(e)-1] }},
		{"trailing garbage", func(e []byte) []byte { return append(bytes.Clone(e), "garbage!"...) }},
		{"not compressed at all", func([]byte) []byte { return []byte("plain text, no header here at all") }},
	}
	// A flipped byte is caught by gzip's CRC-32 and zstd's checksum;
	// brotli has no checksum, so a flip may decode to other valid bytes.
	flip := corruption{"byte flipped", func(e []byte) []byte {
		e = bytes.Clone(e)
		e[len(e)/2] ^= 0x55
		return e
	}}
	for _, from := range []Coding{Gzip, Zstd, Brotli} {
		enc := transcode(t, data, Identity, from)
		cs := corruptions
		if from != Brotli {
			cs = append(cs[:len(cs):len(cs)], flip)
		}
		for _, c := range cs {
			for _, to := range []Coding{Identity, Gzip, Zstd, Brotli} {
				if to == from {
					continue // copied, not decoded
				}
				t.Run(fmt.Sprintf("%v/%s/to-%v", from, c.name, to), func(t *testing.T) {
					err := Transcode(io.Discard, bytes.NewReader(c.f(enc)), from, to)
					if err == nil {
						t.Fatal("no error for corrupt input")
					}
					if want := "negotiate: decoding " + from.String() + ": "; !strings.HasPrefix(err.Error(), want) {
						t.Errorf("error %q does not start with %q", err, want)
					}
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("error %q does not wrap ErrCorrupt", err)
					}
				})
			}
		}
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

type failReader struct {
	data []byte
	err  error
}

func (r *failReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestTranscodeIOErrors(t *testing.T) {
	errDisk := errors.New("disk full")
	errNet := errors.New("connection reset")
	data := textInput(16 << 10)
	for _, from := range codings {
		enc := transcode(t, data, Identity, from)
		for _, to := range codings {
			t.Run(fmt.Sprintf("%v-to-%v/write", from, to), func(t *testing.T) {
				err := Transcode(failWriter{errDisk}, bytes.NewReader(enc), from, to)
				if !errors.Is(err, errDisk) {
					t.Fatalf("got %v, want it to wrap %v", err, errDisk)
				}
				if !strings.HasPrefix(err.Error(), "negotiate: writing: ") {
					t.Errorf("error %q does not name the step", err)
				}
				if errors.Is(err, ErrCorrupt) {
					t.Errorf("a failed write reads as a corrupt source: %q", err)
				}
			})
			t.Run(fmt.Sprintf("%v-to-%v/read", from, to), func(t *testing.T) {
				src := &failReader{data: enc[:len(enc)/2], err: errNet}
				err := Transcode(io.Discard, src, from, to)
				if !errors.Is(err, errNet) {
					t.Fatalf("got %v, want it to wrap %v", err, errNet)
				}
				if !strings.HasPrefix(err.Error(), "negotiate: reading source: ") {
					t.Errorf("error %q does not name the step", err)
				}
				if errors.Is(err, ErrCorrupt) {
					t.Errorf("a failed read reads as a corrupt source: %q", err)
				}
			})
		}
	}
}

func TestTranscodeUnknownCoding(t *testing.T) {
	if err := Transcode(io.Discard, strings.NewReader("x"), Coding(4), Identity); err == nil {
		t.Error("no error for unknown source coding")
	}
	if err := Transcode(io.Discard, strings.NewReader("x"), Identity, Coding(200)); err == nil {
		t.Error("no error for unknown target coding")
	}
}

// TestTranscodeConcurrent runs transcodes in parallel so the race detector
// sees the pools shared.
func TestTranscodeConcurrent(t *testing.T) {
	data := textInput(8 << 10)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			from, to := codings[i%4], codings[(i+i/4+1)%4]
			var enc, mid, back bytes.Buffer
			if err := Transcode(&enc, bytes.NewReader(data), Identity, from); err != nil {
				errs <- err
				return
			}
			if err := Transcode(&mid, &enc, from, to); err != nil {
				errs <- err
				return
			}
			if err := Transcode(&back, &mid, to, Identity); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(back.Bytes(), data) {
				errs <- fmt.Errorf("%v→%v: round trip changed the data", from, to)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestTranscodeReuseAfterError checks that codecs reused after a failed
// transcode produce correct output.
func TestTranscodeReuseAfterError(t *testing.T) {
	data := textInput(40 << 10)
	for _, c := range codings {
		enc := transcode(t, data, Identity, c)
		for range 2 * maxIdleEncoders {
			if err := Transcode(failWriter{errors.New("boom")}, bytes.NewReader(data), Identity, c); err == nil {
				t.Fatalf("%v: no error from a failing writer", c)
			}
			if c != Identity {
				if err := Transcode(io.Discard, bytes.NewReader(enc[:len(enc)/2]), c, Identity); err == nil {
					t.Fatalf("%v: no error for truncated input", c)
				}
			}
		}
		again := transcode(t, data, Identity, c)
		if !bytes.Equal(again, enc) {
			t.Errorf("%v: output after errors differs from before", c)
		}
		if back := transcode(t, again, c, Identity); !bytes.Equal(back, data) {
			t.Errorf("%v: round trip after errors changed the data", c)
		}
	}
}
