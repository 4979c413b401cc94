package dnsgeo

import (
	"net/netip"
	"testing"

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
