package dnsgeo

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort opens n more UDP sockets on uc's address, with uc, in one
// SO_REUSEPORT group: the kernel spreads datagrams over the group by
// their addresses and ports, and each socket has its own loop, so the
// CPUs do not queue on one socket's lock.
//
// uc is bound first without SO_REUSEPORT (Listen), so a port that is
// already taken, by a second dnsgeo too, fails there as "address in
// use", and a port picked by the kernel is one nobody else has; the
// option is set on it afterwards so that the others can join.
func reusePort(uc *net.UDPConn, n int) ([]*net.UDPConn, error) {
	if err := setReusePort(uc.SyscallConn()); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return setReusePort(c, nil) }}
	var out []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", uc.LocalAddr().String())
		if err != nil {
			for _, c := range out {
				c.Close()
			}
			return nil, err
		}
		out = append(out, pc.(*net.UDPConn))
	}
	return out, nil
}

func setReusePort(c syscall.RawConn, err error) error {
	if err != nil {
		return err
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
