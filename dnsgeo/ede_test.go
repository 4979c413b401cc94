package dnsgeo

import (
	"testing"

	"github.com/miekg/dns"
)

// replyEDE returns the Extended DNS Errors of a reply.
func replyEDE(m *dns.Msg) []*dns.EDNS0_EDE {
	var out []*dns.EDNS0_EDE
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if x, ok := e.(*dns.EDNS0_EDE); ok {
				out = append(out, x)
			}
		}
	}
	return out
}

// TestExtendedErrors: REFUSED says why, and so does an answer given
// because the client's first region is down (RFC 8914), over UDP and
// TCP; ordinary answers carry none, and queries without EDNS get no OPT.
func TestExtendedErrors(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	index := ts.Config().regionIndex
	down := func(regions ...string) {
		var d uint64
		for _, r := range regions {
			d |= 1 << index(r)
		}
		ts.state.Load().prober.down.Store(d)
	}
	chaos := question("version.bind.", dns.TypeTXT, 1232)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	tests := []struct {
		name  string
		down  []string
		q     *dns.Msg
		rcode int
		code  int // -1: no EDE
		text  string
		want  []string // answer addresses
	}{
		{"outside the zone", nil, question("example.org.", dns.TypeA, 1232), dns.RcodeRefused, int(dns.ExtendedErrorCodeNotAuthoritative), "", nil},
		{"class CH", nil, chaos, dns.RcodeRefused, int(dns.ExtendedErrorCodeNotAuthoritative), "", nil},
		{"zone transfer", nil, question("example.test.", dns.TypeAXFR, 1232), dns.RcodeRefused, int(dns.ExtendedErrorCodeProhibited), "", nil},
		{"first region up", nil, question("cdn.example.test.", dns.TypeA, 1232), dns.RcodeSuccess, -1, "", regionA["eu-west-1"]},
		// The loopback resolver prefers eu-west-1.
		{"failover", []string{"eu-west-1"}, question("cdn.example.test.", dns.TypeA, 1232), dns.RcodeSuccess, int(dns.ExtendedErrorCodeOther), "failover: region eu-west-1 is down", regionA["us-west-2"]},
		{"failover through a CNAME", []string{"eu-west-1"}, question("www.example.test.", dns.TypeA, 1232), dns.RcodeSuccess, int(dns.ExtendedErrorCodeOther), "failover: region eu-west-1 is down", regionA["us-west-2"]},
		{"other region down", []string{"us-west-2"}, question("cdn.example.test.", dns.TypeA, 1232), dns.RcodeSuccess, -1, "", regionA["eu-west-1"]},
		{"all down", []string{"eu-west-1", "us-west-2", "ap-south-1"}, question("cdn.example.test.", dns.TypeA, 1232), dns.RcodeSuccess, int(dns.ExtendedErrorCodeOther), "all regions down: answering with all of them",
			[]string{"198.51.100.10", "192.0.2.10", "192.0.2.11", "203.0.113.10"}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				down(tc.down...)
				defer down()
				r := exchange(t, ts.addr, network, tc.q)
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if got := addrs(r.Answer); len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
					t.Errorf("answer %v, want %v", got, tc.want)
				}
				e := replyEDE(r)
				switch {
				case tc.code < 0 && len(e) != 0:
					t.Errorf("EDE %v, want none", e)
				case tc.code >= 0 && (len(e) != 1 || int(e[0].InfoCode) != tc.code || e[0].ExtraText != tc.text):
					t.Errorf("EDE %v, want %d %q", e, tc.code, tc.text)
				}
				// Without EDNS there is no OPT to carry it.
				q := tc.q.Copy()
				q.Extra = nil
				if r := exchange(t, ts.addr, network, q); r.IsEdns0() != nil {
					t.Errorf("OPT in the reply to a query without EDNS: %v", r.IsEdns0())
				}
			})
		}
	}
}
