package dnsgeo

import (
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps what is written.
type recorder struct {
	udp bool
	out [][]byte
}

func (r *recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr {
	if r.udp {
		return &net.UDPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 5353}
	}
	return &net.TCPAddr{IP: net.IPv4(203, 0, 113, 9), Port: 5353}
}
func (r *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err == nil {
		r.out = append(r.out, b)
	}
	return err
}
func (r *recorder) Write(b []byte) (int, error) {
	r.out = append(r.out, append([]byte(nil), b...))
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// FuzzServeDNS drives the request path as miekg/dns does (header
// screen, parse, handler) with arbitrary bytes, and checks every reply:
// it parses, matches the query ID, is a response, and fits the UDP
// limit. A panic would be recovered by ServeDNS, so the test also
// checks that none happened.
func FuzzServeDNS(f *testing.F) {
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
	seed(question("big.example.test.", dns.TypeTXT, 512))
	seed(question("example.test.", dns.TypeANY, 0))
	seed(question("example.test.", dns.TypeNS, 0))
	seed(question("nope.example.test.", dns.TypeMX, 1232))
	seed(question("example.org.", dns.TypeA, 0))
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
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		if len(data) < 12 || len(data) > dns.MaxMsgSize {
			return // miekg/dns drops these
		}
		dh := dns.Header{
			Id: binary.BigEndian.Uint16(data), Bits: binary.BigEndian.Uint16(data[2:]),
			Qdcount: binary.BigEndian.Uint16(data[4:]), Ancount: binary.BigEndian.Uint16(data[6:]),
			Nscount: binary.BigEndian.Uint16(data[8:]), Arcount: binary.BigEndian.Uint16(data[10:]),
		}
		if srv.accept(dh) != dns.MsgAccept {
			return // miekg/dns answers FORMERR/NOTIMP itself, or ignores
		}
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return // FORMERR from miekg/dns
		}
		w := &recorder{udp: !tcp}
		srv.ServeDNS(w, req)
		if n := srv.panics.Load(); n > 0 {
			t.Fatalf("handler panicked on %x", data)
		}
		if len(w.out) > 1 {
			t.Fatalf("%d replies", len(w.out))
		}
		for _, b := range w.out {
			var m dns.Msg
			if err := m.Unpack(b); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if m.Id != req.Id || !m.Response {
				t.Fatalf("reply id %d response %v", m.Id, m.Response)
			}
			if !tcp && len(b) > maxUDPSize {
				t.Fatalf("UDP reply of %d bytes", len(b))
			}
			if !tcp && req.IsEdns0() == nil && len(b) > noEDNSSize {
				t.Fatalf("%d bytes to a client without EDNS", len(b))
			}
		}
	})
}

// FuzzParseConfig: any bytes give a config or an error, never a panic,
// and an accepted config can build a server.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(baseYAML))
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
