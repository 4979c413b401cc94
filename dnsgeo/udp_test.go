package dnsgeo

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestUDPBatches: queries sent back to back, without waiting for the
// replies, are read and answered in batches; every one gets its own
// reply (the right ID, the right question), none is lost or sent twice.
func TestUDPBatches(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	conn, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	names := []string{"cdn.example.test.", "www.example.test.", "nope.example.test.", "example.org.", "example.test."}
	// Both sockets' receive buffers (about 200 kB, some 270 small
	// datagrams on loopback) hold them all, so none can be lost.
	const n = 150
	for i := range n {
		q := question(names[i%len(names)], dns.TypeA, 1232)
		q.Id = uint16(i)
		if _, err := conn.Write(packed(t, q)); err != nil {
			t.Fatal(err)
		}
	}
	seen := make([]bool, n)
	buf := make([]byte, 2048)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for got := 0; got < n; got++ {
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d replies: %v", got, n, err)
		}
		var m dns.Msg
		if err := m.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		if int(m.Id) >= n || seen[m.Id] {
			t.Fatalf("reply id %d unexpected or twice", m.Id)
		}
		seen[m.Id] = true
		if want := names[int(m.Id)%len(names)]; len(m.Question) != 1 || m.Question[0].Name != want {
			t.Fatalf("reply %d is for %v, want %s", m.Id, m.Question, want)
		}
	}
}

// udpSockets counts the UDP sockets bound to port, from /proc/net/udp
// and udp6.
func udpSockets(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 1 && strings.HasSuffix(fields[1], fmt.Sprintf(":%04X", port)) {
				n++
			}
		}
	}
	return n
}

// TestUDPSocketPerCPU: with 4 CPUs, Serve answers on 4 sockets bound to
// the one port (SO_REUSEPORT), every socket is served (clients on many
// source ports, which the kernel spreads over the sockets, all get
// answers), and all of them are closed when it stops.
func TestUDPSocketPerCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT spreads datagrams on Linux only")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	srv, err := New(mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveUntil(t, srv)
	port := netipPort(t, ts.addr)
	if n := udpSockets(t, port); n != 4 {
		t.Errorf("%d UDP sockets on port %d, want 4", n, port)
	}
	for i := range 64 { // a new source port each
		if r := exchange(t, ts.addr, "udp", question("cdn.example.test.", dns.TypeA, 1232)); len(r.Answer) == 0 {
			t.Fatalf("query %d: no answer", i)
		}
	}
	ts.stop()
	if n := udpSockets(t, port); n != 0 {
		t.Errorf("%d UDP sockets left on port %d after Serve returned", n, port)
	}
}

func netipPort(t *testing.T, addr string) int {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a.Port
}
