package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// fuzzFile is a complete file for key, meta and body.
func fuzzFile(key string, meta, body []byte, written int64) []byte {
	b := encodePrefix(nil, key, meta, int64(len(body)), written, crc32.Checksum(body, crcTable))
	return append(b, body...)
}

func fuzzSeeds(f *testing.F, key string) {
	valid := fuzzFile(key, []byte(`{"etag":"\"x\""}`), []byte("hello, world"), fuzzTime)
	f.Add(valid)
	f.Add(fuzzFile(key, nil, nil, fuzzTime))
	f.Add(fuzzFile("another key", []byte("m"), []byte("b"), fuzzTime))
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid), 0))
	f.Add(valid[:headerSize])
	f.Add(valid[:headerSize-1])
	for _, off := range []int{0, 4, 8, 12, 16, 23, 24, 32, 36, headerSize, len(valid) - 1} {
		b := bytes.Clone(valid)
		b[off] ^= 0x80
		f.Add(b)
	}
	huge := bytes.Clone(valid)
	binary.LittleEndian.PutUint32(huge[8:], 1<<31)
	binary.LittleEndian.PutUint32(huge[12:], 1<<31)
	binary.LittleEndian.PutUint64(huge[16:], 1<<63-1)
	f.Add(huge)
	f.Add([]byte{})
	f.Add([]byte("EDGE"))
}

// fuzzWritten is the time written that a file's header claims.
func fuzzWritten(file []byte) int64 {
	if len(file) < headerSize {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(file[24:]))
}

const fuzzTime = 1764000000_000000000

// FuzzHeader: decoding never panics, never claims lengths beyond the
// bounds, and what it accepts re-encodes to the same bytes.
func FuzzHeader(f *testing.F) {
	fuzzSeeds(f, "/k")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			return
		}
		if h.keyLen < 0 || h.keyLen > maxKey || h.metaLen < 0 || h.metaLen > maxMeta || h.bodyLen < 0 {
			t.Fatalf("accepted out-of-bounds header %+v", h)
		}
		if h.prefixLen() > h.fileSize() || h.fileSize() < headerSize {
			t.Fatalf("sizes overflow: %+v", h)
		}
		key, meta, err := decodePrefix(h, b)
		if err != nil {
			return
		}
		if len(key) != h.keyLen || len(meta) != h.metaLen {
			t.Fatalf("key %d, meta %d bytes; header %+v", len(key), len(meta), h)
		}
		if re := encodePrefix(nil, key, meta, h.bodyLen, h.written, h.bodyCRC); !bytes.Equal(re, b[:h.prefixLen()]) {
			t.Fatalf("accepted prefix does not re-encode to itself:\n%x\n%x", b[:h.prefixLen()], re)
		}
	})
}

// FuzzFile writes arbitrary bytes as key's file, opens a Store over it
// and gets key: the answer is absent, corrupt, or exactly the bytes that
// were stored in a valid file, and a bad file does not survive.
func FuzzFile(f *testing.F) {
	const key = "/fuzz.js\x00gzip"
	fuzzSeeds(f, key)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		h := hashName(key)
		path := filepath.Join(dir, h[0:2], h[2:4], h)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := openSync(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the first Get verifies, the second trusts that
			meta, body, err := testGet(d, key)
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Get = %v", err)
				}
				if has(d, key) || testExists(path) {
					t.Fatalf("bad file kept after Get = %v", err)
				}
				return
			}
			if want := fuzzFile(key, meta, body, fuzzWritten(data)); !bytes.Equal(want, data) {
				t.Fatalf("Get returned meta %q body %q, not what the file holds", meta, body)
			}
		}
		if s := d.Stats(); s.Entries != 1 || s.Bytes != int64(len(data)) {
			t.Fatalf("Stats = %+v for a file of %d bytes", s, len(data))
		}
	})
}
