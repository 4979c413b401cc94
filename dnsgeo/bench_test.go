package dnsgeo

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkRespond is the request path alone (no sockets): a query's
// bytes in, the reply's bytes out, rate limiting and metrics included.
func BenchmarkRespond(b *testing.B) {
	cfg := mustConfig(b, baseYAML)
	srv, err := New(cfg, mustTable(b, baseCSV), Options{})
	if err != nil {
		b.Fatal(err)
	}
	client := netip.MustParseAddr("203.0.113.9")
	for _, tc := range []struct {
		name string
		q    *dns.Msg
	}{
		{"routed", question("cdn.example.test.", dns.TypeA, 0)},
		{"routed-ecs", withECS(question("cdn.example.test.", dns.TypeA, 1232), "203.0.113.0/24")},
		{"cname-routed", question("www.example.test.", dns.TypeA, 1232)},
		{"static", question("ns1.example.test.", dns.TypeA, 1232)},
		{"nxdomain", question("nope.example.test.", dns.TypeA, 1232)},
		{"refused", question("example.org.", dns.TypeA, 1232)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pkt, err := tc.q.Pack()
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, udpReadSize)
			b.ReportAllocs()
			for b.Loop() {
				if srv.respond(pkt, client, true, out) == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
}

// BenchmarkUDP is the whole server over loopback UDP: a client keeps 32
// queries in flight (the mix of bench/dns), the server reads and writes
// them in batches. Allocations per op are the server's per query (the
// client allocates nothing).
func BenchmarkUDP(b *testing.B) {
	srv, err := New(mustConfig(b, baseYAML), mustTable(b, baseCSV), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ts := serve(b, srv)
	conn, err := net.Dial("udp", ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var pkts [][]byte
	for _, q := range []*dns.Msg{
		question("cdn.example.test.", dns.TypeA, 1232), question("cdn.example.test.", dns.TypeA, 1232),
		question("cdn.example.test.", dns.TypeA, 1232), question("cdn.example.test.", dns.TypeA, 1232),
		question("cdn.example.test.", dns.TypeA, 1232), question("cdn.example.test.", dns.TypeA, 1232),
		question("cdn.example.test.", dns.TypeAAAA, 1232), question("www.example.test.", dns.TypeA, 1232),
		question("example.test.", dns.TypeSOA, 1232), question("nope.example.test.", dns.TypeA, 1232),
	} {
		p, err := q.Pack()
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	buf := make([]byte, 2048)
	const window = 32
	b.ReportAllocs()
	b.ResetTimer()
	sent, got := 0, 0
	for ; sent < min(window, b.N); sent++ {
		conn.Write(pkts[sent%len(pkts)])
	}
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	for got < b.N {
		if _, err := conn.Read(buf); err != nil {
			b.Fatalf("%d of %d replies: %v", got, b.N, err)
		}
		got++
		if sent < b.N {
			conn.Write(pkts[sent%len(pkts)])
			sent++
		}
	}
}
