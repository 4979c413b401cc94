package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// tmpPrefix starts the names of files being written; List skips them.
const tmpPrefix = ".tmp-"

// Dir is a Store in a local directory. Values are files (mode 0600) under
// the directory, named by their keys. Put writes a temporary file and
// renames it over the key; Create writes a temporary file and hard-links
// it to the key, which fails if the key exists: the value appears whole
// or not at all, and of concurrent Creates one wins, also between
// processes (and on NFS, where O_EXCL is not reliable but link is).
type Dir struct {
	root string
}

// NewDir returns a Dir at path, creating the directory (mode 0700) if it
// does not exist.
func NewDir(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", abs)
	}
	return &Dir{root: abs}, nil
}

func (d *Dir) String() string { return "dir:" + d.root }

func (d *Dir) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, tmpPrefix) {
			return "", fmt.Errorf("%w %q: elements starting with %s are reserved", ErrInvalidKey, key, tmpPrefix)
		}
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func (d *Dir) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		// A directory or a file where a value or its parent directory is
		// expected is no value either.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || isDir(p) {
			return nil, fmt.Errorf("store %s: get %q: %w", d, key, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("store %s: get %q: %w", d, key, err)
	}
	return b, nil
}

// isDir reports whether p is a directory (ReadFile on one fails with
// EISDIR, which is not fs.ErrNotExist).
func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// writeTemp writes value to a new temporary file beside p and returns its
// name. The file is synced, so that a crash after the rename or link
// cannot leave an empty value behind.
func writeTemp(p string, value []byte) (string, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(value)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (d *Dir) Put(ctx context.Context, key string, value []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := writeTemp(p, value)
	if err != nil {
		return fmt.Errorf("store %s: put %q: %w", d, key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store %s: put %q: %w", d, key, err)
	}
	return nil
}

func (d *Dir) Create(ctx context.Context, key string, value []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tmp, err := writeTemp(p, value)
	if err != nil {
		return fmt.Errorf("store %s: create %q: %w", d, key, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store %s: create %q: %w", d, key, fs.ErrExist)
		}
		return fmt.Errorf("store %s: create %q: %w", d, key, err)
	}
	return nil
}

func (d *Dir) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store %s: delete %q: %w", d, key, err)
	}
	return nil
}

func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Walk only the deepest directory the prefix names in full.
	start := d.root
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		if err := checkKey(prefix[:i]); err != nil {
			return nil, err
		}
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	var keys []string
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		if k := filepath.ToSlash(rel); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: list %q: %w", d, prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}
