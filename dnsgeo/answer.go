package dnsgeo

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// reply is what answer learned while answering, for rate limiting,
// truncation and metrics.
type reply struct {
	msg      *dns.Msg
	qtype    uint16
	class    byte   // RRL response class
	name     string // RRL name: the query name, or the zone for NXDOMAIN
	region   int    // routed region, -1 when not routed or all down
	source   routeSource
	routed   bool
	limitUDP int      // size limit for UDP
	opt      *dns.OPT // the reply's OPT record, nil without EDNS
}

// pinned fixes a routed answer in advance, whatever the client and the
// health of the regions: compile builds the answer of every region (and,
// with Config.Fallback, of every pair of a region and its fallback).
// region -1 routes by client and health; fallback -1 adds no fallback
// address.
type pinned struct{ region, fallback int }

// unpinned routes by client and health.
var unpinned = pinned{region: -1, fallback: -1}

// answer builds the response to the query r from client. wire is the
// query as it was received, for what parsing loses (the length of the
// ECS address); nil for queries built here. pin, unless unpinned, fixes
// the regions a routed answer goes to.
//
// The reply's question and owner names are in lower case, whatever the
// query's spelling: the caller copies the query's name over the packed
// question, and owner names compressed to it follow. So the reply's
// bytes, and whether it fits in the client's buffer, never depend on
// the case of the query, which some resolvers randomize as a defence
// against spoofing (draft-vixie-dnsext-dns0x20) and then check.
func (st *snapshot) answer(r *dns.Msg, wire []byte, client netip.Addr, pin pinned) *reply {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Compress = true
	rep := &reply{msg: m, class: rrlClassError, region: -1, limitUDP: noEDNSSize}
	if len(r.Question) > 0 {
		rep.qtype = r.Question[0].Qtype
		m.Question[0].Name = strings.ToLower(m.Question[0].Name)
	}
	fail := func(rcode int) *reply {
		m.Rcode = rcode
		m.Authoritative = false
		m.Answer, m.Ns = nil, nil
		return rep
	}
	// Extended DNS Errors (RFC 8914) say why a query was refused.
	refuse := func(code uint16) *reply {
		rep.extendedError(code, "")
		return fail(dns.RcodeRefused)
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
		opts   int
		ecs    *dns.EDNS0_SUBNET
	)
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opts++; opts == 1 {
				reqOpt = o
			}
		}
	}
	if reqOpt != nil {
		// Every reply to a query with an OPT has one (§6.1.1), the
		// FORMERRs below too: one without says "no EDNS here" (§7).
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(maxUDPSize)
		if reqOpt.Do() {
			opt.SetDo() // RFC 3225 §3: copy DO, though we do not sign
		}
		m.Extra = append(m.Extra, opt)
		rep.opt = opt
		rep.limitUDP = max(noEDNSSize, min(int(reqOpt.UDPSize()), maxUDPSize))
		if opts > 1 || reqOpt.Hdr.Name != "." { // §6.1.1: one OPT, root owner
			return fail(dns.RcodeFormatError)
		}
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
			// §6: ADDRESS is truncated to SOURCE PREFIX-LENGTH bits,
			// padded to the octet; too few or too many octets: FORMERR.
			if wire != nil && len(wireECS(wire)) != 4+(int(ecs.SourceNetmask)+7)/8 {
				return fail(dns.RcodeFormatError)
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
		return refuse(dns.ExtendedErrorCodeNotAuthoritative) // for other classes
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return refuse(dns.ExtendedErrorCodeProhibited) // no zone transfers: every server has the config
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return fail(dns.RcodeFormatError) // meta types are not questions
	case dns.TypeMAILA, dns.TypeMAILB:
		return fail(dns.RcodeNotImplemented)
	}
	lname := strings.ToLower(q.Name)
	if !st.zone.inZone(lname) {
		return refuse(dns.ExtendedErrorCodeNotAuthoritative)
	}
	m.Authoritative = true
	rep.class = rrlClassAnswer
	rep.name = lname

	scope := st.resolve(rep, lname, q.Qtype, client, pin)
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

// resolve fills rep.msg with the answer for (lname, qtype) and returns
// the ECS scope of that answer: 0 unless the answer was routed.
func (st *snapshot) resolve(rep *reply, lname string, qtype uint16, client netip.Addr, pin pinned) int {
	m, z := rep.msg, st.zone
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
		m.Answer = append(m.Answer, n.cname)
		lt := strings.ToLower(n.cname.Target)
		if !z.inZone(lt) || hops+1 >= maxCNAMEHops {
			return 0 // the resolver follows it (RFC 1034 §4.3.2 3a)
		}
		lname = lt
	}

	switch {
	case n.cname != nil: // asked for the CNAME itself, or ANY
		m.Answer = append(m.Answer, n.cname)
		return 0
	case qtype == dns.TypeANY:
		// RFC 8482 §4.2: one synthesized HINFO instead of everything,
		// for names that are not aliases.
		if n.empty() {
			st.negative(m, st.cfg.SOA.TTL)
			return 0
		}
		m.Answer = append(m.Answer, &dns.HINFO{
			Hdr: dns.RR_Header{Name: lname, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: st.cfg.SOA.TTL},
			Cpu: "RFC8482",
		})
		return 0
	case n.routed && (qtype == dns.TypeA || qtype == dns.TypeAAAA):
		var (
			regions  []uint8
			fallback int
			first    uint8
			scope    int
			src      routeSource
		)
		if pin.region >= 0 {
			regions, fallback, first = []uint8{uint8(pin.region)}, pin.fallback, uint8(pin.region)
		} else {
			regions, fallback, first, scope, src = st.router.route(client, st.prober.Down(), qtype == dns.TypeAAAA)
		}
		rep.routed, rep.source = true, src
		switch {
		case src == sourceAllDown:
			rep.extendedError(dns.ExtendedErrorCodeOther, allDownText)
		case regions[0] != first:
			rep.region = int(regions[0])
			rep.extendedError(dns.ExtendedErrorCodeOther, st.router.regions[first].failoverText)
		default:
			rep.region = int(regions[0])
		}
		rrs := st.router.addrRecords(regions, fallback, lname, qtype, st.cfg.TTL)
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
	m.Answer = append(m.Answer, set...)
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

// allDownText is the EXTRA-TEXT of an answer given while every region
// is down; failoverText (per region) that of one given because the
// client's first region is down.
const allDownText = "all regions down: answering with all of them"

func failoverText(region string) string { return "failover: region " + region + " is down" }

// extendedError adds an Extended DNS Error (RFC 8914) to the reply,
// when the query has EDNS: a resolver logs it and shows it (dig
// prints "EDE: ..."), which makes a refusal or a failover visible from
// the outside.
func (rep *reply) extendedError(code uint16, text string) {
	if rep.opt != nil {
		rep.opt.Option = append(rep.opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
	}
}
