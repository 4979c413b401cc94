package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Purging works the way Varnish's bans do, with a lurker, so that a hit
// never pays for the purges recorded:
//
//   - Every purge is a rule with a sequence number (seq), larger than any
//     before it, also across restarts (nextVersion). Rules are persisted
//     (purgestate.go) before Purge returns.
//   - Every object version carries the seq of the newest rule it has been
//     checked against (Meta.Checked, and Object.checked in memory). A fill
//     stamps its result with the newest seq at the moment the fetch began:
//     rules recorded before that cannot concern what the origin sent after
//     it; rules recorded after it may, even when the fill ends later.
//   - A lookup compares the object's stamp with the newest seq: one atomic
//     load each. Only when the object is older does it check the rules
//     newer than its stamp, once, and then carries the new stamp.
//   - The lurker (lurk) applies new rules to every entry in the background,
//     memory and disk, then raises the floor: every entry is checked up to
//     it, and rules at or below it are dropped. So the rules in force are
//     only those recorded since the lurker's last pass, and the bookkeeping
//     stays bounded. A rule is kept while a fill that began before it is
//     still in flight (its result is not in the cache yet).
//   - Soft: the object version is marked (Meta.SoftPurged) and its record
//     rewritten. It is served again only after a revalidation (the caller
//     decides; the handler revalidates at once) or when the origin fails
//     within its stale-if-error window.
//   - Hard: the object's record and variant files are deleted from disk and
//     it leaves memory: never served again, not even stale.

// Bounds of the purge bookkeeping.
const (
	// maxPurgeSelectors bounds the selectors of the rules in force (not
	// yet applied everywhere by the lurker): more is refused with
	// ErrPurgeBacklog until the lurker catches up. About 40 MB at most.
	maxPurgeSelectors = 200_000
	// maxPurgeIDs bounds the ids of applied purges remembered (for
	// idempotency: a journal record is applied once); the oldest are
	// forgotten first.
	maxPurgeIDs = 100_000
	// maxTombstones bounds the keys remembered as hard-purged, for
	// HardPurged.
	maxTombstones = 10_000
	// lurkRetry is how long the lurker waits before another pass when one
	// could not complete (a disk that fails deletes) or could not drop
	// every rule (fills that began before them still in flight).
	lurkRetry = 5 * time.Second
	// lurkPace spaces the lurker's passes: after a pass that took d, the
	// next starts no sooner than lurkPace×d later (at most lurkPaceMax),
	// so that a burst of purges is applied in a few passes, and the
	// lurker takes at most about a quarter of a core. Purges are in force
	// at once meanwhile: the pass only makes them permanent on disk and
	// lets them be dropped.
	lurkPace    = 3
	lurkPaceMax = 10 * time.Second
)

// ErrPurgeBacklog is returned by Purge when too many purges are waiting
// for the lurker: retry in a few seconds.
var ErrPurgeBacklog = errors.New("cache: too many purges waiting to be applied; retry shortly")

// ErrPurgeTooLarge is returned by Purge for one purge larger than the
// cache can ever hold or record: retrying cannot help, splitting it does.
var ErrPurgeTooLarge = errors.New("cache: purge too large: split it into smaller ones")

// A Selector picks the objects a purge applies to.
type Selector struct {
	// Prefix selects the objects whose key starts with it; "" selects
	// every object. With Exact, only the key equal to it.
	Prefix string
	Exact  bool
	// Tag, when set, narrows the selection to objects carrying this
	// surrogate key (Meta.Tags).
	Tag string
}

// Purge is one purge: the objects any of its selectors picks.
type Purge struct {
	// ID identifies the purge (a journal record's id). A purge whose ID
	// was applied before, in this process or an earlier one, is not
	// applied again. Empty means no ID.
	ID        string
	Selectors []Selector
	// Hard: never serve the objects again, not even stale. Otherwise
	// soft: revalidate before serving, serve stale if the origin fails.
	Hard bool
}

// Purging is a purge recorded by Purge and being applied.
type Purging struct {
	// Duplicate reports that a purge with the same ID was applied before:
	// nothing was done.
	Duplicate bool
	// NotDurable is set when the purge is in force but could not be
	// written to disk (the disk is failing): it will not survive a
	// restart.
	NotDurable error

	r *rule
}

// Wait waits until the lurker has applied the purge to every entry of
// the cache, or ctx is done, and returns the number of objects it has
// purged so far, and whether it has been applied everywhere.
func (p *Purging) Wait(ctx context.Context) (entries int64, complete bool) {
	if p.r == nil {
		return 0, true
	}
	select {
	case <-p.r.done:
		return p.r.entries.Load(), true
	case <-ctx.Done():
		return p.r.entries.Load(), false
	}
}

// rule is a recorded purge.
type rule struct {
	seq      int64
	id       string
	hard     bool
	at       time.Time // recorded, for logs and HardPurged
	exact    map[string]struct{}
	prefixes []string
	tags     []tagSel

	entries atomic.Int64  // objects purged by it
	done    chan struct{} // closed once a lurker pass has applied it everywhere
}

// tagSel selects the objects carrying tag under a key prefix.
type tagSel struct{ scope, tag string }

func (r *rule) size() int { return len(r.exact) + len(r.prefixes) + len(r.tags) }

// matches reports whether r selects the object key with tags.
func (r *rule) matches(key string, tags []string) bool {
	if _, ok := r.exact[key]; ok {
		return true
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	for _, t := range r.tags {
		if slices.Contains(tags, t.tag) && strings.HasPrefix(key, t.scope) {
			return true
		}
	}
	return false
}

// purgeState is the cache's purge bookkeeping.
type purgeState struct {
	last   atomic.Int64  // seq of the newest rule; 0: none ever
	floor  atomic.Int64  // every entry is checked against every rule up to it
	count  atomic.Uint64 // purges recorded
	purged atomic.Uint64 // objects purged

	mu        sync.Mutex
	rules     []*rule // ascending seq, all above floor
	selectors int     // of rules
	ids       map[string]int64
	idOrder   []string // ids of dropped rules, oldest first, for eviction
	inflight  map[int64]int
	tombs     map[string]time.Time
	tombOrder []string
	log       *purgeLog // nil once closed

	wake     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	stopped  chan struct{}

	rechecks singleflight.Group // per object version: one recheck
}

func newPurgeState() *purgeState {
	return &purgeState{
		ids:      map[string]int64{},
		inflight: map[int64]int{},
		tombs:    map[string]time.Time{},
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
}

// counted records that r purged one more object.
func (ps *purgeState) counted(r *rule) {
	r.entries.Add(1)
	ps.purged.Add(1)
}

func (ps *purgeState) stats() (purges uint64, rules int, purged uint64) {
	ps.mu.Lock()
	rules = len(ps.rules)
	ps.mu.Unlock()
	return ps.count.Load(), rules, ps.purged.Load()
}

// enterFill stamps a fill that is about to fetch: the newest seq now. The
// rules above the stamp are kept until exitFill.
func (ps *purgeState) enterFill() int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	s := ps.last.Load()
	ps.inflight[s]++
	return s
}

// oldestFill is the stamp of the oldest fill in flight, or upTo when
// none is older. Called with ps.mu held.
func (ps *purgeState) oldestFill(upTo int64) int64 {
	for stamp := range ps.inflight {
		upTo = min(upTo, stamp)
	}
	return upTo
}

func (ps *purgeState) exitFill(stamp int64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.inflight[stamp]--; ps.inflight[stamp] <= 0 {
		delete(ps.inflight, stamp)
	}
}

// poke wakes the lurker.
func (ps *purgeState) poke() {
	select {
	case ps.wake <- struct{}{}:
	default:
	}
}

// verdict is what the rules say of one object.
type verdict uint8

const (
	keep    verdict = iota // no rule selects it
	soft                   // a soft rule selects it, no hard one
	hard                   // a hard rule selects it
	unknown                // rules it needs were dropped: the disk record decides
)

// judge checks key (with tags), stamped from, against the rules above
// from, and returns the verdict, the deciding rule, and the seq the
// object is checked up to.
func (ps *purgeState) judge(key string, tags []string, from int64) (verdict, *rule, int64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	upto := max(from, ps.floor.Load())
	if len(ps.rules) > 0 {
		upto = max(upto, ps.rules[len(ps.rules)-1].seq)
	}
	if from < ps.floor.Load() {
		return unknown, nil, upto
	}
	v, r := judgeRules(ps.rules, key, tags, from)
	return v, r, upto
}

// judgeRules checks key against the rules of rs above from: the first
// hard rule that selects it decides, else the first soft one.
func judgeRules(rs []*rule, key string, tags []string, from int64) (verdict, *rule) {
	i, _ := slices.BinarySearchFunc(rs, from, func(r *rule, seq int64) int {
		switch {
		case r.seq <= seq:
			return -1
		}
		return 1
	})
	var first *rule
	for _, r := range rs[i:] {
		if !r.matches(key, tags) {
			continue
		}
		if r.hard {
			return hard, r
		}
		if first == nil {
			first = r
		}
	}
	if first != nil {
		return soft, first
	}
	return keep, nil
}

// Purge records p and returns once it is in force: from then on no
// Lookup returns an object it selects as it was (a soft-purged object is
// marked SoftPurged; a hard-purged one is gone), whatever tier holds it,
// also after a restart. Objects selected by an exact key are purged on
// disk before Purge returns; the lurker applies the rest in the
// background (Purging.Wait). A fill that began before Purge returns is
// checked against it when it ends.
func (c *Cache) Purge(p Purge) (*Purging, error) {
	if len(p.Selectors) == 0 {
		return nil, errors.New("cache: purge without selectors")
	}
	r := &rule{id: p.ID, hard: p.Hard, at: c.now(), done: make(chan struct{})}
	for _, s := range p.Selectors {
		switch {
		case s.Exact && s.Tag != "":
			return nil, errors.New("cache: an exact key selector cannot have a tag")
		case s.Exact:
			if r.exact == nil {
				r.exact = map[string]struct{}{}
			}
			r.exact[s.Prefix] = struct{}{}
		case s.Tag != "":
			r.tags = append(r.tags, tagSel{scope: s.Prefix, tag: s.Tag})
		default:
			r.prefixes = append(r.prefixes, s.Prefix)
		}
	}
	ps := c.purge
	ps.mu.Lock()
	if p.ID != "" {
		if _, dup := ps.ids[p.ID]; dup {
			ps.mu.Unlock()
			return &Purging{Duplicate: true}, nil
		}
	}
	if r.size() > maxPurgeSelectors {
		ps.mu.Unlock()
		return nil, fmt.Errorf("%w (%d selectors, at most %d)", ErrPurgeTooLarge, r.size(), maxPurgeSelectors)
	}
	if ps.selectors+r.size() > maxPurgeSelectors {
		ps.mu.Unlock()
		ps.poke()
		return nil, ErrPurgeBacklog
	}
	r.seq = c.nextVersion()
	var notDurable error
	if ps.log == nil {
		notDurable = errors.New("cache: closed")
	} else if err := ps.log.appendRule(r); errors.Is(err, ErrPurgeTooLarge) {
		ps.mu.Unlock()
		return nil, err // nothing written: the disk is fine
	} else if err != nil {
		notDurable = err
		c.diskState.failed(fmt.Errorf("recording a purge: %w", err))
	}
	ps.rules = append(ps.rules, r)
	ps.selectors += r.size()
	if p.ID != "" {
		ps.ids[p.ID] = r.seq
	}
	ps.last.Store(r.seq)
	ps.count.Add(1)
	ps.mu.Unlock()

	// Exact keys are few and known: purge them on disk now (memory
	// objects meet the rule on their next lookup, or in the lurker's
	// pass).
	for key := range r.exact {
		c.purgeRecord(key, r.seq, nil)
	}
	ps.poke()
	return &Purging{NotDurable: notDurable, r: r}, nil
}

// PurgeApplied reports whether a purge with this ID has been applied
// (and is remembered: the newest ids are).
func (c *Cache) PurgeApplied(id string) bool {
	c.purge.mu.Lock()
	defer c.purge.mu.Unlock()
	_, ok := c.purge.ids[id]
	return ok
}

// HardPurged reports when key was last hard-purged by this process, if
// it was, among the most recent hard purges. A new version stored since
// is not looked at: Lookup says whether one is cached.
func (c *Cache) HardPurged(key string) (time.Time, bool) {
	c.purge.mu.Lock()
	defer c.purge.mu.Unlock()
	t, ok := c.purge.tombs[key]
	return t, ok
}

func (ps *purgeState) tombstone(key string, at time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.tombs[key]; !ok {
		ps.tombOrder = append(ps.tombOrder, key)
		if len(ps.tombOrder) > maxTombstones {
			delete(ps.tombs, ps.tombOrder[0])
			ps.tombOrder = ps.tombOrder[1:]
		}
	}
	ps.tombs[key] = at
}

// SoftPurged reports whether obj has been soft-purged: it must be
// revalidated before it is served, and may be served stale only when the
// origin fails (within its stale-if-error window).
func (obj *Object) SoftPurged() bool { return obj.Meta.SoftPurged }

// recheck applies the rules newer than obj's stamp to obj, which Lookup
// (or the lurker) found: it returns obj (now checked), a soft-purged copy
// of it, or nil when it is hard-purged. Concurrent rechecks of one
// version share the work. lp, from the lurker, judges by its matcher the
// objects stamped at its floor.
func (c *Cache) recheck(obj *Object, lp *lurkPlan) *Object {
	flight := obj.Key + "\x00" + strconv.FormatInt(obj.Meta.Version, 36)
	v, _, _ := c.purge.rechecks.Do(flight, func() (any, error) {
		return c.recheckOnce(obj, lp), nil
	})
	o, _ := v.(*Object)
	return o
}

// lurkPlan is one lurker pass: the rules (floor, target] in a matcher.
type lurkPlan struct {
	floor, target int64
	m             *matcher
}

func (c *Cache) recheckOnce(obj *Object, lp *lurkPlan) *Object {
	var (
		v    verdict
		r    *rule
		upto int64
	)
	if from := obj.checked.Load(); lp != nil && from == lp.floor && c.purge.floor.Load() == lp.floor {
		v, r = lp.m.judge(obj.Key, obj.Meta.Tags)
		upto = lp.target
	} else {
		v, r, upto = c.purge.judge(obj.Key, obj.Meta.Tags, from)
	}
	switch v {
	case unknown:
		return c.recheckFromDisk(obj)
	case hard:
		c.purgeHard(obj.Key, obj.Meta, r)
		return nil
	case soft:
		if obj.Meta.Negative() || obj.Meta.IsIndex() {
			// A cached 404 has nothing worth serving stale: a soft purge
			// drops it, so an object uploaded since appears at once.
			c.purgeHard(obj.Key, obj.Meta, r)
			return nil
		}
		if obj.Meta.SoftPurged {
			obj.checkedUpTo(upto)
			return obj
		}
		return c.softPurged(obj, upto, r)
	}
	obj.checkedUpTo(upto)
	return obj
}

// recheckFromDisk decides for an object whose stamp is below the floor:
// the rules it was never checked against are gone, but the lurker applied
// them to its disk record. An object with no record (memory only: the
// disk was failing) is dropped, to be fetched again.
func (c *Cache) recheckFromDisk(obj *Object) *Object {
	floor := c.purge.floor.Load() // before the record: see lookupDisk
	raw, ok := c.disk.Meta(obj.Key)
	if !ok {
		c.mem.Del(obj.Key)
		return nil
	}
	m, err := decodeMeta(raw)
	if err != nil || m.Version != obj.Meta.Version {
		// Replaced (or unreadable): what the disk holds is current.
		c.mem.Del(obj.Key)
		return c.lookupDisk(obj.Key)
	}
	if m.SoftPurged && !obj.Meta.SoftPurged {
		n := obj.withMeta(m)
		n.checkedUpTo(max(m.Checked, floor))
		c.mem.Set(n.Key, n, n.cost())
		obj = n
	}
	obj.checkedUpTo(max(m.Checked, floor))
	if obj.checked.Load() < c.purge.last.Load() {
		return c.recheckOnce(obj, nil)
	}
	return obj
}

// withMeta returns a copy of obj with meta m (same version), sharing its
// variants.
func (obj *Object) withMeta(m Meta) *Object {
	if r := obj.undecodable.Load(); r != nil {
		m.Undecodable = *r
	}
	return newObject(obj.Key, m, *obj.variants.Load())
}

// checkedUpTo raises obj's stamp to seq.
func (obj *Object) checkedUpTo(seq int64) {
	for {
		cur := obj.checked.Load()
		if cur >= seq || obj.checked.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// softPurged marks obj soft-purged: a copy, its record rewritten (if the
// disk still holds this version) and set in memory.
func (c *Cache) softPurged(obj *Object, upto int64, r *rule) *Object {
	m := obj.Meta
	m.SoftPurged, m.Checked = true, upto
	n := obj.withMeta(m)
	if m.Transient {
		return n
	}
	// A record of another version (or none: a memory-only object) is
	// left alone; memory takes the copy either way. The object is
	// counted once: here, or where its record was marked.
	changed, present, _ := c.rewriteRecord(obj.Key, obj.Meta.Version, func(cur *Meta) *Meta {
		if cur.SoftPurged {
			return nil
		}
		return &n.Meta
	})
	if changed || !present {
		c.purge.counted(r)
	}
	c.mem.Set(n.Key, n, n.cost())
	return n
}

// purgeHard removes key's version m from both tiers, counting it for r
// where its record goes. A failing delete leaves the record (indexed):
// the lurker keeps the rule and tries again, and lookups keep meeting the
// rule meanwhile. (A memory-only object of a failing disk is not counted.)
func (c *Cache) purgeHard(key string, m Meta, r *rule) { c.dropRecord(key, m, r) }

// recordLock serialises the rewrites of one key's record by purges with
// the writes of new versions, so that a purge never overwrites a newer
// version with an older one.
func (c *Cache) recordLock(key string) *sync.Mutex {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &c.recordLocks[h%uint32(len(c.recordLocks))]
}

// rewriteRecord rewrites key's record with change(current meta) (nil:
// leave it), if the disk holds version. present reports whether it does;
// changed, whether the record was rewritten; err, that the disk refused
// the change (it is then degraded).
func (c *Cache) rewriteRecord(key string, version int64, change func(*Meta) *Meta) (changed, present bool, err error) {
	mu := c.recordLock(key)
	mu.Lock()
	defer mu.Unlock()
	raw, ok := c.disk.Meta(key)
	if !ok {
		return false, false, nil
	}
	cur, derr := decodeMeta(raw)
	if derr != nil || cur.Version != version {
		return false, false, nil
	}
	m := change(&cur)
	if m == nil {
		return false, true, nil
	}
	if written, _ := c.put(key, m, nil, 0); !written {
		return false, true, errDiskRefused
	}
	return true, true, nil
}

// errDiskRefused: the disk is degraded or failed the write (diskHealth
// has the details).
var errDiskRefused = errors.New("cache: the disk refused the change")

// removeRecord deletes key's record and variant files if the disk holds
// version (or a record that cannot be read). removed reports whether it
// did; err, that the disk holds it but refused the delete.
func (c *Cache) removeRecord(key string, version int64) (removed bool, err error) {
	mu := c.recordLock(key)
	mu.Lock()
	defer mu.Unlock()
	raw, ok := c.disk.Meta(key)
	if !ok {
		return false, nil
	}
	cur, derr := decodeMeta(raw)
	if derr == nil && cur.Version != version {
		return false, nil
	}
	if err := c.disk.Delete(key); err != nil {
		c.diskState.failed(err)
		return false, err
	}
	c.dropVariantFiles(key, cur.Coding, "")
	return true, nil
}

// purgeRecord applies the rules above the stamp of key's disk record, up
// to target, to the record (lp, from the lurker, judges records stamped
// at its floor by its matcher). It returns false when the disk refused
// the change: the lurker must not drop the rules then.
func (c *Cache) purgeRecord(key string, target int64, lp *lurkPlan) bool {
	raw, ok := c.disk.Meta(key)
	if !ok {
		return true
	}
	meta, err := decodeMeta(raw)
	if err != nil {
		return true // Lookup drops unreadable records
	}
	floor := c.purge.floor.Load()
	from := max(meta.Checked, floor)
	if from >= target {
		return true
	}
	var v verdict
	var r *rule
	if lp != nil && from == lp.floor && floor == lp.floor {
		v, r = lp.m.judge(key, meta.Tags)
	} else {
		c.purge.mu.Lock()
		v, r = judgeRules(c.purge.rules, key, meta.Tags, from)
		c.purge.mu.Unlock()
	}
	switch v {
	case hard:
		return c.dropRecord(key, meta, r)
	case soft:
		if meta.Negative() || meta.IsIndex() {
			return c.dropRecord(key, meta, r) // see recheckOnce
		}
		if meta.SoftPurged {
			return true
		}
		changed, _, err := c.rewriteRecord(key, meta.Version, func(cur *Meta) *Meta {
			// Written meanwhile by a fill or a revalidation that began
			// after the purges up to target: already checked against
			// them, and current.
			if cur.SoftPurged || cur.Checked >= target {
				return nil
			}
			cur.SoftPurged, cur.Checked = true, target
			return cur
		})
		if changed {
			c.purge.counted(r)
		}
		return err == nil
	}
	return true
}

// dropRecord removes key's record of version meta (and its variants)
// from both tiers, counting it for r. It returns false when the disk
// refused.
func (c *Cache) dropRecord(key string, meta Meta, r *rule) bool {
	c.mem.Del(key)
	removed, err := c.removeRecord(key, meta.Version)
	if removed {
		c.purge.counted(r)
		c.purge.tombstone(key, r.at)
	}
	return err == nil
}

// lurk applies the rules in force to every entry, memory and disk, each
// time new ones arrive, and drops them once applied everywhere. It runs
// until Close.
func (c *Cache) lurk() {
	ps := c.purge
	defer close(ps.stopped)
	var retry <-chan time.Time
	for {
		select {
		case <-ps.stop:
			return
		case <-ps.wake:
		case <-retry:
		}
		retry = nil
		if c.lurkGate != nil {
			select {
			case <-c.lurkGate:
			case <-ps.stop:
				return
			}
		}
		start := time.Now()
		complete := c.lurkPass()
		if pause := min(lurkPace*time.Since(start), lurkPaceMax); pause > time.Millisecond && c.lurkGate == nil {
			select {
			case <-ps.stop:
				return
			case <-time.After(pause):
			}
		}
		if !complete {
			retry = time.After(lurkRetry)
		}
	}
}

// lurkPass makes one pass; it reports whether every rule could be
// dropped.
func (c *Cache) lurkPass() bool {
	ps := c.purge
	select {
	case <-c.disk.Indexed():
	case <-ps.stop:
		return true
	}
	ps.mu.Lock()
	target := ps.last.Load()
	floor := ps.floor.Load()
	rules := slices.Clone(ps.rules)
	// A fill in flight now may store its result after the pass went by
	// its key: the floor may not pass its stamp, even if it has ended
	// by the time the pass does.
	oldest := ps.oldestFill(target)
	ps.mu.Unlock()
	if target <= floor {
		return true
	}
	lp := &lurkPlan{floor: floor, target: target, m: newMatcher(rules)}

	// Memory: every object not yet checked up to target (memory-only
	// objects are reached only here).
	var stale []*Object
	c.mem.IterValues(func(o *Object) bool {
		if o.checked.Load() < target {
			stale = append(stale, o)
		}
		return false
	})
	for _, o := range stale {
		if c.stopping() {
			return true
		}
		c.recheck(o, lp)
	}
	// Disk: every object record (variant files follow their record),
	// Vary responses' included.
	complete := true
	c.disk.Keys(func(key string) bool {
		if isVariantKey(key) {
			return true
		}
		if !c.purgeRecord(key, target, lp) {
			complete = false
		}
		return !c.stopping()
	})
	if c.stopping() {
		return true
	}
	if !complete {
		c.log.Warn("cache: a purge could not be applied to every disk entry (the disk refuses changes); retrying", "retry", lurkRetry.String())
		return false
	}
	if c.lurkEnd != nil {
		c.lurkEnd()
	}
	return c.advanceFloor(target, oldest)
}

func (c *Cache) stopping() bool {
	select {
	case <-c.purge.stop:
		return true
	default:
		return false
	}
}

// advanceFloor records that every entry is checked up to target, except
// the results of fills that began earlier and were in flight when the
// pass began (oldestAtStart) or still are: the rules above the oldest of
// those stay. It drops the rules below the new
// floor and reports whether it dropped every rule up to target.
func (c *Cache) advanceFloor(target, oldestAtStart int64) bool {
	ps := c.purge
	ps.mu.Lock()
	floor := max(min(ps.oldestFill(target), oldestAtStart), ps.floor.Load())
	for _, r := range ps.rules {
		if r.seq <= target {
			select {
			case <-r.done:
			default:
				close(r.done)
			}
		}
	}
	n := 0
	for _, r := range ps.rules {
		if r.seq > floor {
			break
		}
		n++
		ps.selectors -= r.size()
		if r.id != "" {
			ps.idOrder = append(ps.idOrder, r.id)
		}
	}
	ps.rules = slices.Delete(ps.rules, 0, n)
	for len(ps.idOrder) > maxPurgeIDs {
		delete(ps.ids, ps.idOrder[0])
		ps.idOrder = ps.idOrder[1:]
	}
	ps.floor.Store(floor)
	var err error
	if ps.log != nil && n > 0 {
		err = ps.log.rewrite(floor, ps.rules, ps.idOrder, ps.ids)
	}
	all := floor >= target
	ps.mu.Unlock()
	if err != nil {
		c.diskState.failed(fmt.Errorf("rewriting the purge state: %w", err))
	}
	return all
}

// stopLurker stops the lurker and waits for it.
func (c *Cache) stopLurker() {
	c.purge.stopOnce.Do(func() { close(c.purge.stop) })
	<-c.purge.stopped
	c.purge.mu.Lock()
	defer c.purge.mu.Unlock()
	if c.purge.log != nil {
		c.purge.log.close()
		c.purge.log = nil
	}
}

// matcher selects objects by a set of rules at once, at a cost that does
// not grow with their number: exact keys in a map, prefixes in sorted
// prefix-free lists (binary search), tags in a map. The lurker builds one
// per pass for the rules it applies.
type matcher struct {
	exact            map[string]*rule // hard rules win
	hardPfx, softPfx []prefixRule
	tags             map[string][]tagRule
}

type prefixRule struct {
	prefix string
	r      *rule
}

type tagRule struct {
	scope string
	r     *rule
}

func newMatcher(rules []*rule) *matcher {
	m := &matcher{exact: map[string]*rule{}, tags: map[string][]tagRule{}}
	for _, r := range rules {
		for k := range r.exact {
			if old, ok := m.exact[k]; !ok || (r.hard && !old.hard) {
				m.exact[k] = r
			}
		}
		for _, p := range r.prefixes {
			if r.hard {
				m.hardPfx = append(m.hardPfx, prefixRule{p, r})
			} else {
				m.softPfx = append(m.softPfx, prefixRule{p, r})
			}
		}
		for _, t := range r.tags {
			m.tags[t.tag] = append(m.tags[t.tag], tagRule{t.scope, r})
		}
	}
	m.hardPfx = prefixFree(m.hardPfx)
	m.softPfx = prefixFree(m.softPfx)
	return m
}

// prefixFree sorts ps and drops every prefix that has another prefix in
// ps: then the only candidate to be a prefix of a key is the largest
// element not above it.
func prefixFree(ps []prefixRule) []prefixRule {
	slices.SortFunc(ps, func(a, b prefixRule) int { return strings.Compare(a.prefix, b.prefix) })
	out := ps[:0]
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p.prefix, out[len(out)-1].prefix) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// prefixOf returns the rule whose prefix starts key, or nil.
func prefixOf(ps []prefixRule, key string) *rule {
	i, found := slices.BinarySearchFunc(ps, key, func(p prefixRule, k string) int { return strings.Compare(p.prefix, k) })
	if found {
		return ps[i].r
	}
	if i > 0 && strings.HasPrefix(key, ps[i-1].prefix) {
		return ps[i-1].r
	}
	return nil
}

func (m *matcher) judge(key string, tags []string) (verdict, *rule) {
	var softR *rule
	if r, ok := m.exact[key]; ok {
		if r.hard {
			return hard, r
		}
		softR = r
	}
	if r := prefixOf(m.hardPfx, key); r != nil {
		return hard, r
	}
	for _, t := range tags {
		for _, tr := range m.tags[t] {
			if strings.HasPrefix(key, tr.scope) {
				if tr.r.hard {
					return hard, tr.r
				}
				if softR == nil {
					softR = tr.r
				}
			}
		}
	}
	if softR == nil {
		softR = prefixOf(m.softPfx, key)
	}
	if softR != nil {
		return soft, softR
	}
	return keep, nil
}
