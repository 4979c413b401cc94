package dnsgeo

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// baseYAML is the zone most tests serve. Regions have no health URL
// unless a test adds them, so they are up.
var baseYAML = `
zone: example.test.
ttl: 20
soa: {ns: ns1.example.test., mbox: hostmaster.example.test., negative_ttl: 60}
ns: [ns1.example.test., ns2.example.test.]
records:
  - "ns1 3600 IN A 192.0.2.53"
  - "ns2 3600 IN A 192.0.2.54"
  - "www 300 IN CNAME cdn"
  - "alias 300 IN CNAME www"
  - "ext 300 IN CNAME cdn.other.test."
  - "@ 300 IN MX 10 mail"
  - "mail 300 IN A 192.0.2.25"
  - '@ 300 IN TXT "v=spf1 -all"'
  - '@ 300 IN CAA 0 issue "letsencrypt.org"'
  - 'a.b.deep 300 IN TXT "deep"'
  - 'big 300 IN TXT "` + bigText + `"'
  - 'big 300 IN TXT "` + bigText + `x"'
  - 'big 300 IN TXT "` + bigText + `xx"'
  - 'big 300 IN TXT "` + bigText + `xxx"'
  - 'big 300 IN TXT "` + bigText + `xxxx"'
  - 'big 300 IN TXT "` + bigText + `xxxxx"'
routed: [cdn, "@"]
regions:
  us-west-2: {a: [192.0.2.10, 192.0.2.11], aaaa: ["2001:db8::10"]}
  eu-west-1: {a: [198.51.100.10], aaaa: ["2001:db8:1::10"]}
  ap-south-1: {a: [203.0.113.10]}
default_order: [us-west-2, eu-west-1, ap-south-1]
rrl: {enabled: false}
`

// bigText is a 240-byte TXT string: six of them do not fit in 1232 bytes.
const bigText = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// baseCSV routes the loopback resolver to eu-west-1, so answers by
// resolver address differ from the default order (us-west-2 first).
const baseCSV = `prefix,region,rtt_ms
203.0.113.0/24,ap-south-1,5
203.0.113.0/24,eu-west-1,120
203.0.113.0/24,us-west-2,210
198.51.100.0/22,eu-west-1,8
198.51.100.0/22,us-west-2,140
10.0.0.0/8,us-west-2,30
10.0.0.0/8,eu-west-1,30
10.1.0.0/16,ap-south-1,3
10.1.0.0/16,us-west-2,40
127.0.0.0/8,eu-west-1,1
127.0.0.0/8,us-west-2,2
2001:db8:ee::/48,eu-west-1,7.5
2001:db8:ee::/48,us-west-2,150
`

// Addresses by region, for assertions.
var regionA = map[string][]string{
	"us-west-2":  {"192.0.2.10", "192.0.2.11"},
	"eu-west-1":  {"198.51.100.10"},
	"ap-south-1": {"203.0.113.10"},
}

func mustConfig(t testing.TB, yaml string) *Config {
	t.Helper()
	c, err := ParseConfig("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func mustTable(t testing.TB, csv string) *Table {
	t.Helper()
	tb, err := ParseTable("test.csv", []byte(csv))
	if err != nil {
		t.Fatalf("table: %v", err)
	}
	return tb
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testServer is a dnsgeo Server serving on 127.0.0.1 with a free port.
type testServer struct {
	*Server
	addr string
}

func startServer(t testing.TB, cfg *Config, table *Table, opts Options) *testServer {
	t.Helper()
	srv, err := New(cfg, table, opts)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv)
}

func serve(t testing.TB, srv *Server) *testServer {
	t.Helper()
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc, ln, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &testServer{Server: srv, addr: pc.LocalAddr().String()}
}

// exchange sends m over network ("udp" or "tcp") and returns the reply.
func exchange(t testing.TB, addr, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange %v: %v", network, m.Question, err)
	}
	if r.Id != m.Id {
		t.Fatalf("id %d, want %d", r.Id, m.Id)
	}
	return r
}

// question builds a query; size > 0 adds EDNS with that buffer size.
func question(name string, qtype uint16, size uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	if size > 0 {
		m.SetEdns0(size, false)
	}
	return m
}

// withECS adds an ECS option for prefix (EDNS buffer 1232).
func withECS(m *dns.Msg, prefix string) *dns.Msg {
	p := netip.MustParsePrefix(prefix)
	if m.IsEdns0() == nil {
		m.SetEdns0(1232, false)
	}
	e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: net.IP(p.Addr().AsSlice())}
	if p.Addr().Is6() {
		e.Family = 2
	}
	o := m.IsEdns0()
	o.Option = append(o.Option, e)
	return m
}

// addrs returns the A and AAAA addresses in an answer section.
func addrs(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}

// replyECS returns the ECS option of a reply, or nil.
func replyECS(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}
