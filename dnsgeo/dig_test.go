package dnsgeo

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// dig runs the real dig against ts; the test is skipped where dig is
// not installed (bench/dns/install-deps.sh installs bind9-dnsutils).
func dig(t *testing.T, addr string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils, or bench/dns/install-deps.sh)")
	}
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all := append([]string{"@" + host, "-p", port, "+norec", "+time=2", "+tries=1"}, args...)
	out, err := exec.CommandContext(ctx, path, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", all, err, out)
	}
	return string(out)
}

func wantAll(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("dig output lacks %q:\n%s", w, out)
		}
	}
}

// TestDig: the issue's own command line, and truncation-then-TCP, with
// the real dig.
func TestDig(t *testing.T) {
	ts := startServer(t, mustConfig(t, baseYAML), mustTable(t, baseCSV), Options{})
	t.Run("ecs udp", func(t *testing.T) {
		out := dig(t, ts.addr, "cdn.example.test", "A", "+subnet=203.0.113.0/24")
		wantAll(t, out, "status: NOERROR", "flags: qr aa;", "CLIENT-SUBNET: 203.0.113.0/24/24", "cdn.example.test.\t20\tIN\tA\t203.0.113.10")
	})
	t.Run("ecs tcp", func(t *testing.T) {
		out := dig(t, ts.addr, "+tcp", "cdn.example.test", "A", "+subnet=10.1.2.0/24")
		wantAll(t, out, "CLIENT-SUBNET: 10.1.2.0/24/16", "cdn.example.test.\t20\tIN\tA\t203.0.113.10")
	})
	t.Run("ecs ipv6", func(t *testing.T) {
		out := dig(t, ts.addr, "cdn.example.test", "AAAA", "+subnet=2001:db8:ee::/48")
		wantAll(t, out, "CLIENT-SUBNET: 2001:db8:ee::/48/48", "2001:db8:1::10")
	})
	t.Run("no ecs: resolver address", func(t *testing.T) {
		out := dig(t, ts.addr, "cdn.example.test", "A")
		wantAll(t, out, "198.51.100.10")
		if strings.Contains(out, "CLIENT-SUBNET") {
			t.Errorf("ECS in a reply to a query without it:\n%s", out)
		}
	})
	t.Run("truncated then tcp", func(t *testing.T) {
		out := dig(t, ts.addr, "big.example.test", "TXT", "+bufsize=1232", "+ignore")
		wantAll(t, out, "flags: qr aa tc;", "ANSWER: 0")
		out = dig(t, ts.addr, "big.example.test", "TXT", "+bufsize=1232")
		wantAll(t, out, "Truncated, retrying in TCP mode", "ANSWER: 6")
	})
	t.Run("nxdomain", func(t *testing.T) {
		out := dig(t, ts.addr, "nope.example.test", "A")
		wantAll(t, out, "status: NXDOMAIN", "AUTHORITY: 1", "example.test.\t\t60\tIN\tSOA")
	})
	t.Run("refused", func(t *testing.T) {
		wantAll(t, dig(t, ts.addr, "example.org", "A"), "status: REFUSED")
	})
	t.Run("any", func(t *testing.T) {
		wantAll(t, dig(t, ts.addr, "example.test", "ANY"), `HINFO	"RFC8482" ""`, "ANSWER: 1")
	})
}
