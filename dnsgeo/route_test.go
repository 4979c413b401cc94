package dnsgeo

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func regionNames(r *router, idx []uint8) []string {
	var out []string
	for _, i := range idx {
		out = append(out, r.regions[i].name)
	}
	return out
}

// TestRoute covers point 2's choice: lowest RTT among healthy regions,
// ties by name, unmeasured regions last in default order, the default
// order when nothing matches, and all regions when all are down.
func TestRoute(t *testing.T) {
	c := mustConfig(t, baseYAML)
	r := newRouter(c, mustTable(t, baseCSV))
	down := func(names ...string) uint64 {
		var d uint64
		for _, n := range names {
			d |= 1 << c.regionIndex(n)
		}
		return d
	}
	tests := []struct {
		client string
		down   uint64
		want   []string
		src    routeSource
	}{
		{"203.0.113.9", 0, []string{"ap-south-1"}, sourceTable},
		{"203.0.113.9", down("ap-south-1"), []string{"eu-west-1"}, sourceTable},
		{"203.0.113.9", down("ap-south-1", "eu-west-1"), []string{"us-west-2"}, sourceTable},
		{"198.51.100.1", 0, []string{"eu-west-1"}, sourceTable},
		// ap-south-1 has no measurement for this prefix: after the measured ones.
		{"198.51.100.1", down("eu-west-1", "us-west-2"), []string{"ap-south-1"}, sourceTable},
		// Tie at 30 ms: eu-west-1 < us-west-2 by name.
		{"10.9.9.9", 0, []string{"eu-west-1"}, sourceTable},
		{"10.1.9.9", 0, []string{"ap-south-1"}, sourceTable},
		{"192.0.2.1", 0, []string{"us-west-2"}, sourceDefault},
		{"192.0.2.1", down("us-west-2"), []string{"eu-west-1"}, sourceDefault},
		{"2001:db8:ee::1", 0, []string{"eu-west-1"}, sourceTable},
		{"2001:db8:ff::1", 0, []string{"us-west-2"}, sourceDefault},
		// All down: all regions, in the client's order.
		{"203.0.113.9", down("ap-south-1", "eu-west-1", "us-west-2"), []string{"ap-south-1", "eu-west-1", "us-west-2"}, sourceAllDown},
		{"192.0.2.1", down("ap-south-1", "eu-west-1", "us-west-2"), []string{"us-west-2", "eu-west-1", "ap-south-1"}, sourceAllDown},
	}
	for _, tc := range tests {
		regs, _, _, _, src := r.route(netip.MustParseAddr(tc.client), tc.down, false)
		if got := regionNames(r, regs); !slices.Equal(got, tc.want) || src != tc.src {
			t.Errorf("%s down=%b: %v (%v), want %v (%v)", tc.client, tc.down, got, src, tc.want, tc.src)
		}
	}
	// All down: every address of every region, none twice, in order.
	regs, _, _, _, _ := r.route(netip.MustParseAddr("192.0.2.1"), down("ap-south-1", "eu-west-1", "us-west-2"), false)
	got := addrs(r.addrRecords(regs, -1, "cdn.example.test.", dns.TypeA, 20))
	if want := []string{"192.0.2.10", "192.0.2.11", "198.51.100.10", "203.0.113.10"}; !slices.Equal(got, want) {
		t.Errorf("all down: %v, want %v", got, want)
	}
}

// TestECS covers point 2 over the wire: the client's network comes from
// ECS when present (echoed, with the scope of the answer), else from the
// resolver's address (and no ECS in the reply).
func TestECS(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	tests := []struct {
		name   string
		subnet string // "" for no ECS
		qtype  uint16
		want   []string
		scope  int
	}{
		{"table match", "203.0.113.0/24", dns.TypeA, regionA["ap-south-1"], 24},
		{"more specific prefix wins", "10.1.2.0/24", dns.TypeA, regionA["ap-south-1"], 16},
		{"scope avoids nested prefix", "10.2.0.0/16", dns.TypeA, regionA["eu-west-1"], 15},
		{"no match: default order", "192.0.2.0/24", dns.TypeA, regionA["us-west-2"], 6},
		{"source longer than table prefix", "203.0.113.128/25", dns.TypeA, regionA["ap-south-1"], 24},
		{"source shorter than the table: scope may be longer (RFC 7871 §7.2.1)", "203.0.0.0/16", dns.TypeA, regionA["us-west-2"], 18}, // 203.0.0.0/18 holds no prefix; 203.0.113.0/24 is in the /16
		{"ipv6 source", "2001:db8:ee::/48", dns.TypeAAAA, []string{"2001:db8:1::10"}, 48},
		{"region without AAAA: nodata", "203.0.113.0/24", dns.TypeAAAA, nil, 24},
		{"no ECS: resolver address (127.0.0.1)", "", dns.TypeA, regionA["eu-west-1"], -1},
		{"source 0: resolver address, scope 0", "0.0.0.0/0", dns.TypeA, regionA["eu-west-1"], 0},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				q := question("cdn.example.test.", tc.qtype, 1232)
				if tc.subnet != "" {
					withECS(q, tc.subnet)
				}
				r := exchange(t, ts.addr, network, q)
				if r.Rcode != dns.RcodeSuccess {
					t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
				}
				if got := addrs(r.Answer); !slices.Equal(got, tc.want) {
					t.Errorf("answer %v, want %v", got, tc.want)
				}
				e := replyECS(r)
				if tc.scope < 0 {
					if e != nil {
						t.Errorf("ECS %v in reply to a query without ECS", e)
					}
					return
				}
				if e == nil {
					t.Fatal("ECS not echoed")
				}
				p := netip.MustParsePrefix(tc.subnet)
				if int(e.SourceNetmask) != p.Bits() || !net.IP(p.Addr().AsSlice()).Equal(e.Address) {
					t.Errorf("echo %v, want source %s", e, p)
				}
				if int(e.SourceScope) != tc.scope {
					t.Errorf("scope %d, want %d", e.SourceScope, tc.scope)
				}
			})
		}
	}

	// Answers that do not depend on the client have scope 0.
	r := exchange(t, ts.addr, "udp", withECS(question("ns1.example.test.", dns.TypeA, 1232), "203.0.113.0/24"))
	if e := replyECS(r); e == nil || e.SourceScope != 0 {
		t.Errorf("static answer: ECS %v, want scope 0", e)
	}
}

// TestECSInvalid: malformed Client Subnet options get FORMERR (RFC 7871
// §7.1.1). Packets are built by hand, as a broken resolver would.
func TestECSInvalid(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	raw := func(family uint16, source, scope uint8, addr ...byte) *dns.Msg {
		q := question("cdn.example.test.", dns.TypeA, 1232)
		data := append([]byte{byte(family >> 8), byte(family), source, scope}, addr...)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data})
		return q
	}
	tests := []struct {
		name string
		q    *dns.Msg
	}{
		{"unknown family", raw(3, 24, 0, 10, 0, 0)},
		{"ipv4 source over 32", raw(1, 33, 0, 10, 0, 0, 0, 0)},
		{"ipv6 source over 128", raw(2, 129, 0, 0x20, 0x01)},
		{"bits past the source", raw(1, 24, 0, 10, 1, 2, 3)},
		{"bits past the source, within a byte", raw(1, 20, 0, 10, 1, 0xff)},
		{"family 0 with a source", raw(0, 8, 0, 10)},
		{"two ECS options", func() *dns.Msg {
			q := withECS(question("cdn.example.test.", dns.TypeA, 1232), "10.0.0.0/8")
			return withECS(q, "10.0.0.0/8")
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, ts.addr, "udp", tc.q)
			if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
				t.Fatalf("rcode %s, %d answers; want FORMERR", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
}

// TestDeterministicAcrossServers covers point 4: two servers with the
// same files and health state give byte-identical answers for every
// client, even with the regions listed in another order in the file.
func TestDeterministicAcrossServers(t *testing.T) {
	csv := baseCSV + "172.16.0.0/12,ap-south-1,50\n172.16.0.0/12,eu-west-1,50\n172.16.0.0/12,us-west-2,50\n"
	reordered := strings.Replace(baseYAML,
		"  us-west-2: {a: [192.0.2.10, 192.0.2.11], aaaa: [\"2001:db8::10\"]}\n  eu-west-1: {a: [198.51.100.10], aaaa: [\"2001:db8:1::10\"]}\n  ap-south-1: {a: [203.0.113.10]}\n",
		"  ap-south-1: {a: [203.0.113.10]}\n  eu-west-1: {a: [198.51.100.10], aaaa: [\"2001:db8:1::10\"]}\n  us-west-2: {a: [192.0.2.10, 192.0.2.11], aaaa: [\"2001:db8::10\"]}\n", 1)
	if reordered == baseYAML {
		t.Fatal("reorder did not apply")
	}
	a := startServer(t, mustConfig(t, baseYAML), mustTable(t, csv), Options{})
	b := startServer(t, mustConfig(t, reordered), mustTable(t, csv), Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	table := a.Table()
	for i := 0; i < 300; i++ {
		client := randomAddr(rng, table)
		bits := 24
		if client.Is6() {
			bits = 48
		}
		p, _ := client.Prefix(bits)
		// The same health state on both: a random set of regions down.
		down := rng.Uint64() & 0b111
		a.state.Load().prober.down.Store(down)
		b.state.Load().prober.down.Store(down)
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			q := withECS(question("cdn.example.test.", qtype, 1232), p.String())
			q.Id = uint16(i)
			ra := exchange(t, a.addr, "udp", q)
			rb := exchange(t, b.addr, "udp", q)
			pa, _ := ra.Pack()
			pb, _ := rb.Pack()
			if string(pa) != string(pb) {
				t.Fatalf("client %s down=%03b: answers differ:\n%v\n%v", p, down, ra, rb)
			}
		}
	}
	// Ties: 172.16/12 has three regions at 50 ms; name order decides.
	r := exchange(t, a.addr, "udp", withECS(question("cdn.example.test.", dns.TypeA, 1232), "172.16.5.0/24"))
	if got := addrs(r.Answer); !slices.Equal(got, regionA["ap-south-1"]) {
		t.Errorf("tie: %v, want ap-south-1 (first by name)", got)
	}
	_ = fmt.Sprint
}

// TestECSScopeMapped: an ECS prefix of family 2 that is IPv4-mapped
// (::ffff:a.b.c.d/N) is routed by the IPv4 rows, and its scope is given
// in IPv6 bits (RFC 7871 §7.2.1, §7.3.1): /118 for a /22 row, not /22,
// which a resolver would cache for ::/22, every IPv4-mapped client.
// Plain IPv6 scopes stop short of the mapped block for the same reason.
func TestECSScopeMapped(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	tests := []struct {
		subnet string
		want   []string
		scope  uint8
	}{
		{"::ffff:198.51.100.0/120", regionA["eu-west-1"], 96 + 22},
		{"::ffff:203.0.113.0/120", regionA["ap-south-1"], 96 + 24},
		{"::ffff:192.0.2.0/120", regionA["us-west-2"], 96 + 6}, // no row: default order, 192.0.0.0/6
		{"100::/64", regionA["us-west-2"], 8},                  // ::/3 would cover ::ffff:0:0/96
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.subnet, func(t *testing.T) {
				r := exchange(t, ts.addr, network, withECS(question("cdn.example.test.", dns.TypeA, 1232), tc.subnet))
				if got := addrs(r.Answer); !slices.Equal(got, tc.want) {
					t.Errorf("answer %v, want %v", got, tc.want)
				}
				e := replyECS(r)
				if e == nil {
					t.Fatal("ECS not echoed")
				}
				if e.Family != 2 || e.SourceScope != tc.scope {
					t.Errorf("family %d scope %d, want family 2 scope %d", e.Family, e.SourceScope, tc.scope)
				}
			})
		}
	}
}

// TestECSAddressLength: an ECS option whose ADDRESS has more or fewer
// octets than its SOURCE PREFIX-LENGTH needs gets FORMERR (RFC 7871 §6),
// over UDP and TCP, with an OPT record in the reply; it used to be
// routed as if valid.
func TestECSAddressLength(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	raw := func(family uint16, source uint8, addr ...byte) *dns.Msg {
		q := question("cdn.example.test.", dns.TypeA, 1232)
		data := append([]byte{byte(family >> 8), byte(family), source, 0}, addr...)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: data})
		return q
	}
	tests := []struct {
		name  string
		q     *dns.Msg
		rcode int
	}{
		{"ipv4 /24 with 4 octets", raw(1, 24, 203, 0, 113, 0), dns.RcodeFormatError},
		{"ipv4 /24 with 2 octets", raw(1, 24, 203, 0), dns.RcodeFormatError},
		{"ipv4 /0 with 1 octet", raw(1, 0, 0), dns.RcodeFormatError},
		{"ipv4 /32 with 3 octets", raw(1, 32, 203, 0, 113), dns.RcodeFormatError},
		{"ipv6 /48 with 16 octets", raw(2, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), dns.RcodeFormatError},
		{"family 0 /0 with 4 octets", raw(0, 0, 0, 0, 0, 0), dns.RcodeFormatError},
		// The right lengths are answered.
		{"ipv4 /24 with 3 octets", raw(1, 24, 203, 0, 113), dns.RcodeSuccess},
		{"ipv4 /20 with 3 octets", raw(1, 20, 203, 0, 112), dns.RcodeSuccess},
		{"ipv4 /0 with none", raw(1, 0), dns.RcodeSuccess},
		{"ipv6 /48 with 6 octets", raw(2, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0xee), dns.RcodeSuccess},
		{"family 0 /0 with none (dig +subnet=0)", raw(0, 0), dns.RcodeSuccess},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				r := exchange(t, ts.addr, network, tc.q)
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if r.IsEdns0() == nil {
					t.Error("no OPT in the reply")
				}
				if tc.rcode != dns.RcodeSuccess && len(r.Answer) != 0 {
					t.Errorf("answers with FORMERR: %v", r.Answer)
				}
			})
		}
	}
}
