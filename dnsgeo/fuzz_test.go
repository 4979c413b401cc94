package dnsgeo

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzRespond drives the request path (respond) with arbitrary bytes,
// over UDP and TCP, and checks every reply: it parses, matches the
// query's ID and opcode, is a response that claims no recursion, keeps
// the query's spelling of the question, fits the UDP limit, and has an
// OPT record when the query had one (RFC 6891 §6.1.1). A panic would be
// recovered by respond, so the test also checks that none happened.
func FuzzRespond(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	seed(question("cdn.example.test.", dns.TypeA, 0))
	seed(question("CDN.example.test.", dns.TypeAAAA, 1232))
	seed(withECS(question("cdn.example.test.", dns.TypeA, 4096), "203.0.113.0/24"))
	seed(withECS(question("www.example.test.", dns.TypeA, 512), "2001:db8:ee::/48"))
	seed(withECS(question("cdn.example.test.", dns.TypeA, 1232), "::ffff:198.51.100.0/120"))
	seed(question("big.example.test.", dns.TypeTXT, 512))
	seed(question("example.test.", dns.TypeANY, 0))
	seed(question("www.example.test.", dns.TypeANY, 1232))
	seed(question("example.test.", dns.TypeNS, 0))
	seed(question("nope.example.test.", dns.TypeMX, 1232))
	seed(question("example.org.", dns.TypeA, 0))
	notify := question("example.test.", dns.TypeSOA, 1232)
	notify.Opcode = dns.OpcodeNotify
	seed(notify)
	two := question("cdn.example.test.", dns.TypeA, 1232)
	two.Question = append(two.Question, two.Question[0])
	seed(two)
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, false)

	cfg, err := ParseConfig("fuzz.yaml", []byte(strings.Replace(baseYAML, "rrl: {enabled: false}", "", 1)))
	if err != nil {
		f.Fatal(err)
	}
	table, err := ParseTable("fuzz.csv", []byte(baseCSV))
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(cfg, table, Options{})
	if err != nil {
		f.Fatal(err)
	}
	client := netip.MustParseAddr("203.0.113.9")
	out := make([]byte, udpReadSize)
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		if len(data) > dns.MaxMsgSize {
			return // neither transport delivers these
		}
		b := srv.respond(data, client, !tcp, out)
		if n := srv.panics.Load(); n > 0 {
			t.Fatalf("handler panicked on %x", data)
		}
		if b == nil {
			return
		}
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatalf("reply does not parse: %v\n%x", err, b)
		}
		if m.Id != be16(data) || !m.Response || m.Opcode != int(data[2]>>3&0xF) {
			t.Fatalf("reply id %d response %v opcode %d to %x", m.Id, m.Response, m.Opcode, data)
		}
		if m.RecursionAvailable || m.Zero || m.AuthenticatedData || (tcp && m.Truncated) {
			t.Fatalf("reply flags RA %v Z %v AD %v TC %v", m.RecursionAvailable, m.Zero, m.AuthenticatedData, m.Truncated)
		}
		var req dns.Msg
		parsed := req.Unpack(data) == nil
		if parsed && len(m.Question) == 1 && len(req.Question) > 0 && m.Question[0].Name != req.Question[0].Name {
			t.Fatalf("question %q, asked %q", m.Question[0].Name, req.Question[0].Name)
		}
		if parsed && req.IsEdns0() != nil && m.IsEdns0() == nil {
			t.Fatalf("no OPT in the reply to an EDNS query:\n%v\n%v", &req, &m)
		}
		if !tcp && len(b) > maxUDPSize {
			t.Fatalf("UDP reply of %d bytes", len(b))
		}
		if !tcp && parsed && req.IsEdns0() == nil && len(b) > noEDNSSize {
			t.Fatalf("%d bytes to a client without EDNS", len(b))
		}
	})
}

// FuzzParseConfig: any bytes give a config or an error, never a panic,
// and an accepted config can build a server.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(baseYAML))
	f.Add([]byte(baseYAML + "fallback: true\n"))
	f.Add([]byte(minimalYAML + "fallback: maybe\n"))
	f.Add([]byte("zone: example.test.\nsoa: {ns: ns1, mbox: h}\nns: [ns1]\nregions: {a: {a: [192.0.2.1]}}\n"))
	f.Add([]byte("zone: [\n"))
	f.Add([]byte("records: ['$INCLUDE /etc/passwd']\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig("fuzz.yaml", data)
		if err != nil {
			return
		}
		if c.Health.CAFile != "" {
			return // a file on this machine
		}
		// What New builds from a config, without the metrics registry.
		r := newRouter(c, EmptyTable())
		if len(r.regions) == 0 || len(r.defaultOrder) != len(r.regions) {
			t.Fatalf("accepted config routes nowhere: %+v", r)
		}
		if _, err := newProber(c, nil, time.Now, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("accepted config has no prober: %v", err)
		}
		if r.fallback != c.Fallback {
			t.Fatalf("router fallback %v, config %v", r.fallback, c.Fallback)
		}
	})
}

// FuzzParseTable: any bytes give a table or an error; lookups on an
// accepted table agree with a linear scan.
func FuzzParseTable(f *testing.F) {
	f.Add([]byte(baseCSV), []byte{10, 1, 2, 3})
	f.Add([]byte("prefix,region,rtt_ms\n0.0.0.0/0,a,1\n255.255.255.255/32,b,2\n"), []byte{255, 255, 255, 255})
	f.Add([]byte("prefix,region,rtt_ms\n::/0,a,1\n2001:db8::/32,b,2\n"), []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, csv, addr []byte) {
		tb, err := ParseTable("fuzz.csv", csv)
		if err != nil {
			return
		}
		a, ok := netipFromSlice(addr)
		if !ok {
			return
		}
		if e, _ := tb.Lookup(a); e != bruteLPM(tb, a.Unmap()) {
			t.Fatalf("lookup %s: %d, linear scan %d", a, e, bruteLPM(tb, a.Unmap()))
		}
	})
}

func netipFromSlice(b []byte) (netip.Addr, bool) { return netip.AddrFromSlice(b) }
