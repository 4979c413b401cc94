package origin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// FS is an Origin that serves the regular files of an fs.FS: a local
// directory (NewDir) or an embedded tree such as the demo site (NewFS).
// Safe for concurrent use if the fs.FS is.
//
// Objects carry no ContentType, ContentEncoding or CacheControl: files have
// none, and the caller derives the type from the extension. The ETag is
// strong, built from size and modification time; for files without a
// modification time (embed.FS) it is a hash of the content, computed once
// per path and kept, because such files are taken to be immutable.
type FS struct {
	fsys fs.FS
	name string
	// hashes caches content-hash ETags (string → string) of files whose
	// ModTime is zero.
	hashes sync.Map
}

// NewFS returns an origin serving fsys. name is what String reports, e.g.
// "embedded demo site".
func NewFS(fsys fs.FS, name string) *FS {
	return &FS{fsys: fsys, name: name}
}

// NewDir returns an origin serving the directory at path, which must exist.
// Symbolic links inside it are followed, also out of it: the tree belongs to
// the operator. String reports "dir:PATH".
func NewDir(path string) (*FS, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dir origin: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dir origin: %s is not a directory", path)
	}
	return NewFS(os.DirFS(path), "dir:"+path), nil
}

// String returns the name given to NewFS, or "dir:PATH".
func (o *FS) String() string { return o.name }

// Get opens the file for key. Keys that cleanKey rejects, directories and
// other non-regular files are ErrNotFound; so is a missing file. Any other
// failure to open or stat (permissions, I/O) is returned as an origin
// failure, so that a broken disk does not become a cached 404.
func (o *FS) Get(ctx context.Context, key string, cond Conditions) (*Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("origin fs get %q: %w", key, err)
	}
	name, ok := cleanKey(key)
	if !ok {
		return nil, fmt.Errorf("origin fs get %q: invalid key: %w", key, ErrNotFound)
	}
	f, err := o.fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("origin fs get %q: %w", key, classifyFSError(err))
	}
	obj, err := o.object(name, f, cond)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("origin fs get %q: %w", key, err)
	}
	return obj, nil
}

func (o *FS) object(name string, f fs.File, cond Conditions) (*Object, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, classifyFSError(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, ErrNotFound
	}
	etag, err := o.etag(name, fi)
	if err != nil {
		return nil, err
	}
	if notModified(cond, etag, fi.ModTime()) {
		return nil, ErrNotModified
	}
	return &Object{
		Body:         f,
		Size:         fi.Size(),
		ETag:         etag,
		LastModified: fi.ModTime(),
	}, nil
}

// etag returns the strong ETag of the file name with info fi: its inode,
// size and modification time, as nginx does (with the inode, since
// modification times tick in jiffies: two files written in the same
// few milliseconds with the same size would otherwise share one).
func (o *FS) etag(name string, fi fs.FileInfo) (string, error) {
	if mt := fi.ModTime(); !mt.IsZero() {
		tag := strconv.FormatInt(fi.Size(), 36) + "-" + strconv.FormatInt(mt.UnixNano(), 36)
		if ino := inode(fi); ino != 0 {
			tag = strconv.FormatUint(ino, 36) + "-" + tag
		}
		return `"` + tag + `"`, nil
	}
	if v, ok := o.hashes.Load(name); ok {
		return v.(string), nil
	}
	// Hash through a second handle: the caller's stays at offset 0 for the
	// Body, and fs.File need not be an io.Seeker.
	f, err := o.fsys.Open(name)
	if err != nil {
		return "", classifyFSError(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing: %w", err)
	}
	etag := `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
	v, _ := o.hashes.LoadOrStore(name, etag)
	return v.(string), nil
}

// classifyFSError keeps "not there" apart from "cannot read": only the first
// is ErrNotFound. A path through a regular file ("a.js/x") fails with
// ENOTDIR on os.DirFS, which is also "not there".
func classifyFSError(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
