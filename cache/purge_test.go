package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecdn/edge/negotiate"
)

// tagged is response with surrogate keys.
func tagged(body []byte, etag string, tags ...string) *Response {
	r := response(body, "", int64(len(body)))
	r.Meta.ETag, r.Meta.Tags = etag, tags
	// Fresh for a year: purges, not expiry, must take it out.
	r.Meta.Origin = &OriginFreshness{TTL: 365 * 24 * time.Hour, HasTTL: true}
	return r
}

// pausedLurker returns a config whose lurker runs one pass per value
// sent on the channel.
func pausedLurker() (Config, chan struct{}) {
	gate := make(chan struct{})
	return Config{lurkGate: gate}, gate
}

func purge(t testing.TB, c *testCache, p Purge) *Purging {
	t.Helper()
	pg, err := c.Purge(p)
	if err != nil {
		t.Fatalf("Purge(%+v): %v", p, err)
	}
	if pg.NotDurable != nil {
		t.Fatalf("Purge(%+v): not durable: %v", p, pg.NotDurable)
	}
	return pg
}

// wait waits for the lurker to have applied pg everywhere.
func wait(t testing.TB, pg *Purging) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, done := pg.Wait(ctx)
	if !done {
		t.Fatal("the lurker did not apply the purge")
	}
	return n
}

// keyFiles lists the disk files of key (its record and variants).
func keyFiles(c *testCache, key string) []string {
	var out []string
	c.disk.Keys(func(k string) bool {
		if k == key || strings.HasPrefix(k, key+"\x00") {
			out = append(out, k)
		}
		return true
	})
	return out
}

func TestPurgeExactSoftAndHard(t *testing.T) {
	tc := newTestCache(t, Config{})
	body := text(4000)
	for _, k := range []string{"ns/a.js", "ns/b.js", "ns/c.js"} {
		obj := tc.fill(t, k, tagged(body, `"v1"`))
		for c := range negotiate.Coding(negotiate.NumCodings) {
			read(t)(tc.Open(obj, c))
		}
	}
	tc.Wait()
	soft := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "ns/a.js", Exact: true}}})
	hard := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "ns/b.js", Exact: true}}, Hard: true})

	obj := tc.Lookup("ns/a.js")
	if obj == nil || !obj.SoftPurged() {
		t.Fatalf("after a soft purge: %v, want a soft-purged object", obj)
	}
	// Its variants stay: the copy serves when the origin fails.
	if got := read(t)(tc.Open(obj, negotiate.Brotli)); !bytes.Equal(decode(t, negotiate.Brotli, got), body) {
		t.Fatal("soft-purged object: br variant differs")
	}
	if obj := tc.Lookup("ns/b.js"); obj != nil {
		t.Fatal("a hard-purged object is still returned")
	}
	if f := keyFiles(tc, "ns/b.js"); len(f) != 0 {
		t.Fatalf("hard purge left files %q", f)
	}
	if _, ok := tc.HardPurged("ns/b.js"); !ok {
		t.Error("HardPurged does not know ns/b.js")
	}
	if obj := tc.Lookup("ns/c.js"); obj == nil || obj.SoftPurged() {
		t.Fatal("an unselected object was purged")
	}
	if n := wait(t, soft); n != 1 {
		t.Errorf("soft purge: %d entries, want 1", n)
	}
	if n := wait(t, hard); n != 1 {
		t.Errorf("hard purge: %d entries, want 1", n)
	}
	if st := tc.Stats(); st.Purges != 2 || st.PurgedEntries != 2 {
		t.Errorf("stats: %d purges, %d entries; want 2, 2", st.Purges, st.PurgedEntries)
	}

	// Both last across a restart.
	tc = tc.reopen(t, Config{})
	if obj := tc.Lookup("ns/a.js"); obj == nil || !obj.SoftPurged() {
		t.Fatal("after restart: the soft purge was lost")
	}
	if obj := tc.Lookup("ns/b.js"); obj != nil {
		t.Fatal("after restart: the hard-purged object came back")
	}
}

// TestPurgeAppliesAtOnceLurkerInBackground: prefix, tag and "all" purges
// take effect on the next lookup while the lurker has not run; then the
// lurker applies them on disk, counts the entries and drops the rules.
func TestPurgeAppliesAtOnceLurkerInBackground(t *testing.T) {
	cfg, gate := pausedLurker()
	tc := newTestCache(t, cfg)
	body := text(2000)
	tc.fill(t, "s1/tenants/acme.json", tagged(body, `"a"`, "tenants", "release-41"))
	tc.fill(t, "s1/tenants/beta.json", tagged(body, `"b"`, "tenants"))
	tc.fill(t, "s1/widget/v1/login.js", tagged(body, `"w"`, "widget", "release-41"))
	tc.fill(t, "s2/widget/v1/login.js", tagged(body, `"x"`, "widget", "release-41"))
	tc.Wait()

	byPrefix := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s1/tenants/"}}})
	byTag := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s1/", Tag: "release-41"}}, Hard: true})
	for key, want := range map[string]string{
		"s1/tenants/acme.json":  "hard", // the tag (hard) wins over the prefix (soft)
		"s1/tenants/beta.json":  "soft",
		"s1/widget/v1/login.js": "hard",
		"s2/widget/v1/login.js": "none", // the tag purge is scoped to s1/
	} {
		obj := tc.Lookup(key)
		got := "none"
		switch {
		case obj == nil:
			got = "hard"
		case obj.SoftPurged():
			got = "soft"
		}
		if got != want {
			t.Errorf("%s before the lurker ran: %s, want %s", key, got, want)
		}
	}
	if st := tc.Stats(); st.PurgeRules != 2 {
		t.Fatalf("%d rules in force, want 2", st.PurgeRules)
	}
	gate <- struct{}{}
	wait(t, byPrefix)
	wait(t, byTag)
	if n, _ := byTag.Wait(context.Background()); n != 2 {
		t.Errorf("tag purge: %d entries, want 2", n)
	}
	if st := tc.Stats(); st.PurgeRules != 0 {
		t.Fatalf("%d rules in force after the lurker's pass, want 0", st.PurgeRules)
	}
	// What the lurker decided is what the disk holds: a restart sees the
	// same, without the rules.
	tc = tc.reopen(t, Config{})
	if obj := tc.Lookup("s1/tenants/beta.json"); obj == nil || !obj.SoftPurged() {
		t.Error("after restart: beta.json is not soft-purged")
	}
	if obj := tc.Lookup("s1/tenants/acme.json"); obj != nil {
		t.Error("after restart: acme.json came back")
	}
	if obj := tc.Lookup("s2/widget/v1/login.js"); obj == nil || obj.SoftPurged() {
		t.Error("after restart: s2's widget is gone or purged")
	}
}

// TestPurgeBeforeRestartNeverComesBack: purges recorded, the lurker never
// ran, the process stops: after the restart the objects are purged
// anyway, however long their TTL.
func TestPurgeBeforeRestartNeverComesBack(t *testing.T) {
	cfg, _ := pausedLurker()
	tc := newTestCache(t, cfg)
	tc.fill(t, "s/w.js", tagged(text(3000), `"w"`, "widget"))
	tc.fill(t, "s/t.json", tagged(text(3000), `"t"`))
	tc.fill(t, "s/keep.json", tagged(text(3000), `"k"`))
	tc.Wait()
	purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/", Tag: "widget"}}, Hard: true})
	purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/t"}}})

	tc = tc.reopen(t, cfg) // still paused
	if obj := tc.Lookup("s/w.js"); obj != nil {
		t.Fatal("a hard-purged object came back after a restart")
	}
	if obj := tc.Lookup("s/t.json"); obj == nil || !obj.SoftPurged() {
		t.Fatal("a soft purge was lost in a restart")
	}
	if obj := tc.Lookup("s/keep.json"); obj == nil || obj.SoftPurged() {
		t.Fatal("an unselected object was purged")
	}
	// The process was killed before the lurker ran, repeatedly.
	tc = tc.reopen(t, cfg)
	if tc.Lookup("s/w.js") != nil || !tc.Lookup("s/t.json").SoftPurged() {
		t.Fatal("second restart: purges lost")
	}
}

// TestPurgeDuringFill: a fill that began before a purge is checked
// against it when it ends. A caller that saw the purge and joined the
// older fill gets a new fetch.
func TestPurgeDuringFill(t *testing.T) {
	tc := newTestCache(t, Config{})
	entered, release := make(chan struct{}), make(chan struct{})
	var fetches atomic.Int32
	fetch := func(context.Context) (*Response, error) {
		if fetches.Add(1) == 1 {
			close(entered)
			<-release
			return tagged([]byte("old version of the widget"), `"v1"`), nil
		}
		return tagged([]byte("new version of the widget"), `"v2"`), nil
	}
	first := make(chan *Object)
	go func() {
		obj, _, err := tc.Fill(context.Background(), "s/w.js", time.Minute, fetch)
		if err != nil {
			t.Error(err)
		}
		first <- obj
	}()
	<-entered
	purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/w.js", Exact: true}}, Hard: true})
	second := make(chan *Object)
	go func() {
		obj, _, err := tc.Fill(context.Background(), "s/w.js", time.Minute, fetch)
		if err != nil {
			t.Error(err)
		}
		second <- obj
	}()
	// The second caller joins the first fill, or starts its own once it
	// ended: either way it must end with the new version.
	close(release)
	<-first // asked before the purge: may get either
	if obj := <-second; obj == nil || obj.Meta.ETag != `"v2"` {
		t.Fatalf("a caller that saw the purge got %v, want v2", obj)
	}
	tc.Wait()
	if obj := tc.Lookup("s/w.js"); obj == nil || obj.Meta.ETag != `"v2"` {
		t.Fatalf("after the purge, Lookup gives %v, want v2", obj)
	}
}

// TestFillResultCheckedAgainstPurgesSeen: a fill whose answer predates a
// purge the caller has seen (here a copy found before the purge, as a
// fetch that joined an older fill would give) is fetched again.
func TestFillResultCheckedAgainstPurgesSeen(t *testing.T) {
	tc := newTestCache(t, Config{})
	old := tc.fill(t, "s/w.js", tagged([]byte("v1"), `"v1"`))
	purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/w.js", Exact: true}}, Hard: true})
	calls := 0
	obj, _, err := tc.Fill(context.Background(), "s/w.js", time.Minute, func(context.Context) (*Response, error) {
		if calls++; calls == 1 {
			return &Response{Current: old}, nil
		}
		return tagged([]byte("v2"), `"v2"`), nil
	})
	if err != nil || obj.Meta.ETag != `"v2"` || calls != 2 {
		t.Fatalf("got %v (%v) after %d fetches, want v2 after 2", obj, err, calls)
	}
}

func TestPurgeIdempotentByID(t *testing.T) {
	tc := newTestCache(t, Config{})
	tc.fill(t, "s/a.js", tagged(text(100), `"a"`))
	p := Purge{ID: "20261130T120000.000000000Z-abc", Selectors: []Selector{{Prefix: "s/"}}}
	if pg := purge(t, tc, p); pg.Duplicate {
		t.Fatal("first application reported as a duplicate")
	}
	wait(t, purge(t, tc, Purge{Selectors: []Selector{{Prefix: "x", Exact: true}}}))
	if !tc.PurgeApplied(p.ID) {
		t.Fatal("PurgeApplied: false")
	}
	// Revalidated since: applying the same purge again must not purge it.
	obj := tc.Lookup("s/a.js")
	if _, _, err := tc.Fill(context.Background(), "s/a.js", time.Minute, func(context.Context) (*Response, error) {
		return &Response{Confirmed: obj, Meta: obj.Meta}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if pg := purge(t, tc, p); !pg.Duplicate {
		t.Fatal("second application not a duplicate")
	}
	tc = tc.reopen(t, Config{})
	if pg := purge(t, tc, p); !pg.Duplicate || !tc.PurgeApplied(p.ID) {
		t.Fatal("after restart: the id was forgotten")
	}
	if obj := tc.Lookup("s/a.js"); obj == nil || obj.SoftPurged() {
		t.Fatal("a duplicate purge purged again")
	}
}

// TestRevalidationEndsSoftPurge: a 304 clears the mark and keeps the
// variants (nothing transcoded again).
func TestRevalidationEndsSoftPurge(t *testing.T) {
	tc := newTestCache(t, Config{})
	body := text(5000)
	obj := tc.fill(t, "s/a.js", tagged(body, `"a"`))
	read(t)(tc.Open(obj, negotiate.Gzip))
	tc.Wait()
	purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/a.js", Exact: true}}})
	held := tc.Lookup("s/a.js")
	if !held.SoftPurged() {
		t.Fatal("not soft-purged")
	}
	obj, _, err := tc.Fill(context.Background(), "s/a.js", time.Minute, func(context.Context) (*Response, error) {
		m := held.Meta
		m.Fetched = time.Now()
		return &Response{Confirmed: held, Meta: m}, nil
	})
	if err != nil || obj.SoftPurged() {
		t.Fatalf("after a 304: %v, soft %v", err, obj != nil && obj.SoftPurged())
	}
	read(t)(tc.Open(obj, negotiate.Gzip))
	if d := tc.Stats().Derivations[negotiate.Gzip]; d != 1 {
		t.Fatalf("gzip derived %d times, want 1", d)
	}
	tc.Wait()
	tc = tc.reopen(t, Config{})
	if obj := tc.Lookup("s/a.js"); obj == nil || obj.SoftPurged() {
		t.Fatal("after restart the revalidated object is soft-purged again")
	}
}

// TestLurkerKeepsRulesForFillsInFlight: a rule is dropped only when no
// fill that began before it is still running.
func TestLurkerKeepsRulesForFillsInFlight(t *testing.T) {
	cfg, gate := pausedLurker()
	tc := newTestCache(t, cfg)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tc.Fill(context.Background(), "s/slow.js", time.Minute, func(context.Context) (*Response, error) {
			close(entered)
			<-release
			return tagged([]byte("old"), `"old"`, "t"), nil
		})
	}()
	<-entered
	pg := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/", Tag: "t"}}, Hard: true})
	gate <- struct{}{}
	wait(t, pg)
	if n := tc.Stats().PurgeRules; n != 1 {
		t.Fatalf("%d rules in force with a fill from before still running, want 1", n)
	}
	close(release)
	<-done
	tc.Wait()
	if tc.Lookup("s/slow.js") != nil {
		t.Fatal("a fill that began before a hard purge stored what it selects")
	}
	// Another pass (the next purge wakes it) drops the rule.
	pg = purge(t, tc, Purge{Selectors: []Selector{{Prefix: "none", Exact: true}}})
	gate <- struct{}{}
	wait(t, pg)
	if n := tc.Stats().PurgeRules; n != 0 {
		t.Fatalf("%d rules in force, want 0", n)
	}
}

// TestHardPurgeWithReadOnlyDisk: a disk that refuses the delete keeps
// the rule in force (lookups keep honouring it, across the lurker's
// passes) until the delete succeeds.
func TestHardPurgeWithReadOnlyDisk(t *testing.T) {
	cfg, gate := pausedLurker()
	tc := newTestCache(t, cfg)
	tc.fill(t, "s/a.js", tagged(text(100), `"a"`))
	tc.Wait()
	tc.fs.set(errReadOnly, -1)
	// (The purge state file is not the disk tier's: only the deletes
	// fail here.)
	pg := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/"}}, Hard: true})
	gate <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, complete := pg.Wait(ctx); complete {
		t.Fatal("the pass completed although the disk refused the delete")
	}
	if tc.Lookup("s/a.js") != nil {
		t.Fatal("served a hard-purged object")
	}
	if n := tc.Stats().PurgeRules; n != 1 {
		t.Fatalf("%d rules in force, want 1 (kept until the delete succeeds)", n)
	}
	tc.fs.set(nil, 0)
	purge(t, tc, Purge{Selectors: []Selector{{Prefix: "none", Exact: true}}}) // wakes the lurker
	gate <- struct{}{}
	wait(t, pg)
	if n := tc.Stats().PurgeRules; n != 0 {
		t.Fatalf("%d rules in force after the disk recovered, want 0", n)
	}
	if f := keyFiles(tc, "s/a.js"); len(f) != 0 {
		t.Fatalf("files left: %q", f)
	}
}

func TestPurgeStateDamage(t *testing.T) {
	tc := newTestCache(t, Config{})
	tc.fill(t, "s/a.js", tagged(text(100), `"a"`))
	tc.fill(t, "s/b.js", tagged(text(100), `"b"`))
	tc.Wait()
	wait(t, purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/a.js", Exact: true}}, Hard: true}))
	tc.Close()
	path := filepath.Join(tc.dir, purgeStateFile)

	// A torn last line (killed mid-append) is dropped quietly.
	appendFile(t, path, `{"rule":{"seq":9,"pre`)
	tc = tc.reopen(t, Config{})
	if obj := tc.Lookup("s/b.js"); obj == nil || obj.SoftPurged() {
		t.Fatal("a torn last line purged something")
	}
	if tc.logs.count("torn") != 1 {
		t.Error("the torn line was not logged")
	}
	tc.Close()

	// Damage before the end loses purges: everything is soft-purged,
	// once.
	appendFile(t, path, "garbage\n{\"floor\":1}\n")
	tc = tc.reopen(t, Config{})
	if obj := tc.Lookup("s/b.js"); obj == nil || !obj.SoftPurged() {
		t.Fatal("a damaged purge state did not soft-purge everything")
	}
	if tc.logs.count("damaged") != 1 {
		t.Error("the damage was not logged")
	}
	if tc.Lookup("s/a.js") != nil {
		t.Fatal("the hard purge was lost")
	}
	b := tc.Lookup("s/b.js")
	tc.Fill(context.Background(), "s/b.js", time.Minute, func(context.Context) (*Response, error) {
		return &Response{Confirmed: b, Meta: b.Meta}, nil
	})
	tc = tc.reopen(t, Config{})
	if obj := tc.Lookup("s/b.js"); obj == nil || obj.SoftPurged() {
		t.Fatal("the damage was answered again at the next start")
	}
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeBacklog(t *testing.T) {
	cfg, gate := pausedLurker()
	tc := newTestCache(t, cfg)
	sel := func(n int) []Selector {
		s := make([]Selector, n)
		for i := range s {
			s[i] = Selector{Prefix: fmt.Sprintf("/p%d/", i)}
		}
		return s
	}
	pg := purge(t, tc, Purge{Selectors: sel(maxPurgeSelectors - 10)})
	if _, err := tc.Purge(Purge{Selectors: sel(11)}); !errors.Is(err, ErrPurgeBacklog) {
		t.Fatalf("over the bound: %v, want ErrPurgeBacklog", err)
	}
	gate <- struct{}{}
	wait(t, pg)
	purge(t, tc, Purge{Selectors: sel(11)})

	// One purge that can never fit, by count or by the bytes to record:
	// refused as too large (not "retry"), and the disk stays healthy.
	long := make([]Selector, 2000)
	for i := range long {
		long[i] = Selector{Prefix: fmt.Sprintf("/%d/%s", i, strings.Repeat("x", 3000))}
	}
	for name, p := range map[string]Purge{"count": {Selectors: sel(maxPurgeSelectors + 1)}, "bytes": {Selectors: long}} {
		if _, err := tc.Purge(p); !errors.Is(err, ErrPurgeTooLarge) {
			t.Errorf("too large by %s: %v, want ErrPurgeTooLarge", name, err)
		}
	}
	if ok, detail := tc.DiskHealth(); !ok {
		t.Errorf("disk after refused purges: %s, want healthy", detail)
	}
}

func TestVariantsListed(t *testing.T) {
	tc := newTestCache(t, Config{})
	obj := tc.fill(t, "s/a.js", tagged(text(5000), `"a"`))
	read(t)(tc.Open(obj, negotiate.Brotli))
	tc.Wait()
	tc = tc.reopen(t, Config{})
	obj = tc.Lookup("s/a.js")
	var got []string
	for _, v := range tc.Variants(obj) {
		got = append(got, v.Coding+" "+v.ETag)
		if v.Size <= 0 {
			t.Errorf("%s: size %d", v.Coding, v.Size)
		}
	}
	slices.Sort(got)
	if want := []string{`br "a-br"`, `identity "a"`}; !slices.Equal(got, want) {
		t.Fatalf("variants %q, want %q", got, want)
	}
}

func TestMatcher(t *testing.T) {
	soft1 := &rule{seq: 1, prefixes: []string{"a/b", "a/bc/", "c/"}}
	hard2 := &rule{seq: 2, hard: true, prefixes: []string{"a/bcd"}, tags: []tagSel{{"c/", "x"}}}
	soft3 := &rule{seq: 3, exact: map[string]struct{}{"z/1": {}}, tags: []tagSel{{"", "y"}}}
	rules := []*rule{soft1, hard2, soft3}
	m := newMatcher(rules)
	for _, tc := range []struct {
		key  string
		tags []string
		want verdict
	}{
		{"a/b", nil, soft},
		{"a/bx", nil, soft},
		{"a/bcde", nil, hard},
		{"a/a", nil, keep},
		{"b", nil, keep},
		{"c/q", []string{"x"}, hard},
		{"d/q", []string{"x"}, keep},
		{"d/q", []string{"w", "y"}, soft},
		{"z/1", nil, soft},
		{"z/12", nil, keep},
		{"", nil, keep},
	} {
		got, _ := m.judge(tc.key, tc.tags)
		slow, _ := judgeRules(rules, tc.key, tc.tags, 0)
		if got != tc.want || slow != tc.want {
			t.Errorf("%q %q: matcher %v, rules %v; want %v", tc.key, tc.tags, got, slow, tc.want)
		}
	}
	if v, _ := judgeRules(rules, "a/bcde", nil, 2); v != keep {
		t.Errorf("rules above seq 2 selected a/bcde: %v", v)
	}
}

func FuzzParsePurgeState(f *testing.F) {
	f.Add([]byte(`{"floor":5}` + "\n" + `{"id":"x","seq":4}` + "\n" + `{"rule":{"seq":7,"at":"2026-11-30T12:00:00Z","prefixes":["a/"]}}` + "\n"))
	f.Add([]byte(`{"rule":{"seq":7,"hard":true,"at":"2026-11-30T12:00:00Z","exact":["k"],"tags":[{"scope":"s/","tag":"t"}]}}`))
	f.Add([]byte("garbage\n{\"floor\":1}\n{\"rule\":"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, _ := parsePurgeState(data)
		for i, r := range s.rules {
			if r.seq <= s.floor || r.size() == 0 {
				t.Fatalf("rule %d: seq %d (floor %d), %d selectors", i, r.seq, s.floor, r.size())
			}
			if i > 0 && s.rules[i-1].seq >= r.seq {
				t.Fatal("rules not in ascending seq order")
			}
		}
	})
}

// BenchmarkLookupWithPurges: a memory hit (Lookup and Open of the br
// variant) with no purges recorded, and with 10,000 prefix and 10,000 tag
// purges in force (none selecting the object; the lurker paused, so they
// stay in force). After its first lookup, the object carries the newest
// purge's number, and a hit compares one number.
func BenchmarkLookupWithPurges(b *testing.B) {
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprintf("purges=%d", 2*n), func(b *testing.B) {
			cfg, _ := pausedLurker()
			tc := newTestCache(b, cfg)
			obj := tc.fill(b, "s3://b/p/tenants/acme.json", tagged(text(1500), `"a"`, "tenants"))
			read(b)(tc.Open(obj, negotiate.Brotli))
			tc.Wait()
			for i := range n {
				if _, err := tc.Purge(Purge{Selectors: []Selector{{Prefix: fmt.Sprintf("s3://b/p/other%d/", i)}}}); err != nil {
					b.Fatal(err)
				}
				if _, err := tc.Purge(Purge{Selectors: []Selector{{Prefix: "s3://b/p/", Tag: fmt.Sprintf("release-%d", i)}}}); err != nil {
					b.Fatal(err)
				}
			}
			if got := tc.Stats().PurgeRules; got != 2*n {
				b.Fatalf("%d rules in force, want %d", got, 2*n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				o := tc.Lookup("s3://b/p/tenants/acme.json")
				body, err := tc.Open(o, negotiate.Brotli)
				if err != nil {
					b.Fatal(err)
				}
				body.Close()
			}
		})
	}
}

// TestSoftPurgeDropsNegativeEntries: a cached 404 selected by a soft
// purge goes (an object uploaded since must appear at once); a soft
// purge has nothing stale to keep of it.
func TestSoftPurgeDropsNegativeEntries(t *testing.T) {
	cfg, gate := pausedLurker()
	tc := newTestCache(t, cfg)
	neg := func(key string) {
		tc.Fill(context.Background(), key, time.Minute, func(context.Context) (*Response, error) {
			return &Response{Meta: Meta{Status: 404, Fetched: time.Now(), Origin: &OriginFreshness{}}}, nil
		})
	}
	neg("s/new.js")
	neg("s/other.js")
	tc.Wait()
	pg := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/"}}})
	if tc.Lookup("s/new.js") != nil {
		t.Fatal("a soft purge kept a cached 404 (on lookup)")
	}
	gate <- struct{}{}
	wait(t, pg)
	if f := keyFiles(tc, "s/other.js"); len(f) != 0 {
		t.Fatalf("a soft purge kept a cached 404 (lurker): %q", f)
	}
}

// TestPurgeReachesVaryRecordsOnDisk: a response stored under a Vary key
// (NUL-separated, as the root package makes them) and held on disk only
// is purged by the lurker's pass like any other record, not skipped as a
// variant file.
func TestPurgeReachesVaryRecordsOnDisk(t *testing.T) {
	tc := newTestCache(t, Config{})
	const key = "s/t.json\x00vary\x00Accept-Language=fr\x00"
	tc.fill(t, key, tagged(text(2000), `"fr"`, "tenants"))
	tc.Wait()
	if len(keyFiles(tc, key)) < 2 {
		t.Fatalf("disk files of the Vary record: %q, want its record and a variant", keyFiles(tc, key))
	}
	tc = tc.reopen(t, Config{}) // on disk only
	wait(t, purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/", Tag: "tenants"}}}))
	if obj := tc.Lookup(key); obj == nil || !obj.SoftPurged() {
		t.Fatal("the Vary record on disk escaped the purge")
	}
}

// TestFillEndingDuringLurkerPass: a fill from before a purge that stores
// its result while the lurker walks the disk, and ends before the pass
// does, is not taken as checked: the purge still selects it.
func TestFillEndingDuringLurkerPass(t *testing.T) {
	cfg, gate := pausedLurker()
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	cfg.lurkEnd = func() {
		select {
		case <-release:
		default:
			close(release) // the fill stores and ends now, between the walk and the floor
			<-done
		}
	}
	tc := newTestCache(t, cfg)
	go func() {
		defer close(done)
		tc.Fill(context.Background(), "s/slow.js", time.Minute, func(context.Context) (*Response, error) {
			close(entered)
			<-release
			return tagged([]byte("old"), `"old"`, "t"), nil
		})
	}()
	<-entered
	pg := purge(t, tc, Purge{Selectors: []Selector{{Prefix: "s/", Tag: "t"}}, Hard: true})
	gate <- struct{}{}
	<-done
	tc.Wait()
	if tc.Lookup("s/slow.js") != nil {
		t.Fatal("a fill that ended during the lurker's pass escaped a hard purge")
	}
	wait(t, pg)
	if tc.reopen(t, Config{}).Lookup("s/slow.js") != nil {
		t.Fatal("after a restart, the fill's result came back")
	}
}
