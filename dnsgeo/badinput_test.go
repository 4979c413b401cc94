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
