package negotiate

import (
	"errors"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoders at these levels are expensive to create: measured with the
// levels above, a zstd SpeedBestCompression encoder allocates ~53 MB of
// tables and history and a brotli level-9 writer ~34 MB (gzip 9: ~1.4 MB),
// and creating one costs tens of milliseconds, more than the encode
// itself. A sync.Pool would drop them at every garbage collection, so a
// busy edge would keep rebuilding them; encoders live instead in free
// lists that survive collections, with at most maxIdleEncoders idle per
// coding. Derivations are rare (once per object version and coding), so
// one idle encoder per coding (~90 MB in all) is the trade: memory is the
// cache's, not the codecs'. Extra encoders made under a burst of misses
// are dropped when returned.
//
// Decoders are small (their memory grows with the stream, up to the
// window) and cheap to make, so a sync.Pool suits them.
const maxIdleEncoders = 1

// freeList keeps up to cap(idle) idle values across garbage collections.
// It is safe for concurrent use.
type freeList[T any] struct {
	idle  chan T
	newFn func() (T, error)
}

func newFreeList[T any](n int, newFn func() (T, error)) *freeList[T] {
	return &freeList[T]{idle: make(chan T, n), newFn: newFn}
}

// get returns an idle value, or a new one when none is idle.
func (f *freeList[T]) get() (T, error) {
	select {
	case v := <-f.idle:
		return v, nil
	default:
		return f.newFn()
	}
}

// put keeps v for reuse if there is room, and drops it otherwise.
func (f *freeList[T]) put(v T) {
	select {
	case f.idle <- v:
	default:
	}
}

// eofReader is an empty source, used to make pooled decoders drop their
// reference to the last source.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// getDecoder returns a pooled decoder for c reading from r, and the func
// that returns it to its pool.
func getDecoder(c Coding, r io.Reader) (io.Reader, func(), error) {
	switch c {
	case Gzip:
		zr := gzipReaders.Get().(*gzip.Reader)
		if err := zr.Reset(r); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // not even a gzip header
			}
			gzipReaders.Put(zr)
			return nil, nil, err
		}
		return zr, func() {
			_ = zr.Reset(eofReader{})
			gzipReaders.Put(zr)
		}, nil
	case Zstd:
		v := zstdReaders.Get()
		zr, ok := v.(*zstd.Decoder)
		if !ok {
			return nil, nil, v.(error)
		}
		if err := zr.Reset(r); err != nil {
			zstdReaders.Put(zr)
			return nil, nil, err
		}
		return zr, func() {
			_ = zr.Reset(nil)
			zstdReaders.Put(zr)
		}, nil
	case Brotli:
		br := brotliReaders.Get().(*brotli.Reader)
		_ = br.Reset(r) // always nil
		return br, func() {
			_ = br.Reset(eofReader{})
			brotliReaders.Put(br)
		}, nil
	}
	return nil, nil, errors.New("no decoder")
}

// getEncoder returns an encoder for c writing to w, and the func that
// returns it to its free list. Release resets the encoder, which clears
// any error it met, so a failed encode may release it too.
func getEncoder(c Coding, w io.Writer) (io.WriteCloser, func(), error) {
	switch c {
	case Gzip:
		zw, err := gzipWriters.get()
		if err != nil {
			return nil, nil, err
		}
		zw.Reset(w)
		return zw, func() {
			zw.Reset(io.Discard)
			gzipWriters.put(zw)
		}, nil
	case Zstd:
		zw, err := zstdWriters.get()
		if err != nil {
			return nil, nil, err
		}
		zw.Reset(w)
		return zw, func() {
			zw.Reset(io.Discard)
			zstdWriters.put(zw)
		}, nil
	case Brotli:
		bw, err := brotliWriters.get()
		if err != nil {
			return nil, nil, err
		}
		bw.Reset(w)
		return bw, func() {
			bw.Reset(io.Discard)
			brotliWriters.put(bw)
		}, nil
	}
	return nil, nil, errors.New("no encoder")
}

// Codec caches. They are caches, not state: every codec taken from one is
// reset before use. zstd codecs run with concurrency 1, so they start no
// goroutines and need no Close when dropped.
var (
	copyBufs = sync.Pool{New: func() any {
		b := make([]byte, 32<<10)
		return &b
	}}

	gzipReaders   = sync.Pool{New: func() any { return new(gzip.Reader) }}
	brotliReaders = sync.Pool{New: func() any { return brotli.NewReader(eofReader{}) }}
	zstdReaders   = sync.Pool{New: func() any {
		zr, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return err
		}
		return zr
	}}

	gzipWriters = newFreeList(maxIdleEncoders, func() (*gzip.Writer, error) {
		return gzip.NewWriterLevel(io.Discard, gzipLevel)
	})
	zstdWriters = newFreeList(maxIdleEncoders, func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow))
	})
	brotliWriters = newFreeList(maxIdleEncoders, func() (*brotli.Writer, error) {
		return brotli.NewWriterLevel(io.Discard, brotliLevel), nil
	})
)
