package dnsgeo

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpReadSize is the read buffer of a UDP query. No real query comes
// near it (a question and an OPT record fit in a few hundred bytes);
// a larger datagram is cut to this size by the kernel and then fails
// to parse (FORMERR).
const udpReadSize = 4096

// udpBatch is how many datagrams one system call reads or writes:
// recvmmsg and sendmmsg on Linux, one at a time elsewhere. Under load
// the socket holds many queries and one call takes them all; when it
// is idle a call returns with the one that woke it.
const udpBatch = 64

// batchConn is the batch I/O of golang.org/x/net's ipv4 and ipv6
// PacketConns (their Message types are the same type).
type batchConn interface {
	ReadBatch([]ipv4.Message, int) (int, error)
	WriteBatch([]ipv4.Message, int) (int, error)
}

// serveUDP answers the datagrams of conn in this goroutine until
// closing is set and a read returns (Serve sets a deadline in the past
// to end the wait): it reads a batch, answers each query in place
// (respond allocates nothing on the fast path), and writes the replies
// as a batch. The buffers are this loop's, about 0.5 MB.
func (s *Server) serveUDP(conn *net.UDPConn, closing *atomic.Bool) error {
	var bc batchConn = ipv4.NewPacketConn(conn)
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(conn)
	}
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	inBuf := make([]byte, udpBatch*udpReadSize)
	outBuf := make([]byte, udpBatch*udpReadSize)
	for i := range in {
		in[i].Buffers = [][]byte{inBuf[i*udpReadSize : (i+1)*udpReadSize : (i+1)*udpReadSize]}
		out[i].Buffers = [][]byte{nil}
	}
	var backoff time.Duration
	for {
		n, err := bc.ReadBatch(in, 0)
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
		k := 0
		for i := range in[:n] {
			m := &in[i]
			from, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			reply := s.respond(m.Buffers[0][:m.N], from.AddrPort().Addr().Unmap(), true,
				outBuf[k*udpReadSize:(k+1)*udpReadSize:(k+1)*udpReadSize])
			if reply == nil {
				continue
			}
			out[k].Buffers[0], out[k].Addr = reply, m.Addr
			k++
		}
		s.writeBatch(bc, out[:k])
	}
}

// writeBatch sends every reply in ms. A reply the kernel refuses is
// counted, logged and skipped; the others are still sent.
func (s *Server) writeBatch(bc batchConn, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := bc.WriteBatch(ms, 0)
		n = max(n, 0)
		if err != nil || n == 0 {
			if err == nil {
				err = errors.New("no datagram sent")
			}
			s.ioError("udp write", err)
			n++ // sendmmsg stopped at ms[n]
		}
		ms = ms[min(n, len(ms)):]
	}
}
