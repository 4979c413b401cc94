package dnsgeo

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rawUDP sends b and returns the reply, or nil when none comes.
func rawUDP(t *testing.T, addr string, b []byte) *dns.Msg {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return m
}

func packed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput covers point 5: every kind of bad packet gets FORMERR,
// NOTIMP or REFUSED, or nothing; the server keeps answering, and no
// goroutine outlives it.
func TestBadInput(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		cfg := mustConfig(t, strings.Replace(baseYAML, "rrl: {enabled: false}", "", 1)) // RRL on, as in production
		srv, err := New(cfg, mustTable(t, baseCSV), Options{})
		if err != nil {
			t.Fatal(err)
		}
		ts := serveUntil(t, srv)
		defer ts.stop()

		valid := packed(t, question("cdn.example.test.", dns.TypeA, 1232))
		withHeader := func(f func(h []byte)) []byte {
			b := append([]byte(nil), valid...)
			f(b)
			return b
		}
		opcode := func(op int) []byte {
			q := question("example.test.", dns.TypeSOA, 0)
			q.Opcode = op
			return packed(t, q)
		}
		tests := []struct {
			name  string
			pkt   []byte
			rcode int // -1: no reply expected
		}{
			{"empty", nil, -1},
			{"short header", []byte{1, 2, 3, 4, 5}, -1},
			{"garbage", []byte("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"), -2}, // "T " reads as opcode 10: NOTIMP
			{"truncated question", valid[:20], dns.RcodeFormatError},
			{"header says 2 questions", withHeader(func(h []byte) { binary.BigEndian.PutUint16(h[4:], 2) }), dns.RcodeFormatError},
			{"no question", withHeader(func(h []byte) { binary.BigEndian.PutUint16(h[4:], 0) }), dns.RcodeFormatError},
			{"answer records in a query", withHeader(func(h []byte) { binary.BigEndian.PutUint16(h[6:], 1) }), dns.RcodeFormatError},
			{"many additional", withHeader(func(h []byte) { binary.BigEndian.PutUint16(h[10:], 500) }), dns.RcodeFormatError},
			{"a response", withHeader(func(h []byte) { h[2] |= 0x80 }), -1},
			{"opcode iquery", opcode(dns.OpcodeIQuery), dns.RcodeNotImplemented},
			{"opcode status", opcode(dns.OpcodeStatus), dns.RcodeNotImplemented},
			{"opcode notify", opcode(dns.OpcodeNotify), dns.RcodeNotImplemented},
			{"opcode update", opcode(dns.OpcodeUpdate), dns.RcodeNotImplemented},
			{"opcode 15", opcode(15), dns.RcodeNotImplemented},
			{"oversized", append(append([]byte(nil), valid...), make([]byte, 60000)...), -2},
			{"class chaos", packed(t, &dns.Msg{MsgHdr: dns.MsgHdr{Id: 7}, Question: []dns.Question{{Name: "version.bind.", Qtype: dns.TypeTXT, Qclass: dns.ClassCHAOS}}}), dns.RcodeRefused},
			{"class none", packed(t, &dns.Msg{MsgHdr: dns.MsgHdr{Id: 7}, Question: []dns.Question{{Name: "cdn.example.test.", Qtype: dns.TypeA, Qclass: dns.ClassNONE}}}), dns.RcodeRefused},
			{"qtype 0", packed(t, question("cdn.example.test.", 0, 0)), dns.RcodeFormatError},
			{"compression loop", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}, dns.RcodeFormatError},
			{"two OPT records", func() []byte {
				q := question("cdn.example.test.", dns.TypeA, 1232)
				q.Extra = append(q.Extra, q.Extra[0])
				return packed(t, q)
			}(), dns.RcodeFormatError},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := rawUDP(t, ts.addr, tc.pkt)
				switch {
				case tc.rcode == -1 && r != nil:
					t.Fatalf("reply %v, want none", r)
				case tc.rcode == -2: // an answer, an error, or nothing
					if r != nil && r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeFormatError && r.Rcode != dns.RcodeNotImplemented {
						t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
					}
				case tc.rcode >= 0 && r == nil:
					t.Fatalf("no reply, want %s", dns.RcodeToString[tc.rcode])
				case tc.rcode >= 0 && r.Rcode != tc.rcode:
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if r != nil && (len(r.Answer) > 0 && r.Rcode != dns.RcodeSuccess || !r.Response) {
					t.Fatalf("bad reply %v", r)
				}
				// Still serving.
				if a := exchange(t, ts.addr, "udp", question("cdn.example.test.", dns.TypeA, 1232)); len(a.Answer) == 0 {
					t.Fatal("server stopped answering")
				}
			})
		}

		// TCP: garbage, a length with no body, a huge length: the
		// connection is closed, the server lives on.
		for _, junk := range [][]byte{
			[]byte("\x00\x05hello"),
			{0xff, 0xff, 1, 2, 3},
			{0x00},
			append([]byte{0, byte(len(valid))}, valid[:len(valid)-3]...),
		} {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(junk)
			if cw, ok := c.(*net.TCPConn); ok {
				cw.CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			io.Copy(io.Discard, c)
			c.Close()
		}
		if a := exchange(t, ts.addr, "tcp", question("cdn.example.test.", dns.TypeA, 1232)); len(a.Answer) == 0 {
			t.Fatal("server stopped answering over TCP")
		}
		if body := scrape(t, srv); !strings.Contains(body, "dnsgeo_malformed_total") {
			t.Error("no malformed counter")
		}
	}()
	// No leak: the goroutines of the server are gone once it stopped.
	var after int
	for range 100 {
		if after = runtime.NumGoroutine(); after <= before {
			break
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // goroutines exiting after Serve returned
	}
	if after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

type stoppable struct {
	addr string
	stop func()
}

// serveUntil serves srv until stop is called (which waits for Serve).
func serveUntil(t *testing.T, srv *Server) *stoppable {
	t.Helper()
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- srv.Serve(ctx, pc, ln, func() { close(ready) }) }()
	<-ready
	return &stoppable{addr: pc.LocalAddr().String(), stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}}
}

// rawTCP sends b with its length prefix on a new connection and returns
// the reply, or nil when the server sends none (closes, or says nothing
// within 300 ms).
func rawTCP(t *testing.T, addr string, b []byte) *dns.Msg {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var prefix [2]byte
	if _, err := io.ReadFull(conn, prefix[:]); err != nil {
		return nil
	}
	buf := make([]byte, binary.BigEndian.Uint16(prefix[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatalf("reply cut short: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return m
}

// allFlags sets every header flag a query can carry (AA, TC, RD; RA, Z,
// AD, CD): a reply must copy RD and CD and none of the others.
func allFlags(b []byte) []byte {
	b[2] |= 0x04 | 0x02 | 0x01
	b[3] |= 0x80 | 0x40 | 0x20 | 0x10
	return b
}

// TestRejectedPackets: packets turned away before they are parsed
// (header screen, or a body that does not parse) get a proper reply,
// over UDP and TCP: QR, the query's opcode, RD and CD copied and no
// other flag (TC would send clients to TCP, RA claims recursion), the
// question, and an OPT record when the query had one (RFC 6891 §6.1.1,
// §7). miekg/dns's default reject path echoed the query's header and
// dropped both sections.
func TestRejectedPackets(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	edns := func(m *dns.Msg) *dns.Msg { m.SetEdns0(1232, true); return m }
	q := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		return m
	}
	twoQuestions := edns(q("cdn.example.test.", dns.TypeA))
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "www.example.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	withAnswer := edns(q("cdn.example.test.", dns.TypeA))
	withAnswer.Answer = []dns.RR{mustRR(t, "cdn.example.test. 20 IN A 192.0.2.1")}
	notify := edns(q("Example.Test.", dns.TypeSOA))
	notify.Opcode = dns.OpcodeNotify
	update := q("example.test.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	badFamily := edns(q("cdn.example.test.", dns.TypeA))
	badFamily.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 3, 24, 0, 10, 0, 0}}}
	badScope := edns(q("cdn.example.test.", dns.TypeA))
	badScope.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 40, 10, 0, 0}}}
	noQuestion := edns(new(dns.Msg))
	tests := []struct {
		name     string
		q        *dns.Msg
		rcode    int
		question string // "" for none
		opt      bool
	}{
		{"two questions", twoQuestions, dns.RcodeFormatError, "cdn.example.test.", true},
		{"an answer record in a query", withAnswer, dns.RcodeFormatError, "cdn.example.test.", true},
		{"opcode NOTIFY", notify, dns.RcodeNotImplemented, "Example.Test.", true},
		{"opcode UPDATE without EDNS", update, dns.RcodeNotImplemented, "example.test.", false},
		{"ECS of an unknown family (does not parse)", badFamily, dns.RcodeFormatError, "cdn.example.test.", true},
		{"ECS scope over 32 (does not parse)", badScope, dns.RcodeFormatError, "cdn.example.test.", true},
		{"no question, with EDNS", noQuestion, dns.RcodeFormatError, "", true},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				tc.q.Id = 4711
				pkt := allFlags(packed(t, tc.q))
				var r *dns.Msg
				if network == "udp" {
					r = rawUDP(t, ts.addr, pkt)
				} else {
					r = rawTCP(t, ts.addr, pkt)
				}
				if r == nil {
					t.Fatal("no reply")
				}
				if r.Id != 4711 || r.Rcode != tc.rcode || r.Opcode != tc.q.Opcode || !r.Response {
					t.Errorf("id %d rcode %s opcode %d QR %v; want 4711 %s %d true", r.Id, dns.RcodeToString[r.Rcode], r.Opcode, r.Response, dns.RcodeToString[tc.rcode], tc.q.Opcode)
				}
				if r.Authoritative || r.Truncated || r.RecursionAvailable || r.Zero || r.AuthenticatedData {
					t.Errorf("flags AA %v TC %v RA %v Z %v AD %v, want none", r.Authoritative, r.Truncated, r.RecursionAvailable, r.Zero, r.AuthenticatedData)
				}
				if !r.RecursionDesired || !r.CheckingDisabled {
					t.Errorf("RD %v CD %v, want both copied", r.RecursionDesired, r.CheckingDisabled)
				}
				switch {
				case tc.question == "" && len(r.Question) != 0:
					t.Errorf("question %v, want none", r.Question)
				case tc.question != "" && (len(r.Question) != 1 || r.Question[0].Name != tc.question || r.Question[0].Qtype != tc.q.Question[0].Qtype):
					t.Errorf("question %v, want %s", r.Question, tc.question)
				}
				if len(r.Answer)+len(r.Ns) != 0 {
					t.Errorf("records in a rejection: %v", r)
				}
				o := r.IsEdns0()
				switch {
				case tc.opt && o == nil:
					t.Error("no OPT in the reply to a query with one")
				case tc.opt && (o.Version() != 0 || o.UDPSize() != maxUDPSize || !o.Do()):
					t.Errorf("OPT %v, want version 0, size %d, DO copied", o, maxUDPSize)
				case !tc.opt && o != nil:
					t.Errorf("OPT %v in the reply to a query without one", o)
				}
			})
		}
	}
}

// TestRejectedPacketsRateLimited: a burst of header-valid garbage from
// one network over UDP is rate limited like any other error response
// (a few FORMERRs, then slips and silence), so it cannot make the
// server reflect traffic; over TCP it is not limited.
func TestRejectedPacketsRateLimited(t *testing.T) {
	y := strings.Replace(baseYAML, "rrl: {enabled: false}", "rrl: {responses_per_second: 5, slip: 2}", 1)
	ts := startServer(t, mustConfig(t, y), mustTable(t, baseCSV), Options{Now: newClock().Now})
	garbage := func(id uint16) []byte {
		b := packed(t, question("cdn.example.test.", dns.TypeA, 1232))
		binary.BigEndian.PutUint16(b, id)
		binary.BigEndian.PutUint16(b[4:], 2) // says two questions
		return b
	}
	conn, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 21
	for i := range n {
		if _, err := conn.Write(garbage(uint16(i + 1))); err != nil {
			t.Fatal(err)
		}
	}
	full, slipped := 0, 0
	buf := make([]byte, 2048)
	conn.SetReadDeadline(time.Now().Add(time.Second))
	for full+slipped < 5+8 {
		k, err := conn.Read(buf)
		if err != nil {
			break
		}
		var m dns.Msg
		if err := m.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		if m.Rcode != dns.RcodeFormatError {
			t.Fatalf("rcode %s", dns.RcodeToString[m.Rcode])
		}
		if m.Truncated {
			slipped++
		} else {
			full++
		}
	}
	if full != 5 || slipped != 8 {
		t.Errorf("%d FORMERRs and %d slips to %d packets, want 5 and 8", full, slipped, n)
	}
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := conn.Read(buf); err == nil {
		t.Error("more replies than the limit allows")
	}
	for i := range 10 {
		if r := rawTCP(t, ts.addr, garbage(uint16(100+i))); r == nil || r.Rcode != dns.RcodeFormatError || r.Truncated {
			t.Fatalf("TCP: %v", r)
		}
	}
	body := scrape(t, ts.Server)
	for _, want := range []string{`dnsgeo_rrl_responses_total{action="dropped"} 8`, `dnsgeo_rrl_responses_total{action="slipped"} 8`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
