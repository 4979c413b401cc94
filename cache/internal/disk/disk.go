// Package disk is the cache's disk tier: a bounded store of immutable
// files, keyed by string, that survives restarts. It knows nothing of HTTP
// or of objects and variants; package cache above it decides what a key
// and a meta mean.
//
// File layout: dir/ab/cd/<hex sha256(key)>, a two-level fan-out so no
// directory grows past a few thousand entries. Temporary files live beside
// their final name, prefixed ".tmp-".
//
// File format, version 1, little-endian:
//
//	offset size
//	0      4    magic "EDGE"
//	4      1    version (1)
//	5      3    reserved, zero
//	8      4    key length    (≤ maxKey)
//	12     4    meta length   (≤ maxMeta)
//	16     8    body length
//	24     8    time written, Unix nanoseconds (recency after a restart)
//	32     4    CRC-32C of the body
//	36     4    CRC-32C of bytes 0..35, the key and the meta
//	40          key, meta, body
//
// The header checksum is separate from the body checksum: indexing at
// start-up reads and verifies only the header, key and meta of each file
// (and its size), which rejects torn headers cheaply; the body is verified
// the first time the entry is opened in this process. (Indexing reads the
// first 4 KiB of each file in one system call; when that is the whole
// file, its size is known without a stat and its body is verified then,
// for free.)

package disk

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrCorrupt reports a disk file that failed its checksum. The file
	// has been deleted; the caller should refetch from the origin.
	ErrCorrupt = errors.New("corrupt cache file")
	// ErrTooLarge reports an entry larger than the disk tier's whole
	// bound. It was not stored.
	ErrTooLarge = errors.New("entry larger than the disk bound")
	// ErrBody reports a Put whose body failed: its reader returned an
	// error (wrapped too), or it had another length than expected. The
	// disk is not at fault; nothing was stored.
	ErrBody = errors.New("bad body")
)

const (
	magic         = "EDGE"
	formatVersion = 1
	headerSize    = 40
	maxKey        = 4 << 10 // bytes; a longer key is refused by Put and rejected when decoding
	maxMeta       = 1 << 20 // bytes; likewise
	tempPrefix    = ".tmp-"
	bufSize       = 64 << 10 // read/write buffer for bodies
	indexPeek     = 4 << 10  // first read of each file when indexing: header, key and a typical meta
	hashNameLen   = 2 * sha256.Size
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Store is a bounded store of immutable files on local disk, keyed by
// string. It is safe for concurrent use.
//
// Contract: Get of an absent key returns an error satisfying
// errors.Is(err, fs.ErrNotExist); Get never returns bytes that fail their
// checksum (it returns ErrCorrupt and deletes the file instead). Every
// write goes to a temporary file that is renamed over the final name, so
// a file under a key's name is always complete as written.
//
// Durability: Store never calls fsync. After a crash or power loss a file
// may be torn or empty despite the rename; its checksums detect that and
// the entry is dropped (at Open for a bad header or size, at the first
// Get for a bad body) and refetched. That is cheaper than an fsync on
// every miss, and the origin, not this disk, is the source of truth.
//
// Verification: a file's body checksum is checked the first time it is
// read in this process (at Open for files of up to 4 KiB, else at the
// first Get), and trusted from then on: a verified file damaged in place
// later goes unnoticed until the next restart.
//
// Eviction: when a Put takes the total file size over the bound, the
// least recently used entries (by Put or Get) are deleted until it fits.
// An entry deleted or evicted while an Entry for it is open stays
// readable through that Entry: on Linux an unlinked file lives on
// while a descriptor refers to it.
type Store struct {
	dir string
	max int64            // 0: unbounded
	now func() time.Time // stamps files
	fs  FS
	log *slog.Logger

	tmpPrefix string // this Store's temporary files: the scan leaves them alone

	mu        sync.Mutex
	index     map[string]*item
	lru       lruList // front: most recently used
	bytes     int64
	evictions uint64
	corrupt   uint64
	// While the start-up scan runs, keys it has not reached are looked up
	// by reading their file directly, and keys deleted, evicted or dropped
	// meanwhile are remembered in gone so that the scan does not bring
	// them back.
	scanning bool
	gone     map[string]struct{}
	scanErr  error         // the start-up scan stopped early (a directory unreadable)
	indexed  chan struct{} // closed when the scan is merged
}

// item is one indexed file. A new item is made for every file
// written, so an item pointer identifies one file version: if
// d.index[key] is still the item found before opening the file, the file
// opened is that item's.
type item struct {
	key      string
	meta     []byte
	hdr      fileHeader
	verified bool // the body checksum held when first read in this process

	prev, next *item
}

func (it *item) fileSize() int64 { return it.hdr.fileSize() }

// Stats are the disk tier's counters, for metrics.
type Stats struct {
	Entries   int
	Bytes     int64  // total size of the indexed files
	Evictions uint64 // entries deleted to stay under the bound
	Corrupt   uint64 // files dropped for a bad checksum, header or size
}

// Entry is an open disk entry. Close it when done.
type Entry struct {
	Meta []byte
	Size int64 // body length
	// Body reads exactly the body bytes; it is an io.ReadSeeker and an
	// io.ReaderAt, suitable for http.ServeContent.
	Body *io.SectionReader

	f   *os.File
	off int64 // body offset in f
}

// Close closes the entry's file.
func (e *Entry) Close() error { return e.f.Close() }

// WriteTo writes the body to w. It hands w the file itself, positioned
// at the body and limited to it, so that a net/http response (whose
// ReadFrom reaches the TCP connection's) sends it with sendfile(2),
// without copying it through user space.
func (e *Entry) WriteTo(w io.Writer) (int64, error) {
	if _, err := e.f.Seek(e.off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.Copy(w, io.LimitReader(e.f, e.Size))
}

// ReadBody reads the whole body into a new slice, independently of Body's
// position. It allocates Size bytes: use it for bodies known to be small.
func (e *Entry) ReadBody() ([]byte, error) {
	b := make([]byte, e.Size)
	if _, err := e.f.ReadAt(b, e.off); err != nil && !(err == io.EOF && e.Size == 0) {
		return nil, fmt.Errorf("disk: reading body: %w", err)
	}
	return b, nil
}

// Options configure a Store. The zero value of every field means its
// default.
type Options struct {
	// MaxBytes bounds the total size of the store's files: a Put that
	// goes over it evicts the least recently used entries. Zero means no
	// bound.
	MaxBytes int64
	// FS makes the store's changes to the file system. Nil means the
	// operating system's (OSFS); tests inject a full or read-only disk
	// through it.
	FS FS
	// Now stamps the files written. Nil means time.Now.
	Now func() time.Time
	// Log gets a record for every corrupt file dropped. Nil discards them.
	Log *slog.Logger
}

// Open opens the store in dir, creating dir if needed, and returns at
// once, indexing its files in the background from their headers only
// (leftover temporary files and files with a bad header are removed).
// Until the index is complete, a key not yet indexed is found by reading
// its file directly, so a restarted edge serves from disk at once.
// Indexed reports when the scan is done.
//
// Open fails only when dir cannot be created or listed; a directory that
// cannot be written is found by the first Put.
func Open(dir string, opts Options) (*Store, error) {
	return open(dir, opts, nil)
}

// open starts the scan once gate (tests' hook; nil: at once) is closed.
func open(dir string, opts Options, gate <-chan struct{}) (*Store, error) {
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("disk: negative bound %d", opts.MaxBytes)
	}
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("disk: creating %s: %w", dir, err)
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("disk: listing %s: %w", dir, err)
	}
	var run [6]byte
	_, _ = rand.Read(run[:]) // never fails (crypto/rand's contract since Go 1.24)
	d := &Store{
		dir: dir, max: opts.MaxBytes, now: opts.Now, fs: opts.FS, log: opts.Log,
		tmpPrefix: tempPrefix + hex.EncodeToString(run[:]) + "-",
		index:     map[string]*item{},
		scanning:  true,
		gone:      map[string]struct{}{},
		indexed:   make(chan struct{}),
	}
	go func() {
		if gate != nil {
			<-gate
		}
		d.merge(scan(dir, d.tmpPrefix, d.fs, d.log))
	}()
	return d, nil
}

// Indexed is closed once the start-up scan is merged into the index.
func (d *Store) Indexed() <-chan struct{} { return d.indexed }

// merge adds the scan's items behind the entries already used since the
// start (looked up or written), newest written first, except keys gone
// meanwhile, then applies the bound.
func (d *Store) merge(items []*item, dropped uint64, err error) {
	// Recency across a restart is unknown: the most recently written
	// counts as the most recently used.
	slices.SortFunc(items, func(a, b *item) int {
		switch {
		case a.hdr.written > b.hdr.written:
			return -1
		case a.hdr.written < b.hdr.written:
			return 1
		}
		return strings.Compare(a.key, b.key)
	})
	d.mu.Lock()
	defer close(d.indexed)
	defer d.mu.Unlock()
	for _, it := range items {
		if _, g := d.gone[it.key]; g || d.index[it.key] != nil {
			continue
		}
		d.index[it.key] = it
		d.lru.pushBack(it)
		d.bytes += it.fileSize()
	}
	d.corrupt += dropped
	d.scanErr = err
	d.scanning, d.gone = false, nil
	d.evictLocked(nil)
}

// lookup returns key's item: from the index, or, while the start-up scan
// has not reached it, from its file, which it then indexes.
func (d *Store) lookup(key string) *item {
	d.mu.Lock()
	it := d.index[key]
	_, gone := d.gone[key]
	early := it == nil && d.scanning && !gone
	d.mu.Unlock()
	if !early {
		return it
	}
	s := scanner{buf: make([]byte, indexPeek)}
	found, _ := s.indexFile(d.path(key), hashName(key)) // a bad file is the scan's to drop
	if found == nil || found.key != key {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, gone := d.gone[key]; gone || !d.scanning || d.index[key] != nil {
		// Written, deleted or merged while we read: the index decides.
		return d.index[key]
	}
	d.index[key] = found
	d.lru.pushFront(found)
	d.bytes += found.fileSize()
	return found
}

// scan indexes dir's files with a few goroutines, one top-level
// fan-out directory at a time. It returns the valid files and how many
// bad ones it removed.
func scan(dir, keepPrefix string, fsys FS, log *slog.Logger) ([]*item, uint64, error) {
	tops, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("disk: listing %s: %w", dir, err)
	}
	work := make(chan string)
	type result struct {
		items   []*item
		dropped uint64
		err     error
	}
	// Indexing is bound by system calls (open, read, close; getdents for
	// directories), which block threads: more goroutines than cores keeps
	// the disk busy. Measured on 2 cores: 8 workers index 100k entries
	// ~25% faster than 4, 16 no faster than 8.
	workers := min(max(8, 4*runtime.GOMAXPROCS(0)), 32)
	results := make(chan result, workers)
	for range workers {
		go func() {
			var r result
			s := scanner{buf: make([]byte, indexPeek), keepPrefix: keepPrefix, fs: fsys, log: log}
			for top := range work {
				if r.err != nil {
					continue // drain
				}
				r.err = s.scanTop(top)
			}
			r.items, r.dropped = s.items, s.dropped
			results <- r
		}()
	}
	for _, t := range tops {
		if t.IsDir() && isFanName(t.Name()) {
			work <- filepath.Join(dir, t.Name())
		}
	}
	close(work)
	var items []*item
	var dropped uint64
	var firstErr error
	for range workers {
		r := <-results
		items = append(items, r.items...)
		dropped += r.dropped
		if firstErr == nil {
			firstErr = r.err
		}
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return items, dropped, nil
}

type scanner struct {
	buf        []byte
	keepPrefix string // temporary files of the running Store, being written
	fs         FS
	log        *slog.Logger
	items      []*item
	dropped    uint64
}

// scanTop indexes one top-level fan-out directory (dir/ab).
func (s *scanner) scanTop(top string) error {
	subs, err := readDirNames(top)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if !isFanName(sub) {
			continue
		}
		leaf := filepath.Join(top, sub)
		names, err := readDirNames(leaf)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
				continue
			}
			return err
		}
		for _, name := range names {
			path := filepath.Join(leaf, name)
			switch {
			case strings.HasPrefix(name, tempPrefix):
				if s.keepPrefix == "" || !strings.HasPrefix(name, s.keepPrefix) {
					// Left by a crash mid-write: never complete.
					if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
						s.log.Warn("disk: cannot remove a leftover temporary file", "path", path, "err", err)
					}
				}
			case isHashName(name):
				it, bad := s.indexFile(path, name)
				switch {
				case it != nil:
					s.items = append(s.items, it)
				case bad != nil:
					s.dropped++
					s.log.Warn("disk: dropped a corrupt cache file", "path", path, "err", bad)
					if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
						s.log.Warn("disk: cannot remove a corrupt cache file", "path", path, "err", err)
					}
				}
			}
			// Anything else is not ours: leave it alone.
		}
	}
	return nil
}

var errNotDir = errors.New("not a directory")

// readDirNames lists dir unsorted (sorting 100k names is wasted work).
func readDirNames(dir string) ([]string, error) {
	f, err := openFile(dir)
	if err != nil {
		return nil, fmt.Errorf("disk: listing %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		if fi, serr := f.Stat(); serr == nil && !fi.IsDir() {
			return nil, errNotDir
		}
		return nil, fmt.Errorf("disk: listing %s: %w", dir, err)
	}
	return names, nil
}

// indexFile reads one file's header, key and meta, and returns its index
// item, or why the file is bad, or neither when it vanished or cannot be
// read (it is then left alone).
func (s *scanner) indexFile(path, name string) (*item, error) {
	n, f, err := peekFile(path, s.buf)
	if err != nil {
		return nil, nil
	}
	whole := f == nil // then n is the file's size
	if !whole {
		defer f.Close()
	}
	h, err := decodeHeader(s.buf[:n])
	if err != nil {
		return nil, err
	}
	prefix := s.buf[:n]
	if need := h.prefixLen(); int64(n) < need {
		if whole {
			return nil, errShort // the file ends in its header
		}
		prefix = make([]byte, need)
		if _, err := f.ReadAt(prefix, 0); err != nil {
			return nil, fmt.Errorf("reading header: %w", err)
		}
	}
	key, meta, err := decodePrefix(h, prefix)
	if err != nil {
		return nil, err
	}
	if !isNameOf(name, key) {
		// A key whose hash is not the file's name: a collision or a
		// misplaced file. Either way it cannot be found under its key.
		return nil, errOtherKey
	}
	it := &item{key: key, meta: slices.Clone(meta), hdr: h}
	if whole {
		if int64(n) != h.fileSize() {
			return nil, fmt.Errorf("file of %d bytes, header says %d", n, h.fileSize())
		}
		if crc32.Checksum(s.buf[h.prefixLen():n], crcTable) != h.bodyCRC {
			return nil, errBodyCRC
		}
		it.verified = true
		return it, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil
	}
	if fi.Size() != h.fileSize() {
		return nil, fmt.Errorf("file of %d bytes, header says %d", fi.Size(), h.fileSize()) // truncated, or trailing garbage
	}
	return it, nil
}

// fileHeader is the fixed-size part of a file's header.
type fileHeader struct {
	keyLen    int
	metaLen   int
	bodyLen   int64
	written   int64 // Unix nanoseconds
	bodyCRC   uint32
	headerCRC uint32
}

// prefixLen is the offset of the body: header, key and meta.
func (h fileHeader) prefixLen() int64 {
	return headerSize + int64(h.keyLen) + int64(h.metaLen)
}

func (h fileHeader) fileSize() int64 { return h.prefixLen() + h.bodyLen }

var (
	errShort   = errors.New("short header")
	errMagic   = errors.New("bad magic")
	errVersion = errors.New("unknown version")
	errBounds  = errors.New("length out of bounds")
	errHeader  = errors.New("header checksum mismatch")
	errLength  = fmt.Errorf("%w: wrong length", ErrBody)
)

// decodeHeader decodes the fixed header at the start of b. It checks
// the magic, version and length bounds, not the checksum (which covers the
// key and meta too: see decodePrefix). It never allocates.
func decodeHeader(b []byte) (fileHeader, error) {
	if len(b) < headerSize {
		return fileHeader{}, errShort
	}
	if string(b[0:4]) != magic {
		return fileHeader{}, errMagic
	}
	if b[4] != formatVersion || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return fileHeader{}, errVersion
	}
	keyLen := binary.LittleEndian.Uint32(b[8:])
	metaLen := binary.LittleEndian.Uint32(b[12:])
	bodyLen := binary.LittleEndian.Uint64(b[16:])
	if keyLen > maxKey || metaLen > maxMeta ||
		bodyLen > math.MaxInt64-headerSize-maxKey-maxMeta {
		return fileHeader{}, errBounds
	}
	return fileHeader{
		keyLen:    int(keyLen),
		metaLen:   int(metaLen),
		bodyLen:   int64(bodyLen),
		written:   int64(binary.LittleEndian.Uint64(b[24:])),
		bodyCRC:   binary.LittleEndian.Uint32(b[32:]),
		headerCRC: binary.LittleEndian.Uint32(b[36:]),
	}, nil
}

// decodePrefix checks the header checksum over b, which holds at
// least h.prefixLen() bytes of the file, and returns the key and meta
// (meta aliases b).
func decodePrefix(h fileHeader, b []byte) (key string, meta []byte, err error) {
	if int64(len(b)) < h.prefixLen() {
		return "", nil, errShort
	}
	end := h.prefixLen()
	if prefixCRC(b[:headerSize], b[headerSize:end]) != h.headerCRC {
		return "", nil, errHeader
	}
	k := b[headerSize : headerSize+h.keyLen]
	return string(k), b[headerSize+h.keyLen : end : end], nil
}

// prefixCRC is the header checksum: the fixed header without its last
// field, then key and meta.
func prefixCRC(header, keyMeta []byte) uint32 {
	c := crc32.Update(0, crcTable, header[:headerSize-4])
	return crc32.Update(c, crcTable, keyMeta)
}

// encodePrefix appends a complete header, key and meta to dst.
func encodePrefix(dst []byte, key string, meta []byte, bodyLen, written int64, bodyCRC uint32) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = append(dst, formatVersion, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(key)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(meta)))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(bodyLen))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(written))
	dst = binary.LittleEndian.AppendUint32(dst, bodyCRC)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = append(dst, key...)
	dst = append(dst, meta...)
	p := dst[start:]
	binary.LittleEndian.PutUint32(p[36:], prefixCRC(p[:headerSize], p[headerSize:]))
	return dst
}

func hashName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// isNameOf reports whether name is key's file name, without
// allocating.
func isNameOf(name, key string) bool {
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(name)); err != nil {
		return false
	}
	return got == sha256.Sum256([]byte(key))
}

func isHashName(name string) bool {
	if len(name) != hashNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isHex(name[i]) {
			return false
		}
	}
	return true
}

// isFanName reports whether name is a fan-out directory's: two
// lowercase hex digits.
func isFanName(name string) bool {
	return len(name) == 2 && isHex(name[0]) && isHex(name[1])
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// openFile opens path read-only. It is os.Open without the netpoller
// registration attempt, which for a regular file or a directory costs four
// system calls that always fail or are undone (fcntl ×4, epoll_ctl): a
// third of a disk hit's cost.
func openFile(path string) (*os.File, error) {
	if runtime.GOOS == "windows" {
		return os.Open(path) // syscall.Open cannot open directories there
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// peekFile reads the start of the file at path into buf. A file shorter
// than buf is read whole, with one read system call, and closed: n is its
// size (a regular file's read returns less than asked only at its end; were
// it ever short, the file would look truncated and be refetched). A longer
// file is returned open for further reading.
//
// This is the indexing hot path: three system calls per small file, where
// os.Open and ReadAt take six.
func peekFile(path string, buf []byte) (n int, f *os.File, err error) {
	if runtime.GOOS == "windows" {
		if f, err = os.Open(path); err != nil {
			return 0, nil, err
		}
		if n, err = f.ReadAt(buf, 0); err == io.EOF {
			return n, nil, f.Close()
		}
		return n, f, err
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return 0, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	for {
		if n, err = syscall.Read(fd, buf); err != syscall.EINTR {
			break
		}
	}
	if err != nil || n < len(buf) {
		_ = syscall.Close(fd)
		if err != nil {
			return 0, nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		return n, nil, nil
	}
	return n, os.NewFile(uintptr(fd), path), nil
}

// path is where key's file lives.
func (d *Store) path(key string) string {
	h := hashName(key)
	return filepath.Join(d.dir, h[0:2], h[2:4], h)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Put stores body under key with meta, replacing any entry for key, and
// returns the file size written. The body is streamed, never held whole.
// expectedSize, when ≥ 0, is the body's length: a body of another length
// is an error. -1 means unknown.
//
// The file is written to a temporary name and renamed over the final one,
// so readers see the old entry or the new one, never a mix. On any error
// (the body's own, a wrong length, ErrTooLarge) nothing is stored and a
// previous entry for key stays. Of concurrent Puts of one key, the last
// to finish wins.
func (d *Store) Put(key string, meta []byte, body io.Reader, expectedSize int64) (int64, error) {
	if len(key) > maxKey {
		return 0, fmt.Errorf("disk: put: key of %d bytes, more than %d", len(key), maxKey)
	}
	if len(meta) > maxMeta {
		return 0, fmt.Errorf("disk: put %q: meta of %d bytes, more than %d", key, len(meta), maxMeta)
	}
	if body == nil {
		body = strings.NewReader("")
	}
	prefixLen := int64(headerSize + len(key) + len(meta))
	if d.max > 0 && expectedSize >= 0 && prefixLen+expectedSize > d.max {
		return 0, fmt.Errorf("disk: put %q: %d bytes: %w", key, prefixLen+expectedSize, ErrTooLarge)
	}
	path := d.path(key)
	tmp, h, err := d.writeTemp(path, key, meta, body, expectedSize)
	if err != nil {
		return 0, fmt.Errorf("disk: put %q: %w", key, err)
	}
	it := &item{key: key, meta: slices.Clone(meta), hdr: h}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Renaming under the lock keeps the index and the files in the same
	// order when Puts and Deletes of one key race.
	if err := d.fs.Rename(tmp, path); err != nil {
		d.remove(tmp)
		return 0, fmt.Errorf("disk: put %q: %w", key, err)
	}
	d.insertLocked(it)
	return it.fileSize(), nil
}

// writeTemp writes a complete file for key, meta and body to a temporary
// file beside path, and returns its name and header.
func (d *Store) writeTemp(path, key string, meta []byte, body io.Reader, expectedSize int64) (tmp string, h fileHeader, err error) {
	dir := filepath.Dir(path)
	f, err := d.fs.CreateTemp(dir, d.tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = d.fs.MkdirAll(dir, 0o755); err == nil {
			f, err = d.fs.CreateTemp(dir, d.tmpPrefix+"*")
		}
	}
	if err != nil {
		return "", h, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			d.remove(f.Name())
		}
	}()

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp

	// Small entries take one write: prefix and body share the buffer, and
	// the header is patched in before the only flush.
	written := d.now().UnixNano()
	prefix := encodePrefix(nil, key, meta, 0, written, 0)
	fill := 0
	flushed := false
	if len(prefix) <= len(buf)/2 {
		fill = copy(buf, prefix)
	} else {
		if _, err := f.Write(prefix); err != nil {
			return "", h, err
		}
		flushed = true
	}
	var n int64
	var crc uint32
	limit := int64(-1)
	if d.max > 0 {
		limit = d.max - int64(len(prefix))
	}
	for {
		m, rerr := body.Read(buf[fill:])
		if m > 0 {
			crc = crc32.Update(crc, crcTable, buf[fill:fill+m])
			fill += m
			n += int64(m)
			if expectedSize >= 0 && n > expectedSize {
				return "", h, fmt.Errorf("body longer than the expected %d bytes: %w", expectedSize, errLength)
			}
			if limit >= 0 && n > limit {
				return "", h, fmt.Errorf("%d bytes and more: %w", int64(len(prefix))+n, ErrTooLarge)
			}
			if fill == len(buf) {
				if _, err := f.Write(buf); err != nil {
					return "", h, err
				}
				fill, flushed = 0, true
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", h, fmt.Errorf("%w: reading: %w", ErrBody, rerr)
		}
	}
	if expectedSize >= 0 && n != expectedSize {
		return "", h, fmt.Errorf("body of %d bytes, expected %d: %w", n, expectedSize, errLength)
	}
	header := encodePrefix(prefix[:0], key, meta, n, written, crc)[:headerSize]
	if !flushed {
		copy(buf, header)
	}
	if fill > 0 {
		if _, err := f.Write(buf[:fill]); err != nil {
			return "", h, err
		}
	}
	if flushed {
		if _, err := f.WriteAt(header, 0); err != nil {
			return "", h, err
		}
	}
	h, _ = decodeHeader(header)
	return f.Name(), h, nil
}

// insertLocked indexes it as the most recently used, replacing any item
// for its key, then evicts down to the bound.
func (d *Store) insertLocked(it *item) {
	if old := d.index[it.key]; old != nil {
		d.lru.remove(old)
		d.bytes -= old.fileSize()
	}
	d.index[it.key] = it
	d.lru.pushFront(it)
	d.bytes += it.fileSize()
	d.evictLocked(it)
}

// evictLocked deletes least recently used entries, never keep, until the
// total is within the bound.
func (d *Store) evictLocked(keep *item) {
	for d.max > 0 && d.bytes > d.max {
		victim := d.lru.back()
		if victim == nil || victim == keep {
			return
		}
		d.dropLocked(victim)
		d.remove(d.path(victim.key))
		d.evictions++
	}
}

// dropLocked removes it from the index (not its file).
func (d *Store) dropLocked(it *item) {
	if d.scanning {
		d.gone[it.key] = struct{}{}
	}
	delete(d.index, it.key)
	d.lru.remove(it)
	d.bytes -= it.fileSize()
}

// Get opens the entry for key and marks it recently used. It returns an
// error satisfying errors.Is(err, fs.ErrNotExist) when key is absent, and
// one satisfying errors.Is(err, ErrCorrupt) when the file fails its
// checksums: the file is then deleted, and the caller should refetch.
//
// The first Get of an entry in this process reads the whole file through
// the body checksum; later Gets only open the file.
func (d *Store) Get(key string) (*Entry, error) {
	it := d.lookup(key)
	d.mu.Lock()
	if it != nil && d.index[key] == it {
		d.lru.moveToFront(it)
	}
	d.mu.Unlock()
	if it == nil {
		return nil, notExist("get", key)
	}
	path := d.path(key)
	f, err := openFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Deleted behind our back (or by a Delete or eviction racing
			// with us): forget it.
			d.mu.Lock()
			if d.index[key] == it {
				d.dropLocked(it)
			}
			d.mu.Unlock()
			return nil, notExist("get", key)
		}
		return nil, fmt.Errorf("disk: get %q: %w", key, err)
	}
	d.mu.Lock()
	current := d.index[key] == it // then f is it's file (see item)
	verified := current && it.verified
	d.mu.Unlock()
	if verified {
		h := it.hdr
		return &Entry{
			Meta: slices.Clone(it.meta),
			Size: h.bodyLen,
			Body: io.NewSectionReader(f, h.prefixLen(), h.bodyLen),
			f:    f,
			off:  h.prefixLen(),
		}, nil
	}
	e, h, err := verify(f, key, it.hdr.prefixLen())
	if err != nil {
		_ = f.Close()
		if errors.Is(err, errOtherKey) {
			return nil, notExist("get", key)
		}
		if !errors.Is(err, ErrCorrupt) {
			return nil, fmt.Errorf("disk: get %q: %w", key, err)
		}
		d.mu.Lock()
		d.corrupt++
		if d.index[key] == it {
			d.dropLocked(it)
			d.remove(path)
		}
		d.mu.Unlock()
		d.log.Warn("disk: dropped a corrupt cache file", "key", key, "path", path, "err", err)
		return nil, fmt.Errorf("disk: get %q: %w", key, err)
	}
	if current && h == it.hdr && string(e.Meta) == string(it.meta) {
		d.mu.Lock()
		if d.index[key] == it {
			it.verified = true
		}
		d.mu.Unlock()
	}
	return e, nil
}

var (
	errOtherKey = errors.New("file holds another key")
	errBodyCRC  = errors.New("body checksum mismatch")
)

// remove deletes a file the index no longer refers to. A failure (a
// read-only disk) leaves a file the next start-up scan indexes or drops:
// it is logged, not returned.
func (d *Store) remove(path string) {
	if err := d.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("disk: cannot remove a cache file", "path", path, "err", err)
	}
}

// verify reads f's header, key and meta (guessing their length is
// peek), checks every checksum and the file's size, and returns the
// entry. Errors from the file's content wrap ErrCorrupt.
func verify(f *os.File, key string, peek int64) (*Entry, fileHeader, error) {
	peek = max(headerSize, min(peek, headerSize+maxKey+maxMeta))
	prefix := make([]byte, peek)
	n, err := f.ReadAt(prefix, 0)
	if err != nil && err != io.EOF {
		return nil, fileHeader{}, err
	}
	prefix = prefix[:n]
	h, err := decodeHeader(prefix)
	if err != nil {
		return nil, fileHeader{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if need := h.prefixLen(); int64(n) < need {
		if int64(n) < peek {
			return nil, fileHeader{}, fmt.Errorf("%w: file ends in its header", ErrCorrupt)
		}
		prefix = make([]byte, need)
		if n, err = f.ReadAt(prefix, 0); err != nil && err != io.EOF {
			return nil, fileHeader{}, err
		}
		if int64(n) < need {
			return nil, fileHeader{}, fmt.Errorf("%w: file ends in its header", ErrCorrupt)
		}
	}
	k, meta, err := decodePrefix(h, prefix)
	if err != nil {
		return nil, fileHeader{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if k != key {
		return nil, fileHeader{}, errOtherKey
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fileHeader{}, err
	}
	if fi.Size() != h.fileSize() {
		return nil, fileHeader{}, fmt.Errorf("%w: file of %d bytes, header says %d", ErrCorrupt, fi.Size(), h.fileSize())
	}
	if err := checkBody(f, h); err != nil {
		return nil, fileHeader{}, err
	}
	return &Entry{
		Meta: meta,
		Size: h.bodyLen,
		Body: io.NewSectionReader(f, h.prefixLen(), h.bodyLen),
		f:    f,
		off:  h.prefixLen(),
	}, h, nil
}

// checkBody streams f's body through its checksum.
func checkBody(f *os.File, h fileHeader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var crc uint32
	off, end := h.prefixLen(), h.fileSize()
	for off < end {
		chunk := buf[:min(int64(len(buf)), end-off)]
		n, err := f.ReadAt(chunk, off)
		crc = crc32.Update(crc, crcTable, chunk[:n])
		off += int64(n)
		if err == io.EOF && off < end {
			return fmt.Errorf("%w: body ends early", ErrCorrupt)
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	if crc != h.bodyCRC {
		return fmt.Errorf("%w: %w", ErrCorrupt, errBodyCRC)
	}
	return nil
}

func notExist(op, key string) error {
	return fmt.Errorf("disk: %s %q: %w", op, key, fs.ErrNotExist)
}

// Meta returns a copy of key's meta from the in-memory index, without
// I/O, and whether key is indexed. It does not mark the entry used.
func (d *Store) Meta(key string) ([]byte, bool) {
	it := d.lookup(key)
	if it == nil {
		return nil, false
	}
	return slices.Clone(it.meta), true
}

// Size returns the body length of key's entry from the in-memory index,
// without I/O, and whether key is indexed.
func (d *Store) Size(key string) (int64, bool) {
	it := d.lookup(key)
	if it == nil {
		return 0, false
	}
	return it.hdr.bodyLen, true
}

// Delete removes key's entry. An absent key is not an error. A Delete
// whose unlink fails (a read-only disk) leaves the entry, indexed, and
// returns the error: an entry is gone only once its file is, so that a
// purge is never undone by the next start-up scan finding the file.
func (d *Store) Delete(key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	it := d.index[key]
	if it == nil && !d.scanning {
		return nil
	}
	// Not indexed yet during the scan, perhaps on disk: removed for good.
	if err := d.fs.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: delete %q: %w", key, err)
	}
	if it == nil {
		d.gone[key] = struct{}{}
		return nil
	}
	d.dropLocked(it)
	return nil
}

// Keys calls fn for every indexed key, in no particular order, until fn
// returns false. It iterates over a snapshot, so fn may call any Disk
// method; keys added meanwhile may be missed, and keys deleted meanwhile
// may still be visited.
func (d *Store) Keys(fn func(key string) bool) {
	<-d.indexed // every key, not only those looked up so far
	d.mu.Lock()
	keys := make([]string, 0, len(d.index))
	for k := range d.index {
		keys = append(keys, k)
	}
	d.mu.Unlock()
	for _, k := range keys {
		if !fn(k) {
			return
		}
	}
}

// Stats returns the disk tier's counters.
func (d *Store) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Entries: len(d.index), Bytes: d.bytes, Evictions: d.evictions, Corrupt: d.corrupt}
}

// lruList is an intrusive doubly linked list of items, for LRU order.
type lruList struct {
	head, tail *item // head: most recently used
}

func (l *lruList) pushFront(it *item) {
	it.prev, it.next = nil, l.head
	if l.head != nil {
		l.head.prev = it
	} else {
		l.tail = it
	}
	l.head = it
}

func (l *lruList) pushBack(it *item) {
	it.prev, it.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = it
	} else {
		l.head = it
	}
	l.tail = it
}

func (l *lruList) remove(it *item) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		l.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		l.tail = it.prev
	}
	it.prev, it.next = nil, nil
}

func (l *lruList) moveToFront(it *item) {
	if l.head == it {
		return
	}
	l.remove(it)
	l.pushFront(it)
}

func (l *lruList) back() *item { return l.tail }
