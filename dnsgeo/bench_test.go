package dnsgeo

import (
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS is the handler alone (no sockets): parse is done,
// the reply is built, rate limited and packed.
func BenchmarkServeDNS(b *testing.B) {
	cfg := mustConfig(b, baseYAML)
	srv, err := New(cfg, mustTable(b, baseCSV), Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    *dns.Msg
	}{
		{"routed", question("cdn.example.test.", dns.TypeA, 0)},
		{"routed-ecs", withECS(question("cdn.example.test.", dns.TypeA, 1232), "203.0.113.0/24")},
		{"static", question("ns1.example.test.", dns.TypeA, 1232)},
		{"nxdomain", question("nope.example.test.", dns.TypeA, 1232)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := &recorder{udp: true}
			b.ReportAllocs()
			for b.Loop() {
				w.out = w.out[:0]
				srv.ServeDNS(w, tc.q)
			}
		})
	}
}
