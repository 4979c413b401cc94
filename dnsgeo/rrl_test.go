package dnsgeo

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestRRLBucket(t *testing.T) {
	clock := newClock()
	slip := 2
	r := newRRL(RRLConfig{ResponsesPerSecond: 5, Slip: &slip, IPv4PrefixLength: 24, IPv6PrefixLength: 56},
		[]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, clock.Now)
	a := netip.MustParseAddr("198.51.100.1")
	seq := func(client netip.Addr, class byte, name string, n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte("ST-"[r.check(client, class, []byte(name), dns.TypeA)])
		}
		return b.String()
	}
	// Burst of 5, then every 2nd over the limit slips (T), the rest drop (-).
	if got := seq(a, rrlClassAnswer, "cdn.example.test.", 10); got != "SSSSS-T-T-" {
		t.Errorf("burst: %s", got)
	}
	// Same /24, same response: same bucket.
	if got := seq(netip.MustParseAddr("198.51.100.200"), rrlClassAnswer, "cdn.example.test.", 1); got != "T" {
		t.Errorf("neighbour in the /24: %s", got)
	}
	// Another name, another network: their own buckets.
	if got := seq(a, rrlClassAnswer, "www.example.test.", 5); got != "SSSSS" {
		t.Errorf("other name: %s", got)
	}
	if got := seq(netip.MustParseAddr("198.51.101.1"), rrlClassAnswer, "cdn.example.test.", 5); got != "SSSSS" {
		t.Errorf("other network: %s", got)
	}
	// NXDOMAIN for random names shares one bucket (the zone).
	if got := seq(a, rrlClassNXDomain, "example.test.", 7); got != "SSSSS-T" {
		t.Errorf("nxdomain: %s", got)
	}
	// Refill: 5 per second.
	clock.Advance(400 * time.Millisecond)
	if got := seq(a, rrlClassAnswer, "cdn.example.test.", 3); got != "SS-" {
		t.Errorf("after 0.4s: %s", got)
	}
	clock.Advance(10 * time.Second)
	if got := seq(a, rrlClassAnswer, "cdn.example.test.", 6); got != "SSSSST" {
		t.Errorf("after a long pause (bucket full again): %s", got)
	}
	// Exempt networks are never limited.
	if got := seq(netip.MustParseAddr("192.0.2.9"), rrlClassAnswer, "cdn.example.test.", 20); strings.Contains(got, "-") || strings.Contains(got, "T") {
		t.Errorf("exempt: %s", got)
	}
	// IPv6 clients are grouped by /56.
	seq(netip.MustParseAddr("2001:db8:0:1::1"), rrlClassAnswer, "cdn.example.test.", 5)
	if got := seq(netip.MustParseAddr("2001:db8:0:ff::2"), rrlClassAnswer, "cdn.example.test.", 2); got != "-T" {
		t.Errorf("ipv6 /56: %s", got)
	}
}

// TestRRLBounded: a flood of distinct sources cannot grow the table
// past its bound; the overflow is limited as a whole.
func TestRRLBounded(t *testing.T) {
	clock := newClock()
	slip := 0
	r := newRRL(RRLConfig{ResponsesPerSecond: 1, Slip: &slip, IPv4PrefixLength: 32, IPv6PrefixLength: 128}, nil, clock.Now)
	sent := 0
	for i := range 3 * rrlMaxEntries {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if r.check(a, rrlClassAnswer, []byte("\x01x\x00"), 1) == rrlSend {
			sent++
		}
	}
	n := 0
	for i := range r.shards {
		n += len(r.shards[i].cur) + len(r.shards[i].prev)
	}
	if n > rrlMaxEntries {
		t.Errorf("%d entries tracked, bound %d", n, rrlMaxEntries)
	}
	if sent > rrlMaxEntries+2*rrlShards {
		t.Errorf("%d of %d spoofed sources answered", sent, 3*rrlMaxEntries)
	}
}

// TestRRLOverTheWire covers point 5: a burst of UDP queries from one
// network gets a few answers, then truncated slips and silence; TCP
// is not limited. The clock is frozen, so no tokens come back.
func TestRRLOverTheWire(t *testing.T) {
	y := strings.Replace(baseYAML, "rrl: {enabled: false}", "rrl: {responses_per_second: 5, slip: 2}", 1)
	clock := newClock()
	ts := startServer(t, mustConfig(t, y), mustTable(t, baseCSV), Options{Now: clock.Now})

	conn, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 21
	for i := range n {
		q := question("cdn.example.test.", dns.TypeA, 1232)
		q.Id = uint16(i + 1)
		b, _ := q.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	full, tc := 0, 0
	buf := make([]byte, 2048)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	for full+tc < 5+8 {
		k, err := conn.Read(buf)
		if err != nil {
			break
		}
		var m dns.Msg
		if err := m.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		if m.Truncated && len(m.Answer) == 0 {
			tc++
		} else if len(m.Answer) > 0 {
			full++
		}
	}
	if full != 5 || tc != 8 {
		t.Errorf("%d full answers and %d slips to %d queries, want 5 and 8", full, tc, n)
	}
	// Nothing else comes: the other 8 were dropped.
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := conn.Read(buf); err == nil {
		t.Error("more responses than the limit allows")
	}
	// TCP is not limited (the source address is proven).
	for range 10 {
		if r := exchange(t, ts.addr, "tcp", question("cdn.example.test.", dns.TypeA, 1232)); len(r.Answer) == 0 || r.Truncated {
			t.Fatal("TCP answer limited")
		}
	}
	body := scrape(t, ts.Server)
	for _, want := range []string{`dnsgeo_rrl_responses_total{action="dropped"} 8`, `dnsgeo_rrl_responses_total{action="slipped"} 8`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
