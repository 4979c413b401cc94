package dnsgeo

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestFallback: with fallback: true a routed answer carries the answering
// region's addresses, then the first address of the next healthy region
// in the client's order, over UDP and TCP, with ECS and without; with
// the default (false) one region's addresses only. Health comes from
// real probes of edges the test stops.
func TestFallback(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	edges := map[string]*edge{"us-west-2": us, "eu-west-1": eu, "ap-south-1": ap}
	y := healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1, rise: 1}")
	tests := []struct {
		name   string
		subnet string // ECS; "" asks from the resolver's address (127.0.0.1: eu-west-1, then us-west-2)
		qtype  uint16
		down   []string
		want   []string
		off    []string // the same query with fallback: false
	}{
		{"first region healthy", "203.0.113.0/24", dns.TypeA, nil,
			[]string{"203.0.113.10", "198.51.100.10"}, []string{"203.0.113.10"}},
		{"two addresses, then the next region's first", "192.0.2.0/24", dns.TypeA, nil,
			[]string{"192.0.2.10", "192.0.2.11", "198.51.100.10"}, []string{"192.0.2.10", "192.0.2.11"}},
		{"first region down: the next answers, the one after falls back", "203.0.113.0/24", dns.TypeA, []string{"ap-south-1"},
			[]string{"198.51.100.10", "192.0.2.10"}, []string{"198.51.100.10"}},
		{"a down region is never the fallback", "203.0.113.0/24", dns.TypeA, []string{"eu-west-1"},
			[]string{"203.0.113.10", "192.0.2.10"}, []string{"203.0.113.10"}},
		{"only one region up: no fallback", "203.0.113.0/24", dns.TypeA, []string{"ap-south-1", "eu-west-1"},
			[]string{"192.0.2.10", "192.0.2.11"}, []string{"192.0.2.10", "192.0.2.11"}},
		{"unmeasured regions follow in default order", "198.51.100.0/24", dns.TypeA, []string{"us-west-2"},
			[]string{"198.51.100.10", "203.0.113.10"}, []string{"198.51.100.10"}},
		{"resolver address", "", dns.TypeA, nil,
			[]string{"198.51.100.10", "192.0.2.10"}, []string{"198.51.100.10"}},
		{"AAAA: the next region with an AAAA address", "198.51.100.0/24", dns.TypeAAAA, nil,
			[]string{"2001:db8:1::10", "2001:db8::10"}, []string{"2001:db8:1::10"}},
		{"AAAA: no other healthy region has one", "198.51.100.0/24", dns.TypeAAAA, []string{"us-west-2"},
			[]string{"2001:db8:1::10"}, []string{"2001:db8:1::10"}},
		{"AAAA: the region has none: NODATA, no fallback alone", "203.0.113.0/24", dns.TypeAAAA, nil,
			nil, nil},
		{"all down: every address, as without fallback", "203.0.113.0/24", dns.TypeA, []string{"ap-south-1", "eu-west-1", "us-west-2"},
			[]string{"203.0.113.10", "198.51.100.10", "192.0.2.10", "192.0.2.11"}, []string{"203.0.113.10", "198.51.100.10", "192.0.2.10", "192.0.2.11"}},
	}
	on := startServer(t, mustConfig(t, y+"fallback: true\n"), mustTable(t, baseCSV), Options{})
	off := startServer(t, mustConfig(t, y), mustTable(t, baseCSV), Options{})
	for _, tc := range tests {
		for name, e := range edges {
			if slices.Contains(tc.down, name) {
				e.stop()
			} else if e.srv == nil {
				e.start()
			}
		}
		on.ProbeAll(context.Background())
		off.ProbeAll(context.Background())
		for _, network := range []string{"udp", "tcp"} {
			for _, srv := range []struct {
				ts   *testServer
				want []string
			}{{on, tc.want}, {off, tc.off}} {
				q := question("cdn.example.test.", tc.qtype, 1232)
				if tc.subnet != "" {
					q = withECS(q, tc.subnet)
				}
				r := exchange(t, srv.ts.addr, network, q)
				got := addrs(r.Answer)
				fallback := srv.ts == on
				if !slices.Equal(got, srv.want) || r.Rcode != dns.RcodeSuccess {
					t.Errorf("%s, %s, fallback %v: %v (%s), want %v", tc.name, network, fallback, got, dns.RcodeToString[r.Rcode], srv.want)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 20 {
						t.Errorf("%s: TTL %d, want the routed TTL 20", tc.name, rr.Header().Ttl)
					}
				}
				if len(srv.want) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
					t.Errorf("%s: NODATA without the SOA: %v", tc.name, r.Ns)
				}
			}
		}
	}
}

// TestFallbackFailoverText: an answer that fails over still says why
// (Extended DNS Error), and names the client's first region, not the
// fallback's.
func TestFallbackFailoverText(t *testing.T) {
	us, eu, ap := newEdge(t, false), newEdge(t, false), newEdge(t, false)
	ts := startServer(t, mustConfig(t, healthYAML(us.url(), eu.url(), ap.url(), "{fall: 1}")+"fallback: true\n"), mustTable(t, baseCSV), Options{})
	ap.stop()
	ts.ProbeAll(context.Background())
	r := exchange(t, ts.addr, "udp", withECS(question("cdn.example.test.", dns.TypeA, 1232), "203.0.113.0/24"))
	var text string
	for _, o := range r.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			text = e.ExtraText
		}
	}
	if text != "failover: region ap-south-1 is down" {
		t.Errorf("EDE %q", text)
	}
	if got := addrs(r.Answer); !slices.Equal(got, []string{"198.51.100.10", "192.0.2.10"}) {
		t.Errorf("answer %v", got)
	}
}

// TestFallbackConfig: the field is a boolean, false by default, and a
// wrong value is an error naming the file, the line and the field.
func TestFallbackConfig(t *testing.T) {
	if c := mustConfig(t, minimalYAML); c.Fallback {
		t.Error("fallback on by default")
	}
	if c := mustConfig(t, minimalYAML+"fallback: true\n"); !c.Fallback {
		t.Error("fallback: true not read")
	}
	for _, v := range []string{"maybe", "[true]", "{on: 1}", "2"} {
		_, err := ParseConfig("test.yaml", []byte(minimalYAML+"fallback: "+v+"\n"))
		if err == nil || !strings.Contains(err.Error(), "test.yaml:6: fallback: cannot unmarshal") {
			t.Errorf("fallback: %s: %v", v, err)
		}
	}
}
