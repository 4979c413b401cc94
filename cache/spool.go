package cache

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/edgecdn/edge/cache/internal/disk"
)

// spoolPattern names spool files in the cache directory. They are
// unlinked as soon as they are created, so one left over means a crash in
// between; New removes those.
const spoolPattern = ".spool-*"

// spool is a large body on its way from the origin (or a transcoder) to
// the disk tier: one goroutine appends while any number of readers follow
// it, so clients get bytes as they arrive instead of after the whole
// transfer. The bytes go to an unlinked temporary file; when the disk
// cannot take them (full, read-only), the rest of the transfer is held in
// memory instead, so a failing disk never breaks a transfer.
type spool struct {
	size        int64       // the length announced; -1: unknown until done
	onDiskError func(error) // told when writing to the file fails

	mu      sync.Mutex
	changed *sync.Cond
	f       disk.File // nil when the disk could not take a spool
	toFile  bool      // writes go to f; false once a write to it failed
	fileEnd int64     // bytes [0, fileEnd) are in f; the rest in mem
	mem     []byte
	written int64
	done    bool
	err     error // why the transfer failed; nil once done means complete
}

// newSpool starts a spool for a body of size bytes (-1: unknown).
func (c *Cache) newSpool(size int64) *spool {
	sp := &spool{size: size, onDiskError: c.diskState.failed}
	sp.changed = sync.NewCond(&sp.mu)
	if c.diskState.allow() {
		f, err := c.fs.CreateTemp(c.dir, spoolPattern)
		if err == nil {
			// Readers hold the file open through the spool; the name is
			// not needed, and a crash leaves nothing behind. The garbage
			// collector closes the file after the last reader.
			if err = c.fs.Remove(f.Name()); err != nil {
				f.Close()
			}
		}
		if err != nil {
			c.diskState.failed(fmt.Errorf("spooling a large body: %w", err))
		} else {
			sp.f, sp.toFile = f, true
		}
	}
	return sp
}

// Write appends p. A disk write that fails moves the spool to memory for
// the rest of the transfer; the disk failure itself is not the writer's
// error.
func (s *spool) Write(p []byte) (int, error) {
	if f := s.file(); f != nil {
		n, err := f.Write(p)
		s.mu.Lock()
		s.written += int64(n)
		s.fileEnd = s.written
		if err != nil {
			s.toFile = false // the file keeps what it has
			s.mem = append(s.mem, p[n:]...)
			s.written += int64(len(p) - n)
		}
		s.changed.Broadcast()
		s.mu.Unlock()
		if err != nil {
			s.onDiskError(fmt.Errorf("spooling a large body: %w", err))
		}
		return len(p), nil
	}
	s.mu.Lock()
	s.mem = append(s.mem, p...)
	s.written += int64(len(p))
	s.changed.Broadcast()
	s.mu.Unlock()
	return len(p), nil
}

// file is the file to write to, or nil.
func (s *spool) file() disk.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.toFile {
		return nil
	}
	return s.f
}

// finish ends the transfer: complete when err is nil.
func (s *spool) finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.changed.Broadcast()
	s.mu.Unlock()
}

// ended reports whether the transfer is over.
func (s *spool) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// wait blocks until byte off is written or the transfer has ended (off
// -1: until it has ended), and returns how many bytes are readable and
// the transfer's error.
func (s *spool) wait(off int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for (off < 0 || off >= s.written) && !s.done {
		s.changed.Wait()
	}
	return s.written, s.err
}

// ReadAt reads written bytes at off, from the file or from memory; it
// does not wait for bytes still to come.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	fileEnd, written := s.fileEnd, s.written
	f := s.f
	n := 0
	if off >= fileEnd && off < written {
		n = copy(p, s.mem[off-fileEnd:])
	}
	s.mu.Unlock()
	if off >= written {
		return 0, io.EOF
	}
	if off >= fileEnd {
		return n, nil
	}
	p = p[:min(int64(len(p)), fileEnd-off)]
	return f.ReadAt(p, off)
}

// spoolReader follows a spool; it is an io.ReadSeeker over the body,
// suitable for http.ServeContent.
type spoolReader struct {
	s   *spool
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	if r.s.size >= 0 && r.off >= r.s.size {
		return 0, io.EOF
	}
	avail, err := r.s.wait(r.off)
	if r.off >= avail {
		if err == nil {
			if r.s.size < 0 {
				return 0, io.EOF // unknown length: the transfer ended here
			}
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("cache: origin transfer ended at byte %d of %d: %w", avail, r.s.size, err)
	}
	p = p[:min(int64(len(p)), avail-r.off)]
	n, err := r.s.ReadAt(p, r.off)
	r.off += int64(n)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// Seek moves the offset. Seeking from the end of a body of unknown length
// waits for the transfer to end.
func (r *spoolReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		size := r.s.size
		if size < 0 {
			n, err := r.s.wait(-1)
			if err != nil {
				return 0, err
			}
			size = n
		}
		offset += size
	}
	if offset < 0 {
		return 0, errors.New("cache: seek before start")
	}
	r.off = offset
	return offset, nil
}
