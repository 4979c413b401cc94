package dnsgeo

// udpReadSize is the read buffer of a UDP query. No real query comes
// near it (a question and an OPT record fit in a few hundred bytes);
// a larger datagram is cut to this size by the kernel and then fails
// to parse (FORMERR).
const udpReadSize = 4096

// udpBatch is how many datagrams one system call reads or writes on
// Linux (recvmmsg, sendmmsg). Under load the socket holds many queries
// and one call takes them all; when it is idle a call returns with the
// one that woke it.
const udpBatch = 64

// serveUDP (udp_linux.go, udp_other.go) answers the datagrams of one
// socket in one goroutine until closing is set and a read returns
// (Serve sets a deadline in the past to end the wait): no goroutine and
// no buffer per query, and on the fast path no allocation at all.
