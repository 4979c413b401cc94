package negotiate

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Compression levels: the best compression that still derives a variant
// fast enough to fill a miss while the client waits. Measured on
// auth0-9.32.0.min.js (174,827 bytes of minified JavaScript), one core,
// on a shared 2-core machine (min and median of 15 runs; output size as
// a share of the input):
//
//	gzip 6     53,403  30.55%   2.4 ms /  4.6 ms
//	gzip 7     52,275  29.90%   2.9 ms /  5.8 ms
//	gzip 8     51,687  29.56%   4.1 ms /  7.3 ms
//	gzip 9     51,450  29.43%   6.8 ms / 11.4 ms   <- gzipLevel
//	zstd def   54,703  31.29%   1.1 ms /  1.6 ms
//	zstd better 53,015 30.32%   1.6 ms /  1.9 ms
//	zstd best  50,202  28.72%   8.2 ms / 11.1 ms   <- zstdLevel
//	br 5       49,512  28.32%   8.1 ms / 10.7 ms
//	br 6       49,147  28.11%   7.8 ms / 14.2 ms
//	br 7       48,866  27.95%  11.3 ms / 16.9 ms
//	br 8       48,769  27.90%  15.2 ms / 19.3 ms
//	br 9       48,664  27.84%  23.1 ms / 25.2 ms   <- brotliLevel
//	br 10      45,899  26.25%   184 ms /  179 ms   (too slow for a miss)
//	br 11      45,040  25.76%   347 ms /  462 ms   (too slow for a miss)
//
// Every chosen level stays well under 50 ms for this file. Encoding time
// grows with the body, so an object ten times larger takes about ten
// times as long; BenchmarkEncode re-measures.
const (
	gzipLevel   = 9
	zstdLevel   = zstd.SpeedBestCompression
	brotliLevel = 9

	// zstdWindow caps the zstd window: RFC 9659 §3 says encoders for
	// HTTP must not use a window over 8 MiB, and browsers refuse more.
	zstdWindow = 8 << 20
)

// ErrCorrupt reports a source that is not a valid stream in the coding it
// claims: corrupt, truncated, empty, or followed by trailing bytes.
// Transcoding it again will fail again.
var ErrCorrupt = errors.New("not a valid stream in its content coding")

// Transcode writes src, whose bytes are in coding from, to dst in coding
// to. Identity→X encodes, X→Identity decodes, X→Y decodes and encodes in
// one stream; from == to copies the bytes unchanged (without checking
// them). Memory use is bounded by the codecs' windows and a copy buffer,
// never by the size of the body.
//
// A corrupt or truncated compressed input (including an empty one, which
// is not a valid stream in any coding), or trailing bytes after the end
// of the stream, is an error. On error dst may already hold part of the
// output: the caller must discard it.
//
// Errors say which step failed, e.g. "negotiate: decoding gzip: ...",
// "negotiate: encoding br: ...", "negotiate: reading source: ...",
// "negotiate: writing: ...", and wrap the cause. Errors of the decoding
// step also wrap ErrCorrupt: the source itself is bad, where the others
// are failures of the reader or writer around it.
//
// Transcode is safe for concurrent use; encoders and decoders are reused
// (see codecs.go).
func Transcode(dst io.Writer, src io.Reader, from, to Coding) error {
	if from >= NumCodings {
		return fmt.Errorf("negotiate: unknown source coding %v", from)
	}
	if to >= NumCodings {
		return fmt.Errorf("negotiate: unknown target coding %v", to)
	}

	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)

	in := &readTracker{r: src}
	out := &writeTracker{w: dst}

	if from == to {
		if _, err := io.CopyBuffer(out, in, *bufp); err != nil {
			return stepError(in, nil, out, false, from, to, err)
		}
		return nil
	}

	var dec *readTracker
	r := io.Reader(in)
	if from != Identity {
		d, release, err := getDecoder(from, in)
		if err != nil {
			return stepError(in, &readTracker{err: err}, out, false, from, to, err)
		}
		defer release()
		dec = &readTracker{r: d}
		r = dec
	}

	if to == Identity {
		if _, err := io.CopyBuffer(out, r, *bufp); err != nil {
			return stepError(in, dec, out, false, from, to, err)
		}
	} else {
		enc, release, err := getEncoder(to, out)
		if err != nil {
			return fmt.Errorf("negotiate: encoding %v: %w", to, err)
		}
		defer release()
		_, err = io.CopyBuffer(enc, r, *bufp)
		if err == nil {
			err = enc.Close()
		}
		if err != nil {
			return stepError(in, dec, out, true, from, to, err)
		}
	}

	if dec != nil && in.n == 0 {
		// A stored object in a content coding has at least a header;
		// some decoders would read zero bytes as zero frames.
		return fmt.Errorf("negotiate: decoding %v: %w: empty input: %w", from, ErrCorrupt, io.ErrUnexpectedEOF)
	}
	return nil
}

// stepError names the step that caused err: reading the source, decoding,
// writing to dst, or encoding.
func stepError(in, dec *readTracker, out *writeTracker, encoding bool, from, to Coding, err error) error {
	switch {
	case in.err != nil:
		return fmt.Errorf("negotiate: reading source: %w", in.err)
	case out.err != nil:
		return fmt.Errorf("negotiate: writing: %w", out.err)
	case dec != nil && dec.err != nil:
		return fmt.Errorf("negotiate: decoding %v: %w: %w", from, ErrCorrupt, dec.err)
	case encoding:
		return fmt.Errorf("negotiate: encoding %v: %w", to, err)
	default:
		return fmt.Errorf("negotiate: transcoding %v to %v: %w", from, to, err)
	}
}

// readTracker remembers the first error other than io.EOF its reader
// returned, and counts bytes, so Transcode can tell which step failed.
type readTracker struct {
	r   io.Reader
	n   int64
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// writeTracker remembers the first error its writer returned.
type writeTracker struct {
	w   io.Writer
	err error
}

func (t *writeTracker) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil && t.err == nil {
		t.err = err
	}
	return n, err
}
