package dnsgeo

import (
	"cmp"
	"math"
	"net/netip"
	"slices"

	"github.com/miekg/dns"
)

// router picks regions for clients. It joins one Config with one Table:
// every table entry's RTTs become a fixed preference order over the
// configured regions, computed once here so that a query only walks a
// short list and skips the regions that are down. Immutable.
type router struct {
	table        *Table
	regions      []*region // index: position of the name in Config.regionNames
	orders       [][]uint8 // distinct preference orders
	entryOrder   []uint16  // table entry -> index in orders
	defaultOrder []uint8   // for clients that match no prefix
	fallback     bool      // Config.Fallback: add the next healthy region's first address
	// prebuilt[name][region][0: A, 1: AAAA]: the records of one region
	// for a routed name spelled in lower case, as most queries are, so
	// that the common answer allocates no records.
	prebuilt map[string][][2][]dns.RR
}

// region is what a routed answer needs of one region, prebuilt.
type region struct {
	name         string
	a            []netip.Addr
	aaaa         []netip.Addr
	failoverText string // EDE text when it is down and another answers
}

// routeSource says what decided a routed answer.
type routeSource uint8

const (
	sourceTable   routeSource = iota // latency table match
	sourceDefault                    // no match: default order
	sourceAllDown                    // every region down: all of them
)

func (s routeSource) String() string {
	return [...]string{"table", "default", "all_down"}[s]
}

// newRouter computes the preference order of every table entry.
//
// Order, for one entry: regions with a measured RTT, fastest first, ties
// broken by region name; then the regions it has no measurement for, in
// default order. Table regions the config does not know are ignored.
// Everything is a pure function of the two files, so every dnsgeo
// server with the same files and the same health state answers alike.
func newRouter(c *Config, t *Table) *router {
	r := &router{table: t, defaultOrder: c.defaultOrder(), fallback: c.Fallback, prebuilt: make(map[string][][2][]dns.RR)}
	for _, name := range c.regionNames {
		rc := c.Regions[name]
		r.regions = append(r.regions, &region{name: name, a: rc.a, aaaa: rc.aaaa, failoverText: failoverText(name)})
	}
	if c.zone != nil {
		for name, n := range c.zone.nodes {
			if !n.routed {
				continue
			}
			recs := make([][2][]dns.RR, len(r.regions))
			for i := range r.regions {
				recs[i][0] = r.build([]uint8{uint8(i)}, -1, name, dns.TypeA, c.TTL)
				recs[i][1] = r.build([]uint8{uint8(i)}, -1, name, dns.TypeAAAA, c.TTL)
			}
			r.prebuilt[name] = recs
		}
	}
	// Table region j -> config region index, or -1.
	mapping := make([]int, len(t.regions))
	for j, name := range t.regions {
		mapping[j] = c.regionIndex(name)
	}
	defRank := make([]int, len(r.regions))
	for pos, i := range r.defaultOrder {
		defRank[i] = pos
	}

	n := len(r.regions)
	rtt := make([]float64, n)
	order := make([]uint8, n)
	ids := make(map[string]uint16)
	r.entryOrder = make([]uint16, len(t.prefixes))
	for e := range t.prefixes {
		for i := range rtt {
			rtt[i] = math.Inf(1)
		}
		for j, v := range t.rtts(e) {
			if k := mapping[j]; k >= 0 && !math.IsNaN(float64(v)) {
				rtt[k] = float64(v)
			}
		}
		for i := range order {
			order[i] = uint8(i)
		}
		slices.SortFunc(order, func(a, b uint8) int {
			if c := cmp.Compare(rtt[a], rtt[b]); c != 0 {
				return c
			}
			if math.IsInf(rtt[a], 1) { // both unmeasured
				return cmp.Compare(defRank[a], defRank[b])
			}
			return cmp.Compare(a, b) // index order is name order
		})
		id, ok := ids[string(order)]
		if !ok {
			id = uint16(len(r.orders))
			ids[string(order)] = id
			r.orders = append(r.orders, slices.Clone(order))
		}
		r.entryOrder[e] = id
	}
	return r
}

// order returns the client's region preference, the ECS scope that the
// answer is valid for (RFC 7871 §7.2.1) and what decided it.
func (r *router) order(client netip.Addr) ([]uint8, int, routeSource) {
	e, scope := r.table.Lookup(client)
	if e < 0 {
		return r.defaultOrder, scope, sourceDefault
	}
	return r.orders[r.entryOrder[e]], scope, sourceTable
}

// pick returns the first region in order that is not down, or -1 when
// every region is down.
func pick(order []uint8, down uint64) int {
	for _, i := range order {
		if down&(1<<i) == 0 {
			return int(i)
		}
	}
	return -1
}

// route chooses the regions whose addresses answer a query: the first
// healthy one in the client's order; when all are down, all of them in
// the client's order (a wrong region beats no answer). first is the
// client's first choice, healthy or not. With Config.Fallback, fallback
// is the region whose first address follows (see next), else -1; v6
// says the query is for AAAA records.
func (r *router) route(client netip.Addr, down uint64, v6 bool) (regions []uint8, fallback int, first uint8, scope int, src routeSource) {
	order, scope, src := r.order(client)
	if i := pick(order, down); i >= 0 {
		at := slices.Index(order, uint8(i))
		fallback = -1
		if r.fallback {
			fallback = r.next(order, uint8(i), down, v6)
		}
		return order[at : at+1], fallback, order[0], scope, src
	}
	return order, -1, order[0], scope, sourceAllDown
}

// next returns the fallback region of an answer by region after: the
// first region that follows it in order, is not down and has an address
// of the family asked (v6: AAAA); -1 when none does.
func (r *router) next(order []uint8, after uint8, down uint64, v6 bool) int {
	found := false
	for _, i := range order {
		if !found {
			found = i == after
			continue
		}
		if down&(1<<i) != 0 {
			continue
		}
		if reg := r.regions[i]; (v6 && len(reg.aaaa) > 0) || (!v6 && len(reg.a) > 0) {
			return int(i)
		}
	}
	return -1
}

// addrRecords returns the A or AAAA records of regions, owner name as
// asked, in configured order, without duplicates; then, when fallback is
// a region (not -1) and the regions had records, the first address of
// the fallback region. Shared, read-only when fallback is -1.
func (r *router) addrRecords(regions []uint8, fallback int, owner string, qtype uint16, ttl uint32) []dns.RR {
	if len(regions) == 1 && fallback < 0 {
		if recs, ok := r.prebuilt[owner]; ok {
			if qtype == dns.TypeA {
				return recs[regions[0]][0]
			}
			return recs[regions[0]][1]
		}
	}
	return r.build(regions, fallback, owner, qtype, ttl)
}

func (r *router) build(regions []uint8, fallback int, owner string, qtype uint16, ttl uint32) []dns.RR {
	var out []dns.RR
	var seen []netip.Addr
	add := func(a netip.Addr) {
		if len(regions) > 1 || fallback >= 0 {
			if slices.Contains(seen, a) {
				return
			}
			seen = append(seen, a)
		}
		hdr := dns.RR_Header{Name: owner, Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
		if qtype == dns.TypeA {
			b := a.As4()
			out = append(out, &dns.A{Hdr: hdr, A: b[:]})
		} else {
			b := a.As16()
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: b[:]})
		}
	}
	addrs := func(i int) []netip.Addr {
		if qtype == dns.TypeAAAA {
			return r.regions[i].aaaa
		}
		return r.regions[i].a
	}
	for _, i := range regions {
		for _, a := range addrs(int(i)) {
			add(a)
		}
	}
	// The fallback address follows the answer; it never stands alone: a
	// region without an address of this family gets NODATA, and its
	// clients use the other family of that same region.
	if fallback >= 0 && len(out) > 0 && len(addrs(fallback)) > 0 {
		add(addrs(fallback)[0])
	}
	return out
}
