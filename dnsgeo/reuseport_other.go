//go:build !linux

package dnsgeo

import (
	"errors"
	"net"
)

// reusePort is Linux-only: elsewhere SO_REUSEPORT does not spread
// datagrams over the sockets, so every loop reads the one socket.
func reusePort(uc *net.UDPConn, n int) ([]*net.UDPConn, error) {
	return nil, errors.New("one socket per CPU needs Linux's SO_REUSEPORT")
}
