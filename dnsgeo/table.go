package dnsgeo

import (
	"bytes"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"os"
	"slices"
	"strconv"
)

// tableHeader is the first line every latency file must have.
const tableHeader = "prefix,region,rtt_ms"

// Table is a latency table: for each client network (an IPv4 or IPv6
// prefix) the measured round-trip time to some regions. It is
// immutable once built and safe for concurrent use.
//
// Lookups are longest-prefix matches. The prefixes are flattened once,
// at load, into sorted disjoint address ranges, each owned by the most
// specific prefix that covers it; a lookup is one binary search over
// the range starts (about 20 steps for a million ranges), and the same
// range tells the widest network around the address that shares its
// answer, which is the ECS scope (RFC 7871 §7.2.1).
type Table struct {
	file     string
	regions  []string       // region names in order of first appearance
	prefixes []netip.Prefix // entry i's prefix
	rtt      []float32      // entry i, region j at i*len(regions)+j; NaN: not measured
	v4       lpm4
	v6       lpm6
}

// EmptyTable is a table with no prefixes: every client gets the default order.
func EmptyTable() *Table {
	t, _ := ParseTable("(none)", []byte(tableHeader+"\n"))
	return t
}

// Len is the number of prefixes in the table.
func (t *Table) Len() int { return len(t.prefixes) }

// Regions returns the region names the table mentions.
func (t *Table) Regions() []string { return slices.Clone(t.regions) }

// LoadTable reads a latency CSV file (see ParseTable).
func LoadTable(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading latency table: %w", err)
	}
	return ParseTable(path, data)
}

// ParseTable parses a latency table in CSV form. The first line is the
// header "prefix,region,rtt_ms"; every other line is one measurement:
//
//	203.0.113.0/24,us-west-2,12.5
//
// Blank lines and lines starting with '#' are skipped. A prefix must
// have no bits set past its length; a prefix and region pair may
// appear once. Errors name file and line. Fields are never quoted, so
// this is a hand-rolled splitter: it loads a million rows in a few
// hundred milliseconds, several times faster than encoding/csv.
func ParseTable(file string, data []byte) (*Table, error) {
	t := &Table{file: file}
	// Size for the usual file: a few regions per prefix.
	lines := bytes.Count(data, []byte{'\n'}) + 1
	t.prefixes = make([]netip.Prefix, 0, lines/3)
	var (
		index     = make(map[netip.Prefix]int32, lines/3)
		seen      = make([]uint64, 0, lines/3) // per entry: regions already given
		rows      = make([]tableRow, 0, lines)
		lastText  []byte
		lastEntry int32 = -1
		header    bool
	)
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if !header {
			if string(line) != tableHeader {
				return nil, fmt.Errorf("%s:%d: the first line must be the header %q", file, lineNo, tableHeader)
			}
			header = true
			continue
		}
		c1 := bytes.IndexByte(line, ',')
		c2 := -1
		if c1 >= 0 {
			if j := bytes.IndexByte(line[c1+1:], ','); j >= 0 {
				c2 = c1 + 1 + j
			}
		}
		if c1 < 0 || c2 < 0 || bytes.IndexByte(line[c2+1:], ',') >= 0 {
			return nil, fmt.Errorf("%s:%d: want 3 fields (%s)", file, lineNo, tableHeader)
		}
		pText := bytes.TrimSpace(line[:c1])
		rText := bytes.TrimSpace(line[c1+1 : c2])
		vText := bytes.TrimSpace(line[c2+1:])

		// Rows for one prefix are usually adjacent: skip the parse.
		entry := lastEntry
		if entry < 0 || !bytes.Equal(pText, lastText) {
			p, err := netip.ParsePrefix(string(pText))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: prefix: %q is not a CIDR prefix", file, lineNo, pText)
			}
			if p != p.Masked() {
				return nil, fmt.Errorf("%s:%d: prefix: %s has bits set past its length (did you mean %s?)", file, lineNo, p, p.Masked())
			}
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("%s:%d: prefix: %s is IPv4-mapped; write it as IPv4", file, lineNo, p)
			}
			if p.Addr().Zone() != "" {
				return nil, fmt.Errorf("%s:%d: prefix: %s has a zone", file, lineNo, p)
			}
			e, ok := index[p]
			if !ok {
				e = int32(len(t.prefixes))
				index[p] = e
				t.prefixes = append(t.prefixes, p)
				seen = append(seen, 0)
			}
			entry, lastEntry, lastText = e, e, pText
		}

		// Few regions: a scan beats hashing the name.
		r, ok := -1, false
		for i, name := range t.regions {
			if string(rText) == name {
				r, ok = i, true
				break
			}
		}
		if !ok {
			name := string(rText)
			if !regionName.MatchString(name) {
				return nil, fmt.Errorf("%s:%d: region: %q is not a region name", file, lineNo, name)
			}
			if len(t.regions) == MaxRegions {
				return nil, fmt.Errorf("%s:%d: region: more than %d regions", file, lineNo, MaxRegions)
			}
			r = len(t.regions)
			t.regions = append(t.regions, name)
		}
		if seen[entry]&(1<<r) != 0 {
			return nil, fmt.Errorf("%s:%d: %s and %s appear twice", file, lineNo, t.prefixes[entry], t.regions[r])
		}
		seen[entry] |= 1 << r

		v, err := strconv.ParseFloat(string(vText), 32)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return nil, fmt.Errorf("%s:%d: rtt_ms: %q is not a non-negative number of milliseconds", file, lineNo, vText)
		}
		rows = append(rows, tableRow{entry: entry, region: uint8(r), rtt: float32(v)})
	}
	if !header {
		return nil, fmt.Errorf("%s: empty file: the first line must be the header %q", file, tableHeader)
	}

	nr := len(t.regions)
	t.rtt = make([]float32, len(t.prefixes)*nr)
	nan := float32(math.NaN())
	for i := range t.rtt {
		t.rtt[i] = nan
	}
	for _, row := range rows {
		t.rtt[int(row.entry)*nr+int(row.region)] = row.rtt
	}
	t.build()
	return t, nil
}

type tableRow struct {
	entry  int32
	region uint8
	rtt    float32
}

// rtts returns entry i's round-trip times, indexed like t.regions.
func (t *Table) rtts(i int) []float32 {
	n := len(t.regions)
	return t.rtt[i*n : (i+1)*n]
}

// Lookup returns the table entry whose prefix is the longest match for
// addr (-1 when none matches) and the length of the widest prefix
// around addr whose addresses all resolve to that same entry.
func (t *Table) Lookup(addr netip.Addr) (entry int, scope int) {
	addr = addr.Unmap()
	if addr.Is4() {
		return t.v4.lookup(addr)
	}
	return t.v6.lookup(addr)
}

// Prefix returns entry i's prefix.
func (t *Table) Prefix(i int) netip.Prefix { return t.prefixes[i] }

// build flattens the prefixes into disjoint ranges for both families.
func (t *Table) build() {
	var p4, p6 []int
	for i, p := range t.prefixes {
		if p.Addr().Is4() {
			p4 = append(p4, i)
		} else {
			p6 = append(p6, i)
		}
	}
	starts, vals := t.flatten(p4, 32, nil)
	t.v4.starts = make([]uint32, len(starts))
	for i, s := range starts {
		t.v4.starts[i] = uint32(s.lo)
	}
	t.v4.vals = vals
	// IPv4-mapped addresses (::ffff:0:0/96) are matched as IPv4, so to
	// the IPv6 ranges they are a block of their own: the scope of an
	// IPv6 answer must never cover them (an empty IPv6 table would
	// otherwise give scope 0, ::/0, over clients the IPv4 rows route).
	t.v6.starts, t.v6.vals = t.flatten(p6, 128, []netip.Prefix{mappedPrefix})
}

// mappedPrefix holds the IPv4-mapped IPv6 addresses.
var mappedPrefix = netip.MustParsePrefix("::ffff:0:0/96")

// entryMapped is the range value of mappedPrefix among the IPv6 ranges;
// Lookup never returns it (it unmaps first).
const entryMapped = -2

// u128 is an address as a 128-bit number (IPv4 in the low 32 bits).
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) add1() u128 {
	lo, carry := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + carry, lo}
}

func (a u128) sub1() u128 {
	lo, borrow := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - borrow, lo}
}

// commonPrefix is the number of leading bits a and b share, counted
// over width bits.
func commonPrefix(a, b u128, width int) int {
	var n int
	if a.hi != b.hi {
		n = bits.LeadingZeros64(a.hi ^ b.hi)
	} else {
		n = 64 + bits.LeadingZeros64(a.lo^b.lo)
	}
	return n - (128 - width)
}

func addrU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var v u128
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

// prefixRange returns the first and last address of p.
func prefixRange(p netip.Prefix, width int) (first, last u128) {
	first = addrU128(p.Addr())
	host := width - p.Bits() // bits below the prefix
	last = first
	switch {
	case host >= 128:
		last = u128{^uint64(0), ^uint64(0)}
	case host > 64:
		last.lo = ^uint64(0)
		last.hi |= 1<<(host-64) - 1
	case host == 64:
		last.lo = ^uint64(0)
	case host > 0:
		last.lo |= 1<<host - 1
	}
	return first, last
}

// flatten turns nested prefixes (entries idx) into sorted range starts,
// each with the entry that owns it (-1: no prefix covers it). The first
// start is always 0. Prefixes are nested or disjoint, so a stack of the
// open ones does it in one pass after a sort. Each reserved prefix
// (nested or disjoint with the entries too) is a range of its own, with
// the value entryMapped.
func (t *Table) flatten(idx []int, width int, reserved []netip.Prefix) ([]u128, []int32) {
	type span struct {
		first, last u128
		entry       int32
	}
	spans := make([]span, 0, len(idx)+len(reserved))
	for _, e := range idx {
		f, l := prefixRange(t.prefixes[e], width)
		spans = append(spans, span{f, l, int32(e)})
	}
	for _, p := range reserved {
		f, l := prefixRange(p, width)
		spans = append(spans, span{f, l, entryMapped})
	}
	// By start, then widest first, so a parent precedes its children.
	slices.SortFunc(spans, func(a, b span) int {
		if a.first != b.first {
			if a.first.less(b.first) {
				return -1
			}
			return 1
		}
		if a.last == b.last {
			return 0
		}
		if b.last.less(a.last) {
			return -1
		}
		return 1
	})
	max := u128{0, 1<<32 - 1}
	if width == 128 {
		max = u128{^uint64(0), ^uint64(0)}
	}
	starts := []u128{{}}
	vals := []int32{-1}
	emit := func(at u128, v int32) {
		n := len(starts)
		if starts[n-1] == at {
			vals[n-1] = v
			if n > 1 && vals[n-2] == v {
				starts, vals = starts[:n-1], vals[:n-1]
			}
			return
		}
		if vals[n-1] == v {
			return
		}
		starts = append(starts, at)
		vals = append(vals, v)
	}
	var stack []span
	top := func() int32 {
		if len(stack) == 0 {
			return -1
		}
		return stack[len(stack)-1].entry
	}
	closeTo := func(before u128, all bool) {
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			if !all && !s.last.less(before) {
				return
			}
			stack = stack[:len(stack)-1]
			if s.last != max {
				emit(s.last.add1(), top())
			}
		}
	}
	for _, s := range spans {
		closeTo(s.first, false)
		emit(s.first, s.entry)
		stack = append(stack, s)
	}
	closeTo(u128{}, true)
	return starts, vals
}

type lpm4 struct {
	starts []uint32
	vals   []int32
}

func (l *lpm4) lookup(addr netip.Addr) (int, int) {
	b := addr.As4()
	a := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	// Largest i with starts[i] <= a; starts[0] == 0.
	lo, hi := 0, len(l.starts)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if l.starts[m] <= a {
			lo = m
		} else {
			hi = m
		}
	}
	scope := 0
	if lo > 0 { // the previous range ends at starts[lo]-1
		scope = bits.LeadingZeros32(a^(l.starts[lo]-1)) + 1
	}
	if lo+1 < len(l.starts) {
		scope = max(scope, bits.LeadingZeros32(a^l.starts[lo+1])+1)
	}
	return int(l.vals[lo]), scope
}

type lpm6 struct {
	starts []u128
	vals   []int32
}

func (l *lpm6) lookup(addr netip.Addr) (int, int) {
	a := addrU128(addr)
	lo, hi := 0, len(l.starts)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if !a.less(l.starts[m]) {
			lo = m
		} else {
			hi = m
		}
	}
	scope := 0
	if lo > 0 {
		scope = commonPrefix(a, l.starts[lo].sub1(), 128) + 1
	}
	if lo+1 < len(l.starts) {
		scope = max(scope, commonPrefix(a, l.starts[lo+1], 128)+1)
	}
	return int(l.vals[lo]), scope
}
