package dnsgeo

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// TCP limits, as miekg/dns's server had them: a client has
// tcpReadTimeout to send its first query (and the rest of any query it
// began), tcpIdleTimeout between queries, and tcpMaxQueries on one
// connection (RFC 7766 §6.2.3 lets a server close idle connections).
const (
	tcpReadTimeout  = 2 * time.Second
	tcpIdleTimeout  = 10 * time.Second
	tcpWriteTimeout = 2 * time.Second
	tcpMaxQueries   = 1000
)

// tcpServer answers DNS over TCP (RFC 7766): one goroutine per
// connection, queries answered in order, each reply written whole with
// its length prefix. Shutdown stops accepting, lets every query already
// read be answered, and closes idle connections.
type tcpServer struct {
	s  *Server
	ln net.Listener

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	closing atomic.Bool
}

// tcpBufs are the reply buffers of TCP queries being answered: a
// connection holds one only while it answers, not while it waits.
var tcpBufs = sync.Pool{New: func() any { b := make([]byte, 2+65535); return &b }}

func newTCPServer(s *Server, ln net.Listener) *tcpServer {
	return &tcpServer{s: s, ln: ln, conns: make(map[net.Conn]struct{})}
}

// serve accepts connections until shutdown or a listener error that
// is not temporary (running out of file descriptors is: it backs off
// and tries again, as net/http does).
func (t *tcpServer) serve() error {
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			t.s.ioError("tcp accept", err)
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !t.track(c) {
			c.Close()
			return nil
		}
		go func() {
			defer t.forget(c)
			t.serveConn(c)
		}()
	}
}

// track registers a new connection, unless shutdown has begun. The
// WaitGroup is added to under the lock that shutdown takes before it
// waits, so no Add races the Wait.
func (t *tcpServer) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing.Load() {
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *tcpServer) forget(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
	t.wg.Done()
}

func (t *tcpServer) serveConn(c net.Conn) {
	var client netip.Addr
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		client = a.AddrPort().Addr().Unmap()
	}
	br := bufio.NewReaderSize(c, 1024)
	var prefix [2]byte
	var msg []byte
	for i := range tcpMaxQueries {
		timeout := tcpIdleTimeout
		if i == 0 {
			timeout = tcpReadTimeout
		}
		// Deadline first, then the closing check: Shutdown sets closing
		// and then a deadline in the past, so one of the two stops a
		// read that would otherwise wait for the idle timeout.
		if !t.readDeadline(c, timeout) {
			return
		}
		if _, err := io.ReadFull(br, prefix[:]); err != nil {
			return
		}
		n := int(be16(prefix[:]))
		if !t.readDeadline(c, tcpReadTimeout) {
			return
		}
		if cap(msg) < n {
			msg = make([]byte, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		bp := tcpBufs.Get().(*[]byte)
		out := *bp
		reply := t.s.respond(msg, client, false, out[2:])
		var err error
		if reply != nil {
			n := copy(out[2:], reply) // no-op when reply is already there
			out[0], out[1] = byte(n>>8), byte(n)
			_ = c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
			_, err = c.Write(out[:2+n])
		}
		tcpBufs.Put(bp)
		if err != nil {
			return // the client went away or stopped reading
		}
		if t.closing.Load() {
			return
		}
	}
}

func (t *tcpServer) readDeadline(c net.Conn, d time.Duration) bool {
	if c.SetReadDeadline(time.Now().Add(d)) != nil {
		return false
	}
	return !t.closing.Load()
}

// shutdown stops accepting and waits until every connection has
// answered what it had read, or until ctx is done, when it closes them.
func (t *tcpServer) shutdown(ctx context.Context) error {
	t.closing.Store(true)
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
	t.mu.Unlock()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			c.Close()
		}
		t.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
