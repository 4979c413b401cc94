package dnsgeo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sizes of responses, RFC 6891 and the DNS flag day 2020.
const (
	// maxUDPSize is the largest UDP response we send and the EDNS
	// buffer size we advertise: 1232 bytes fits in one IPv6 packet on
	// any path, so answers never depend on IP fragmentation.
	maxUDPSize = 1232
	// noEDNSSize is the limit for clients without EDNS (RFC 1035).
	noEDNSSize = 512
	// maxCNAMEHops bounds CNAME chains followed inside the zone.
	maxCNAMEHops = 8
)

// Server is the DNS handler: it answers queries for one zone from a
// snapshot of (config, latency table, health), which Update replaces
// atomically: a query sees either the old snapshot or the new one,
// never a mix, and none is dropped during a swap. Safe for concurrent
// use. Create with New.
type Server struct {
	log     *slog.Logger
	now     func() time.Time
	tick    <-chan time.Time
	metrics *metrics

	errlog *errorLog

	state   atomic.Pointer[snapshot]
	mu      sync.Mutex   // serializes Update
	probeMu sync.Mutex   // one probe round at a time; Update waits for it
	panics  atomic.Int64 // also in metrics; read by the fuzz test
}

// snapshot is one generation of everything a query reads. Immutable,
// except the prober's health word, which it reads atomically.
type snapshot struct {
	cfg      *Config
	zone     *zone
	router   *router
	prober   *Prober
	rrl      *rrl      // nil when disabled
	compiled *compiled // the answers in wire form; nil: every query takes the slow path
	answered [][3]prometheus.Counter
}

// Options are the optional parts of a Server. The zero value is usable.
type Options struct {
	// Logger receives health changes and reloads. Nil discards.
	Logger *slog.Logger
	// Now is the clock of the prober's state and of rate limiting.
	// Nil means time.Now. Tests set it to control time.
	Now func() time.Time
	// Tick, when set, makes Run probe once per value received instead
	// of on its own ticker every health interval. Tests use it.
	Tick <-chan time.Time
}

// New returns a Server for cfg (from LoadConfig or ParseConfig) and
// table (nil means EmptyTable). Call Run to start health probes.
func New(cfg *Config, table *Table, opts Options) (*Server, error) {
	s := &Server{log: opts.Logger, now: opts.Now, tick: opts.Tick, metrics: newMetrics()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.errlog = newErrorLog(s.log, s.now)
	if err := s.Update(cfg, table); err != nil {
		return nil, err
	}
	return s, nil
}

// Update validates cfg and table together and, if they make a working
// snapshot, swaps it in. On error the current snapshot keeps serving.
// Health state carries over for regions whose URL did not change.
func (s *Server) Update(cfg *Config, table *Table) error {
	if cfg == nil || cfg.zone == nil {
		return errors.New("config was not validated (use LoadConfig or ParseConfig)")
	}
	if table == nil {
		table = EmptyTable()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	old := s.state.Load()
	var prev *Prober
	var prevRegions []string
	if old != nil {
		prev = old.prober
		prevRegions = old.cfg.regionNames
	}
	p, err := newProber(cfg, prev, s.now, s.log)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	p.onProbe = s.metrics.probe
	st := &snapshot{
		cfg:      cfg,
		zone:     cfg.zone,
		router:   newRouter(cfg, table),
		prober:   p,
		answered: s.metrics.regionCounters(cfg.regionNames),
	}
	if *cfg.RRL.Enabled {
		if old != nil && old.rrl != nil && sameRRL(old.cfg, cfg) {
			st.rrl = old.rrl
		} else {
			st.rrl = newRRL(cfg.RRL, cfg.exempt, s.now)
		}
	}
	// The compiled answers depend on the config alone (health picks
	// among them; the table only routes): a table reload keeps them.
	if old != nil && old.cfg == cfg && old.compiled != nil {
		st.compiled = old.compiled
	} else {
		st.compiled = compile(st)
	}
	s.metrics.forgetRegions(prevRegions, cfg.regionNames)
	for _, r := range p.Status() {
		s.metrics.setUp(r.Region, r.Up)
	}
	s.metrics.prefixes.Set(float64(table.Len()))
	s.metrics.lastReload.Set(float64(time.Now().Unix()))
	s.state.Store(st)
	if unknown := unknownRegions(cfg, table); len(unknown) > 0 {
		s.log.Warn("latency table names regions the config does not have; ignored", "regions", unknown)
	}
	return nil
}

func sameRRL(a, b *Config) bool {
	x, y := a.RRL, b.RRL
	return x.ResponsesPerSecond == y.ResponsesPerSecond && *x.Slip == *y.Slip &&
		x.IPv4PrefixLength == y.IPv4PrefixLength && x.IPv6PrefixLength == y.IPv6PrefixLength &&
		fmt.Sprint(a.exempt) == fmt.Sprint(b.exempt)
}

func unknownRegions(c *Config, t *Table) []string {
	var out []string
	for _, r := range t.regions {
		if c.regionIndex(r) < 0 {
			out = append(out, r)
		}
	}
	return out
}

// Config returns the config in use.
func (s *Server) Config() *Config { return s.state.Load().cfg }

// Table returns the latency table in use.
func (s *Server) Table() *Table { return s.state.Load().router.table }

// RegionStatus returns the health of every region.
func (s *Server) RegionStatus() []RegionStatus { return s.state.Load().prober.Status() }

// ProbeAll runs one round of health probes now and returns when the
// state is updated.
func (s *Server) ProbeAll(ctx context.Context) {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	s.state.Load().prober.ProbeAll(ctx)
}

// Run probes every region at once and then on every tick (each health
// interval, or Options.Tick) until ctx is done.
func (s *Server) Run(ctx context.Context) {
	s.ProbeAll(ctx)
	if s.tick != nil {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.tick:
				s.ProbeAll(ctx)
			}
		}
	}
	interval := s.Config().Health.Interval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.ProbeAll(ctx)
			if iv := s.Config().Health.Interval; iv != interval {
				interval = iv
				t.Reset(iv)
			}
		}
	}
}
