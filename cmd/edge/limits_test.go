package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestRequestLimitsAtTheirEdges: over real TCP, as the README states
// them: a request target of 8,192 bytes is served and one of 8,193 gets
// 414; header fields of 32,768 bytes (each "Name: value" line with its
// CRLF, Host included) are served and 32,769 get 431; "OPTIONS *" gets
// 405.
func TestRequestLimitsAtTheirEdges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan net.Addr, 1)
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, &stdout, &stderr,
			hooks{ready: func(h, _ net.Addr) { addrs <- h }})
	}()
	var addr string
	select {
	case a := <-addrs:
		addr = a.String()
	case code := <-done:
		t.Fatalf("exited with %d:\n%s", code, stderr.String())
	}
	send := func(head string) int {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	// target pads "/tenants/acme.json?" to n bytes (the query is ignored).
	target := func(n int) string {
		p := "/tenants/acme.json?pad="
		return p + strings.Repeat("x", n-len(p))
	}
	// fields builds a request whose header fields take exactly n bytes.
	fields := func(n int) string {
		block := "Host: cdn\r\nConnection: close\r\nX-Pad: "
		block += strings.Repeat("y", n-len(block)-2) + "\r\n"
		return "GET /tenants/acme.json HTTP/1.1\r\n" + block + "\r\n"
	}
	for _, tc := range []struct {
		name, req string
		want      int
	}{
		{"target of 8192 bytes", fmt.Sprintf("GET %s HTTP/1.1\r\nHost: cdn\r\nConnection: close\r\n\r\n", target(8192)), 200},
		{"target of 8193 bytes", fmt.Sprintf("GET %s HTTP/1.1\r\nHost: cdn\r\nConnection: close\r\n\r\n", target(8193)), 414},
		{"target of 40000 bytes", fmt.Sprintf("GET %s HTTP/1.1\r\nHost: cdn\r\nConnection: close\r\n\r\n", target(40000)), 414},
		{"fields of 32768 bytes", fields(32768), 200},
		{"fields of 32769 bytes", fields(32769), 431},
		{"fields of 32768 bytes after a target of 8192", strings.Replace(fields(32768), "/tenants/acme.json", target(8192), 1), 200},
		{"fields of 60000 bytes", fields(60000), 431},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: cdn\r\nConnection: close\r\n\r\n", 405},
	} {
		if got := send(tc.req); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	cancel()
	<-done
}
