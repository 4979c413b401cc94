package disk

import (
	"io"
	"io/fs"
	"os"
)

// FS is the part of the file system a Store changes: every file it
// writes, renames or removes goes through it, so tests can make the disk
// full, read-only or failing without root or a special mount. Reads go
// straight to the operating system (see openFile and peekFile), since
// they are the hot path of a disk hit.
type FS interface {
	// CreateTemp is os.CreateTemp.
	CreateTemp(dir, pattern string) (File, error)
	// Rename is os.Rename.
	Rename(oldpath, newpath string) error
	// Remove is os.Remove.
	Remove(name string) error
	// MkdirAll is os.MkdirAll.
	MkdirAll(path string, perm fs.FileMode) error
}

// File is a file being written: what *os.File offers. (ReaderAt is for
// the cache's spools, which are read while they are written.)
type File interface {
	io.Writer
	io.WriterAt
	io.ReaderAt
	io.Closer
	Name() string
}

// OSFS is the operating system's file system.
type OSFS struct{}

// CreateTemp calls os.CreateTemp.
func (OSFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// Rename calls os.Rename.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove calls os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// MkdirAll calls os.MkdirAll.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }
