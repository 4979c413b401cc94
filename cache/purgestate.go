package cache

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// purgeStateFile is the purge state in the cache directory, beside the
// disk tier's fan-out directories (which its scan alone reads): a log of
// JSON lines, appended and synced for every purge before it is in force,
// and rewritten whole (a temporary file renamed over it) when the lurker
// drops rules. Lines:
//
//	{"floor":N}                                   every entry is checked up to seq N
//	{"rule":{"seq":N,"id":"...","hard":true,"at":"RFC 3339","exact":[...],"prefixes":[...],"tags":[{"scope":"...","tag":"..."}]}}
//	{"id":"...","seq":N}                          a dropped rule's id, remembered for idempotency
//
// A last line torn by a crash is ignored. Any other damage, which would
// lose purges, makes the cache soft-purge everything once (everything is
// revalidated; nothing becomes unservable).
const purgeStateFile = "purges.log"

// maxPurgeStateLine bounds one line: a purge request is at most 1 MiB.
const maxPurgeStateLine = 4 << 20

type purgeLine struct {
	Floor int64     `json:"floor,omitempty"`
	Rule  *ruleJSON `json:"rule,omitempty"`
	ID    string    `json:"id,omitempty"`
	Seq   int64     `json:"seq,omitempty"`
}

type ruleJSON struct {
	Seq      int64     `json:"seq"`
	ID       string    `json:"id,omitempty"`
	Hard     bool      `json:"hard,omitempty"`
	At       time.Time `json:"at"`
	Exact    []string  `json:"exact,omitempty"`
	Prefixes []string  `json:"prefixes,omitempty"`
	Tags     []tagJSON `json:"tags,omitempty"`
}

type tagJSON struct {
	Scope string `json:"scope"`
	Tag   string `json:"tag"`
}

func (r *rule) toJSON() *ruleJSON {
	j := &ruleJSON{Seq: r.seq, ID: r.id, Hard: r.hard, At: r.at.UTC(), Prefixes: r.prefixes}
	for k := range r.exact {
		j.Exact = append(j.Exact, k)
	}
	slices.Sort(j.Exact)
	for _, t := range r.tags {
		j.Tags = append(j.Tags, tagJSON{t.scope, t.tag})
	}
	return j
}

func (j *ruleJSON) rule() *rule {
	r := &rule{seq: j.Seq, id: j.ID, hard: j.Hard, at: j.At, prefixes: j.Prefixes, done: make(chan struct{})}
	if len(j.Exact) > 0 {
		r.exact = make(map[string]struct{}, len(j.Exact))
		for _, k := range j.Exact {
			r.exact[k] = struct{}{}
		}
	}
	for _, t := range j.Tags {
		r.tags = append(r.tags, tagSel{t.Scope, t.Tag})
	}
	return r
}

// savedPurges is what a purge state file holds.
type savedPurges struct {
	floor int64
	rules []*rule // ascending seq, above floor
	ids   []idSeq // ids of dropped rules, oldest first
}

type idSeq struct {
	id  string
	seq int64
}

// errPurgeStateDamaged: lines other than the last could not be read.
var errPurgeStateDamaged = errors.New("purge state damaged")

// parsePurgeState reads a purge state file's contents. A bad last line (a
// write torn by a crash) is skipped and reported in torn; damage anywhere
// else is errPurgeStateDamaged, with what could be read.
func parsePurgeState(data []byte) (s savedPurges, torn bool, err error) {
	seen := map[int64]bool{}
	lines := bytes.Split(data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	for i, line := range lines {
		var l purgeLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		bad := dec.Decode(&l) != nil || dec.More() || l.check() != nil
		if bad {
			if i == len(lines)-1 {
				torn = true
				continue
			}
			err = fmt.Errorf("%w: line %d", errPurgeStateDamaged, i+1)
			continue
		}
		switch {
		case l.Rule != nil:
			if !seen[l.Rule.Seq] {
				seen[l.Rule.Seq] = true
				s.rules = append(s.rules, l.Rule.rule())
			}
		case l.ID != "":
			s.ids = append(s.ids, idSeq{l.ID, l.Seq})
		default:
			s.floor = max(s.floor, l.Floor)
		}
	}
	slices.SortFunc(s.rules, func(a, b *rule) int { return cmpInt64(a.seq, b.seq) })
	s.rules = slices.DeleteFunc(s.rules, func(r *rule) bool { return r.seq <= s.floor })
	return s, torn, err
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// check validates one line: exactly one kind, sane values.
func (l *purgeLine) check() error {
	kinds := 0
	if l.Floor != 0 {
		kinds++
	}
	if l.Rule != nil {
		kinds++
	}
	if l.ID != "" {
		kinds++
	}
	if kinds != 1 || l.Floor < 0 || (l.ID == "" && l.Seq != 0) {
		return errors.New("not one of floor, rule, id")
	}
	if r := l.Rule; r != nil {
		if r.Seq <= 0 || len(r.Exact)+len(r.Prefixes)+len(r.Tags) == 0 {
			return errors.New("rule without seq or selectors")
		}
		for _, t := range r.Tags {
			if t.Tag == "" {
				return errors.New("empty tag")
			}
		}
	}
	return nil
}

// purgeLog is the purge state file, opened for appending on the first
// purge (a cache that never purges has none).
type purgeLog struct {
	path string
	f    *os.File // nil until the first write
}

// openPurgeLog reads the purge state in dir. err reports damage
// (errPurgeStateDamaged) or a file that cannot be read; the state read is
// returned anyway.
func openPurgeLog(dir string) (log *purgeLog, s savedPurges, torn bool, err error) {
	log = &purgeLog{path: filepath.Join(dir, purgeStateFile)}
	data, rerr := readLimited(log.path)
	switch {
	case errors.Is(rerr, os.ErrNotExist):
		return log, s, false, nil
	case rerr != nil:
		return log, s, false, fmt.Errorf("%w: %w", errPurgeStateDamaged, rerr)
	}
	s, torn, err = parsePurgeState(data)
	if torn {
		// Rewrite without the torn line, so appends start on a line of
		// their own.
		if werr := log.rewrite(s.floor, s.rules, idsOf(s.ids), idMap(s.ids)); werr != nil && err == nil {
			err = werr
		}
	}
	return log, s, torn, err
}

func idsOf(ids []idSeq) []string {
	out := make([]string, len(ids))
	for i, x := range ids {
		out[i] = x.id
	}
	return out
}

func idMap(ids []idSeq) map[string]int64 {
	m := make(map[string]int64, len(ids))
	for _, x := range ids {
		m[x.id] = x.seq
	}
	return m
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Rules in force are bounded (maxPurgeSelectors), ids too: 64 MiB is
	// far above what a valid file holds.
	b, err := io.ReadAll(io.LimitReader(f, 64<<20+1))
	if err == nil && len(b) > 64<<20 {
		err = errors.New("larger than 64 MiB")
	}
	return b, err
}

// appendRule appends r and syncs: once it returns nil, the purge survives
// a crash.
func (l *purgeLog) appendRule(r *rule) error {
	if l.f == nil {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		l.f = f
	}
	b, err := json.Marshal(purgeLine{Rule: r.toJSON()})
	if err != nil {
		return err
	}
	if len(b) > maxPurgeStateLine {
		return fmt.Errorf("%w (%d bytes to record, at most %d)", ErrPurgeTooLarge, len(b), maxPurgeStateLine)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", l.path, err)
	}
	return nil
}

// rewrite replaces the file with floor, rules and the ids (in order),
// atomically and durably, and appends to the new file from then on.
func (l *purgeLog) rewrite(floor int64, rules []*rule, idOrder []string, ids map[string]int64) error {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := json.NewEncoder(w)
	if floor > 0 {
		enc.Encode(purgeLine{Floor: floor})
	}
	for _, id := range idOrder {
		enc.Encode(purgeLine{ID: id, Seq: ids[id]})
	}
	for _, r := range rules {
		enc.Encode(purgeLine{Rule: r.toJSON()})
	}
	w.Flush()
	dir := filepath.Dir(l.path)
	tmp, err := os.CreateTemp(dir, ".purges-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), l.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename itself
		d.Close()
	}
	l.close()
	return nil
}

// close closes the file; the next append opens it again.
func (l *purgeLog) close() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// loadPurges restores the purge state at New. Damage that loses purges
// is answered with a soft purge of everything.
func (c *Cache) loadPurges() {
	ps := c.purge
	log, s, torn, err := openPurgeLog(c.dir)
	ps.log = log
	ps.floor.Store(s.floor)
	ps.rules = s.rules
	top := s.floor
	for _, r := range s.rules {
		ps.selectors += r.size()
		if r.id != "" {
			ps.ids[r.id] = r.seq
		}
		top = max(top, r.seq)
	}
	for _, x := range s.ids {
		if _, ok := ps.ids[x.id]; !ok {
			ps.ids[x.id] = x.seq
			ps.idOrder = append(ps.idOrder, x.id)
		}
		top = max(top, x.seq)
	}
	// New seqs (and versions) come after every one recorded.
	c.version.Store(max(c.version.Load(), top))
	ps.last.Store(max(s.floor, lastSeq(s.rules)))
	if torn {
		c.log.Warn("cache: the purge state file ended in a torn line (a crash while recording a purge); it was dropped", "path", filepath.Join(c.dir, purgeStateFile))
	}
	switch {
	case errors.Is(err, errPurgeStateDamaged):
		c.log.Error("cache: the purge state file is damaged: every cached object is soft-purged (revalidated before it is served again)", "path", filepath.Join(c.dir, purgeStateFile), "err", err)
		if _, perr := c.Purge(Purge{Selectors: []Selector{{Prefix: ""}}}); perr != nil {
			c.log.Error("cache: soft-purging everything failed", "err", perr)
		}
		// Write what was read, and that purge, without the damage, so the
		// next start does not soft-purge everything again.
		ps.mu.Lock()
		werr := ps.log.rewrite(ps.floor.Load(), ps.rules, ps.idOrder, ps.ids)
		ps.mu.Unlock()
		if werr != nil {
			c.diskState.failed(fmt.Errorf("rewriting the purge state: %w", werr))
		}
	case err != nil:
		c.diskState.failed(fmt.Errorf("reading the purge state: %w", err))
	}
	if len(ps.rules) > 0 {
		ps.poke()
	}
}

func lastSeq(rs []*rule) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].seq
}
