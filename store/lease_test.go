package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLeaseOneHolderAtATime(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := &clock{t: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}
			const n = 20
			var winners atomic.Int32
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					l := NewLeases(s, fmt.Sprintf("edge-%d", i), clk.now)
					ok, cur, err := l.Acquire(ctx, "cert/a.example", time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						winners.Add(1)
					} else if cur.Holder == "" || !cur.Expires.After(clk.now()) {
						t.Errorf("lost, but the lease reported is %+v", cur)
					}
				})
			}
			wg.Wait()
			if winners.Load() != 1 {
				t.Fatalf("%d edges hold the lease, want 1", winners.Load())
			}

			a, b := NewLeases(s, "a", clk.now), NewLeases(s, "b", clk.now)
			if ok, _, err := a.Acquire(ctx, "x", time.Minute); !ok || err != nil {
				t.Fatalf("a: %v %v", ok, err)
			}
			if ok, cur, _ := b.Acquire(ctx, "x", time.Minute); ok || cur.Holder != "a" {
				t.Fatalf("b took a held lease (ok=%v, holder %q)", ok, cur.Holder)
			}
			// A crashed holder: its lease expires and b takes it.
			clk.add(61 * time.Second)
			if ok, _, err := b.Acquire(ctx, "x", time.Minute); !ok || err != nil {
				t.Fatalf("b could not take an expired lease: %v %v", ok, err)
			}
			if ok, _, _ := a.Acquire(ctx, "x", time.Minute); ok {
				t.Fatal("a took b's lease")
			}
			// A released lease is free at once.
			if err := b.Release(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			if ok, _, err := a.Acquire(ctx, "x", time.Minute); !ok || err != nil {
				t.Fatalf("a could not take a released lease: %v %v", ok, err)
			}
			// b releasing a's lease does nothing.
			if err := b.Release(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			if ok, _, _ := b.Acquire(ctx, "x", time.Minute); ok {
				t.Fatal("b's Release freed a's lease")
			}
			// Old generations are cleaned up.
			keys, err := s.List(ctx, "leases/x/")
			if err != nil || len(keys) > 2 {
				t.Errorf("lease records left: %q, %v", keys, err)
			}
			// A corrupt record does not block the lease forever.
			if err := s.Put(ctx, "leases/y/00000000000000000001", []byte("{garbage")); err != nil {
				t.Fatal(err)
			}
			if ok, _, err := a.Acquire(ctx, "y", time.Minute); !ok || err != nil {
				t.Fatalf("a corrupt record blocks the lease: %v %v", ok, err)
			}
		})
	}
}

func TestParseLease(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"holder":"edge-1","expires":"2026-11-30T08:00:00Z"}`, true},
		{`{"holder":"edge-1","expires":"2026-11-30T08:00:00.5+01:00"}`, true},
		{`{"holder":"","expires":"2026-11-30T08:00:00Z"}`, false},
		{`{"holder":"edge-1"}`, false},
		{`{"holder":"edge\n1","expires":"2026-11-30T08:00:00Z"}`, false},
		{`{"holder":"edge-1","expires":"2026-11-30T08:00:00Z","x":1}`, false},
		{`{"holder":"edge-1","expires":"tomorrow"}`, false},
		{`{"holder":"edge-1","expires":"2026-11-30T08:00:00Z"} {}`, false},
		{``, false},
		{`null`, false},
	} {
		_, err := ParseLease([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseLease(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func FuzzParseLease(f *testing.F) {
	f.Add([]byte(`{"holder":"edge-1","expires":"2026-11-30T08:00:00Z"}`))
	f.Add([]byte(`{"holder":"a","expires":"0001-01-01T00:00:01Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLease(b)
		if err != nil {
			return
		}
		// What parses survives a round trip through the writer.
		l2, err := ParseLease(l.marshal())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", l.marshal(), err)
		}
		if l2.Holder != l.Holder || !l2.Expires.Equal(l.Expires) {
			t.Fatalf("round trip: %+v became %+v", l, l2)
		}
	})
}
