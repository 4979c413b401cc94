package tls

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgecdn/edge/store"
)

// TicketKey is one session-ticket key.
type TicketKey struct {
	Created time.Time
	Key     [32]byte
}

// maxTicketKeys bounds a ticket-key file.
const maxTicketKeys = 16

// ParseTicketKeys parses a ticket-key file:
//
//	# comment lines and blank lines are ignored
//	CREATED KEY
//
// one key per line, CREATED an RFC 3339 time, KEY 32 random bytes in hex
// (64 characters), for example
//
//	2026-11-30T08:00:00Z 6f1c...(64 hex digits)
//
// The keys come back newest first. At least one, at most 16, no
// duplicates. Errors give the line number, never a key.
func ParseTicketKeys(b []byte) ([]TicketKey, error) {
	var keys []TicketKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 4096)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("ticket keys: line %d: want CREATED KEY (two fields)", n)
		}
		created, err := time.Parse(time.RFC3339, f[0])
		if err != nil {
			return nil, fmt.Errorf("ticket keys: line %d: created time: want RFC 3339 (2026-11-30T08:00:00Z)", n)
		}
		var k TicketKey
		k.Created = created
		if len(f[1]) != 64 {
			return nil, fmt.Errorf("ticket keys: line %d: key: want 64 hex digits (32 bytes), got %d characters", n, len(f[1]))
		}
		if _, err := hex.Decode(k.Key[:], []byte(f[1])); err != nil {
			return nil, fmt.Errorf("ticket keys: line %d: key: not hex", n)
		}
		if k.Key == ([32]byte{}) {
			return nil, fmt.Errorf("ticket keys: line %d: key is all zeros", n)
		}
		if slices.ContainsFunc(keys, func(o TicketKey) bool { return o.Key == k.Key }) {
			return nil, fmt.Errorf("ticket keys: line %d: duplicate key", n)
		}
		if len(keys) == maxTicketKeys {
			return nil, fmt.Errorf("ticket keys: more than %d keys", maxTicketKeys)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ticket keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("ticket keys: no key")
	}
	slices.SortStableFunc(keys, func(a, b TicketKey) int { return b.Created.Compare(a.Created) })
	return keys, nil
}

// FormatTicketKeys writes keys in the format ParseTicketKeys reads.
func FormatTicketKeys(keys []TicketKey) []byte {
	var b bytes.Buffer
	b.WriteString("# edge session-ticket keys, newest first: CREATED (RFC 3339) KEY (32 bytes, hex)\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k.Created.UTC().Format(time.RFC3339Nano), hex.EncodeToString(k.Key[:]))
	}
	return b.Bytes()
}

// Defaults of TicketsConfig.
const (
	DefaultTicketRotation   = 24 * time.Hour
	DefaultTicketKeep       = 2
	DefaultTicketActivation = 10 * time.Minute
)

// TicketsConfig configures Tickets. Exactly one of Store and File is set.
type TicketsConfig struct {
	// Store holds the keys (under "ticket-keys") for the edges of a
	// region, which create and rotate them themselves.
	Store store.Store
	// File is a ticket-key file the operator writes and rotates; the
	// edge only reads it.
	File string
	// Rotation is how old the newest key may get before the edges add a
	// new one. Zero means DefaultTicketRotation (daily).
	Rotation time.Duration
	// Keep is how many keys older than the newest are kept to decrypt
	// tickets issued before a rotation. Zero means DefaultTicketKeep.
	Keep int
	// Activation is how long a new key only decrypts before it encrypts,
	// so that every edge of the region has loaded it before any client
	// holds a ticket under it. Must exceed the interval between Checks.
	// Zero means DefaultTicketActivation.
	Activation time.Duration
	Holder     string           // lease holder; "" means HOSTNAME-PID-RANDOM
	Now        func() time.Time // nil means time.Now
	Logger     *slog.Logger     // nil means slog.Default()
}

// Tickets keeps the session-ticket keys of a region's edges in the
// tls.Configs given to Apply, so that a session resumed on any edge of
// the region skips the full handshake. Safe for concurrent use.
type Tickets struct {
	cfg    TicketsConfig
	leases *store.Leases
	log    *slog.Logger

	mu      sync.Mutex
	keys    []TicketKey // newest first
	configs []*tls.Config
	lastErr string
}

// ticketKeysKey is the store key of the keys.
const ticketKeysKey = "ticket-keys"

// NewTickets returns Tickets for cfg. Check loads the keys.
func NewTickets(cfg TicketsConfig) (*Tickets, error) {
	if (cfg.Store == nil) == (cfg.File == "") {
		return nil, errors.New("ticket keys: want a store or a file")
	}
	if cfg.Rotation <= 0 {
		cfg.Rotation = DefaultTicketRotation
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultTicketKeep
	}
	if cfg.Activation <= 0 {
		cfg.Activation = DefaultTicketActivation
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Tickets{cfg: cfg, log: cfg.Logger}
	if cfg.Store != nil {
		t.leases = store.NewLeases(cfg.Store, cfg.Holder, cfg.Now)
	}
	return t, nil
}

// Apply makes c use the shared keys, now and after every change.
func (t *Tickets) Apply(c *tls.Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.configs = append(t.configs, c)
	if len(t.keys) > 0 {
		c.SetSessionTicketKeys(t.order(t.keys))
	}
}

// order puts the encrypting key first: the newest that is older than
// Activation, else (no key is that old, as right after the first keys
// were made) the oldest, which every edge is most likely to have.
func (t *Tickets) order(keys []TicketKey) [][32]byte {
	enc := len(keys) - 1
	for i, k := range keys {
		if !t.cfg.Now().Before(k.Created.Add(t.cfg.Activation)) {
			enc = i
			break
		}
	}
	out := [][32]byte{keys[enc].Key}
	for i, k := range keys {
		if i != enc {
			out = append(out, k.Key)
		}
	}
	return out
}

// Keys returns the keys in use, newest first.
func (t *Tickets) Keys() []TicketKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.keys)
}

// Check loads the keys, from the file or the store; with a store, it
// creates them when there are none and rotates them when the newest is
// older than Rotation, under a lease so that one edge of the region does
// it. A failure is logged and keeps the keys in use.
func (t *Tickets) Check(ctx context.Context) error {
	keys, err := t.check(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.lastErr != err.Error() {
			t.log.Error("tls: session-ticket keys not updated; keeping the keys in use", "err", err)
		}
		t.lastErr = err.Error()
		return err
	}
	t.lastErr = ""
	if len(keys) > 0 && !slices.Equal(keys, t.keys) {
		t.keys = keys
		for _, c := range t.configs {
			c.SetSessionTicketKeys(t.order(keys))
		}
		t.log.Info("tls: session-ticket keys loaded", "keys", len(keys), "newest", keys[0].Created.UTC())
	} else if len(keys) > 0 {
		// Same keys, but the encrypting one may have come of age.
		for _, c := range t.configs {
			c.SetSessionTicketKeys(t.order(keys))
		}
	}
	return nil
}

func (t *Tickets) check(ctx context.Context) ([]TicketKey, error) {
	if t.cfg.File != "" {
		b, err := os.ReadFile(t.cfg.File)
		if err != nil {
			return nil, fmt.Errorf("-ticket-keys: %w", err)
		}
		keys, err := ParseTicketKeys(b)
		if err != nil {
			return nil, fmt.Errorf("-ticket-keys %s: %w", t.cfg.File, err)
		}
		return keys, nil
	}
	keys, err := t.load(ctx)
	if err != nil && !errors.Is(err, errBadKeys) {
		return nil, err
	}
	if err == nil && len(keys) > 0 && t.cfg.Now().Before(keys[0].Created.Add(t.cfg.Rotation)) {
		return keys, nil
	}
	ok, _, lerr := t.leases.Acquire(ctx, ticketKeysKey, time.Minute)
	if lerr != nil || !ok {
		// Another edge is rotating, or the store is down: keep what we have.
		if err != nil {
			return nil, err
		}
		return keys, lerr
	}
	defer t.leases.Release(context.WithoutCancel(ctx), ticketKeysKey)
	keys, err = t.load(ctx)
	if err != nil && !errors.Is(err, errBadKeys) {
		return nil, err
	}
	if err != nil {
		t.log.Error("tls: session-ticket keys in the store are unreadable; replacing them", "store", t.cfg.Store.String(), "err", err)
		keys = nil
	}
	if len(keys) > 0 && t.cfg.Now().Before(keys[0].Created.Add(t.cfg.Rotation)) {
		return keys, nil
	}
	var k TicketKey
	k.Created = t.cfg.Now().UTC().Truncate(time.Second)
	_, _ = rand.Read(k.Key[:])
	keys = append([]TicketKey{k}, keys[:min(len(keys), t.cfg.Keep)]...)
	if err := t.cfg.Store.Put(ctx, ticketKeysKey, FormatTicketKeys(keys)); err != nil {
		return nil, err
	}
	t.log.Info("tls: session-ticket keys rotated", "store", t.cfg.Store.String(), "keys", len(keys))
	return keys, nil
}

var errBadKeys = errors.New("unreadable ticket keys")

// load reads the keys in the store: none, or errBadKeys (wrapped).
func (t *Tickets) load(ctx context.Context) ([]TicketKey, error) {
	b, err := t.cfg.Store.Get(ctx, ticketKeysKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keys, err := ParseTicketKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadKeys, err)
	}
	return keys, nil
}

// Run checks at once and then at each tick (nil means every minute)
// until ctx is done.
func (t *Tickets) Run(ctx context.Context, tick <-chan time.Time) {
	if tick == nil {
		tk := time.NewTicker(time.Minute)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		_ = t.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// Status is one line for /healthz?verbose.
func (t *Tickets) Status() (ok bool, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.cfg.File
	if t.cfg.Store != nil {
		src = t.cfg.Store.String()
	}
	if len(t.keys) == 0 {
		return false, "no shared keys yet (" + src + "): sessions resume only on the edge that issued them; " + t.lastErr
	}
	d := fmt.Sprintf("%d keys from %s, newest %s", len(t.keys), src, t.keys[0].Created.UTC().Format(time.RFC3339))
	if t.lastErr != "" {
		return false, d + "; last update failed: " + t.lastErr
	}
	return true, d
}
