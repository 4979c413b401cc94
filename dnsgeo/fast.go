package dnsgeo

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// compiled is a snapshot's answers in wire form. dnsgeo's answers are
// nearly static: for a name and type there is one reply, or one per
// region when the name is routed. compile builds them all when a
// snapshot is made (config or table change; health only picks among
// them), by running the reference path, answer, on a query for each
// and packing the result with miekg/dns. A query is then answered by
// copying bytes (fast), with no parsing into structs and no packing.
//
// Each image is a whole reply to a lower-case query without EDNS:
// header, question, records. fast copies it, patches the ID, the RD
// and CD bits and the question (the query's spelling and type; names
// in the records are compressed to the question, so they follow), and
// appends the OPT record (ECS echo with its scope, Extended DNS Error).
type compiled struct {
	zone     []byte            // the apex, lower-case wire form
	nodes    map[string]*cnode // by lower-case wire-form name
	negative [][]byte          // NXDOMAIN replies by question name length; nil: see slow
	soaNames [][]byte          // names below the apex that SOA names end with, see compileNegative
	failover [][]byte          // by region: EDE text when it is down and another answers
}

// cnode is one name's answers: by query type, and for every other type.
type cnode struct {
	types   []uint16
	entries []*centry // parallel to types
	other   *centry
}

func (n *cnode) entry(qtype uint16) *centry {
	if i := slices.Index(n.types, qtype); i >= 0 {
		return n.entries[i]
	}
	return n.other
}

// centry is the answer to one (name, type): one image, or for a routed
// answer one per region, and with Config.Fallback one per pair of a
// region and its fallback region (see imageIndex).
type centry struct {
	images []image
	routed bool
	class  byte // RRL class
}

// imageIndex is the position in centry.images of the routed answer by
// region with fallback region fb (-1: none), among n regions: region
// alone without Config.Fallback, else region×(n+1) + fb+1.
func imageIndex(fallback bool, n, region, fb int) int {
	if !fallback {
		return region
	}
	return region*(n+1) + fb + 1
}

// image is one reply in wire form.
type image struct {
	full    []byte // header, question, answer, authority, additional (no OPT)
	trimmed []byte // without the additional records; nil when there are none
}

// otherType is the first private-use type (RFC 6895 §3.1), the type
// the "every other type" answer is compiled for when unused.
const otherType = 0xFF00

// compile builds the wire answers of st. Names whose wire form does not
// read back as the same name (escapes the query parser would spell
// differently) are left out: such queries get NXDOMAIN from both paths.
func compile(st *snapshot) *compiled {
	z := st.zone
	c := &compiled{nodes: make(map[string]*cnode, len(z.nodes))}
	var ok bool
	if c.zone, ok = canonicalWire(z.origin); !ok {
		return nil
	}
	for _, r := range st.router.regions {
		c.failover = append(c.failover, []byte(r.failoverText))
	}
	for name := range z.nodes {
		w, ok := canonicalWire(name)
		if !ok {
			continue
		}
		types := answerTypes(z, name)
		other := uint16(otherType)
		for slices.Contains(types, other) {
			other++
		}
		n := &cnode{other: st.compileEntry(name, other)}
		for _, t := range types {
			n.types = append(n.types, t)
			n.entries = append(n.entries, st.compileEntry(name, t))
		}
		c.nodes[string(w)] = n
	}
	for _, name := range []string{st.zone.soa.Ns, st.zone.soa.Mbox} {
		name = strings.ToLower(name)
		for _, at := range dns.Split(name) { // label starts, escapes respected
			suffix := name[at:]
			if suffix == z.origin || !z.inZone(suffix) {
				break
			}
			if w, ok := canonicalWire(suffix); ok {
				c.soaNames = append(c.soaNames, w)
			}
		}
	}
	c.negative = make([][]byte, maxNameWire+1)
	for n := len(c.zone) + 2; n <= maxNameWire; n++ {
		c.negative[n] = st.compileNegative(c, n)
	}
	return c
}

// canonicalWire returns the wire form of a lower-case presentation
// name, when it reads back as the same name.
func canonicalWire(name string) ([]byte, bool) {
	var buf [maxNameWire]byte
	n, err := dns.PackDomainName(name, buf[:], 0, nil, false)
	if err != nil {
		return nil, false
	}
	back, _, err := dns.UnpackDomainName(buf[:n], 0)
	if err != nil || back != name {
		return nil, false
	}
	return slices.Clone(buf[:n]), true
}

// answerTypes lists the query types whose answer at name may differ
// from the answer to any other type: the types the name and the names
// its CNAME chain leads to hold, A and AAAA (routing), CNAME and ANY.
func answerTypes(z *zone, name string) []uint16 {
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeANY}
	for hops := 0; hops < maxCNAMEHops; hops++ {
		n := z.lookup(name)
		if n == nil {
			break
		}
		for t := range n.rrsets {
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
		if n.cname == nil {
			break
		}
		name = strings.ToLower(n.cname.Target)
	}
	slices.Sort(types)
	return types
}

// compileEntry runs the reference path on a query for (name, qtype)
// without EDNS: once, or for every region when the answer is routed
// (with Config.Fallback, for every region and fallback region: n×(n+1)
// replies, 12 for three regions). nil when it cannot be packed: such
// queries take the slow path.
func (st *snapshot) compileEntry(name string, qtype uint16) *centry {
	img := func(pin pinned) (image, *reply, bool) {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.RecursionDesired = false
		rep := st.answer(q, nil, netip.Addr{}, pin)
		return packImage(rep.msg), rep, rep.msg.Rcode == dns.RcodeSuccess || rep.msg.Rcode == dns.RcodeNameError
	}
	first, rep, ok := img(pinned{region: 0, fallback: -1})
	if !ok || first.full == nil {
		return nil
	}
	e := &centry{images: []image{first}, routed: rep.routed, class: rep.class}
	if !rep.routed {
		return e
	}
	n, fallback := len(st.router.regions), st.cfg.Fallback
	size := n
	if fallback {
		size = n * (n + 1)
	}
	e.images = make([]image, size)
	for i := range n {
		fbs := []int{-1}
		if fallback {
			for fb := range n {
				if fb != i { // a region is never its own fallback
					fbs = append(fbs, fb)
				}
			}
		}
		for _, fb := range fbs {
			im, _, ok := img(pinned{region: i, fallback: fb})
			if !ok || im.full == nil {
				return nil
			}
			e.images[imageIndex(fallback, n, i, fb)] = im
		}
	}
	return e
}

// compileNegative builds the NXDOMAIN reply for question names of n
// bytes: a query for a made-up name of that length. The SOA in it is
// compressed to the apex at the end of the question, so one reply per
// length serves every name that does not exist. Not for names that end
// with an SOA name below the apex (c.soaNames): miekg/dns would
// compress that name to the question, so those take the slow path.
func (st *snapshot) compileNegative(c *compiled, n int) []byte {
	var labels []string
	for rest := n - len(c.zone); rest > 0; {
		k := min(rest, 64) // a label of k-1 octets
		if rest-k == 1 {
			k--
		}
		labels = append(labels, strings.Repeat("x", k-1))
		rest -= k
	}
	name := strings.Join(labels, ".") + "." + st.zone.origin
	if st.zone.origin == "." {
		name = strings.Join(labels, ".") + "."
	}
	w, ok := canonicalWire(name)
	if !ok || len(w) != n || st.zone.lookup(name) != nil {
		return nil
	}
	for _, s := range c.soaNames {
		if endsWithName(w, s) {
			return nil
		}
	}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.RecursionDesired = false
	rep := st.answer(q, nil, netip.Addr{}, pinned{region: 0, fallback: -1})
	if rep.msg.Rcode != dns.RcodeNameError || len(rep.msg.Extra) > 0 {
		return nil
	}
	return packImage(rep.msg).full
}

// packImage packs m, and m without its additional records.
func packImage(m *dns.Msg) image {
	var im image
	var err error
	if im.full, err = m.Pack(); err != nil {
		return image{}
	}
	if len(m.Extra) > 0 {
		m.Extra = nil
		if im.trimmed, err = m.Pack(); err != nil {
			return image{}
		}
	}
	return im
}

// fast answers the queries parseQuery reads from the compiled answers,
// with no allocation. It returns false, having sent nothing and counted
// nothing, for what it leaves to the reference path: other queries, a
// routed answer while every region is down, names the compiled answers
// do not cover.
func (s *Server) fast(st *snapshot, pkt []byte, client netip.Addr, udp bool, out []byte) ([]byte, bool) {
	c := st.compiled
	var q wireQuery
	if c == nil || !parseQuery(pkt, &q) {
		return nil, false
	}
	var lower [maxNameWire]byte
	name := lowerName(lower[:], q.qname)
	if !endsWithName(name, c.zone) {
		return s.fastRefused(st, pkt, &q, client, udp, out)
	}

	var (
		img     []byte
		trimmed []byte
		class   = rrlClassNXDomain
		routed  bool
		region  = -1
		src     routeSource
		scope   int
		edeCode uint16
		ede     []byte
		hasEDE  bool
		rrlName = c.zone
	)
	n := c.nodes[string(name)]
	if n == nil {
		for _, soa := range c.soaNames {
			if endsWithName(name, soa) {
				return nil, false
			}
		}
		if img = c.negative[len(name)]; img == nil {
			return nil, false
		}
	} else {
		e := n.entry(q.qtype)
		if e == nil {
			return nil, false
		}
		class, routed = e.class, e.routed
		im := e.images[0]
		if routed {
			addr := client
			if q.ecs && q.ecsSource() > 0 {
				addr = q.ecsAddr
			}
			r := st.router
			order, sc, from := r.order(addr)
			down := st.prober.Down() // once: the region and its fallback from one health state
			i := pick(order, down)
			if i < 0 {
				return nil, false // every region down: rare, the slow path
			}
			fb := -1
			if r.fallback {
				fb = r.next(order, uint8(i), down, q.qtype == dns.TypeAAAA)
			}
			im, region, src = e.images[imageIndex(r.fallback, len(r.regions), i, fb)], i, from
			if q.ecs && q.ecsSource() > 0 {
				scope = ecsScope(be16(q.ecsData), addr, sc, true)
			}
			if uint8(i) != order[0] {
				edeCode, ede, hasEDE = dns.ExtendedErrorCodeOther, c.failover[order[0]], true
			}
		}
		img, trimmed = im.full, im.trimmed
		if class == rrlClassAnswer {
			rrlName = name
		}
	}

	optLen := q.optLen(ede, hasEDE)
	if len(img)+optLen > len(out) {
		return nil, false // only for a TCP caller with a short buffer
	}
	limit := dns.MaxMsgSize
	if udp {
		limit = q.limit
	}
	empty := false // the reply is sent empty with TC set
	if udp && st.rrl != nil {
		switch st.rrl.check(client, class, rrlName, q.qtype) {
		case rrlDrop:
			s.metrics.rrlDropped.Inc()
			return nil, true
		case rrlSlip:
			s.metrics.rrlSlipped.Inc()
			empty = true
		}
	}
	if !empty && len(img)+optLen > limit {
		if trimmed != nil && len(trimmed)+optLen <= limit {
			img = trimmed
		} else {
			empty = true
			s.metrics.truncated.Inc()
		}
	}
	size := len(img)
	if empty {
		size = q.qend
	}
	b := out[:size]
	copy(b, img[:size])
	copy(b[headerLen:], pkt[headerLen:q.qend]) // the query's spelling and type
	b[0], b[1] = pkt[0], pkt[1]
	b[2] |= pkt[2] & bitRD
	b[3] |= pkt[3] & bitCD
	if empty {
		b[2] |= bitTC
		clear(b[6:12])
	}
	if q.edns {
		binary.BigEndian.PutUint16(b[10:], be16(b[10:])+1)
		b = q.appendOPT(b, scope, edeCode, ede, hasEDE)
	}
	s.count(st, q.qtype, int(b[3]&0xF), routed, region, src)
	return b, true
}

// fastRefused answers a query for a name outside the zone: REFUSED,
// with the question, and the OPT record (ECS echoed with scope 0, and
// Extended DNS Error 20, Not Authoritative) when the query had one.
func (s *Server) fastRefused(st *snapshot, pkt []byte, q *wireQuery, client netip.Addr, udp bool, out []byte) ([]byte, bool) {
	optLen := q.optLen(nil, true)
	if q.qend+optLen > len(out) {
		return nil, false
	}
	b := append(out[:0], pkt[0], pkt[1], bitQR|pkt[2]&bitRD, pkt[3]&bitCD|dns.RcodeRefused, 0, 1, 0, 0, 0, 0, 0, 0)
	b = append(b, pkt[headerLen:q.qend]...)
	if udp && st.rrl != nil {
		switch st.rrl.check(client, rrlClassError, nil, 0) {
		case rrlDrop:
			s.metrics.rrlDropped.Inc()
			return nil, true
		case rrlSlip:
			s.metrics.rrlSlipped.Inc()
			b[2] |= bitTC
		}
	}
	if q.edns {
		b[11] = 1
		b = q.appendOPT(b, 0, dns.ExtendedErrorCodeNotAuthoritative, nil, true)
	}
	s.count(st, q.qtype, dns.RcodeRefused, false, -1, 0)
	return b, true
}
