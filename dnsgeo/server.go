package dnsgeo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
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
	rrl      *rrl // nil when disabled
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

// reply is what the handler learned while answering, for rate
// limiting and metrics.
type reply struct {
	msg      *dns.Msg
	qtype    uint16
	class    byte   // RRL response class
	name     string // RRL name: the query name, or the zone for NXDOMAIN
	region   int    // routed region, -1 when not routed or all down
	source   routeSource
	routed   bool
	limitUDP int // size limit for UDP
}

// ServeDNS answers one query. It implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	defer func() {
		if v := recover(); v != nil {
			s.metrics.panics.Inc()
			s.panics.Add(1)
			s.log.Error("panic answering query", "panic", fmt.Sprint(v))
			if len(r.Question) > 0 {
				m := new(dns.Msg)
				m.SetRcode(r, dns.RcodeServerFailure)
				_ = w.WriteMsg(m)
			}
		}
	}()
	client, udp := remote(w)
	st := s.state.Load()
	rep := st.answer(r, client)
	if rep == nil {
		return
	}
	m := rep.msg
	if udp && st.rrl != nil {
		switch st.rrl.check(client, rep.class, rep.name, rep.qtype) {
		case rrlDrop:
			s.metrics.rrlDropped.Inc()
			return
		case rrlSlip:
			s.metrics.rrlSlipped.Inc()
			emptyTruncated(m)
		}
	}
	limit := dns.MaxMsgSize
	if udp {
		limit = rep.limitUDP
	}
	buf, err := m.Pack()
	if err == nil && len(buf) > limit {
		if fit(m, limit) {
			s.metrics.truncated.Inc()
		}
		buf, err = m.Pack()
	}
	if err != nil {
		s.log.Error("packing response", "error", err, "question", r.Question)
		m2 := new(dns.Msg)
		m2.SetRcode(r, dns.RcodeServerFailure)
		if buf, err = m2.Pack(); err != nil {
			return
		}
		m = m2
	}
	// Counted before the write: a client that has its answer must find
	// it in the metrics.
	s.metrics.query(rep.qtype, m.Rcode)
	if rep.routed && rep.region >= 0 {
		st.answered[rep.region][rep.source].Inc()
	} else if rep.routed && rep.source == sourceAllDown {
		for i := range st.answered {
			st.answered[i][sourceAllDown].Inc()
		}
	}
	_, _ = w.Write(buf)
}

// remote returns the client's address and whether it came over UDP.
func remote(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), true
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), false
	}
	return netip.Addr{}, false
}

// fit makes m fit in limit bytes, cleanly: first it drops the additional
// records (RFC 2181 §9: no TC for those), then, if the answer itself
// does not fit, it sends no partial RRset but an empty answer with TC
// set, so the client retries over TCP (RFC 7766). It reports whether TC
// was set.
func fit(m *dns.Msg, limit int) bool {
	opt := m.IsEdns0()
	m.Extra = nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	if m.Len() <= limit {
		return false
	}
	emptyTruncated(m)
	return true
}

// emptyTruncated turns m into an empty response with TC set, keeping
// the question, the rcode and the OPT record (with its ECS option).
func emptyTruncated(m *dns.Msg) {
	opt := m.IsEdns0()
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	m.Truncated = true
}

// answer builds the response to r from client. It returns nil when
// nothing must be sent (a response, not a query).
func (st *snapshot) answer(r *dns.Msg, client netip.Addr) *reply {
	if r.Response {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Compress = true
	rep := &reply{msg: m, class: rrlClassError, region: -1, limitUDP: noEDNSSize}
	if len(r.Question) > 0 {
		rep.qtype = r.Question[0].Qtype
	}
	fail := func(rcode int) *reply {
		m.Rcode = rcode
		m.Authoritative = false
		m.Answer, m.Ns = nil, nil
		return rep
	}
	if r.Opcode != dns.OpcodeQuery {
		m.Question = nil
		return fail(dns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 || len(r.Answer) > 0 || len(r.Ns) > 0 {
		m.Question = nil
		return fail(dns.RcodeFormatError)
	}

	// EDNS (RFC 6891) and Client Subnet (RFC 7871).
	var (
		reqOpt *dns.OPT
		ecs    *dns.EDNS0_SUBNET
	)
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if reqOpt != nil || o.Hdr.Name != "." { // §6.1.1: one OPT, root owner
				return fail(dns.RcodeFormatError)
			}
			reqOpt = o
		}
	}
	if reqOpt != nil {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(maxUDPSize)
		if reqOpt.Do() {
			opt.SetDo() // RFC 3225 §3: copy DO, though we do not sign
		}
		m.Extra = append(m.Extra, opt)
		rep.limitUDP = max(noEDNSSize, min(int(reqOpt.UDPSize()), maxUDPSize))
		if reqOpt.Version() != 0 {
			return fail(dns.RcodeBadVers) // §6.1.3
		}
		for _, o := range reqOpt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				if ecs != nil {
					return fail(dns.RcodeFormatError)
				}
				ecs = e
			}
		}
		if ecs != nil {
			src, ok := ecsPrefix(ecs)
			if !ok {
				return fail(dns.RcodeFormatError) // RFC 7871 §7.1.1
			}
			echo := &dns.EDNS0_SUBNET{
				Code: dns.EDNS0SUBNET, Family: ecs.Family, SourceNetmask: ecs.SourceNetmask,
				SourceScope: 0, Address: ecs.Address,
			}
			opt.Option = append(opt.Option, echo)
			ecs = echo
			// SOURCE PREFIX-LENGTH 0: the resolver asks us not to use
			// client information (§7.1.2); route on its own address.
			if ecs.SourceNetmask > 0 {
				client = src.Addr()
			}
		}
	}

	q := r.Question[0]
	if q.Qclass != dns.ClassINET {
		return fail(dns.RcodeRefused) // not authoritative for other classes
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return fail(dns.RcodeRefused) // no zone transfers: every server has the config
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return fail(dns.RcodeFormatError) // meta types are not questions
	case dns.TypeMAILA, dns.TypeMAILB:
		return fail(dns.RcodeNotImplemented)
	}
	lname := strings.ToLower(q.Name)
	if !st.zone.inZone(lname) {
		return fail(dns.RcodeRefused)
	}
	m.Authoritative = true
	rep.class = rrlClassAnswer
	rep.name = lname

	scope := st.resolve(rep, q.Name, lname, q.Qtype, client)
	if m.Rcode == dns.RcodeNameError {
		rep.class = rrlClassNXDomain
		rep.name = st.zone.origin
	}
	if ecs != nil && ecs.SourceNetmask > 0 {
		ecs.SourceScope = uint8(ecsScope(ecs.Family, client, scope, rep.routed))
	}
	return rep
}

// ecsScope returns the SCOPE PREFIX-LENGTH of an answer, in the family
// of the query (RFC 7871 §7.2.1): the table matches an IPv4-mapped IPv6
// address (family 2, ::ffff:a.b.c.d) as IPv4, so its scope is counted
// in IPv4 bits and must be moved past the 96-bit ::ffff:0:0 prefix; /22
// would tell the resolver that the answer holds for ::/22. Answers that
// are not routed hold for everyone: scope 0.
func ecsScope(family uint16, client netip.Addr, scope int, routed bool) int {
	if !routed {
		return 0
	}
	if family == 2 && client.Is4In6() {
		return 96 + scope
	}
	return scope
}

// ecsPrefix validates an ECS option of a query (RFC 7871 §6, §7.1.1):
// a known family, a source length the family allows, and no address bits
// set past it.
func ecsPrefix(e *dns.EDNS0_SUBNET) (netip.Prefix, bool) {
	var addr netip.Addr
	switch e.Family {
	case 0: // what dig sends for +subnet=0
		if e.SourceNetmask != 0 {
			return netip.Prefix{}, false
		}
		return netip.Prefix{}, true
	case 1:
		a, ok := netip.AddrFromSlice(e.Address.To4())
		if !ok || e.SourceNetmask > 32 {
			return netip.Prefix{}, false
		}
		addr = a
	case 2:
		a, ok := netip.AddrFromSlice(e.Address.To16())
		if !ok || e.SourceNetmask > 128 {
			return netip.Prefix{}, false
		}
		addr = a
	default:
		return netip.Prefix{}, false
	}
	p, err := addr.Prefix(int(e.SourceNetmask))
	if err != nil || p.Addr() != addr {
		return netip.Prefix{}, false
	}
	return p, true
}

// resolve fills rep.msg with the answer for (qname, qtype) and returns
// the ECS scope of that answer: 0 unless the answer was routed.
func (st *snapshot) resolve(rep *reply, qname, lname string, qtype uint16, client netip.Addr) int {
	m, z := rep.msg, st.zone
	owner := qname
	var n *node
	for hops := 0; ; hops++ {
		n = z.lookup(lname)
		if n == nil {
			m.Rcode = dns.RcodeNameError // RFC 6604: rcode of the last name
			st.negative(m, st.cfg.SOA.TTL)
			return 0
		}
		// A CNAME owner has no other data, so CNAME and ANY (which
		// matches every type) are answered with the CNAME alone
		// (RFC 1034 §3.6.2, §4.3.2 step 3a); other types follow it.
		if n.cname == nil || qtype == dns.TypeCNAME || qtype == dns.TypeANY {
			break
		}
		m.Answer = append(m.Answer, withOwner(n.cname, owner))
		target := n.cname.Target
		lt := strings.ToLower(target)
		if !z.inZone(lt) || hops+1 >= maxCNAMEHops {
			return 0 // the resolver follows it (RFC 1034 §4.3.2 3a)
		}
		owner, lname = target, lt
	}

	switch {
	case n.cname != nil: // asked for the CNAME itself, or ANY
		m.Answer = append(m.Answer, withOwner(n.cname, owner))
		return 0
	case qtype == dns.TypeANY:
		// RFC 8482 §4.2: one synthesized HINFO instead of everything,
		// for names that are not aliases.
		if n.empty() {
			st.negative(m, st.cfg.SOA.TTL)
			return 0
		}
		m.Answer = append(m.Answer, &dns.HINFO{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: st.cfg.SOA.TTL},
			Cpu: "RFC8482",
		})
		return 0
	case n.routed && (qtype == dns.TypeA || qtype == dns.TypeAAAA):
		regions, scope, src := st.router.route(client, st.prober.Down())
		rep.routed, rep.source = true, src
		if src != sourceAllDown {
			rep.region = int(regions[0])
		}
		rrs := st.router.addrRecords(regions, owner, qtype, st.cfg.TTL)
		if len(rrs) == 0 {
			// The region has no address of this family: NODATA, and
			// the client uses the other family of the same region.
			st.negative(m, st.cfg.TTL)
		}
		m.Answer = append(m.Answer, rrs...)
		return scope
	}
	set := n.rrsets[qtype]
	if len(set) == 0 {
		st.negative(m, st.cfg.SOA.TTL)
		return 0
	}
	for _, rr := range set {
		m.Answer = append(m.Answer, withOwner(rr, owner))
	}
	st.additional(m, set)
	return 0
}

// negative adds the SOA for NXDOMAIN and NODATA; its TTL is the lesser
// of the SOA's TTL and MINIMUM (RFC 2308 §3), and at most maxTTL (a
// routed NODATA must not outlive the routed answer it stands for).
func (st *snapshot) negative(m *dns.Msg, maxTTL uint32) {
	soa := *st.zone.soa
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl, maxTTL)
	m.Ns = append(m.Ns, &soa)
}

// additional adds in-zone addresses of NS, MX and SRV targets (RFC 1034
// §4.3.2 step 6), from static records only.
func (st *snapshot) additional(m *dns.Msg, set []dns.RR) {
	for _, rr := range set {
		var target string
		switch v := rr.(type) {
		case *dns.NS:
			target = v.Ns
		case *dns.MX:
			target = v.Mx
		case *dns.SRV:
			target = v.Target
		default:
			continue
		}
		lt := strings.ToLower(target)
		if !st.zone.inZone(lt) {
			continue
		}
		if n := st.zone.lookup(lt); n != nil {
			m.Extra = append(m.Extra, n.rrsets[dns.TypeA]...)
			m.Extra = append(m.Extra, n.rrsets[dns.TypeAAAA]...)
		}
	}
	// The OPT record goes last, by convention.
	for i, rr := range m.Extra {
		if opt, ok := rr.(*dns.OPT); ok && i != len(m.Extra)-1 {
			m.Extra = append(append(m.Extra[:i:i], m.Extra[i+1:]...), opt)
			break
		}
	}
}

// withOwner returns rr with the owner name spelled as in the query
// (names match case-insensitively; answers keep the asker's case,
// which some resolvers check as a defence against spoofing).
func withOwner(rr dns.RR, owner string) dns.RR {
	if rr.Header().Name == owner {
		return rr // shared, read-only
	}
	c := dns.Copy(rr)
	c.Header().Name = owner
	return c
}
