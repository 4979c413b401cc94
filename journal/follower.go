package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of a Follower.
const (
	// DefaultPoll is how often an edge reads the journal.
	DefaultPoll = 10 * time.Second
	// registryRefresh is how often an edge refreshes its registry entry.
	registryRefresh = time.Minute
	// readConcurrency bounds the records read at once (a new edge reads
	// every record in the journal once).
	readConcurrency = 16
	// saveEvery bounds how often the time of the last complete read is
	// written to disk.
	saveEvery = time.Minute
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	Journal *Journal
	// Apply applies a record to the edge. It must be idempotent by
	// Record.ID: the edge's cache remembers the ids it applied, also
	// across restarts, and Applied reports them.
	Apply   func(Record) error
	Applied func(id string) bool
	// Self is the edge's registry entry (LastSeen is set on each
	// refresh). An empty AdminURL means the edge does not register.
	Self Edge
	// Poll is how often Run reads the journal. Zero means DefaultPoll.
	Poll time.Duration
	// StatePath is a file where the time of the last complete read is
	// kept across restarts (in the cache directory). Empty means none:
	// every start is a first start.
	StatePath string
	// Log gets every failure (rate-limit it upstream) and each record
	// applied. Nil discards them.
	Log *slog.Logger
	// Registerer, when set, receives edge_purge_journal_lag_seconds and
	// edge_purge_journal_errors_total.
	Registerer prometheus.Registerer
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Follower keeps an edge in step with the journal: it reads it at
// start (Sync) and every poll interval (Run), applies the records the edge
// has not applied, and refreshes the edge's registry entry. It is safe for
// concurrent use.
type Follower struct {
	cfg     FollowerConfig
	log     *slog.Logger
	errs    *prometheus.CounterVec
	started time.Time
	syncMu  sync.Mutex // one Sync at a time

	mu         sync.Mutex
	done       map[string]bool // ids applied by this process (some leave no trace in Applied)
	lastSync   time.Time       // last complete read (persisted)
	saved      time.Time       // when lastSync was last written
	failing    time.Time       // first failure of the current episode; zero: none
	lastErr    error
	records    int
	registered time.Time
}

// NewFollower returns a Follower; it reads nothing until Sync or Run.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if cfg.Journal == nil || cfg.Apply == nil || cfg.Applied == nil {
		return nil, errors.New("journal: follower needs a journal, Apply and Applied")
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Poll < 0 {
		return nil, fmt.Errorf("journal: poll interval %s is negative", cfg.Poll)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Self.AdminURL != "" {
		if err := CheckName(cfg.Self.Name); err != nil {
			return nil, err
		}
	}
	f := &Follower{cfg: cfg, log: cfg.Log, started: cfg.Now(), done: map[string]bool{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.lastSync = f.loadState()
	f.errs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_purge_journal_errors_total",
		Help: "Failures reading the purge journal or writing the edge's registry entry, by operation (list, read, apply, register, mark).",
	}, []string{"op"})
	for _, op := range []string{"list", "read", "apply", "register", "mark"} {
		f.errs.WithLabelValues(op)
	}
	if cfg.Registerer != nil {
		lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edge_purge_journal_lag_seconds",
			Help: "Seconds since the edge last read the whole purge journal successfully (since its start, when it never did). Grows while the journal is unreachable; alert when it passes a few poll intervals.",
		}, func() float64 { return f.Lag().Seconds() })
		for _, c := range []prometheus.Collector{lag, f.errs} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// state is what StatePath holds.
type state struct {
	LastSync time.Time `json:"last_sync"`
}

func (f *Follower) loadState() time.Time {
	if f.cfg.StatePath == "" {
		return time.Time{}
	}
	b, err := os.ReadFile(f.cfg.StatePath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			f.log.Warn("purge journal: cannot read the time of the last complete read; taking it as never", "path", f.cfg.StatePath, "err", err)
		}
		return time.Time{}
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		f.log.Warn("purge journal: cannot read the time of the last complete read; taking it as never", "path", f.cfg.StatePath, "err", err)
		return time.Time{}
	}
	return s.LastSync
}

func (f *Follower) saveState(t time.Time) error {
	if f.cfg.StatePath == "" {
		return nil
	}
	b, _ := json.Marshal(state{LastSync: t.UTC()})
	tmp := f.cfg.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(f.cfg.StatePath))
}

// Lag is the time since the last complete read of the journal: since the
// start of this process when there was none (in this run or, per
// StatePath, an earlier one).
func (f *Follower) Lag() time.Duration {
	f.mu.Lock()
	last := f.lastSync
	f.mu.Unlock()
	if last.IsZero() {
		last = f.started
	}
	return max(0, f.cfg.Now().Sub(last))
}

// Health says how the journal is, for /healthz?verbose.
func (f *Follower) Health() (ok bool, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.cfg.Now()
	last := "never"
	if !f.lastSync.IsZero() {
		last = now.Sub(f.lastSync).Round(time.Second).String() + " ago"
	}
	if !f.failing.IsZero() {
		return false, fmt.Sprintf("%s unreachable for %s (last complete read: %s): %v; serving, and applying purges as they arrive directly",
			f.cfg.Journal, now.Sub(f.failing).Round(time.Second), last, f.lastErr)
	}
	if f.lastSync.IsZero() {
		return false, fmt.Sprintf("%s not read yet", f.cfg.Journal)
	}
	return true, fmt.Sprintf("%s: %d records, last complete read %s", f.cfg.Journal, f.records, last)
}

// Sync reads the journal once, whole, and applies every record the edge
// has not applied yet, oldest first; then it refreshes the registry entry
// when due. It returns the first failure; records read before it are
// applied, and the next Sync goes on from there.
func (f *Follower) Sync(ctx context.Context) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	start := f.cfg.Now()
	err := f.sync(ctx)
	f.mu.Lock()
	if err != nil {
		if f.failing.IsZero() {
			f.failing = start
		}
		f.lastErr = err
	} else {
		f.failing, f.lastErr = time.Time{}, nil
		f.lastSync = start
	}
	save := err == nil && start.Sub(f.saved) >= saveEvery
	f.mu.Unlock()
	if save {
		if serr := f.saveState(start); serr != nil {
			f.log.Warn("purge journal: cannot record the time of the last complete read", "path", f.cfg.StatePath, "err", serr)
		} else {
			f.mu.Lock()
			f.saved = start
			f.mu.Unlock()
		}
	}
	f.register(ctx)
	return err
}

func (f *Follower) sync(ctx context.Context) error {
	mark, err := f.cfg.Journal.CompactedBefore(ctx)
	var damaged error
	switch {
	case errors.Is(err, ErrDamagedMark):
		// The records there are still applied, but the read is not
		// complete: the last complete read stays where it was, so that
		// once a compaction rewrites the mark, a gap behind it is seen
		// (and answered by catchUpAll). Meanwhile the lag grows, and
		// health says why.
		f.errs.WithLabelValues("mark").Inc()
		damaged = fmt.Errorf("%w (the next purge run's compaction rewrites it)", err)
	case err != nil:
		f.errs.WithLabelValues("mark").Inc()
		return fmt.Errorf("reading the compaction mark: %w", err)
	}
	ids, err := f.cfg.Journal.IDs(ctx)
	if err != nil {
		f.errs.WithLabelValues("list").Inc()
		return fmt.Errorf("listing: %w", err)
	}
	f.mu.Lock()
	f.records = len(ids)
	last := f.lastSync
	f.mu.Unlock()
	if !mark.IsZero() && (last.IsZero() || last.Before(mark)) {
		if err := f.catchUpAll(mark, last); err != nil {
			return err
		}
	}
	var todo []string
	f.mu.Lock()
	listed := make(map[string]bool, len(ids))
	for _, id := range ids {
		listed[id] = true
		if !f.done[id] && !f.cfg.Applied(id) {
			todo = append(todo, id)
		}
	}
	for id := range f.done {
		if !listed[id] {
			delete(f.done, id) // compacted: never listed again
		}
	}
	f.mu.Unlock()
	recs := make([]Record, len(todo))
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	sem := make(chan struct{}, readConcurrency)
	for i, id := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			recs[i], errs[i] = f.cfg.Journal.Read(ctx, id)
		}()
	}
	wg.Wait()
	var first error
	for i, id := range todo {
		r, err := recs[i], errs[i]
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // compacted since it was listed
		case errors.Is(err, ErrUnreadable):
			// Written by a newer CLI, or damaged: the purge it stands for
			// cannot be known, so nothing it may have selected survives
			// it, and nothing becomes unservable.
			f.errs.WithLabelValues("read").Inc()
			f.log.Error("purge journal: unreadable record: soft-purging everything in its place", "id", id, "err", err)
			r = Record{ID: id, All: true, Mode: Soft}
		case err != nil:
			f.errs.WithLabelValues("read").Inc()
			if first == nil {
				first = fmt.Errorf("reading %s: %w", id, err)
			}
			continue
		}
		if err := f.cfg.Apply(r); err != nil {
			f.errs.WithLabelValues("apply").Inc()
			if first == nil {
				first = fmt.Errorf("applying %s: %w", id, err)
			}
			continue
		}
		f.mu.Lock()
		f.done[id] = true
		f.mu.Unlock()
		f.log.Info("purge journal: applied a purge the edge had missed", "id", r.ID, "urls", len(r.URLs), "prefixes", len(r.Prefixes), "tags", len(r.Tags), "all", r.All, "host", r.Host, "mode", r.Mode)
	}
	if first == nil {
		first = damaged
	}
	return first
}

// catchUpAll answers a gap: the edge last read the whole journal (at
// last; zero: never) before records issued until mark were compacted, so
// it may have missed some it can no longer read. Everything it holds is
// soft-purged, once per mark (the id says which).
func (f *Follower) catchUpAll(mark, last time.Time) error {
	id := mark.UTC().Format(idTimeLayout) + "-compactd"
	if f.cfg.Applied(id) {
		return nil
	}
	f.log.Warn("purge journal: records the edge never read were compacted: soft-purging everything it holds",
		"last_complete_read", last, "compacted_before", mark)
	if err := f.cfg.Apply(Record{ID: id, Time: mark, All: true, Mode: Soft}); err != nil {
		f.errs.WithLabelValues("apply").Inc()
		return fmt.Errorf("soft-purging everything after a compaction: %w", err)
	}
	return nil
}

// register refreshes the registry entry when it is due.
func (f *Follower) register(ctx context.Context) {
	f.mu.Lock()
	self := f.cfg.Self
	due := f.cfg.Now().Sub(f.registered) >= registryRefresh
	f.mu.Unlock()
	if self.AdminURL != "" && due {
		if err := f.Register(ctx, self); err != nil {
			f.log.Warn("purge journal: cannot refresh the edge's registry entry", "err", err)
		}
	}
}

// Register writes the edge's registry entry now, as self (which later
// refreshes keep), so that the purge CLI finds it. An edge calls it once
// its admin listener is open (its address known).
func (f *Follower) Register(ctx context.Context, self Edge) error {
	if err := CheckName(self.Name); err != nil {
		return err
	}
	now := f.cfg.Now()
	e := self
	e.LastSeen = now.UTC()
	f.mu.Lock()
	f.cfg.Self = self // kept even when the write fails: each Sync retries it
	f.mu.Unlock()
	if err := f.cfg.Journal.Register(ctx, e); err != nil {
		f.errs.WithLabelValues("register").Inc()
		return err
	}
	f.mu.Lock()
	f.registered = now
	f.mu.Unlock()
	return nil
}

// Run reads the journal every poll interval until ctx is done. Failures
// are logged (the caller rate-limits the log) and counted; the edge keeps
// serving.
func (f *Follower) Run(ctx context.Context) {
	t := time.NewTicker(f.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := f.Sync(ctx); err != nil && ctx.Err() == nil {
			f.log.Error("purge journal: cannot read the journal: serving, and applying purges as they arrive directly", "journal", f.cfg.Journal.String(), "err", err)
		}
	}
}
