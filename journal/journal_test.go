package journal

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func dirJournal(t testing.TB) (*Journal, store.Store) {
	t.Helper()
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(st), st
}

func record(at time.Time, urls ...string) Record {
	return Record{ID: NewID(at), Time: at, URLs: urls, Mode: Soft, By: "ci@build"}
}

func TestIDsOrderByTime(t *testing.T) {
	var ids []string
	for i := range 50 {
		ids = append(ids, NewID(t0.Add(time.Duration(50-i)*time.Millisecond)))
	}
	slices.Sort(ids)
	for i := 1; i < len(ids); i++ {
		a, _ := ParseID(ids[i-1])
		b, err := ParseID(ids[i])
		if err != nil || a.After(b) {
			t.Fatalf("ids not in time order: %s, %s (%v)", ids[i-1], ids[i], err)
		}
	}
	if got, err := ParseID(NewID(t0)); err != nil || !got.Equal(t0) {
		t.Fatalf("ParseID(NewID(t0)) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "x", "20261130T120000.000000000Z", "20261130T120000Z-abcdefgh", "20261130T120000.000000000Z-ABCDEFGH", "20261130T120000.000000000Z-abcdefg", "2026113XT120000.000000000Z-abcdefgh"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestAppendReadCompact(t *testing.T) {
	j, st := dirJournal(t)
	ctx := context.Background()
	old := record(t0.Add(-40*24*time.Hour), "/widget/v1/login.js")
	mid := Record{ID: NewID(t0.Add(-time.Hour)), Time: t0.Add(-time.Hour), Tags: []string{"release-42"}, Host: "cdn.example.com", Mode: Hard}
	recent := Record{ID: NewID(t0), Time: t0, Prefixes: []string{"/tenants/"}, Mode: Soft}
	for _, r := range []Record{recent, old, mid} {
		if err := j.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Append(ctx, mid); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("appending an id twice: %v, want fs.ErrExist", err)
	}
	if err := j.Append(ctx, Record{ID: NewID(t0), Time: t0, Mode: Soft}); err == nil {
		t.Fatal("appended a record without selectors")
	}
	ids, err := j.IDs(ctx)
	if err != nil || !slices.Equal(ids, []string{old.ID, mid.ID, recent.ID}) {
		t.Fatalf("IDs = %q, %v", ids, err)
	}
	got, err := j.Read(ctx, mid.ID)
	if err != nil || got.Host != "cdn.example.com" || got.Mode != Hard || !slices.Equal(got.Tags, mid.Tags) || !got.Time.Equal(mid.Time) {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	if _, err := j.Read(ctx, NewID(t0)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing record: %v", err)
	}
	// A record a newer CLI wrote, with a field this one does not know.
	newer := NewID(t0.Add(time.Minute))
	st.Put(ctx, purgesDir+newer, []byte(`{"id":"`+newer+`","time":"2026-11-30T12:01:00Z","regex":"/w.*","mode":"soft"}`))
	if _, err := j.Read(ctx, newer); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("Read of an unknown field: %v, want ErrUnreadable", err)
	}

	for _, e := range []Edge{
		{Name: "edge-a", Region: "eu", AdminURL: "http://10.0.0.1:9080", LastSeen: t0},
		{Name: "edge-gone", Region: "us", AdminURL: "http://10.0.0.2:9080", LastSeen: t0.Add(-60 * 24 * time.Hour)},
	} {
		if err := j.Register(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	before := t0.Add(-30 * 24 * time.Hour)
	records, edges, err := j.Compact(ctx, before)
	if err != nil || records != 1 || edges != 1 {
		t.Fatalf("Compact = %d records, %d edges, %v; want 1, 1", records, edges, err)
	}
	if mark, err := j.CompactedBefore(ctx); err != nil || !mark.Equal(before) {
		t.Fatalf("mark = %v, %v", mark, err)
	}
	// A compaction with an older horizon never lowers the mark.
	j.Compact(ctx, before.Add(-time.Hour))
	if mark, _ := j.CompactedBefore(ctx); !mark.Equal(before) {
		t.Fatalf("mark lowered to %v", mark)
	}
	list, err := j.Edges(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "edge-a" {
		t.Fatalf("Edges after compaction = %+v, %v", list, err)
	}
	if ids, _ := j.IDs(ctx); slices.Contains(ids, old.ID) {
		t.Fatal("the old record survived compaction")
	}
}

// follower is a Follower over a journal, applying records into a list
// (as the edge's cache would, remembering ids).
type follower struct {
	*Follower
	mu      sync.Mutex
	applied []Record
	ids     map[string]bool
	clock   *clock
	reg     *prometheus.Registry
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newFollower(t testing.TB, j *Journal, statePath string) *follower {
	t.Helper()
	fl := &follower{ids: map[string]bool{}, clock: &clock{now: t0}, reg: prometheus.NewRegistry()}
	f, err := NewFollower(FollowerConfig{
		Journal: j,
		Apply: func(r Record) error {
			fl.mu.Lock()
			defer fl.mu.Unlock()
			fl.applied = append(fl.applied, r)
			fl.ids[r.ID] = true
			return nil
		},
		Applied: func(id string) bool {
			fl.mu.Lock()
			defer fl.mu.Unlock()
			return fl.ids[id]
		},
		Self:       Edge{Name: "edge-1", Region: "eu-west-1", AdminURL: "http://127.0.0.1:9080"},
		StatePath:  statePath,
		Registerer: fl.reg,
		Now:        fl.clock.Now,
		Log:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	fl.Follower = f
	return fl
}

func (fl *follower) appliedIDs() []string {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	var out []string
	for _, r := range fl.applied {
		out = append(out, r.ID)
	}
	return out
}

func TestFollowerAppliesEachRecordOnce(t *testing.T) {
	j, st := dirJournal(t)
	ctx := context.Background()
	a, b := record(t0.Add(-2*time.Minute), "/a.js"), record(t0.Add(-time.Minute), "/b.js")
	j.Append(ctx, b)
	j.Append(ctx, a)
	fl := newFollower(t, j, "")
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fl.appliedIDs(); !slices.Equal(got, []string{a.ID, b.ID}) {
		t.Fatalf("applied %q, want a then b", got)
	}
	// Applied directly (through the admin API), then listed: not again.
	c := record(t0, "/c.js")
	j.Append(ctx, c)
	fl.ids[c.ID] = true
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fl.appliedIDs(); len(got) != 2 {
		t.Fatalf("applied %q, want nothing more", got)
	}
	// Registered, with the time it was seen.
	list, err := j.Edges(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "edge-1" || list[0].AdminURL != "http://127.0.0.1:9080" || !list[0].LastSeen.Equal(t0) {
		t.Fatalf("registry: %+v, %v", list, err)
	}
	// An unreadable record is applied as a soft purge of everything.
	bad := NewID(t0.Add(time.Second))
	st.Put(ctx, purgesDir+bad, []byte("{not json"))
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fl.mu.Lock()
	last := fl.applied[len(fl.applied)-1]
	fl.mu.Unlock()
	if last.ID != bad || !last.All || last.Mode != Soft {
		t.Fatalf("unreadable record applied as %+v, want a soft purge of everything", last)
	}
	if n := testutil.ToFloat64(fl.errs.WithLabelValues("read")); n != 1 {
		t.Errorf("read errors: %v", n)
	}
}

// TestFollowerGapSoftPurgesAll: an edge whose last complete read is
// older than the compaction mark soft-purges everything, once; one that
// read after it does not.
func TestFollowerGapSoftPurgesAll(t *testing.T) {
	j, _ := dirJournal(t)
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "journal-state.json")
	fl := newFollower(t, j, state)
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fl.appliedIDs(); len(got) != 0 {
		t.Fatalf("an empty journal applied %q", got)
	}
	// The edge is down for 40 days; meanwhile records come and go.
	j.Append(ctx, record(t0.Add(24*time.Hour), "/missed.js"))
	j.Compact(ctx, t0.Add(39*24*time.Hour))
	kept := record(t0.Add(39*24*time.Hour+time.Hour), "/kept.js")
	j.Append(ctx, kept)

	fl = newFollower(t, j, state) // restarted: reads when it last synced
	fl.clock.Advance(40 * 24 * time.Hour)
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fl.mu.Lock()
	applied := slices.Clone(fl.applied)
	fl.mu.Unlock()
	if len(applied) != 2 || !applied[0].All || applied[0].Mode != Soft || applied[1].ID != kept.ID {
		t.Fatalf("applied %+v, want a soft purge of everything, then the record kept", applied)
	}
	if err := fl.Sync(ctx); err != nil || len(fl.appliedIDs()) != 2 {
		t.Fatalf("a second sync applied more: %q %v", fl.appliedIDs(), err)
	}
	// An edge that read the journal after the mark owes nothing.
	fresh := newFollower(t, j, state)
	fresh.clock.Advance(40 * 24 * time.Hour)
	fresh.ids[kept.ID] = true
	if err := fresh.Sync(ctx); err != nil || len(fresh.appliedIDs()) != 0 {
		t.Fatalf("an edge in step applied %q (%v)", fresh.appliedIDs(), err)
	}
}

// TestFollowerLagAndHealth against S3 that goes away: the lag grows while
// the journal is unreachable, /healthz?verbose says so, and both recover
// at the next complete read, which applies what was missed.
func TestFollowerLagAndHealth(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "journal")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	ctx := context.Background()
	st, err := store.Open(ctx, strings.Replace(proxy.OriginURL("journal", "prod"), "&region", "&connect_timeout=1s&header_timeout=2s&region", 1))
	if err != nil {
		t.Fatal(err)
	}
	j := New(st)
	fl := newFollower(t, j, "")
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, detail := fl.Health(); !ok || !strings.Contains(detail, "0 records") {
		t.Fatalf("health after a sync: %v %q", ok, detail)
	}
	r := record(t0, "/widget/v1/login.js")
	if err := j.Append(ctx, r); err != nil {
		t.Fatal(err)
	}
	proxy.SetFault(s3test.Fault{Status: 503})
	fl.clock.Advance(30 * time.Second)
	if err := fl.Sync(ctx); err == nil {
		t.Fatal("Sync succeeded with S3 answering 503")
	}
	fl.clock.Advance(30 * time.Second)
	if lag := fl.Lag(); lag != time.Minute {
		t.Fatalf("lag %v, want 1m", lag)
	}
	if n, err := testutil.GatherAndCount(fl.reg, "edge_purge_journal_lag_seconds"); n != 1 || err != nil {
		t.Fatalf("edge_purge_journal_lag_seconds not registered: %d, %v", n, err)
	}
	ok, detail := fl.Health()
	if ok || !strings.Contains(detail, "unreachable for 30s") || !strings.Contains(detail, "last complete read: 1m0s ago") {
		t.Fatalf("health with S3 down: %v %q", ok, detail)
	}
	if n := testutil.ToFloat64(fl.errs.WithLabelValues("mark")) + testutil.ToFloat64(fl.errs.WithLabelValues("list")); n == 0 {
		t.Error("no journal error counted")
	}
	proxy.SetFault(s3test.Fault{})
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if lag := fl.Lag(); lag != 0 {
		t.Fatalf("lag after catching up: %v", lag)
	}
	if got := fl.appliedIDs(); !slices.Equal(got, []string{r.ID}) {
		t.Fatalf("applied %q after S3 came back", got)
	}
}

func FuzzParseRecord(f *testing.F) {
	r := record(t0, "/widget/v1/login.js")
	b, _ := json.Marshal(r)
	f.Add(b)
	f.Add([]byte(`{"id":"20261130T120000.000000000Z-abcdefgh","time":"2026-11-30T12:00:00Z","all":true,"mode":"hard"}`))
	f.Add([]byte(`{"id":"x","time":"2026-11-30T12:00:00Z","tags":["a"]}`))
	f.Add([]byte(`{"id":"20261130T120000.000000000Z-abcdefgh","time":"2026-11-30T12:00:00Z","tags":["a b"],"mode":"soft"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		if _, err := ParseID(r.ID); err != nil || r.Time.IsZero() || (r.Mode != Soft && r.Mode != Hard) {
			t.Fatalf("accepted id %q time %v mode %q", r.ID, r.Time, r.Mode)
		}
		if len(r.URLs)+len(r.Prefixes)+len(r.Tags) == 0 && !r.All {
			t.Fatal("accepted a record without selectors")
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRecord(b)
		if err != nil || again.ID != r.ID || again.Mode != r.Mode || len(again.URLs) != len(r.URLs) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzParseEdge(f *testing.F) {
	f.Add([]byte(`{"name":"edge-1","region":"eu","admin_url":"http://10.0.0.1:9080","last_seen":"2026-11-30T12:00:00Z"}`))
	f.Add([]byte(`{"name":"../x","admin_url":"http://a"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEdge(data)
		if err != nil {
			return
		}
		if CheckName(e.Name) != nil || !(strings.HasPrefix(e.AdminURL, "http://") || strings.HasPrefix(e.AdminURL, "https://")) {
			t.Fatalf("accepted %+v", e)
		}
		if strings.Contains(e.Name, "/") || e.Name == "." || e.Name == ".." {
			t.Fatalf("accepted name %q", e.Name)
		}
	})
}

// TestFollowerDamagedMark: a compaction mark that cannot be read leaves
// the journal degraded, never purges everything again and again, and
// still lets the records there apply, once; the next compaction rewrites
// it, and the follower is in step again.
func TestFollowerDamagedMark(t *testing.T) {
	j, st := dirJournal(t)
	ctx := context.Background()
	fl := newFollower(t, j, "")
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "compacted", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	r := record(t0.Add(time.Minute), "/widget/v1/login.js")
	j.Append(ctx, r)
	for range 3 {
		fl.clock.Advance(10 * time.Second)
		if err := fl.Sync(ctx); !errors.Is(err, ErrDamagedMark) {
			t.Fatalf("Sync with a damaged mark: %v, want ErrDamagedMark", err)
		}
	}
	if got := fl.appliedIDs(); len(got) != 1 || got[0] != r.ID {
		t.Fatalf("applied %q, want the record once and nothing else", got)
	}
	if ok, detail := fl.Health(); ok || !strings.Contains(detail, "damaged") {
		t.Errorf("health with a damaged mark: %v %q", ok, detail)
	}
	if n := testutil.ToFloat64(fl.errs.WithLabelValues("mark")); n != 3 {
		t.Errorf("mark errors counted: %v, want 3", n)
	}
	// A compaction (every purge run makes one) rewrites it.
	if _, _, err := j.Compact(ctx, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if mark, err := j.CompactedBefore(ctx); err != nil || !mark.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("mark after the compaction: %v %v", mark, err)
	}
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fl.appliedIDs(); len(got) != 1 {
		t.Errorf("applied %q after the repair, want nothing more", got)
	}
}

// TestRegisterRetried: an edge that could not register at start (S3 down)
// registers at the first read of the journal once S3 is back.
func TestRegisterRetried(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "journal")
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	ctx := context.Background()
	st, err := store.Open(ctx, strings.Replace(proxy.OriginURL("journal", "prod"), "&region", "&connect_timeout=1s&header_timeout=2s&region", 1))
	if err != nil {
		t.Fatal(err)
	}
	j := New(st)
	fl := newFollower(t, j, "")
	self := fl.cfg.Self
	fl.cfg.Self = Edge{} // as an edge starts: its admin address not known yet
	proxy.SetFault(s3test.Fault{Status: 503})
	if err := fl.Register(ctx, self); err == nil {
		t.Fatal("Register with S3 answering 503 succeeded")
	}
	proxy.SetFault(s3test.Fault{})
	if err := fl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	edges, err := j.Edges(ctx)
	if err != nil || len(edges) != 1 || edges[0].Name != self.Name {
		t.Fatalf("registry after S3 came back: %+v, %v; want %s", edges, err, self.Name)
	}
}
