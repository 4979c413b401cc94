package dnsgeo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bruteLPM is the reference: the longest prefix containing a.
func bruteLPM(t *Table, a netip.Addr) int {
	best, bits := -1, -1
	for i, p := range t.prefixes {
		if p.Contains(a) && p.Bits() > bits {
			best, bits = i, p.Bits()
		}
	}
	return best
}

// synthTable makes n random prefixes (nested and disjoint, both
// families) with 3 regions each, as CSV.
func synthTable(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	b.WriteString(tableHeader + "\n")
	regions := []string{"us-west-2", "eu-west-1", "ap-south-1"}
	seen := make(map[netip.Prefix]bool, n)
	for len(seen) < n {
		var p netip.Prefix
		if r.IntN(10) < 8 {
			a := netip.AddrFrom4([4]byte{byte(r.IntN(224)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			p, _ = a.Prefix([]int{8, 12, 16, 20, 22, 24, 24, 24, 28, 32}[r.IntN(10)])
		} else {
			var a16 [16]byte
			a16[0], a16[1] = 0x20, 0x01
			for i := 2; i < 8; i++ {
				a16[i] = byte(r.IntN(256))
			}
			p, _ = netip.AddrFrom16(a16).Prefix([]int{24, 32, 40, 48, 48, 56, 64}[r.IntN(7)])
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		for _, reg := range regions {
			fmt.Fprintf(&b, "%s,%s,%d.%d\n", p, reg, 1+r.IntN(300), r.IntN(10))
		}
	}
	return b.Bytes()
}

// randomAddr picks addresses near the table's prefixes and anywhere.
func randomAddr(r *rand.Rand, t *Table) netip.Addr {
	if len(t.prefixes) > 0 && r.IntN(2) == 0 {
		p := t.prefixes[r.IntN(len(t.prefixes))]
		b := p.Addr().AsSlice()
		for i := p.Bits() / 8; i < len(b); i++ {
			b[i] ^= byte(r.IntN(256)) >> min(8, max(0, p.Bits()-i*8))
		}
		a, _ := netip.AddrFromSlice(b)
		return a
	}
	if r.IntN(5) == 0 {
		var a16 [16]byte
		a16[0], a16[1] = 0x20, 0x01
		for i := 2; i < 16; i++ {
			a16[i] = byte(r.IntN(256))
		}
		return netip.AddrFrom16(a16)
	}
	return netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
}

// TestLookupMatchesBruteForce checks longest-prefix match (point 2)
// against a linear scan, and that the scope is exact: every address in
// the scope prefix has the same match, and the prefix one bit shorter
// does not (else the scope could have been wider).
func TestLookupMatchesBruteForce(t *testing.T) {
	table, err := ParseTable("synth.csv", synthTable(2000, 7))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 3000; i++ {
		a := randomAddr(r, table)
		got, scope := table.Lookup(a)
		want := bruteLPM(table, a)
		if got != want {
			t.Fatalf("%s: entry %d (%v), want %d (%v)", a, got, pfx(table, got), want, pfx(table, want))
		}
		sp, _ := a.Prefix(scope)
		for j := 0; j < 8; j++ { // addresses inside the scope match alike
			b := sp.Addr().AsSlice()
			for k := scope / 8; k < len(b); k++ {
				b[k] |= byte(r.IntN(256)) >> min(8, max(0, scope-k*8))
			}
			x, _ := netip.AddrFromSlice(b)
			if e := bruteLPM(table, x); e != want {
				t.Fatalf("%s: scope /%d includes %s, which matches %v, not %v", a, scope, x, pfx(table, e), pfx(table, want))
			}
		}
		// The scope is the widest: the sibling half of a/(scope-1) has
		// some address with another match.
		if scope > 0 {
			b := a.AsSlice()
			b[(scope-1)/8] ^= 0x80 >> ((scope - 1) % 8)
			x, _ := netip.AddrFromSlice(b)
			sib, _ := x.Prefix(scope)
			wantBits := -1
			if want >= 0 {
				wantBits = table.prefixes[want].Bits()
			}
			differs := want >= 0 && !(table.prefixes[want].Bits() <= sib.Bits() && table.prefixes[want].Contains(sib.Addr()))
			for _, p := range table.prefixes {
				if p.Overlaps(sib) && p.Bits() > wantBits {
					differs = true
				}
			}
			if a.Is6() && sib.Overlaps(mappedPrefix) { // matched as IPv4
				differs = true
			}
			if !differs {
				t.Fatalf("%s: scope /%d could be /%d", a, scope, scope-1)
			}
		}
	}
}

func pfx(t *Table, i int) any {
	if i < 0 {
		return "none"
	}
	return t.prefixes[i]
}

func TestLookupExamples(t *testing.T) {
	table := mustTable(t, baseCSV)
	tests := []struct {
		addr  string
		match string
		scope int
	}{
		{"203.0.113.7", "203.0.113.0/24", 24},
		{"10.1.2.3", "10.1.0.0/16", 16},
		{"10.2.0.0", "10.0.0.0/8", 15}, // 10.2.0.0/15 avoids the /16 inside the /8
		{"10.200.0.0", "10.0.0.0/8", 9},
		{"192.0.2.1", "none", 6}, // 192.0.0.0/6 holds no prefix
		{"0.0.0.0", "none", 5},
		{"255.255.255.255", "none", 3}, // 224.0.0.0/3 holds no prefix
		{"2001:db8:ee:1::1", "2001:db8:ee::/48", 48},
		// ::/3 holds no prefix, but it holds the IPv4-mapped block
		// ::ffff:0:0/96, which matches as IPv4: the scope stops short.
		{"::1", "none", 81},
		{"100::1", "none", 8},
	}
	for _, tc := range tests {
		e, scope := table.Lookup(netip.MustParseAddr(tc.addr))
		if got := fmt.Sprint(pfx(table, e)); got != tc.match || scope != tc.scope {
			t.Errorf("%s: %s scope %d, want %s scope %d", tc.addr, got, scope, tc.match, tc.scope)
		}
	}
	// IPv4-mapped addresses match as IPv4.
	if e, _ := table.Lookup(netip.MustParseAddr("::ffff:203.0.113.7")); fmt.Sprint(pfx(table, e)) != "203.0.113.0/24" {
		t.Error("IPv4-mapped address did not match its IPv4 prefix")
	}
	// Edges of the address space.
	whole := mustTable(t, "prefix,region,rtt_ms\n0.0.0.0/0,a,1\n255.255.255.255/32,b,1\n::/0,a,1\nffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128,b,1\n")
	for _, a := range []string{"0.0.0.0", "255.255.255.254", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		addr := netip.MustParseAddr(a)
		if e, _ := whole.Lookup(addr); e != bruteLPM(whole, addr) {
			t.Errorf("%s: %v, want %v", a, pfx(whole, e), pfx(whole, bruteLPM(whole, addr)))
		}
	}
}

func TestParseTableErrors(t *testing.T) {
	tests := []struct{ name, csv, want string }{
		{"no header", "10.0.0.0/8,a,1\n", "x.csv:1: the first line must be the header"},
		{"empty", "", "empty file"},
		{"bad prefix", "prefix,region,rtt_ms\n10.0.0.0/33,a,1\n", `x.csv:2: prefix: "10.0.0.0/33" is not a CIDR prefix`},
		{"host bits", "prefix,region,rtt_ms\n10.0.0.1/8,a,1\n", "x.csv:2: prefix: 10.0.0.1/8 has bits set past its length (did you mean 10.0.0.0/8?)"},
		{"mapped", "prefix,region,rtt_ms\n::ffff:10.0.0.0/104,a,1\n", "IPv4-mapped"},
		{"fields", "prefix,region,rtt_ms\n10.0.0.0/8,a\n", "x.csv:2: want 3 fields"},
		{"extra field", "prefix,region,rtt_ms\n10.0.0.0/8,a,1,2\n", "x.csv:2: want 3 fields"},
		{"bad rtt", "prefix,region,rtt_ms\n10.0.0.0/8,a,fast\n", `x.csv:2: rtt_ms: "fast"`},
		{"negative rtt", "prefix,region,rtt_ms\n10.0.0.0/8,a,-1\n", `x.csv:2: rtt_ms: "-1"`},
		{"nan rtt", "prefix,region,rtt_ms\n10.0.0.0/8,a,NaN\n", `x.csv:2: rtt_ms: "NaN"`},
		{"duplicate", "prefix,region,rtt_ms\n10.0.0.0/8,a,1\n# comment\n\n10.0.0.0/8,a,2\n", "x.csv:5: 10.0.0.0/8 and a appear twice"},
		{"bad region", "prefix,region,rtt_ms\n10.0.0.0/8,A B,1\n", `x.csv:2: region: "A B"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTable("x.csv", []byte(tc.csv))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// CRLF, spaces, comments are fine.
	tb, err := ParseTable("x.csv", []byte("# measured 2026-01-01\r\nprefix,region,rtt_ms\r\n 10.0.0.0/8 , a , 1.5 \r\n"))
	if err != nil || tb.Len() != 1 {
		t.Fatalf("%v %v", tb, err)
	}
}

// TestLoad300k is point 2's load budget: 300k prefixes (900k rows, 3
// regions) in under a second. Skipped under the race detector, which
// slows everything ~10x.
func TestLoad300k(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("timing test: not under -race or -short")
	}
	data := synthTable(300_000, 1)
	c := mustConfig(t, baseYAML)
	// Best of three, in CPU time: the machine is shared, and a
	// neighbour's burst is not our regression.
	best := time.Hour
	for range 3 {
		start, cpu0 := time.Now(), cpuTime()
		table, err := ParseTable("300k.csv", data)
		if err != nil {
			t.Fatal(err)
		}
		parsed := time.Since(start)
		newRouter(c, table)
		took, cpu := time.Since(start), cpuTime()-cpu0
		t.Logf("300k prefixes (900k rows, %.1f MB): parse+flatten %v, with routing orders %v wall, %v CPU", float64(len(data))/1e6, parsed.Round(time.Millisecond), took.Round(time.Millisecond), cpu.Round(time.Millisecond))
		best = min(best, took, cpu)
	}
	if best > time.Second {
		t.Errorf("loading 300k prefixes took %v, budget 1s", best)
	}
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkLoadTable300k(b *testing.B) {
	data := synthTable(300_000, 1)
	c := mustConfig(b, baseYAML)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		table, err := ParseTable("300k.csv", data)
		if err != nil {
			b.Fatal(err)
		}
		newRouter(c, table)
	}
}

func BenchmarkLookup300k(b *testing.B) {
	table, err := ParseTable("300k.csv", synthTable(300_000, 1))
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, fam := range []string{"v4", "v6"} {
		addrs := make([]netip.Addr, 4096)
		for i := range addrs {
			for {
				a := randomAddr(r, table)
				if a.Is4() == (fam == "v4") {
					addrs[i] = a
					break
				}
			}
		}
		b.Run(fam, func(b *testing.B) {
			i := 0
			for b.Loop() {
				table.Lookup(addrs[i&4095])
				i++
			}
		})
	}
}
