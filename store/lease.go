package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// A Lease is a claim on a name, held by one holder until it expires, so
// that one edge of many does a job (order a certificate, create ticket
// keys) while the others wait for its result. It expires by itself, so a
// crashed holder blocks the others for at most its TTL.
type Lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// maxHolder bounds a holder's name in a lease record.
const maxHolder = 256

// ParseLease parses a lease record as Leases writes it: a JSON object
// {"holder": "...", "expires": "RFC 3339 time"}, nothing else. The holder
// is 1 to 256 printable ASCII characters.
func ParseLease(b []byte) (Lease, error) {
	var l Lease
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Lease{}, fmt.Errorf("lease record: %w", err)
	}
	if dec.More() {
		return Lease{}, errors.New("lease record: data after the object")
	}
	if l.Holder == "" || len(l.Holder) > maxHolder {
		return Lease{}, fmt.Errorf("lease record: holder must be 1 to %d characters", maxHolder)
	}
	for _, c := range []byte(l.Holder) {
		if c < ' ' || c > '~' {
			return Lease{}, errors.New("lease record: holder must be printable ASCII")
		}
	}
	if l.Expires.IsZero() {
		return Lease{}, errors.New("lease record: no expiry")
	}
	return l, nil
}

func (l Lease) marshal() []byte {
	b, _ := json.Marshal(Lease{Holder: l.Holder, Expires: l.Expires.UTC()})
	return b
}

// Leases grants leases kept in a Store. A lease on NAME is a series of
// records "leases/NAME/GENERATION" (generation zero-padded, so they sort);
// the newest one says who holds it. Taking a lease is a Create of the next
// generation, so of several edges that find a lease free (never taken,
// released, or expired) at once, exactly one wins: the store's Create is
// the only coordination needed, and it works on S3 (If-None-Match: *) as
// well as in a directory. Older generations are deleted by the winner.
//
// Holders' clocks should agree to well within the TTL.
type Leases struct {
	store  Store
	holder string
	now    func() time.Time
}

// NewLeases returns Leases on s, taken in the name of holder ("" means
// HOSTNAME-PID-RANDOM). now is the clock; nil means time.Now.
func NewLeases(s Store, holder string, now func() time.Time) *Leases {
	if holder == "" {
		host, _ := os.Hostname()
		holder = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), rand.Text()[:8])
	}
	if now == nil {
		now = time.Now
	}
	return &Leases{store: s, holder: holder, now: now}
}

// Holder is the name leases are taken in.
func (l *Leases) Holder() string { return l.holder }

func leasePrefix(name string) string { return "leases/" + name + "/" }

// current returns the newest generation of the lease on name and its
// record. gen 0 means none; a record that does not parse counts as
// expired (it must not block issuance forever), with its error.
func (l *Leases) current(ctx context.Context, name string) (gen uint64, cur Lease, keys []string, err error) {
	if err := checkKey("leases/" + name); err != nil {
		return 0, Lease{}, nil, err
	}
	keys, err = l.store.List(ctx, leasePrefix(name))
	if err != nil {
		return 0, Lease{}, nil, err
	}
	var newest string
	for _, k := range keys {
		g, err := strconv.ParseUint(strings.TrimPrefix(k, leasePrefix(name)), 10, 64)
		if err == nil && g > gen {
			gen, newest = g, k
		}
	}
	if gen == 0 {
		return 0, Lease{}, keys, nil
	}
	b, err := l.store.Get(ctx, newest)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted between List and Get: a newer generation exists.
		return gen, Lease{Holder: "(unknown)", Expires: l.now().Add(time.Second)}, keys, nil
	}
	if err != nil {
		return 0, Lease{}, nil, err
	}
	cur, perr := ParseLease(b)
	if perr != nil {
		cur = Lease{Holder: "(unreadable record)", Expires: time.Time{}}
	}
	return gen, cur, keys, nil
}

// Acquire tries to take the lease on name for ttl. It returns true when
// this holder now holds it (taking it again while held extends it), and
// otherwise false and the lease that someone else holds. It never waits.
func (l *Leases) Acquire(ctx context.Context, name string, ttl time.Duration) (bool, Lease, error) {
	gen, cur, keys, err := l.current(ctx, name)
	if err != nil {
		return false, Lease{}, fmt.Errorf("lease %q: %w", name, err)
	}
	now := l.now()
	if gen > 0 && cur.Holder != l.holder && now.Before(cur.Expires) {
		return false, cur, nil
	}
	mine := Lease{Holder: l.holder, Expires: now.Add(ttl)}
	next := fmt.Sprintf("%s%020d", leasePrefix(name), gen+1)
	if err := l.store.Create(ctx, next, mine.marshal()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another holder took generation gen+1 first.
			_, cur, _, err := l.current(ctx, name)
			if err != nil {
				return false, Lease{}, fmt.Errorf("lease %q: %w", name, err)
			}
			return false, cur, nil
		}
		return false, Lease{}, fmt.Errorf("lease %q: %w", name, err)
	}
	for _, k := range keys {
		if k != next {
			_ = l.store.Delete(ctx, k) // old generations: garbage, not state
		}
	}
	return true, mine, nil
}

// Release gives up the lease on name if this holder holds it, so others
// need not wait for it to expire. It writes a new, already expired
// generation rather than deleting the record, which keeps generations
// increasing.
func (l *Leases) Release(ctx context.Context, name string) error {
	gen, cur, _, err := l.current(ctx, name)
	if err != nil {
		return fmt.Errorf("lease %q: %w", name, err)
	}
	if gen == 0 || cur.Holder != l.holder {
		return nil
	}
	rec := Lease{Holder: l.holder, Expires: l.now().Add(-time.Nanosecond)}
	err = l.store.Create(ctx, fmt.Sprintf("%s%020d", leasePrefix(name), gen+1), rec.marshal())
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("lease %q: %w", name, err)
	}
	return nil
}
