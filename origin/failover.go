package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrAllDown means that every origin of a Failover has its circuit open, so
// Get failed at once without contacting any of them. Callers answer from
// stale copies straight away.
var ErrAllDown = errors.New("origin: every origin is down")

// Defaults of FailoverConfig, applied to zero (or negative) fields.
const (
	defaultAttempts         = 2
	defaultBackoff          = 50 * time.Millisecond
	maxBackoff              = time.Second // unless Backoff itself is larger
	defaultAttemptTimeout   = 5 * time.Second
	defaultFailureThreshold = 5
	defaultProbeInterval    = 2 * time.Second
)

// FailoverConfig tunes a Failover. The zero value is ready to use: two
// tries per origin 50ms apart (on average 25ms, with jitter), a 5s bound
// on each try, circuits that open after 5 failures in a row and are probed
// every 2s.
//
// Worst case before a Get gives up, with N origins all hanging:
// N × Attempts × AttemptTimeout plus the backoffs (2 × 2 × 5s ≈ 20s with
// the defaults), which is why the edge serves stale when AllDown reports
// true rather than calling Get.
type FailoverConfig struct {
	// Attempts is how many times one Get tries each origin before moving
	// to the next, counting the first try. Zero means 2 (one retry).
	// A 403 is not retried on the same origin (see Failover).
	Attempts int
	// Backoff is the base wait before a retry on the same origin. The
	// n-th retry waits a random duration in [0, Backoff×2^(n-1)) ("full
	// jitter"), the upper bound capped at 1s or Backoff, whichever is
	// larger. Zero means 50ms.
	Backoff time.Duration
	// AttemptTimeout bounds one try from the call to the origin's Get
	// until it returns, that is until the response headers arrived. It
	// does not bound reading the body, which the caller's ctx does. Zero
	// means 5s. The S3 origin also has its own header_timeout= (5s by
	// default); whichever is shorter fires first.
	AttemptTimeout time.Duration
	// FailureThreshold is the number of failures in a row, counted across
	// all Gets, that opens an origin's circuit. Zero means 5.
	FailureThreshold int
	// ProbeInterval is how often a background prober tries an origin
	// whose circuit is open. Zero means 2s.
	ProbeInterval time.Duration
	// ProbeKey is the key the prober asks for, with a plain Get whose
	// body it closes unread (so prefer a small object). An object,
	// ErrNotModified and ErrNotFound all prove that the origin answers;
	// ErrForbidden and any failure do not. (A conditional
	// If-None-Match: * would save the body, but S3-compatible servers
	// differ in how they treat it, and a 400 or 412 would keep the
	// circuit open for ever.)
	//
	// Use a key that exists, such as the must-serve widget: S3 answers
	// 403, not 404, for a missing key when the credentials lack
	// s3:ListBucket, and 403 counts as down. "" (the default) means the
	// most recent key that an origin of this Failover served (an object
	// or a 304), falling back to the key whose failure opened the
	// circuit.
	ProbeKey string

	// Now is the clock for OriginState.LastChange; nil means time.Now.
	Now func() time.Time
	// Sleep waits d before a retry, returning early with ctx's error when
	// ctx is done; nil means a real timer. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns the jitter in [0, 1); nil means math/rand/v2. It must
	// be safe for concurrent use.
	Rand func() float64
	// OnStateChange, if set, is called after an origin's circuit changes
	// state, for logs and metrics. Calls are serialised and come in the
	// order of the changes. It may call States or AllDown but not Get, and
	// must return quickly: it holds up the Get or prober that made the
	// change.
	OnStateChange func(origin string, state State)

	// probeTick, when set (by tests), drives the probers instead of
	// ProbeInterval: each value received makes one prober probe once.
	probeTick <-chan time.Time
}

// withDefaults returns c with every zero or invalid field set to its
// default: the one place defaults live.
func (c FailoverConfig) withDefaults() FailoverConfig {
	if c.Attempts < 1 {
		c.Attempts = defaultAttempts
	}
	if c.Backoff <= 0 {
		c.Backoff = defaultBackoff
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = defaultAttemptTimeout
	}
	if c.FailureThreshold < 1 {
		c.FailureThreshold = defaultFailureThreshold
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = defaultProbeInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	return c
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// State is the state of one origin's circuit breaker.
type State int

const (
	// Closed: the origin is healthy and Get uses it.
	Closed State = iota
	// Open: the origin failed FailureThreshold times in a row; Get skips
	// it without waiting, and a background prober tries it every
	// ProbeInterval.
	Open
	// HalfOpen: a probe succeeded; real requests use the origin again.
	// The first success closes the circuit, the first failure opens it.
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// OriginState is a snapshot of one origin's circuit, for metrics and health.
type OriginState struct {
	Name  string // the origin's String()
	State State
	// ConsecutiveFailures counts failures (of real requests and of
	// probes) since the last success.
	ConsecutiveFailures int
	// LastError is the message of the most recent failure; it is kept
	// after a recovery, for diagnosis. "" if the origin never failed.
	LastError string
	// LastErrorAt is when that failure happened.
	LastErrorAt time.Time
	// LastChange is when State last changed; zero if it never did.
	LastChange time.Time
}

// Failover is an Origin that tries several origins in order (a primary
// and its replicas), with retries, a bound on each try, and a circuit
// breaker per origin. The edge wraps even a single origin in one, for the
// retries and the breaker. Safe for concurrent use.
//
// A Get goes like this, for each origin in order:
//
//   - If its circuit is open, skip it at once. If every circuit is open,
//     fail with ErrAllDown without touching the network.
//   - Try it, bounded by AttemptTimeout. An answer ends the Get: an
//     object, ErrNotModified, or ErrNotFound. ErrNotFound is not retried on
//     the next origin: replicas hold the same objects, a missing object is
//     missing everywhere, and asking every origin would multiply the cost
//     of each 404. (A replica that lags can miss a new object; list the
//     origin that is written first first.)
//   - A failure (network error, timeout, 5xx, throttling) is retried on
//     the same origin, up to Attempts tries, after a jittered backoff, and
//     then the next origin is tried. ErrForbidden (S3 403) is a failure,
//     since with broken credentials S3 refuses everything, but it is not
//     retried on the same origin: it is deterministic, and the S3 SDK
//     already retries the transient 403 of a skewed clock. The next origin
//     is tried at once. So is it after an HTTP origin's own 5xx answer
//     (StatusError): the origin is up and chose to fail, and asking it
//     again at once would add load where it hurts (nginx's
//     proxy_next_upstream does not retry one either). Such an answer does
//     not count against the circuit either: the circuit is for origins
//     that do not answer, and counting one broken URL's 500s would let it
//     open the circuit for every other URL.
//   - When the caller's ctx is done, Get stops, and that is not counted
//     against the origin.
//
// If every origin failed, the error wraps each origin's last error, so
// errors.Is(err, ErrForbidden) holds when one of them answered 403.
//
// Each failure counts against the origin; FailureThreshold in a row open
// its circuit, and a success resets the count. While a circuit is open, a
// background prober asks the origin for ProbeKey every ProbeInterval; one
// good probe makes it half-open, so real requests use it again.
//
// String is the origins' names joined with commas; the cache uses it as a
// key prefix, so it depends only on the origins and their order.
type Failover struct {
	members []*member
	cfg     FailoverConfig
	name    string

	// lastGoodKey is the latest key an origin served, the default probe.
	lastGoodKey atomic.Pointer[string]

	// probeCtx is cancelled by Close, to stop probes in flight.
	probeCtx    context.Context
	stopProbing context.CancelFunc
	probers     sync.WaitGroup

	// hookMu serialises OnStateChange calls, which deliver the changes
	// queued in changes in order. Lock order: hookMu, then mu; never the
	// reverse, so the hook may read the state.
	hookMu sync.Mutex

	mu      sync.Mutex
	closed  bool          // guarded by mu; no new probers after Close
	changes []stateChange // guarded by mu; not yet passed to OnStateChange
}

// stateChange is one change for OnStateChange.
type stateChange struct {
	origin string
	state  State
}

// member is one origin and its circuit. The fields below origin and name
// are guarded by Failover.mu.
type member struct {
	origin Origin
	name   string

	state      State
	failures   int
	lastErr    string
	lastErrAt  time.Time
	lastChange time.Time
	probing    bool   // a prober goroutine runs for this member
	failKey    string // the key whose failure opened the circuit
}

// NewFailover returns a Failover over origins, tried in the order given.
// It starts no goroutine until a circuit opens; Close stops the probers.
// With no origins, every Get fails with ErrAllDown.
func NewFailover(origins []Origin, cfg FailoverConfig) *Failover {
	names := make([]string, len(origins))
	members := make([]*member, len(origins))
	for i, o := range origins {
		names[i] = o.String()
		members[i] = &member{origin: o, name: names[i]}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Failover{
		members:     members,
		cfg:         cfg.withDefaults(),
		name:        strings.Join(names, ","),
		probeCtx:    ctx,
		stopProbing: cancel,
	}
}

// String returns the origins' names joined with commas, e.g.
// "s3://a/p,s3://b/p".
func (f *Failover) String() string { return f.name }

// Close stops the probers and waits for them to return. Get still works
// after Close, but open circuits no longer recover. Close is idempotent.
func (f *Failover) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.stopProbing()
	f.probers.Wait()
}

// States returns a snapshot of every origin's circuit, in origin order.
func (f *Failover) States() []OriginState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]OriginState, len(f.members))
	for i, m := range f.members {
		out[i] = OriginState{
			Name:                m.name,
			State:               m.state,
			ConsecutiveFailures: m.failures,
			LastError:           m.lastErr,
			LastErrorAt:         m.lastErrAt,
			LastChange:          m.lastChange,
		}
	}
	return out
}

// AllDown reports whether every circuit is open, in which case Get fails
// at once with ErrAllDown: callers can serve stale without calling it.
func (f *Failover) AllDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.members {
		if m.state != Open {
			return false
		}
	}
	return true
}

// Get fetches key from the first origin that answers; see Failover.
func (f *Failover) Get(ctx context.Context, key string, cond Conditions) (*Object, error) {
	fe := &failoverError{key: key}
	tried := false
	for _, m := range f.members {
		if !f.usable(m) {
			fe.skipped = append(fe.skipped, m.name)
			continue
		}
		tried = true
		obj, answered, err := f.getFrom(ctx, m, key, cond)
		if answered {
			return obj, err
		}
		fe.errs = append(fe.errs, fmt.Errorf("%s: %w", m.name, err))
		if ctx.Err() != nil {
			break
		}
	}
	if !tried {
		return nil, fmt.Errorf("origin failover get %q: %w (circuits open: %s)", key, ErrAllDown, strings.Join(fe.skipped, ", "))
	}
	if err := ctx.Err(); err != nil && !errors.Is(fe, err) {
		fe.errs = append(fe.errs, err)
	}
	return nil, fe
}

// getFrom tries one origin up to Attempts times. answered reports an
// outcome that ends the Get (an object, ErrNotFound, ErrNotModified);
// otherwise err is the last failure.
func (f *Failover) getFrom(ctx context.Context, m *member, key string, cond Conditions) (obj *Object, answered bool, err error) {
	for attempt := range f.cfg.Attempts {
		if attempt > 0 {
			if !f.usable(m) {
				break // the circuit opened meanwhile, maybe by another Get
			}
			if serr := f.cfg.Sleep(ctx, f.backoff(attempt)); serr != nil {
				return nil, false, fmt.Errorf("waiting to retry: %w (after: %w)", serr, err)
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			if err == nil {
				return nil, false, cerr
			}
			return nil, false, fmt.Errorf("%w (after: %w)", cerr, err)
		}
		obj, err = f.try(ctx, m, key, cond)
		if isAnswer(err) {
			f.succeeded(m, key, err)
			return obj, true, err
		}
		if ctx.Err() != nil {
			return nil, false, err // the caller gave up: not the origin's fault
		}
		if se := (*StatusError)(nil); errors.As(err, &se) {
			// The origin answered, with its own 5xx: it is up, and failing
			// by choice on this key. That is not counted against its
			// circuit, or one broken URL asked five times would open the
			// circuit for every other; nor is it asked again (see
			// worthRetrying). The next origin is.
			f.noteError(m, err)
			return nil, false, err
		}
		f.failed(m, key, err)
		if !worthRetrying(err) {
			break
		}
	}
	return nil, false, err
}

// worthRetrying reports whether a failure may pass if the same origin is
// asked again: not a 403.
func worthRetrying(err error) bool {
	return !errors.Is(err, ErrForbidden)
}

// isAnswer reports whether err (from an origin's Get) is an answer rather
// than a failure of the origin.
func isAnswer(err error) bool {
	return err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotModified)
}

// backoff returns the jittered wait before retry number n (1-based).
func (f *Failover) backoff(n int) time.Duration {
	ceiling := max(maxBackoff, f.cfg.Backoff)
	d := f.cfg.Backoff
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	return time.Duration(f.cfg.Rand() * float64(d))
}

// try makes one attempt on m, bounded by AttemptTimeout until the origin's
// Get returns.
//
// The bound is a timer that cancels the attempt's context, not
// context.WithTimeout: once the headers are in, the timer is stopped and
// the context lives on until Body.Close, because origins (the S3 SDK)
// stream the body under the request's context and a cancelled context
// would cut it off.
func (f *Failover) try(ctx context.Context, m *member, key string, cond Conditions) (*Object, error) {
	timeout := f.cfg.AttemptTimeout
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(timeout, func() {
		cancel(fmt.Errorf("origin %s: attempt timed out after %v: %w", m.name, timeout, context.DeadlineExceeded))
	})
	obj, err := m.origin.Get(actx, key, cond)
	if !timer.Stop() {
		// The timer fired: whatever Get returned, the context is gone.
		if obj != nil {
			obj.Body.Close()
		}
		cancel(nil)
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("answered too late")
			}
			return nil, fmt.Errorf("no response within %v: %w (origin: %v)", timeout, context.DeadlineExceeded, err)
		}
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	if err == nil && obj == nil {
		err = errors.New("origin returned neither an object nor an error")
	}
	if err != nil {
		if obj != nil {
			obj.Body.Close()
		}
		cancel(nil)
		return nil, err
	}
	obj.Body = &attemptBody{ReadCloser: obj.Body, cancel: cancel}
	return obj, nil
}

// attemptBody releases the attempt's context when the body is closed.
type attemptBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *attemptBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// usable reports whether Get may use m now: its circuit is not open.
func (f *Failover) usable(m *member) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m.state != Open
}

// succeeded records an answer from m.
func (f *Failover) succeeded(m *member, key string, err error) {
	if err == nil || errors.Is(err, ErrNotModified) {
		if p := f.lastGoodKey.Load(); p == nil || *p != key {
			f.lastGoodKey.Store(&key)
		}
	}
	f.mu.Lock()
	m.failures = 0
	// A late success while open (a request that was already in flight) is
	// evidence too; the prober notices and exits.
	f.setStateLocked(m, Closed) // unlocks f.mu
}

// noteError records err as m's last error, for States, without counting
// it as a failure.
func (f *Failover) noteError(m *member, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.lastErr, m.lastErrAt = err.Error(), f.cfg.Now()
}

// failed records a failure of m on key, opening its circuit at the
// threshold, or at once when it was half-open.
func (f *Failover) failed(m *member, key string, err error) {
	f.mu.Lock()
	m.failures++
	m.lastErr, m.lastErrAt = err.Error(), f.cfg.Now()
	switch {
	case m.state == HalfOpen, m.state == Closed && m.failures >= f.cfg.FailureThreshold:
		m.failKey = key
		f.startProberLocked(m)
		f.setStateLocked(m, Open)
	default:
		f.mu.Unlock()
	}
}

// setStateLocked sets m's state, unlocks f.mu, and calls OnStateChange if
// the state changed. f.mu must be held.
func (f *Failover) setStateLocked(m *member, s State) {
	if m.state == s {
		f.mu.Unlock()
		return
	}
	m.state = s
	m.lastChange = f.cfg.Now()
	if f.cfg.OnStateChange == nil {
		f.mu.Unlock()
		return
	}
	f.changes = append(f.changes, stateChange{m.name, s})
	f.mu.Unlock()
	f.deliverChanges()
}

// deliverChanges passes the queued changes to OnStateChange, in order. A
// change queued by another goroutine may be delivered by this one.
func (f *Failover) deliverChanges() {
	f.hookMu.Lock()
	defer f.hookMu.Unlock()
	for {
		f.mu.Lock()
		if len(f.changes) == 0 {
			f.mu.Unlock()
			return
		}
		c := f.changes[0]
		f.changes = f.changes[1:]
		if len(f.changes) == 0 {
			f.changes = nil // let the backing array go
		}
		f.mu.Unlock()
		f.cfg.OnStateChange(c.origin, c.state)
	}
}

// startProberLocked starts m's prober unless it runs already or the
// Failover is closed. f.mu must be held.
func (f *Failover) startProberLocked(m *member) {
	if m.probing || f.closed {
		return
	}
	m.probing = true
	f.probers.Add(1)
	go f.probe(m)
}

// probe is m's prober: it probes every ProbeInterval (or on each probeTick)
// until a probe succeeds, the circuit is no longer open, or Close.
func (f *Failover) probe(m *member) {
	defer f.probers.Done()
	tick := f.cfg.probeTick
	var timer *time.Timer
	if tick == nil {
		timer = time.NewTimer(f.cfg.ProbeInterval)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		select {
		case <-f.probeCtx.Done():
			f.stopProber(m)
			return
		case <-tick:
		}
		if f.probeDone(m, f.probeOnce(m)) {
			return
		}
		if timer != nil {
			timer.Reset(f.cfg.ProbeInterval)
		}
	}
}

// stopProber marks m as having no prober.
func (f *Failover) stopProber(m *member) {
	f.mu.Lock()
	m.probing = false
	f.mu.Unlock()
}

// probeOnce asks m for the probe key and returns nil if it answered.
func (f *Failover) probeOnce(m *member) error {
	f.mu.Lock()
	key, state := f.cfg.ProbeKey, m.state
	if key == "" {
		key = m.failKey
		if p := f.lastGoodKey.Load(); p != nil {
			key = *p
		}
	}
	f.mu.Unlock()
	if state != Open {
		return nil // closed by a late success; probeDone just exits
	}
	ctx, cancel := context.WithTimeout(f.probeCtx, f.cfg.AttemptTimeout)
	defer cancel()
	obj, err := m.origin.Get(ctx, key, Conditions{})
	if obj != nil {
		obj.Body.Close()
	}
	if isAnswer(err) {
		return nil
	}
	return fmt.Errorf("probing %q: %w", key, err)
}

// probeDone records a probe's outcome and reports whether the prober is
// done: the circuit is half-open (or was closed meanwhile), or Close.
func (f *Failover) probeDone(m *member, err error) bool {
	f.mu.Lock()
	switch {
	case f.closed || m.state != Open:
		m.probing = false
		f.mu.Unlock()
		return true
	case err != nil:
		m.failures++
		m.lastErr, m.lastErrAt = err.Error(), f.cfg.Now()
		f.mu.Unlock()
		return false
	}
	m.probing = false
	f.setStateLocked(m, HalfOpen) // unlocks f.mu
	return true
}

// failoverError is the error of a Get that no origin answered: each tried
// origin's last error, and the names of those skipped.
type failoverError struct {
	key     string
	errs    []error
	skipped []string
}

func (e *failoverError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "origin failover get %q: no origin answered: ", e.key)
	for i, err := range e.errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	for _, name := range e.skipped {
		fmt.Fprintf(&b, "; %s: circuit open", name)
	}
	return b.String()
}

func (e *failoverError) Unwrap() []error { return e.errs }
