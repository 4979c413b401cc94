package dnsgeo

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// udpReadSize is the read buffer of a UDP query. No real query comes
// near it (a question and an OPT record fit in a few hundred bytes);
// a larger datagram is cut to this size by the kernel and then fails
// to parse (FORMERR).
const udpReadSize = 4096

// serveUDP answers the datagrams of conn in this goroutine, one after
// the other, until closing is set and a read returns (Serve sets a
// deadline in the past to end the wait). No goroutine and no buffer
// per query: the buffers are this loop's.
func (s *Server) serveUDP(conn *net.UDPConn, closing *atomic.Bool) error {
	in := make([]byte, udpReadSize)
	out := make([]byte, udpReadSize)
	var backoff time.Duration
	for {
		n, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			s.ioError("udp read", err)
			backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
			time.Sleep(backoff) // do not spin on an error that stays
			continue
		}
		backoff = 0
		reply := s.respond(in[:n], from.Addr().Unmap(), true, out)
		if reply == nil {
			continue
		}
		if _, err := conn.WriteToUDPAddrPort(reply, from); err != nil {
			s.ioError("udp write", err)
		}
	}
}
