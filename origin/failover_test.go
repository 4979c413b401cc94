package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/edgecdn/edge/internal/s3test"
)

// fakeCall is one Get a fakeOrigin received.
type fakeCall struct {
	key  string
	cond Conditions
}

// fakeOrigin is an Origin whose behaviour the test sets and switches.
type fakeOrigin struct {
	name string
	// calls, if not nil, receives every call, after the behaviour for it
	// was chosen: once a test has received a call, set affects only later
	// ones.
	calls chan fakeCall

	mu sync.Mutex
	fn func(ctx context.Context, key string, cond Conditions) (*Object, error)
	n  int
}

func newFake(name string, fn func(ctx context.Context, key string, cond Conditions) (*Object, error)) *fakeOrigin {
	return &fakeOrigin{name: name, fn: fn, calls: make(chan fakeCall, 1000)}
}

func (o *fakeOrigin) String() string { return o.name }

func (o *fakeOrigin) Get(ctx context.Context, key string, cond Conditions) (*Object, error) {
	o.mu.Lock()
	fn := o.fn
	o.n++
	o.mu.Unlock()
	select {
	case o.calls <- fakeCall{key, cond}:
	default: // nobody is watching this many calls
	}
	return fn(ctx, key, cond)
}

func (o *fakeOrigin) set(fn func(ctx context.Context, key string, cond Conditions) (*Object, error)) {
	o.mu.Lock()
	o.fn = fn
	o.mu.Unlock()
}

func (o *fakeOrigin) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// next returns the next call the origin received.
func (o *fakeOrigin) next(t *testing.T) fakeCall {
	t.Helper()
	select {
	case c := <-o.calls:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no call", o.name)
		return fakeCall{}
	}
}

// drain forgets the calls received so far.
func (o *fakeOrigin) drain() {
	for {
		select {
		case <-o.calls:
		default:
			return
		}
	}
}

// Behaviours of a fakeOrigin.
func serve(body string) func(context.Context, string, Conditions) (*Object, error) {
	return func(context.Context, string, Conditions) (*Object, error) {
		return &Object{Body: io.NopCloser(strings.NewReader(body)), Size: int64(len(body)), ETag: `"e"`}, nil
	}
}

func fail(err error) func(context.Context, string, Conditions) (*Object, error) {
	return func(context.Context, string, Conditions) (*Object, error) { return nil, err }
}

var (
	errBoom      = errors.New("503 SlowDown")
	errNotFound  = fmt.Errorf("fake: %w", ErrNotFound)
	errForbidden = fmt.Errorf("fake: %w", ErrForbidden)
	errNotMod    = fmt.Errorf("fake: %w", ErrNotModified)
)

// noSleep is a FailoverConfig.Sleep that records the waits and does not
// wait.
type noSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *noSleep) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

// stateLog is a FailoverConfig.OnStateChange that sends every change.
type stateLog chan string

func (l stateLog) hook(origin string, s State) { l <- origin + " " + s.String() }

func (l stateLog) want(t *testing.T, change string) {
	t.Helper()
	select {
	case got := <-l:
		if got != change {
			t.Fatalf("state change %q, want %q", got, change)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no state change, want %q", change)
	}
}

func (l stateLog) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-l:
		t.Fatalf("unexpected state change %q", got)
	default:
	}
}

// testConfig is a config that never sleeps, with a fixed jitter of 0.5.
func testConfig() FailoverConfig {
	return FailoverConfig{
		Sleep: (&noSleep{}).sleep,
		Rand:  func() float64 { return 0.5 },
	}
}

func readAll(t *testing.T, obj *Object) string {
	t.Helper()
	return string(readObject(t, obj))
}

func TestFailoverOrder(t *testing.T) {
	type fn = func(context.Context, string, Conditions) (*Object, error)
	tests := []struct {
		name     string
		a, b, c  fn
		wantBody string
		wantErr  []error // each must be in the chain
		notErr   []error // none may be
		want     [3]int  // calls to a, b, c
	}{
		{name: "first answers", a: serve("A"), wantBody: "A", want: [3]int{1, 0, 0}},
		{name: "first fails, second answers", a: fail(errBoom), b: serve("B"), wantBody: "B", want: [3]int{2, 1, 0}},
		{name: "two fail, third answers", a: fail(errBoom), b: fail(errBoom), c: serve("C"), wantBody: "C", want: [3]int{2, 2, 1}},
		// A missing object is missing everywhere: no replica is asked.
		{name: "not found is an answer", a: fail(errNotFound), b: serve("B"), wantErr: []error{ErrNotFound}, want: [3]int{1, 0, 0}},
		{name: "not modified is an answer", a: fail(errNotMod), b: serve("B"), wantErr: []error{ErrNotModified}, want: [3]int{1, 0, 0}},
		{name: "not found after a failure", a: fail(errBoom), b: fail(errNotFound), c: serve("C"), wantErr: []error{ErrNotFound}, want: [3]int{2, 1, 0}},
		// Broken credentials: next origin at once, no retry.
		{name: "forbidden falls through", a: fail(errForbidden), b: serve("B"), wantBody: "B", want: [3]int{1, 1, 0}},
		{
			name: "all fail", a: fail(errBoom), b: fail(errForbidden), c: fail(io.ErrUnexpectedEOF),
			wantErr: []error{errBoom, ErrForbidden, io.ErrUnexpectedEOF}, notErr: []error{ErrAllDown, ErrNotFound},
			want: [3]int{2, 1, 2},
		},
		// An HTTP origin's own 5xx: the same, so as not to add load to an
		// origin that is failing by choice.
		{name: "an HTTP origin's 503 falls through", a: fail(&StatusError{Status: 503, key: "k"}), b: serve("B"), wantBody: "B", want: [3]int{1, 1, 0}},
		{name: "all forbidden", a: fail(errForbidden), b: fail(errForbidden), c: fail(errForbidden), wantErr: []error{ErrForbidden}, want: [3]int{1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			unused := fail(errors.New("not configured"))
			fakes := []*fakeOrigin{newFake("a", tc.a), newFake("b", tc.b), newFake("c", tc.c)}
			origins := make([]Origin, len(fakes))
			for i, f := range fakes {
				if f.fn == nil {
					f.set(unused)
				}
				origins[i] = f
			}
			f := NewFailover(origins, testConfig())
			defer f.Close()
			obj, err := f.Get(context.Background(), "/k.js", Conditions{})
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if got := readAll(t, obj); got != tc.wantBody {
					t.Errorf("body = %q, want %q", got, tc.wantBody)
				}
			} else {
				if obj != nil {
					obj.Body.Close()
					t.Errorf("got an object with error %v", err)
				}
				for _, want := range tc.wantErr {
					if !errors.Is(err, want) {
						t.Errorf("err = %v, want %v in the chain", err, want)
					}
				}
				for _, not := range tc.notErr {
					if errors.Is(err, not) {
						t.Errorf("err = %v, must not be %v", err, not)
					}
				}
				t.Logf("error: %v", err)
			}
			got := [3]int{fakes[0].count(), fakes[1].count(), fakes[2].count()}
			if got != tc.want {
				t.Errorf("calls to a, b, c = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFailoverErrorNamesOrigins(t *testing.T) {
	f := NewFailover([]Origin{newFake("s3://a", fail(errBoom)), newFake("s3://b", fail(errForbidden))}, testConfig())
	defer f.Close()
	_, err := f.Get(context.Background(), "/k.js", Conditions{})
	for _, want := range []string{`"/k.js"`, "s3://a: 503 SlowDown", "s3://b: fake: origin: access denied"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestFailoverBackoff(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		attempts int
		backoff  time.Duration
		rand     float64
		want     []time.Duration
	}{
		{name: "defaults", rand: 0.5, want: []time.Duration{25 * ms}},
		{name: "doubling", attempts: 5, backoff: 100 * ms, rand: 0.5, want: []time.Duration{50 * ms, 100 * ms, 200 * ms, 400 * ms}},
		{name: "capped at 1s", attempts: 6, backoff: 300 * ms, rand: 0.5, want: []time.Duration{150 * ms, 300 * ms, 500 * ms, 500 * ms, 500 * ms}},
		{name: "cap is Backoff when larger", attempts: 3, backoff: 3 * time.Second, rand: 0.5, want: []time.Duration{1500 * ms, 1500 * ms}},
		{name: "zero jitter", attempts: 3, backoff: 100 * ms, rand: 0, want: []time.Duration{0, 0}},
		{name: "full jitter", attempts: 3, backoff: 100 * ms, rand: 0.99, want: []time.Duration{99 * ms, 198 * ms}},
		{name: "one attempt, no retry", attempts: 1, rand: 0.5, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newFake("a", fail(errBoom))
			sl := &noSleep{}
			f := NewFailover([]Origin{a}, FailoverConfig{
				Attempts:         tc.attempts,
				Backoff:          tc.backoff,
				FailureThreshold: 100,
				Sleep:            sl.sleep,
				Rand:             func() float64 { return tc.rand },
			})
			defer f.Close()
			if _, err := f.Get(context.Background(), "/k", Conditions{}); !errors.Is(err, errBoom) {
				t.Fatalf("err = %v, want errBoom", err)
			}
			if got, want := a.count(), len(tc.want)+1; got != want {
				t.Errorf("calls = %d, want %d", got, want)
			}
			if fmt.Sprint(sl.waits) != fmt.Sprint(tc.want) {
				t.Errorf("waits = %v, want %v", sl.waits, tc.want)
			}
		})
	}
}

// TestFailoverCallerGivesUp checks that a done ctx stops the Get, and that
// it does not count against the origin.
func TestFailoverCallerGivesUp(t *testing.T) {
	t.Run("cancelled during an attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a := newFake("a", func(ctx context.Context, _ string, _ Conditions) (*Object, error) {
			cancel()
			return nil, fmt.Errorf("fake: %w", ctx.Err())
		})
		b := newFake("b", serve("B"))
		f := NewFailover([]Origin{a, b}, testConfig())
		defer f.Close()
		_, err := f.Get(ctx, "/k", Conditions{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if a.count() != 1 || b.count() != 0 {
			t.Errorf("calls a, b = %d, %d; want 1, 0", a.count(), b.count())
		}
		if st := f.States()[0]; st.ConsecutiveFailures != 0 {
			t.Errorf("a has %d failures, want 0: the caller gave up", st.ConsecutiveFailures)
		}
	})
	t.Run("cancelled during backoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a := newFake("a", fail(errBoom))
		b := newFake("b", serve("B"))
		cfg := testConfig()
		cfg.Sleep = func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
		f := NewFailover([]Origin{a, b}, cfg)
		defer f.Close()
		_, err := f.Get(ctx, "/k", Conditions{})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
			t.Errorf("err = %v, want context.Canceled and the origin's error", err)
		}
		if a.count() != 1 || b.count() != 0 {
			t.Errorf("calls a, b = %d, %d; want 1, 0", a.count(), b.count())
		}
	})
	t.Run("done before Get", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a := newFake("a", serve("A"))
		f := NewFailover([]Origin{a}, testConfig())
		defer f.Close()
		if _, err := f.Get(ctx, "/k", Conditions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if a.count() != 0 {
			t.Errorf("origin called %d times, want 0", a.count())
		}
	})
}

func TestFailoverCircuitOpens(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	a := newFake("a", fail(errBoom))
	b := newFake("b", serve("B"))
	log := make(stateLog, 10)
	cfg := testConfig()
	cfg.Attempts = 1
	cfg.FailureThreshold = 3
	cfg.Now = func() time.Time { return now }
	cfg.OnStateChange = log.hook
	cfg.probeTick = make(chan time.Time) // never ticks
	f := NewFailover([]Origin{a, b}, cfg)
	defer f.Close()

	get := func() {
		t.Helper()
		obj, err := f.Get(context.Background(), "/k", Conditions{})
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got := readAll(t, obj); got != "B" {
			t.Fatalf("body = %q, want B", got)
		}
	}
	for i := 1; i <= 2; i++ {
		get()
		if st := f.States()[0]; st.State != Closed || st.ConsecutiveFailures != i {
			t.Fatalf("after %d failures: %+v, want closed with %d failures", i, st, i)
		}
	}
	log.none(t)
	get() // the third failure opens a's circuit
	log.want(t, "a open")
	want := OriginState{Name: "a", State: Open, ConsecutiveFailures: 3, LastError: "503 SlowDown", LastErrorAt: now, LastChange: now}
	if st := f.States()[0]; st != want {
		t.Errorf("a: %+v, want %+v", st, want)
	}
	if st := f.States()[1]; st.State != Closed || st.ConsecutiveFailures != 0 {
		t.Errorf("b: %+v, want closed", st)
	}
	// Open: skipped at once.
	get()
	get()
	if a.count() != 3 {
		t.Errorf("a called %d times, want 3: an open circuit must be skipped", a.count())
	}
	if f.AllDown() {
		t.Error("AllDown with b healthy")
	}
}

// TestFailoverOriginErrorKeepsCircuitClosed: an HTTP origin's own 5xx
// answers, however many, never open its circuit (one broken URL must not
// take the origin away from every other URL), but still show as its last
// error and still fail over.
func TestFailoverOriginErrorKeepsCircuitClosed(t *testing.T) {
	a := newFake("a", fail(&StatusError{Status: 500, key: "/broken"}))
	b := newFake("b", serve("B"))
	cfg := testConfig()
	cfg.FailureThreshold = 2
	cfg.probeTick = make(chan time.Time) // never ticks
	f := NewFailover([]Origin{a, b}, cfg)
	defer f.Close()
	for range 5 {
		obj, err := f.Get(context.Background(), "/broken", Conditions{})
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		readAll(t, obj)
	}
	st := f.States()[0]
	if st.State != Closed || st.ConsecutiveFailures != 0 || !strings.Contains(st.LastError, "500") {
		t.Errorf("a: %+v, want closed, no failures counted, the 500 as last error", st)
	}
	if a.count() != 5 || b.count() != 5 {
		t.Errorf("calls a, b = %d, %d; want 5, 5: one try each, then the next origin", a.count(), b.count())
	}
}

func TestFailoverSuccessResetsCount(t *testing.T) {
	a := newFake("a", fail(errBoom))
	cfg := testConfig()
	cfg.Attempts = 1
	cfg.FailureThreshold = 3
	f := NewFailover([]Origin{a}, cfg)
	defer f.Close()
	for range 2 {
		f.Get(context.Background(), "/k", Conditions{})
	}
	a.set(fail(errNotFound)) // an answer, so a success
	f.Get(context.Background(), "/k", Conditions{})
	a.set(fail(errBoom))
	for range 2 {
		f.Get(context.Background(), "/k", Conditions{})
	}
	if st := f.States()[0]; st.State != Closed || st.ConsecutiveFailures != 2 {
		t.Errorf("a: %+v, want closed with 2 failures", st)
	}
}

// TestFailoverOpensMidGet checks that retries stop once the circuit opens.
func TestFailoverOpensMidGet(t *testing.T) {
	a := newFake("a", fail(errBoom))
	b := newFake("b", serve("B"))
	cfg := testConfig()
	cfg.Attempts = 5
	cfg.FailureThreshold = 2
	cfg.probeTick = make(chan time.Time)
	f := NewFailover([]Origin{a, b}, cfg)
	defer f.Close()
	obj, err := f.Get(context.Background(), "/k", Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, obj)
	if a.count() != 2 {
		t.Errorf("a called %d times, want 2 (the threshold), not 5", a.count())
	}
}

func TestFailoverAllDown(t *testing.T) {
	a := newFake("a", fail(errBoom))
	b := newFake("b", fail(errForbidden))
	cfg := testConfig()
	cfg.Attempts = 1
	cfg.FailureThreshold = 1
	cfg.probeTick = make(chan time.Time)
	f := NewFailover([]Origin{a, b}, cfg)
	defer f.Close()

	if f.AllDown() {
		t.Fatal("AllDown before any failure")
	}
	_, err := f.Get(context.Background(), "/k", Conditions{})
	if errors.Is(err, ErrAllDown) {
		t.Errorf("first Get: err = %v; the origins were tried, so not ErrAllDown", err)
	}
	if !f.AllDown() {
		t.Fatalf("AllDown = false after both failed; states %+v", f.States())
	}
	_, err = f.Get(context.Background(), "/k", Conditions{})
	if !errors.Is(err, ErrAllDown) {
		t.Errorf("err = %v, want ErrAllDown", err)
	}
	if a.count() != 1 || b.count() != 1 {
		t.Errorf("calls a, b = %d, %d; want 1, 1: no network when all are down", a.count(), b.count())
	}

	t.Run("no origins", func(t *testing.T) {
		f := NewFailover(nil, FailoverConfig{})
		defer f.Close()
		if _, err := f.Get(context.Background(), "/k", Conditions{}); !errors.Is(err, ErrAllDown) {
			t.Errorf("err = %v, want ErrAllDown", err)
		}
		if !f.AllDown() {
			t.Error("AllDown = false with no origins")
		}
	})
}

// openFailover returns a Failover over a (which fails now) and b, with a's
// circuit opened by failing Gets of /opening.js, one try each, and its
// prober driven by the returned channel. cfg.FailureThreshold defaults to 1
// here.
func openFailover(t *testing.T, a, b *fakeOrigin, cfg FailoverConfig) (*Failover, chan time.Time, stateLog) {
	t.Helper()
	tick := make(chan time.Time)
	log := make(stateLog, 10)
	cfg.Attempts = 1
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 1
	}
	cfg.OnStateChange = log.hook
	cfg.probeTick = tick
	cfg.Sleep = (&noSleep{}).sleep
	f := NewFailover([]Origin{a, b}, cfg)
	t.Cleanup(f.Close)
	a.set(fail(errBoom))
	for range cfg.FailureThreshold {
		if obj, err := f.Get(context.Background(), "/opening.js", Conditions{}); err == nil {
			obj.Body.Close()
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
	}
	log.want(t, "a open")
	a.drain()
	return f, tick, log
}

func TestFailoverProberRecovers(t *testing.T) {
	a := newFake("a", nil)
	b := newFake("b", serve("B"))
	f, tick, log := openFailover(t, a, b, FailoverConfig{})

	// A failing probe keeps the circuit open.
	tick <- time.Time{}
	if c := a.next(t); c.key != "/opening.js" || c.cond.IfNoneMatch != "" || !c.cond.IfModifiedSince.IsZero() {
		t.Errorf("probe = %+v, want an unconditional Get of the last served key", c)
	}
	tick <- time.Time{} // accepted once the first probe is recorded
	a.next(t)
	if st := f.States()[0]; st.State != Open || st.ConsecutiveFailures < 2 || !strings.Contains(st.LastError, "probing") {
		t.Errorf("after failed probes: %+v, want open, probe failures counted", st)
	}
	log.none(t)

	// The origin recovers: the next probe half-opens the circuit.
	a.set(fail(errNotMod))
	tick <- time.Time{}
	a.next(t)
	log.want(t, "a half-open")
	if f.AllDown() {
		t.Error("AllDown with a half-open")
	}

	// A real request uses it again and closes the circuit.
	a.set(serve("A"))
	obj, err := f.Get(context.Background(), "/k", Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, obj); got != "A" {
		t.Errorf("body = %q, want A from the recovered origin", got)
	}
	log.want(t, "a closed")
	if st := f.States()[0]; st.State != Closed || st.ConsecutiveFailures != 0 {
		t.Errorf("a: %+v, want closed with no failures", st)
	}
}

func TestFailoverHalfOpenFailureReopens(t *testing.T) {
	a := newFake("a", nil)
	b := newFake("b", serve("B"))
	f, tick, log := openFailover(t, a, b, FailoverConfig{FailureThreshold: 5})
	a.set(fail(errNotFound))
	tick <- time.Time{}
	a.next(t)
	log.want(t, "a half-open")

	a.set(fail(errBoom))
	obj, err := f.Get(context.Background(), "/k", Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, obj); got != "B" {
		t.Errorf("body = %q, want B", got)
	}
	log.want(t, "a open") // one failure, not FailureThreshold
	a.next(t)             // the real request
	// A new prober runs.
	tick <- time.Time{}
	a.next(t)
}

// TestFailoverProbeOutcomes checks which answers to a probe prove the
// origin healthy.
func TestFailoverProbeOutcomes(t *testing.T) {
	closed := make(chan struct{})
	tests := []struct {
		name    string
		fn      func(context.Context, string, Conditions) (*Object, error)
		healthy bool
	}{
		{name: "not modified", fn: fail(errNotMod), healthy: true},
		{name: "not found", fn: fail(errNotFound), healthy: true},
		{name: "object", healthy: true, fn: func(context.Context, string, Conditions) (*Object, error) {
			return &Object{Body: closeNotifier{Reader: strings.NewReader("x"), closed: closed}}, nil
		}},
		{name: "forbidden", fn: fail(errForbidden)},
		{name: "failure", fn: fail(errBoom)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newFake("a", nil)
			b := newFake("b", serve("B"))
			f, tick, log := openFailover(t, a, b, FailoverConfig{ProbeKey: "/probe.js"})
			a.set(tc.fn)
			tick <- time.Time{}
			if c := a.next(t); c.key != "/probe.js" {
				t.Errorf("probed %q, want ProbeKey", c.key)
			}
			if tc.healthy {
				log.want(t, "a half-open")
				return
			}
			tick <- time.Time{} // the first probe is recorded
			a.next(t)
			log.none(t)
			if st := f.States()[0]; st.State != Open {
				t.Errorf("a: %+v, want still open", st)
			}
		})
	}
	select {
	case <-closed:
	default:
		t.Error("the prober did not close the probe's body")
	}
}

type closeNotifier struct {
	io.Reader
	closed chan struct{}
}

func (c closeNotifier) Close() error { close(c.closed); return nil }

// TestFailoverProbeKeyFallback checks that without ProbeKey and without a
// served key, the prober asks for the key whose failure opened the circuit.
func TestFailoverProbeKeyFallback(t *testing.T) {
	a := newFake("a", nil)
	b := newFake("b", fail(errNotFound)) // no key served yet
	_, tick, _ := openFailover(t, a, b, FailoverConfig{})
	tick <- time.Time{}
	if c := a.next(t); c.key != "/opening.js" {
		t.Errorf("probed %q, want the failing key /opening.js", c.key)
	}
}

func TestFailoverAttemptTimeout(t *testing.T) {
	sawDone := make(chan struct{})
	a := newFake("a", func(ctx context.Context, _ string, _ Conditions) (*Object, error) {
		<-ctx.Done() // hangs until the attempt's bound
		close(sawDone)
		return nil, fmt.Errorf("fake: %w", ctx.Err())
	})
	cfg := testConfig()
	cfg.Attempts = 1
	cfg.AttemptTimeout = 50 * time.Millisecond
	f := NewFailover([]Origin{a}, cfg)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := f.Get(ctx, "/k", Conditions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("err = %v: looks like the caller cancelled", err)
	}
	select {
	case <-sawDone:
	default:
		t.Error("the origin's ctx was not done")
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Get took %v with AttemptTimeout 50ms", elapsed)
	}
	if st := f.States()[0]; st.ConsecutiveFailures != 1 {
		t.Errorf("failures = %d, want 1: a timeout is the origin's failure", st.ConsecutiveFailures)
	}
}

// slowBody blocks reads until release is closed, and fails them if ctx is
// done first, as an SDK body does.
type slowBody struct {
	ctx     context.Context
	release chan struct{}
	r       io.Reader
}

func (b *slowBody) Read(p []byte) (int, error) {
	select {
	case <-b.release:
		return b.r.Read(p)
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	}
}

func (b *slowBody) Close() error { return nil }

// TestFailoverSlowBody checks that AttemptTimeout bounds the wait for the
// headers only: the body stays readable after it, and the attempt's ctx
// lives until Body.Close.
func TestFailoverSlowBody(t *testing.T) {
	const timeout = 20 * time.Millisecond
	release := make(chan struct{})
	ctxDone := make(chan struct{})
	a := newFake("a", func(ctx context.Context, _ string, _ Conditions) (*Object, error) {
		context.AfterFunc(ctx, func() { close(ctxDone) })
		return &Object{Body: &slowBody{ctx: ctx, release: release, r: strings.NewReader("slow body")}, Size: 9}, nil
	})
	cfg := testConfig()
	cfg.AttemptTimeout = timeout
	f := NewFailover([]Origin{a}, cfg)
	defer f.Close()
	obj, err := f.Get(context.Background(), "/k", Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	// Not a sync sleep: waiting out the timeout is the point.
	select {
	case <-ctxDone:
		t.Fatal("attempt ctx cancelled once the headers arrived")
	case <-time.After(5 * timeout):
	}
	close(release)
	body, err := io.ReadAll(obj.Body)
	if err != nil || string(body) != "slow body" {
		t.Fatalf("body = %q, %v; want it readable after AttemptTimeout", body, err)
	}
	select {
	case <-ctxDone:
		t.Fatal("attempt ctx cancelled before Body.Close")
	default:
	}
	obj.Body.Close()
	select {
	case <-ctxDone:
	case <-time.After(10 * time.Second):
		t.Fatal("Body.Close did not release the attempt's ctx")
	}
	if st := f.States()[0]; st.ConsecutiveFailures != 0 {
		t.Errorf("failures = %d, want 0", st.ConsecutiveFailures)
	}
}

// TestFailoverClose checks that Close stops a prober waiting on its real
// timer, and that no prober starts after Close.
func TestFailoverClose(t *testing.T) {
	a := newFake("a", fail(errBoom))
	b := newFake("b", fail(errBoom))
	f := NewFailover([]Origin{a, b}, FailoverConfig{Attempts: 1, FailureThreshold: 1, ProbeInterval: time.Hour})
	f.Get(context.Background(), "/k", Conditions{}) // opens both: two probers
	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the probers")
	}
	f.Close() // idempotent
	for i, m := range f.members {
		f.mu.Lock()
		probing := m.probing
		f.mu.Unlock()
		if probing {
			t.Errorf("origin %d still marked as probing after Close", i)
		}
	}
}

// TestFailoverConcurrent runs Gets, probes and state reads at once, for
// the race detector.
func TestFailoverConcurrent(t *testing.T) {
	var n atomic.Int64
	flaky := func(ctx context.Context, key string, cond Conditions) (*Object, error) {
		if n.Add(1)%3 == 0 {
			return nil, errBoom
		}
		return serve("ok")(ctx, key, cond)
	}
	origins := []Origin{newFake("a", flaky), newFake("b", flaky), newFake("c", flaky)}
	tick := make(chan time.Time)
	var f *Failover
	cfg := FailoverConfig{
		FailureThreshold: 2,
		Sleep:            func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		OnStateChange:    func(string, State) { f.States() },
		probeTick:        tick,
	}
	f = NewFailover(origins, cfg)
	stop := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Go(func() {
		for {
			select {
			case tick <- time.Time{}:
			case <-stop:
				return
			}
		}
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				obj, err := f.Get(context.Background(), "/k", Conditions{})
				if err == nil {
					io.Copy(io.Discard, obj.Body)
					obj.Body.Close()
				}
				f.AllDown()
			}
		})
	}
	wg.Wait()
	close(stop)
	ticker.Wait()
	f.Close()
}

func TestFailoverString(t *testing.T) {
	f := NewFailover([]Origin{newFake("s3://a/p", nil), newFake("s3://b/p", nil)}, FailoverConfig{})
	defer f.Close()
	if got, want := f.String(), "s3://a/p,s3://b/p"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", State(7): "State(7)"} {
		if s.String() != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), s.String(), want)
		}
	}
}

// TestFailoverS3 runs a Failover over a real S3 behind a FaultProxy and
// the same S3 directly.
func TestFailoverS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "site")
	srv.Put(t, "site", "w.js", []byte("widget"), s3test.PutOptions{ContentType: "text/javascript"})
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	primary := newTestS3(t, proxy.OriginURL("site", ""))
	replica := newTestS3(t, srv.OriginURL("site", ""))
	tick := make(chan time.Time)
	log := make(stateLog, 10)
	f := NewFailover([]Origin{primary, replica}, FailoverConfig{
		FailureThreshold: 2,
		AttemptTimeout:   200 * time.Millisecond,
		Sleep:            (&noSleep{}).sleep,
		OnStateChange:    log.hook,
		probeTick:        tick,
	})
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	get := func() {
		t.Helper()
		obj, err := f.Get(ctx, "/w.js", Conditions{})
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got := readAll(t, obj); got != "widget" {
			t.Fatalf("body = %q", got)
		}
	}

	get()
	if n := proxy.GetsFor("w.js"); n != 1 {
		t.Fatalf("primary saw %d GETs, want 1", n)
	}

	// 403 from the primary: the replica answers, no retry on the primary
	// (neither by the Failover nor by the SDK).
	proxy.SetFault(s3test.Fault{Status: 403})
	get()
	get()
	log.want(t, "s3://site open")
	if n := proxy.GetsFor("w.js"); n != 3 {
		t.Errorf("primary saw %d GETs, want 3", n)
	}
	get()
	if n := proxy.GetsFor("w.js"); n != 3 {
		t.Errorf("primary saw %d GETs with its circuit open, want still 3", n)
	}

	// Recovery through a real probe.
	proxy.SetFault(s3test.Fault{})
	tick <- time.Time{}
	log.want(t, "s3://site half-open")
	get()
	log.want(t, "s3://site closed")
	if n := proxy.GetsFor("w.js"); n != 5 {
		t.Errorf("primary saw %d GETs, want 5 (a probe and a Get)", n)
	}

	// A primary that never answers: AttemptTimeout moves on to the
	// replica.
	hold := make(chan struct{})
	defer close(hold)
	proxy.SetFault(s3test.Fault{Hold: hold})
	start := time.Now()
	get()
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Get took %v with AttemptTimeout 200ms", elapsed)
	}
	if st := f.States()[0]; st.ConsecutiveFailures != 2 || !strings.Contains(st.LastError, "deadline") {
		t.Errorf("primary: %+v, want 2 timeouts", st)
	}
}

// TestNewS3Timeouts checks the connect_timeout= and header_timeout=
// parameters of NewS3. (It belongs with TestNewS3Transport in
// parse_test.go.)
func TestNewS3Timeouts(t *testing.T) {
	tests := []struct {
		query       string
		wantDial    time.Duration
		wantHeader  time.Duration
		wantErrPart string
	}{
		{query: "", wantDial: s3DialTimeout, wantHeader: s3ResponseHeaderTimeout},
		{query: "connect_timeout=500ms", wantDial: 500 * time.Millisecond, wantHeader: s3ResponseHeaderTimeout},
		{query: "header_timeout=1m&connect_timeout=3s", wantDial: 3 * time.Second, wantHeader: time.Minute},
		{query: "connect_timeout=5", wantErrPart: `connect_timeout "5"`},
		{query: "header_timeout=soon", wantErrPart: `header_timeout "soon"`},
		{query: "header_timeout=-1s", wantErrPart: `header_timeout "-1s"`},
		{query: "connect_timeout=0s", wantErrPart: `connect_timeout "0s"`},
		{query: "connect_timeout=1s&connect_timeout=2s", wantErrPart: "connect_timeout given 2 times"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			isolateAWSEnv(t)
			u, err := url.Parse("s3://bkt?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			o, err := NewS3(context.Background(), u)
			if tc.wantErrPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrPart) {
					t.Fatalf("NewS3 err = %v, want one containing %q", err, tc.wantErrPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bc := o.client.Options().HTTPClient.(*awshttp.BuildableClient)
			if got := bc.GetDialer().Timeout; got != tc.wantDial {
				t.Errorf("dial timeout = %v, want %v", got, tc.wantDial)
			}
			if got := bc.GetTransport().ResponseHeaderTimeout; got != tc.wantHeader {
				t.Errorf("ResponseHeaderTimeout = %v, want %v", got, tc.wantHeader)
			}
		})
	}
}

// downOrigin always fails, like an S3 region that is down.
type downOrigin struct{}

func (downOrigin) Get(context.Context, string, Conditions) (*Object, error) {
	return nil, errors.New("connection refused")
}
func (downOrigin) String() string { return "s3://primary" }

func ExampleFailover() {
	replica := NewFS(fstest.MapFS{"widget.js": {Data: []byte("console.log('w')")}}, "replica")
	f := NewFailover([]Origin{downOrigin{}, replica}, FailoverConfig{Backoff: time.Millisecond})
	defer f.Close()

	obj, err := f.Get(context.Background(), "/widget.js", Conditions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer obj.Body.Close()
	body, _ := io.ReadAll(obj.Body)
	fmt.Println(f, string(body))
	fmt.Println(f.States()[0].State, f.States()[0].ConsecutiveFailures)
	// Output:
	// s3://primary,replica console.log('w')
	// closed 2
}
