package disk

// Test-only views of a Store.

// openSync opens the store in dir, bounded to maxBytes, and returns once
// its files are indexed.
func openSync(dir string, maxBytes int64) (*Store, error) {
	d, err := Open(dir, Options{MaxBytes: maxBytes})
	if err != nil {
		return nil, err
	}
	<-d.Indexed()
	if d.scanErr != nil {
		return nil, d.scanErr
	}
	return d, nil
}

// has reports whether key is indexed, without I/O.
func has(d *Store, key string) bool { return d.lookup(key) != nil }
