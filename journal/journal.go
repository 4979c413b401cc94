// Package journal is the fleet's shared record of purges, so that no edge
// misses one: every purge is a record in a store (S3, or a directory)
// that every edge reads at start and every poll interval, applying what
// it has not applied yet. An edge that was down, restarting or cut off
// when a purge was sent catches up by itself. The journal also holds the
// registry of edges, through which the purge CLI finds every live edge
// of every region without a list.
//
// Layout, under the store's prefix (-purge-journal s3://BUCKET/PREFIX):
//
//	purges/<id>   one record per purge (Record, JSON); ids sort by time
//	edges/<name>  one entry per edge (Edge, JSON), refreshed every minute
//	compacted     {"before": "RFC 3339"}: records issued before it may be deleted
//
// The CLI writes a record (Append) before it sends the purge to the
// edges, with the id in the request, and compacts records older than its
// retention (Compact). An edge applies each record once (by id, which the
// cache remembers across restarts), whether it came directly or through
// the journal (Follower). An edge whose last complete read of the journal
// is older than the compaction mark cannot know what it missed: it
// soft-purges everything.
package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/edgecdn/edge/store"
)

// Store layout.
const (
	purgesDir     = "purges/"
	edgesDir      = "edges/"
	compactedKey  = "compacted"
	idTimeLayout  = "20060102T150405.000000000Z"
	idRandomChars = 8
	// maxRecord bounds a record: a purge request is at most 1 MiB.
	maxRecord = 1 << 20
)

// Record is one purge.
type Record struct {
	// ID orders records by time: the issue time in UTC
	// ("20261130T120000.123456789Z") and a random suffix ("-k3j4h5g6").
	ID   string    `json:"id"`
	Time time.Time `json:"time"` // issued; the same instant as the id's
	// Selectors and mode, as the edges' POST /purge takes them.
	URLs     []string `json:"urls,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	All      bool     `json:"all,omitempty"`
	Host     string   `json:"host,omitempty"`
	// Mode is "soft" or "hard".
	Mode string `json:"mode"`
	// By says who issued it ("user@host"), for the audit trail.
	By string `json:"by,omitempty"`
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new record id for a purge issued at t.
func NewID(t time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand's contract since Go 1.24)
	return t.UTC().Format(idTimeLayout) + "-" + idEncoding.EncodeToString(b[:])
}

// ParseID checks an id's form and returns the time it holds.
func ParseID(id string) (time.Time, error) {
	ts, suffix, ok := strings.Cut(id, "-")
	if !ok || len(ts) != len(idTimeLayout) || len(suffix) != idRandomChars {
		return time.Time{}, fmt.Errorf("journal id %q: want %s-%s", id, idTimeLayout, strings.Repeat("x", idRandomChars))
	}
	for i := 0; i < len(suffix); i++ {
		if c := suffix[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return time.Time{}, fmt.Errorf("journal id %q: bad suffix", id)
		}
	}
	t, err := time.Parse(idTimeLayout, ts)
	if err != nil {
		return time.Time{}, fmt.Errorf("journal id %q: %w", id, err)
	}
	return t, nil
}

// ParseRecord reads a record as Append writes it: one JSON object with
// the fields of Record and nothing else; a valid id; the time; the mode;
// at least one selector, "all" alone; paths and prefixes starting with
// "/"; tags one word each.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if len(b) > maxRecord {
		return r, fmt.Errorf("journal record: larger than %d bytes", maxRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("journal record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("journal record: data after the object")
	}
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Modes of a Record.
const (
	Soft = "soft"
	Hard = "hard"
)

// Validate checks r as ParseRecord does.
func (r *Record) Validate() error {
	if _, err := ParseID(r.ID); err != nil {
		return fmt.Errorf("journal record: %w", err)
	}
	if r.Mode != Soft && r.Mode != Hard {
		return fmt.Errorf("journal record %s: mode %q: want soft or hard", r.ID, r.Mode)
	}
	if r.Time.IsZero() {
		return fmt.Errorf("journal record %s: no time", r.ID)
	}
	n := len(r.URLs) + len(r.Prefixes) + len(r.Tags)
	switch {
	case n == 0 && !r.All:
		return fmt.Errorf("journal record %s: no selector", r.ID)
	case n > 0 && r.All:
		return fmt.Errorf("journal record %s: all with other selectors", r.ID)
	}
	for _, p := range append(r.URLs[:len(r.URLs):len(r.URLs)], r.Prefixes...) {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\r\n") {
			return fmt.Errorf("journal record %s: %q is not a path", r.ID, p)
		}
	}
	for _, t := range r.Tags {
		if t == "" || strings.ContainsAny(t, " \t\r\n\x00") {
			return fmt.Errorf("journal record %s: %q is not a tag", r.ID, t)
		}
	}
	if strings.ContainsAny(r.Host, "/ \t\r\n\x00") {
		return fmt.Errorf("journal record %s: %q is not a host", r.ID, r.Host)
	}
	return nil
}

// Edge is an edge's entry in the registry.
type Edge struct {
	Name   string `json:"name"`
	Region string `json:"region,omitempty"`
	// AdminURL is how others reach the edge's admin listener
	// ("http://10.0.3.7:9080").
	AdminURL string    `json:"admin_url"`
	LastSeen time.Time `json:"last_seen"`
}

// CheckName checks an edge name: 1 to 253 letters, digits, '.', '-' or
// '_' (a host name fits), so that it can name its registry entry.
func CheckName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("edge name %q: 1 to 253 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') || name == "." || name == ".." {
			return fmt.Errorf("edge name %q: letters, digits, '.', '-' and '_' only", name)
		}
	}
	return nil
}

// ParseEdge reads a registry entry.
func ParseEdge(b []byte) (Edge, error) {
	var e Edge
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Edge{}, fmt.Errorf("registry entry: %w", err)
	}
	if err := CheckName(e.Name); err != nil {
		return Edge{}, fmt.Errorf("registry entry: %w", err)
	}
	if !strings.HasPrefix(e.AdminURL, "http://") && !strings.HasPrefix(e.AdminURL, "https://") {
		return Edge{}, fmt.Errorf("registry entry %s: admin_url %q is not an http(s) URL", e.Name, e.AdminURL)
	}
	return e, nil
}

// Journal is the journal in a store. Safe for concurrent use.
type Journal struct {
	st store.Store
}

// New returns the journal kept in st.
func New(st store.Store) *Journal { return &Journal{st: st} }

// String names the journal's store, for logs.
func (j *Journal) String() string { return j.st.String() }

// Append writes r. Records are never overwritten: an id that exists is
// an error (wrapping fs.ErrExist).
func (j *Journal) Append(ctx context.Context, r Record) error {
	if err := r.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return j.st.Create(ctx, purgesDir+r.ID, b)
}

// IDs lists the ids of the records in the journal, oldest first. Keys
// that are not record ids (left by hand) are returned too: Read reports
// them unreadable.
func (j *Journal) IDs(ctx context.Context) ([]string, error) {
	keys, err := j.st.List(ctx, purgesDir)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, strings.TrimPrefix(k, purgesDir))
	}
	return ids, nil
}

// ErrUnreadable wraps the error of a record that exists but cannot be
// parsed (written by a newer purge CLI, or damaged).
var ErrUnreadable = errors.New("unreadable journal record")

// Read returns the record with id. A record that is gone wraps
// fs.ErrNotExist; one that cannot be parsed, ErrUnreadable.
func (j *Journal) Read(ctx context.Context, id string) (Record, error) {
	b, err := j.st.Get(ctx, purgesDir+id)
	if err != nil {
		return Record{}, err
	}
	r, err := ParseRecord(b)
	if err != nil {
		return Record{}, fmt.Errorf("%w %s: %w", ErrUnreadable, id, err)
	}
	if r.ID != id {
		return Record{}, fmt.Errorf("%w %s: it says its id is %s", ErrUnreadable, id, r.ID)
	}
	return r, nil
}

type compactionMark struct {
	Before time.Time `json:"before"`
}

// CompactedBefore returns the compaction mark: records issued before it
// may have been deleted. Zero when the journal was never compacted.
func (j *Journal) CompactedBefore(ctx context.Context) (time.Time, error) {
	b, err := j.st.Get(ctx, compactedKey)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	var m compactionMark
	if err := json.Unmarshal(b, &m); err != nil {
		return time.Time{}, fmt.Errorf("%w: %v", ErrDamagedMark, err)
	}
	return m.Before, nil
}

// ErrDamagedMark: the compaction mark cannot be read. Until a Compact
// rewrites it, nobody can tell which records may have been deleted.
var ErrDamagedMark = errors.New("journal compaction mark damaged")

// Compact deletes the records issued before before, and the registry
// entries of edges not seen since then. The mark is raised first, so
// that an edge that reads the journal meanwhile knows records may be
// missing. It returns how many records and entries it deleted.
func (j *Journal) Compact(ctx context.Context, before time.Time) (records, edges int, err error) {
	cur, err := j.CompactedBefore(ctx)
	if err != nil && !errors.Is(err, ErrDamagedMark) {
		return 0, 0, err
	}
	if before.After(cur) { // a damaged mark is rewritten
		b, _ := json.Marshal(compactionMark{Before: before.UTC()})
		if err := j.st.Put(ctx, compactedKey, b); err != nil {
			return 0, 0, err
		}
	}
	ids, err := j.IDs(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		t, err := ParseID(id)
		if err != nil || !t.Before(before) {
			continue
		}
		if err := j.st.Delete(ctx, purgesDir+id); err != nil {
			return records, edges, err
		}
		records++
	}
	list, err := j.Edges(ctx) // an unreadable entry is left for the next compaction
	for _, e := range list {
		if e.LastSeen.Before(before) {
			if err := j.st.Delete(ctx, edgesDir+e.Name); err != nil {
				return records, edges, err
			}
			edges++
		}
	}
	return records, edges, err
}

// Register writes (or refreshes) e's registry entry.
func (j *Journal) Register(ctx context.Context, e Edge) error {
	if err := CheckName(e.Name); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return j.st.Put(ctx, edgesDir+e.Name, b)
}

// Edges returns the registry, sorted by name: every entry it could read,
// and, when some could not be (unreachable, damaged), an error saying so
// beside them. An entry deleted meanwhile is no error.
func (j *Journal) Edges(ctx context.Context) ([]Edge, error) {
	keys, err := j.st.List(ctx, edgesDir)
	if err != nil {
		return nil, err
	}
	out := make([]Edge, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := j.st.Get(ctx, k)
			if err == nil {
				out[i], err = ParseEdge(b)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	var edges []Edge
	var unread []error
	for i, k := range keys {
		switch err := errs[i]; {
		case err == nil:
			edges = append(edges, out[i])
		case !errors.Is(err, fs.ErrNotExist):
			unread = append(unread, fmt.Errorf("%s: %w", strings.TrimPrefix(k, edgesDir), err))
		}
	}
	if len(unread) > 0 {
		return edges, fmt.Errorf("%d registry entries unreadable: %w", len(unread), errors.Join(unread...))
	}
	return edges, nil
}
