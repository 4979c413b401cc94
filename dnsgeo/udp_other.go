//go:build !linux

package dnsgeo

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// serveUDP, without recvmmsg and sendmmsg: one datagram per call.
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
