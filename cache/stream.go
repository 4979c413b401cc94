package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// spool is a large body on its way from the origin to the disk tier: one
// goroutine appends to a temporary file while any number of readers
// follow it, so clients get bytes as they arrive instead of after the
// whole transfer. Nothing of it is held in memory.
type spool struct {
	f    *os.File
	size int64 // the length the origin announced

	mu      sync.Mutex
	changed *sync.Cond
	written int64
	done    bool
	err     error // why the transfer failed; nil once done means complete
}

func (s *spool) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.mu.Lock()
	s.written += int64(n)
	s.changed.Broadcast()
	s.mu.Unlock()
	return n, err
}

func (s *spool) finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.changed.Broadcast()
	s.mu.Unlock()
}

// wait blocks until byte off is written or the transfer has ended, and
// returns how many bytes are readable and the transfer's error.
func (s *spool) wait(off int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for off >= s.written && !s.done {
		s.changed.Wait()
	}
	return s.written, s.err
}

// spoolReader follows a spool; it is an io.ReadSeeker over the announced
// length, suitable for http.ServeContent.
type spoolReader struct {
	s   *spool
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	if r.off >= r.s.size {
		return 0, io.EOF
	}
	avail, err := r.s.wait(r.off)
	if r.off >= avail {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, fmt.Errorf("cache: origin transfer ended at byte %d of %d: %w", avail, r.s.size, err)
	}
	p = p[:min(int64(len(p)), avail-r.off)]
	n, err := r.s.f.ReadAt(p, r.off)
	r.off += int64(n)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (r *spoolReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.s.size
	}
	if offset < 0 {
		return 0, errors.New("cache: seek before start")
	}
	r.off = offset
	return offset, nil
}

// StoreStreaming caches a new object version whose body is too large for
// memory (size > MaxMemoryObject, known in advance). It returns at once
// with an Object whose body readers follow the transfer as it lands in a
// temporary file; the copy continues in the background, then the body
// is committed to the disk tier and the object record written, as Store
// would. If the transfer fails, readers get an error at the point it
// failed and nothing is cached. body is closed when the copy ends. Called
// from a Fill, whose context stays alive until then.
func (c *Cache) StoreStreaming(key string, meta Meta, etag string, body io.ReadCloser, size int64) (*Object, error) {
	f, err := os.CreateTemp(c.dir, ".spool-")
	if err != nil {
		return nil, fmt.Errorf("cache: spooling %q: %w", key, err)
	}
	// Readers hold the file open through the spool; the name is not needed.
	os.Remove(f.Name())
	meta.Version = c.nextVersion()
	meta.Size = size
	sp := &spool{f: f, size: size}
	sp.changed = sync.NewCond(&sp.mu)
	v := &Variant{Coding: codingName(meta.Coding), ETag: etag, Size: size, spool: sp}
	obj := &Object{Key: key, Meta: meta}
	obj.variants.Store(&[]*Variant{v})
	old := c.Lookup(key)
	c.mem.Set(key, obj, obj.cost())

	c.writes.Add(1)
	go func() {
		defer c.writes.Done()
		n, err := io.Copy(sp, body)
		body.Close()
		if err == nil && n != size {
			err = fmt.Errorf("cache: body of %q is %d bytes, not %d", key, n, size)
		}
		if err == nil {
			err = c.commitSpool(obj, v, f)
		}
		sp.finish(err)
		if err != nil {
			c.mem.Del(key)
			return
		}
		if old != nil {
			c.dropVariants(key, v.Coding)
		}
		// New readers go to the disk tier; current ones keep following
		// the spool, whose file the garbage collector closes after them.
		c.addVariant(obj, &Variant{Coding: v.Coding, ETag: v.ETag, Size: size})
	}()
	return obj, nil
}

// commitSpool copies a complete spool into the disk tier, then writes the
// object record, as Store does.
func (c *Cache) commitSpool(obj *Object, v *Variant, f *os.File) error {
	raw, err := json.Marshal(variantMeta{Meta: obj.Meta, VariantETag: v.ETag})
	if err != nil {
		return err
	}
	if _, err := c.disk.Put(variantKey(obj.Key, v.Coding), raw, io.NewSectionReader(f, 0, v.Size), v.Size); err != nil {
		return fmt.Errorf("cache: storing %q: %w", obj.Key, err)
	}
	rec, err := json.Marshal(obj.Meta)
	if err != nil {
		return err
	}
	if _, err := c.disk.Put(obj.Key, rec, nil, 0); err != nil {
		return fmt.Errorf("cache: storing %q: %w", obj.Key, err)
	}
	return nil
}

// Streaming reports whether obj's stored body is still arriving.
func (obj *Object) Streaming() bool {
	for _, v := range *obj.variants.Load() {
		if v.spool != nil {
			v.spool.mu.Lock()
			done := v.spool.done
			v.spool.mu.Unlock()
			return !done
		}
	}
	return false
}

// waitStreamed blocks until obj's stored body, if streaming, has ended.
func (obj *Object) waitStreamed() {
	for _, v := range *obj.variants.Load() {
		if v.spool != nil {
			v.spool.wait(v.spool.size)
		}
	}
}
