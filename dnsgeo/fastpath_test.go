package dnsgeo

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fastYAML is baseYAML with what makes the fast path work harder: an
// MX set whose additional records do not fit in 512 bytes (trimmed,
// not truncated), a CNAME to a name that does not exist, a routed name
// with other data, and an SOA mailbox below the apex without records.
var fastYAML = strings.Replace(baseYAML, "records:\n", "records:\n"+func() string {
	var b strings.Builder
	for i := range 8 {
		fmt.Fprintf(&b, "  - \"mx 300 IN MX %d m%d\"\n", 10+i, i)
		fmt.Fprintf(&b, "  - \"m%d 300 IN A 192.0.2.%d\"\n  - \"m%d 300 IN A 198.51.100.%d\"\n  - \"m%d 300 IN AAAA 2001:db8::%d\"\n", i, 100+i, i, 100+i, i, 100+i)
	}
	b.WriteString("  - \"dangling 300 IN CNAME gone\"\n")
	b.WriteString("  - 'cdn 300 IN TXT \"routed, and text\"'\n")
	return b.String()
}(), 1)

// fastQueries are the queries the fast path must answer itself (the
// bench's mix among them), each with the reply's rcode.
func fastQueries() []*dns.Msg {
	mk := func(name string, qtype uint16, size uint16) *dns.Msg { return question(name, qtype, size) }
	cookie := mk("cdn.example.test.", dns.TypeA, 1232)
	cookie.IsEdns0().Option = append(cookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	do := mk("cdn.example.test.", dns.TypeAAAA, 1232)
	do.IsEdns0().SetDo()
	rd := mk("www.example.test.", dns.TypeA, 0)
	rd.RecursionDesired, rd.CheckingDisabled = true, true
	return []*dns.Msg{
		mk("cdn.example.test.", dns.TypeA, 0),
		mk("cdn.example.test.", dns.TypeA, 1232),
		withECS(mk("cdn.example.test.", dns.TypeA, 1232), "203.0.113.0/24"),
		withECS(mk("cdn.example.test.", dns.TypeA, 1232), "10.2.0.0/16"),
		withECS(mk("cdn.example.test.", dns.TypeAAAA, 1232), "2001:db8:ee::/48"),
		withECS(mk("cdn.example.test.", dns.TypeA, 1232), "::ffff:198.51.100.0/120"),
		withECS(mk("cdn.example.test.", dns.TypeA, 1232), "0.0.0.0/0"),
		withECS(mk("cdn.example.test.", dns.TypeAAAA, 1232), "203.0.113.0/24"), // NODATA: no AAAA there
		mk("CdN.ExAmPlE.TeSt.", dns.TypeA, 1232),
		mk("cdn.example.test.", dns.TypeAAAA, 0),
		mk("cdn.example.test.", dns.TypeTXT, 1232),
		mk("www.example.test.", dns.TypeA, 1232),
		mk("alias.example.test.", dns.TypeAAAA, 1232),
		mk("ext.example.test.", dns.TypeA, 1232),
		mk("www.example.test.", dns.TypeCNAME, 1232),
		mk("www.example.test.", dns.TypeANY, 1232),
		mk("example.test.", dns.TypeSOA, 0),
		mk("example.test.", dns.TypeNS, 1232),
		mk("example.test.", dns.TypeMX, 1232),
		mk("example.test.", dns.TypeANY, 0),
		mk("example.test.", dns.TypeA, 1232),
		mk("example.test.", dns.TypeRRSIG, 1232),
		mk("mx.example.test.", dns.TypeMX, 0),    // additional records dropped
		mk("mx.example.test.", dns.TypeMX, 1232), // all of it
		mk("big.example.test.", dns.TypeTXT, 1232),
		mk("nope.example.test.", dns.TypeA, 1232),
		mk("a.very.deep.nope.example.test.", dns.TypeAAAA, 0),
		mk("b.deep.example.test.", dns.TypeTXT, 1232),
		mk("dangling.example.test.", dns.TypeA, 1232),
		mk("example.org.", dns.TypeA, 1232),
		mk("example.org.", dns.TypeA, 0),
		withECS(mk("example.org.", dns.TypeA, 1232), "203.0.113.0/24"),
		cookie, do, rd,
	}
}

func fastServer(t testing.TB) *Server {
	t.Helper()
	srv, err := New(mustConfig(t, fastYAML), mustTable(t, baseCSV), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// fallbackServer is fastServer with fallback: true, whose routed
// answers are compiled per pair of regions.
func fallbackServer(t testing.TB) *Server {
	t.Helper()
	srv, err := New(mustConfig(t, fastYAML+"fallback: true\n"), mustTable(t, baseCSV), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// fuzzClients are the resolver addresses FuzzFastPath picks from.
var fuzzClients = []netip.Addr{
	netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3"),
	netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:ee::1"), netip.MustParseAddr("2001:db8:ff::1"),
}

// differ compares the fast path with the reference path on one packet.
// It returns "" when they agree (or the fast path left the packet to
// the reference), else what differs.
func differ(srv *Server, pkt []byte, client netip.Addr, udp bool) (string, bool) {
	st := srv.state.Load()
	ref := srv.slow(st, pkt, client, udp, make([]byte, udpReadSize))
	got, ok := srv.fast(st, pkt, client, udp, make([]byte, udpReadSize))
	if !ok {
		return "", false
	}
	if bytes.Equal(got, ref) {
		return "", true
	}
	show := func(b []byte) string {
		var m dns.Msg
		if b == nil {
			return "(nothing)"
		}
		if err := m.Unpack(b); err != nil {
			return fmt.Sprintf("%x (does not parse: %v)", b, err)
		}
		return fmt.Sprintf("%x\n%v", b, &m)
	}
	return fmt.Sprintf("query %x from %s udp=%v\nfast:\n%s\nreference:\n%s", pkt, client, udp, show(got), show(ref)), true
}

// FuzzFastPath is the differential test of the fast path: for any
// packet, any resolver address and any health state, the reply it sends
// is byte for byte the reply of the reference path (miekg/dns parses,
// answer builds a dns.Msg, miekg/dns packs), or it leaves the packet to
// the reference path. Bit 3 of down picks the server with fallback: true.
func FuzzFastPath(f *testing.F) {
	for i, q := range fastQueries() {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, i%2 == 0, byte(i), byte(i/3))
	}
	servers := []*Server{fastServer(f), fallbackServer(f)}
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool, who, down byte) {
		if len(pkt) < headerLen || pkt[2]&bitQR != 0 || len(pkt) > dns.MaxMsgSize {
			return // respond drops these before either path
		}
		srv := servers[down>>3&1]
		srv.state.Load().prober.down.Store(uint64(down) & 0b111)
		if diff, _ := differ(srv, pkt, fuzzClients[int(who)%len(fuzzClients)], !tcp); diff != "" {
			t.Fatal(diff)
		}
	})
}

// TestFastPath: the fast path answers the common queries itself (so
// FuzzFastPath compares something), byte for byte like the reference
// path, for every resolver and health state, over UDP and TCP, with
// fallback addresses and without.
func TestFastPath(t *testing.T) {
	for _, fb := range []*Server{fallbackServer(t), fastServer(t)} {
		for _, q := range fastQueries() {
			pkt := packed(t, q)
			for _, client := range fuzzClients {
				for down := range uint64(7) { // all down (7) is the slow path's
					fb.state.Load().prober.down.Store(down)
					for _, udp := range []bool{true, false} {
						diff, handled := differ(fb, pkt, client, udp)
						if !handled {
							t.Fatalf("%v from %s down=%03b: left to the slow path", q.Question[0], client, down)
						}
						if diff != "" {
							t.Fatal(diff)
						}
					}
				}
			}
		}
	}
	srv := fastServer(t)
	// What it leaves to the reference path.
	srv.state.Load().prober.down.Store(0)
	chaos := question("cdn.example.test.", dns.TypeA, 1232)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	badvers := question("cdn.example.test.", dns.TypeA, 1232)
	badvers.IsEdns0().SetVersion(1)
	nsid := question("cdn.example.test.", dns.TypeA, 1232)
	nsid.IsEdns0().Option = append(nsid.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	for _, q := range []*dns.Msg{
		chaos, badvers, nsid,
		question("example.test.", dns.TypeAXFR, 0),
		question("x.hostmaster.example.test.", dns.TypeA, 0), // miekg/dns compresses the SOA's RNAME to it
	} {
		if _, ok := srv.fast(srv.state.Load(), packed(t, q), fuzzClients[0], true, make([]byte, udpReadSize)); ok {
			t.Errorf("%v: answered by the fast path", q)
		}
	}
	srv.state.Load().prober.down.Store(7)
	if _, ok := srv.fast(srv.state.Load(), packed(t, question("cdn.example.test.", dns.TypeA, 0)), fuzzClients[0], true, make([]byte, udpReadSize)); ok {
		t.Error("routed answer with every region down: answered by the fast path")
	}
}

// TestFastPathAllocs: answering a common query allocates nothing, rate
// limiting and metrics included (the RRL table's entry for the client
// exists after the first query).
func TestFastPathAllocs(t *testing.T) {
	rrlOn := strings.Replace(fastYAML, "rrl: {enabled: false}", "rrl: {responses_per_second: 1000000}", 1)
	for _, y := range []string{rrlOn, rrlOn + "fallback: true\n"} {
		srv, err := New(mustConfig(t, y), mustTable(t, baseCSV), Options{})
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, udpReadSize)
		for _, q := range fastQueries() {
			pkt := packed(t, q)
			for _, udp := range []bool{true, false} {
				allocs := testing.AllocsPerRun(200, func() {
					if srv.respond(pkt, fuzzClients[0], udp, out) == nil {
						t.Fatal("no reply")
					}
				})
				if allocs != 0 {
					t.Errorf("%v udp=%v: %.1f allocations per query", q.Question[0], udp, allocs)
				}
			}
		}
	}
}
