package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/edgecdn/edge/cache/internal/disk"
	"github.com/edgecdn/edge/internal/lograte"
	"github.com/edgecdn/edge/negotiate"
	"golang.org/x/sync/singleflight"
)

// Defaults used when a Config field is zero.
const (
	// DefaultMemoryBytes bounds the memory tier: 256 MiB holds the widget
	// in every coding many times over plus ~100k small tenant configs.
	DefaultMemoryBytes = 256 << 20
	// DefaultMaxMemoryObject is the largest body held whole in memory;
	// larger bodies live on disk only and are streamed from there.
	DefaultMaxMemoryObject = 8 << 20
	// objectOverhead is charged per object on top of its bodies, so that
	// a flood of tiny (or negative) entries is bounded too.
	objectOverhead = 512
	// logEvery is how often one kind of failure is logged (see lograte).
	logEvery = time.Minute
)

// Config configures a Cache. The zero value of every field means its
// default.
type Config struct {
	// Dir is the disk tier's directory, created if missing. Required: the
	// disk tier is what lets the edge survive restarts and origin
	// outages. A directory that cannot be written does not stop the
	// cache: it serves from memory and reports the disk as degraded.
	Dir string
	// DiskBytes bounds the disk tier. Zero means no bound.
	DiskBytes int64
	// MemoryBytes bounds the memory tier (bodies plus a small per-object
	// overhead). Zero means DefaultMemoryBytes.
	MemoryBytes int64
	// MaxMemoryObject is the largest body the memory tier holds; larger
	// bodies stream to disk and are served from there. Zero means
	// DefaultMaxMemoryObject.
	MaxMemoryObject int64
	// Log gets the failures the cache handles on its own: disk writes
	// that fail, corrupt files dropped, objects that cannot be
	// transcoded. Each kind is logged at most once a minute, with a count.
	// Nil discards them.
	Log *slog.Logger
	// Now is the clock of the disk's retry schedule. Nil means time.Now.
	Now func() time.Time

	fs       disk.FS         // the disk tier's file system; tests inject faults
	lurkGate <-chan struct{} // tests: each lurker pass waits for a value
	lurkEnd  func()          // tests: called after a pass's disk walk, before the floor moves
}

// Cache is the two-tier object cache: memory (ristretto, bounded by
// bytes) over disk (bounded by bytes, survives restarts). It is safe for
// concurrent use.
type Cache struct {
	mem       *ristretto.Cache[string, *Object]
	disk      *disk.Store
	diskState *diskHealth
	maxObject int64
	dir       string
	log       *slog.Logger
	now       func() time.Time
	fs        disk.FS

	fills       singleflight.Group // per object key: one origin fetch
	derivations singleflight.Group // per object version and coding: one transcoding
	deriving    sync.Map           // the same keys: large variants being derived in the background
	// largeDerivations bounds the large variants transcoded at once.
	largeDerivations chan struct{}
	writes           sync.WaitGroup // fills and derivations in flight, for Close

	diskHits       atomic.Uint64 // memory hits are ristretto's own (striped) count
	deriveCount    [negotiate.NumCodings]atomic.Uint64
	deriveFailures [negotiate.NumCodings]atomic.Uint64
	version        atomic.Int64

	purge       *purgeState     // purge.go
	recordLocks [64]sync.Mutex  // see recordLock
	lurkGate    <-chan struct{} // tests: each lurker pass waits for a value
	lurkEnd     func()          // tests: see Config.lurkEnd
}

// New opens the cache: the memory tier, and the disk tier in cfg.Dir,
// which it indexes in the background (lookups meanwhile read the files
// they need directly).
func New(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cache: no directory for the disk tier")
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	if cfg.MaxMemoryObject == 0 {
		cfg.MaxMemoryObject = DefaultMaxMemoryObject
	}
	if cfg.MaxMemoryObject > cfg.MemoryBytes {
		cfg.MaxMemoryObject = cfg.MemoryBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.fs == nil {
		cfg.fs = disk.OSFS{}
	}
	log := lograte.Logger(cfg.Log, logEvery, cfg.Now)
	d, err := disk.Open(cfg.Dir, disk.Options{MaxBytes: cfg.DiskBytes, FS: cfg.fs, Log: log})
	if err != nil {
		return nil, fmt.Errorf("cache: opening disk tier: %w", err)
	}
	// Spool files are unlinked as soon as they are made; one left here
	// means a crash in between.
	if leftovers, err := filepath.Glob(filepath.Join(cfg.Dir, spoolPattern)); err == nil {
		for _, f := range leftovers {
			if err := os.Remove(f); err != nil {
				log.Warn("cache: cannot remove a spool file left by a crash", "path", f, "err", err)
			}
		}
	}
	// Counters: ristretto advises 10x the number of items expected when
	// full; assume items of ~4 KiB on average.
	counters := max(cfg.MemoryBytes/4096*10, 10000)
	mem, err := ristretto.NewCache(&ristretto.Config[string, *Object]{
		NumCounters:        counters,
		MaxCost:            cfg.MemoryBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
		Metrics:            true, // striped counters: cheap, and /metrics needs them
	})
	if err != nil {
		return nil, fmt.Errorf("cache: memory tier: %w", err)
	}
	c := &Cache{
		mem:       mem,
		disk:      d,
		maxObject: cfg.MaxMemoryObject,
		dir:       cfg.Dir,
		log:       log,
		now:       cfg.Now,
		fs:        cfg.fs,

		largeDerivations: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		purge:            newPurgeState(),
		lurkGate:         cfg.lurkGate,
		lurkEnd:          cfg.lurkEnd,
	}
	c.diskState = newDiskHealth(cfg.Now, log)
	c.diskState.probe(cfg.Dir, cfg.fs)
	c.loadPurges()
	go c.lurk()
	return c, nil
}

// Close waits for fills and derivations in flight to finish writing, then
// releases the memory tier.
func (c *Cache) Close() error {
	c.writes.Wait()
	c.stopLurker()
	<-c.disk.Indexed()
	c.mem.Close()
	return nil
}

// MaxMemoryObject is the largest body the memory tier holds.
func (c *Cache) MaxMemoryObject() int64 { return c.maxObject }

// Lookup returns the cached object for key from memory, else from disk
// (promoting it to memory), or nil when neither holds it. Stale objects
// are returned too: freshness is the caller's decision. Purges are
// applied: a soft-purged object is returned marked (SoftPurged), a
// hard-purged one never. An object already checked against every purge
// costs one comparison.
func (c *Cache) Lookup(key string) *Object {
	if obj, ok := c.mem.Get(key); ok {
		if obj.checked.Load() >= c.purge.last.Load() {
			return obj
		}
		return c.recheck(obj, nil)
	}
	return c.lookupDisk(key)
}

// lookupDisk is Lookup's disk tier.
func (c *Cache) lookupDisk(key string) *Object {
	// The floor is read before the record: the lurker writes records,
	// then raises the floor, so every rule up to the floor read here is
	// in the record read after it. Read the other way round, a record
	// read just before the lurker marked it would pass as checked.
	floor := c.purge.floor.Load()
	raw, ok := c.disk.Meta(key)
	if !ok {
		return nil
	}
	m, err := decodeMeta(raw)
	if err != nil {
		c.log.Warn("cache: dropped an unreadable object record", "key", key, "err", err)
		c.deleteFile(key)
		return nil
	}
	c.diskHits.Add(1)
	obj := newObject(key, m, nil)
	// The lurker has applied the rules up to the floor to every record.
	obj.checkedUpTo(floor)
	if obj.checked.Load() < c.purge.last.Load() {
		if obj = c.recheck(obj, nil); obj == nil {
			return nil
		}
	}
	c.mem.Set(key, obj, objectOverhead)
	return obj
}

// setVersion puts obj in the memory tier in place of whatever version of
// its key is there, before returning. ristretto applies a Set of a key it
// has not admitted yet asynchronously, and drops a second such Set of the
// same key: two versions set in quick succession (a streamed body, then
// its commit) would leave the first in memory. A Del first is applied in
// order before the Set, so the newest version wins; waiting for it means
// a request that comes after the fill finds the object in memory, which
// matters when the disk cannot hold it (degraded): it would fetch again.
// It runs inside a fill, so requests meanwhile wait for the fill.
func (c *Cache) setVersion(obj *Object) {
	c.mem.Del(obj.Key)
	c.mem.Set(obj.Key, obj, obj.cost())
	c.mem.Wait()
}

// Delete drops key and every variant it has, in any coding, from both
// tiers.
func (c *Cache) Delete(key string) {
	obj := c.Lookup(key)
	c.mem.Del(key)
	c.deleteFile(key)
	if obj != nil {
		c.dropVariantFiles(key, obj.Meta.Coding, "")
	}
}

// Wait blocks until the fills and derivations in flight have finished
// writing and pending memory-tier writes are applied (ristretto applies
// Sets asynchronously). For tests and benchmarks: call it while no new
// requests arrive.
func (c *Cache) Wait() {
	c.writes.Wait()
	c.mem.Wait()
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	MemoryBytes   int64
	MemoryHits    uint64
	DiskHits      uint64
	MemoryEvicted uint64
	Disk          disk.Stats
	// DiskWriteErrors counts disk writes that failed (full, read-only,
	// I/O errors); DiskDegraded is set while the disk takes no writes.
	DiskWriteErrors uint64
	DiskDegraded    bool
	// Derivations counts the variants derived, by the coding produced:
	// each object version is transcoded once per coding.
	Derivations [negotiate.NumCodings]uint64
	// DerivationFailures counts, per coding asked for, object versions
	// that could not be transcoded into it (their stored body is not
	// valid in its own coding).
	DerivationFailures [negotiate.NumCodings]uint64
	// Purges counts the purges recorded; PurgeRules is how many are in
	// force, not yet applied everywhere by the lurker; PurgedEntries
	// counts the objects purged.
	Purges        uint64
	PurgeRules    int
	PurgedEntries uint64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	m := c.mem.Metrics
	s := Stats{DiskHits: c.diskHits.Load(), Disk: c.disk.Stats()}
	if m != nil {
		s.MemoryHits = m.Hits()
		s.MemoryBytes = int64(m.CostAdded() - m.CostEvicted())
		s.MemoryEvicted = m.KeysEvicted()
	}
	s.DiskWriteErrors, s.DiskDegraded = c.diskState.counters()
	for i := range s.Derivations {
		s.Derivations[i] = c.deriveCount[i].Load()
		s.DerivationFailures[i] = c.deriveFailures[i].Load()
	}
	s.Purges, s.PurgeRules, s.PurgedEntries = c.purge.stats()
	return s
}

// DiskHealth says whether the disk tier takes writes, and if not since
// when and why, for /healthz?verbose. A degraded disk does not stop the
// cache: it serves from memory and from the origin meanwhile.
func (c *Cache) DiskHealth() (ok bool, detail string) { return c.diskState.report() }

// nextVersion returns a number never returned before by this process and
// larger than any from an earlier run (barring clock jumps of years).
func (c *Cache) nextVersion() int64 {
	now := time.Now().UnixNano()
	for {
		last := c.version.Load()
		next := max(now, last+1)
		if c.version.CompareAndSwap(last, next) {
			return next
		}
	}
}
