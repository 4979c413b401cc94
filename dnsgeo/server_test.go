package dnsgeo

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestAuthoritative covers point 1: authoritative answers over UDP and
// TCP from a real listener with a real client.
func TestAuthoritative(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		qclass uint16
		rcode  int
		aa     bool
		answer []string // "owner type rdata-ish" via rrLine
		ns     []string
		extra  []string
	}{
		{name: "soa", qname: "example.test.", qtype: dns.TypeSOA, rcode: 0, aa: true,
			answer: []string{"example.test.\t3600\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "ns with glue", qname: "example.test.", qtype: dns.TypeNS, aa: true,
			answer: []string{"example.test.\t3600\tIN\tNS\tns1.example.test.", "example.test.\t3600\tIN\tNS\tns2.example.test."},
			extra:  []string{"ns1.example.test.\t3600\tIN\tA\t192.0.2.53", "ns2.example.test.\t3600\tIN\tA\t192.0.2.54"}},
		{name: "static A", qname: "ns1.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"ns1.example.test.\t3600\tIN\tA\t192.0.2.53"}},
		{name: "routed A by resolver address", qname: "cdn.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"cdn.example.test.\t20\tIN\tA\t198.51.100.10"}},
		{name: "routed AAAA", qname: "cdn.example.test.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"cdn.example.test.\t20\tIN\tAAAA\t2001:db8:1::10"}},
		{name: "routed apex", qname: "example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"example.test.\t20\tIN\tA\t198.51.100.10"}},
		{name: "cname chased in zone", qname: "www.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"www.example.test.\t300\tIN\tCNAME\tcdn.example.test.", "cdn.example.test.\t20\tIN\tA\t198.51.100.10"}},
		{name: "cname chain", qname: "alias.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"alias.example.test.\t300\tIN\tCNAME\twww.example.test.", "www.example.test.\t300\tIN\tCNAME\tcdn.example.test.", "cdn.example.test.\t20\tIN\tA\t198.51.100.10"}},
		{name: "cname asked as cname", qname: "www.example.test.", qtype: dns.TypeCNAME, aa: true,
			answer: []string{"www.example.test.\t300\tIN\tCNAME\tcdn.example.test."}},
		{name: "cname out of zone", qname: "ext.example.test.", qtype: dns.TypeA, aa: true,
			answer: []string{"ext.example.test.\t300\tIN\tCNAME\tcdn.other.test."}},
		{name: "txt", qname: "example.test.", qtype: dns.TypeTXT, aa: true,
			answer: []string{"example.test.\t300\tIN\tTXT\t\"v=spf1 -all\""}},
		{name: "caa", qname: "example.test.", qtype: dns.TypeCAA, aa: true,
			answer: []string{"example.test.\t300\tIN\tCAA\t0 issue \"letsencrypt.org\""}},
		{name: "mx with additional", qname: "example.test.", qtype: dns.TypeMX, aa: true,
			answer: []string{"example.test.\t300\tIN\tMX\t10 mail.example.test."},
			extra:  []string{"mail.example.test.\t300\tIN\tA\t192.0.2.25"}},
		{name: "nxdomain", qname: "nope.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
			ns: []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "nxdomain below a name", qname: "x.ns1.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, aa: true,
			ns: []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "nodata", qname: "ns1.example.test.", qtype: dns.TypeAAAA, aa: true,
			ns: []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "empty non-terminal is nodata", qname: "b.deep.example.test.", qtype: dns.TypeTXT, aa: true,
			ns: []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "routed name, other type", qname: "cdn.example.test.", qtype: dns.TypeTXT, aa: true,
			ns: []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "cname then nodata keeps the cname", qname: "www.example.test.", qtype: dns.TypeTXT, aa: true,
			answer: []string{"www.example.test.\t300\tIN\tCNAME\tcdn.example.test."},
			ns:     []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "case kept", qname: "CdN.ExAmPlE.TeSt.", qtype: dns.TypeA, aa: true,
			answer: []string{"CdN.ExAmPlE.TeSt.\t20\tIN\tA\t198.51.100.10"}},
		{name: "case kept static", qname: "NS1.example.TEST.", qtype: dns.TypeA, aa: true,
			answer: []string{"NS1.example.TEST.\t3600\tIN\tA\t192.0.2.53"}},
		{name: "any is minimal (RFC 8482)", qname: "example.test.", qtype: dns.TypeANY, aa: true,
			answer: []string{"example.test.\t3600\tIN\tHINFO\t\"RFC8482\" \"\""}},
		{name: "any on nxdomain", qname: "nope.example.test.", qtype: dns.TypeANY, rcode: dns.RcodeNameError, aa: true,
			ns: []string{"example.test.\t60\tIN\tSOA\tns1.example.test. hostmaster.example.test. 1 3600 600 604800 60"}},
		{name: "outside the zone", qname: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "sibling suffix is outside", qname: "notexample.test.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "class chaos", qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, rcode: dns.RcodeRefused},
		{name: "class any", qname: "cdn.example.test.", qtype: dns.TypeA, qclass: dns.ClassANY, rcode: dns.RcodeRefused},
		{name: "axfr", qname: "example.test.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
		{name: "meta type", qname: "example.test.", qtype: dns.TypeOPT, rcode: dns.RcodeFormatError},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				q := question(tc.qname, tc.qtype, 1232)
				if tc.qclass != 0 {
					q.Question[0].Qclass = tc.qclass
				}
				r := exchange(t, ts.addr, network, q)
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
				}
				if r.Authoritative != tc.aa {
					t.Errorf("AA %v, want %v", r.Authoritative, tc.aa)
				}
				if r.RecursionAvailable {
					t.Error("RA set by an authoritative-only server")
				}
				if len(r.Question) == 1 && r.Question[0].Name != tc.qname {
					t.Errorf("question name %q, want %q", r.Question[0].Name, tc.qname)
				}
				check := func(section string, got []dns.RR, want []string) {
					t.Helper()
					var lines []string
					for _, rr := range got {
						if rr.Header().Rrtype != dns.TypeOPT {
							lines = append(lines, rr.String())
						}
					}
					if !slices.Equal(lines, want) {
						t.Errorf("%s:\n got %q\nwant %q", section, lines, want)
					}
				}
				check("answer", r.Answer, tc.answer)
				check("authority", r.Ns, tc.ns)
				check("additional", r.Extra, tc.extra)
				if r.IsEdns0() == nil {
					t.Error("no OPT in the reply to an EDNS query")
				}
			})
		}
	}
}

// TestTruncation covers point 1: EDNS buffer size, TC, and a clean cut
// that makes the client retry over TCP.
func TestTruncation(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})

	// The TXT set is ~1.5 kB: over 1232 and 512.
	for _, size := range []uint16{0, 512, 1232, 4096} {
		r := exchange(t, ts.addr, "udp", question("big.example.test.", dns.TypeTXT, size))
		if !r.Truncated || len(r.Answer) != 0 || len(r.Ns) != 0 {
			t.Errorf("bufsize %d: TC=%v answer=%d ns=%d; want TC and an empty answer", size, r.Truncated, len(r.Answer), len(r.Ns))
		}
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
			t.Errorf("bufsize %d: rcode %d AA %v", size, r.Rcode, r.Authoritative)
		}
		if o := r.IsEdns0(); size > 0 && (o == nil || o.UDPSize() != maxUDPSize) {
			t.Errorf("bufsize %d: OPT %v, want our buffer size %d", size, o, maxUDPSize)
		}
	}
	r := exchange(t, ts.addr, "tcp", question("big.example.test.", dns.TypeTXT, 1232))
	if r.Truncated || len(r.Answer) != 6 {
		t.Fatalf("tcp: TC=%v answers=%d, want the whole set of 6", r.Truncated, len(r.Answer))
	}

	// The miekg client retries over TCP by itself on TC, as a resolver does.
	c := &dns.Client{Net: "udp"}
	r, _, err := c.Exchange(question("big.example.test.", dns.TypeTXT, 1232), ts.addr)
	if err != nil || !r.Truncated {
		t.Fatalf("udp: %v TC=%v", err, r != nil && r.Truncated)
	}
	c.Net = "tcp"
	if r, _, err = c.Exchange(question("big.example.test.", dns.TypeTXT, 1232), ts.addr); err != nil || len(r.Answer) != 6 {
		t.Fatalf("tcp retry: %v", err)
	}

	// An answer that fits is not truncated; additional records that do
	// not fit are dropped without TC (RFC 2181 §9).
	r = exchange(t, ts.addr, "udp", question("example.test.", dns.TypeNS, 0))
	if r.Truncated || len(r.Answer) != 2 {
		t.Errorf("NS over 512 bytes: TC=%v answers=%d", r.Truncated, len(r.Answer))
	}
	m := &dns.Msg{}
	m.SetQuestion("example.test.", dns.TypeNS)
	m.Answer = []dns.RR{mustRR(t, "example.test. 3600 IN NS ns1.example.test.")}
	m.Extra = []dns.RR{mustRR(t, "ns1.example.test. 3600 IN TXT \""+bigText+"\""), mustRR(t, "ns1.example.test. 3600 IN TXT \""+bigText+"x\""), mustRR(t, "ns1.example.test. 3600 IN TXT \""+bigText+"xx\"")}
	if _, tc, err := packFit(m, 512, nil); err != nil || tc || m.Truncated || len(m.Answer) != 1 || len(m.Extra) != 0 {
		t.Errorf("fit dropped the answer or set TC for additional data: TC=%v answer=%d extra=%d", m.Truncated, len(m.Answer), len(m.Extra))
	}
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestEDNSVersion: an unknown EDNS version gets BADVERS (RFC 6891 §6.1.3).
func TestEDNSVersion(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), nil, Options{})
	q := question("cdn.example.test.", dns.TypeA, 1232)
	q.IsEdns0().SetVersion(1)
	r := exchange(t, ts.addr, "udp", q)
	if r.Rcode != dns.RcodeBadVers || len(r.Answer) != 0 {
		t.Fatalf("rcode %s answers %d, want BADVERS", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	if o := r.IsEdns0(); o == nil || o.Version() != 0 {
		t.Fatalf("BADVERS reply must carry an OPT of version 0: %v", o)
	}
	// No EDNS: no OPT back.
	r = exchange(t, ts.addr, "udp", question("cdn.example.test.", dns.TypeA, 0))
	if r.IsEdns0() != nil {
		t.Error("OPT in the reply to a query without EDNS")
	}
	// DO is copied (RFC 3225).
	q = question("cdn.example.test.", dns.TypeA, 1232)
	q.IsEdns0().SetDo()
	if r = exchange(t, ts.addr, "udp", q); !r.IsEdns0().Do() {
		t.Error("DO bit not copied")
	}
}

// TestNoEmptyRecordsForEmptyNames checks the static zone compiles the
// ancestors of deep names as empty non-terminals only inside the zone.
func TestEmptyNonTerminals(t *testing.T) {
	c := mustConfig(t, baseYAML)
	for _, name := range []string{"deep.example.test.", "b.deep.example.test.", "a.b.deep.example.test."} {
		if c.zone.lookup(name) == nil {
			t.Errorf("%s missing", name)
		}
	}
	for name := range c.zone.nodes {
		if !strings.HasSuffix(name, "example.test.") {
			t.Errorf("node %s outside the zone", name)
		}
	}
}

// TestANYOnCNAME: ANY at a name that owns a CNAME is answered with the
// CNAME alone, not by following it (RFC 1034 §3.6.2, §4.3.2 step 3a);
// the RFC 8482 HINFO is for names that are not aliases.
func TestANYOnCNAME(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	tests := []struct {
		qname string
		want  []string
	}{
		{"www.example.test.", []string{"www.example.test.\t300\tIN\tCNAME\tcdn.example.test."}},
		{"alias.example.test.", []string{"alias.example.test.\t300\tIN\tCNAME\twww.example.test."}},
		{"ext.example.test.", []string{"ext.example.test.\t300\tIN\tCNAME\tcdn.other.test."}},
		// The target is compressed to the question, whose spelling the
		// reply keeps: names compare without case (RFC 4343).
		{"WwW.Example.TEST.", []string{"WwW.Example.TEST.\t300\tIN\tCNAME\tcdn.Example.TEST."}},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.qname, func(t *testing.T) {
				r := exchange(t, ts.addr, network, question(tc.qname, dns.TypeANY, 1232))
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
					t.Fatalf("rcode %s AA %v", dns.RcodeToString[r.Rcode], r.Authoritative)
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.String())
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("answer:\n got %q\nwant %q", got, tc.want)
				}
				if len(r.Ns) != 0 {
					t.Errorf("authority %v, want none", r.Ns)
				}
			})
		}
	}
}
