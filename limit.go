package edge

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

// DefaultMissConcurrency is how many requests one client may have
// waiting on the origin at once. A browser loading a login page misses
// a handful of objects at most; a scanner asking for random URLs misses
// every time.
const DefaultMissConcurrency = 32

// missLimiter bounds the requests each client has waiting on the origin,
// so one client scanning random URLs cannot spend the edge's S3 request
// rate or memory. Only misses pass through it: hits cost nothing to
// bound. Clients are counted per IPv4 address and per IPv6 /64 (one
// host's usual allocation). Sharded, so misses from different clients
// rarely share a lock.
type missLimiter struct {
	limit  int
	seed   maphash.Seed
	shards [64]missShard
}

type missShard struct {
	mu       sync.Mutex
	inflight map[netip.Prefix]int
}

func newMissLimiter(limit int) *missLimiter {
	if limit == 0 {
		limit = DefaultMissConcurrency
	}
	l := &missLimiter{limit: limit, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].inflight = map[netip.Prefix]int{}
	}
	return l
}

// acquire takes a slot for the client at remoteAddr ("ip:port"). It
// returns false when the client has no slot left; otherwise call
// release when the miss is done.
func (l *missLimiter) acquire(remoteAddr string) (release func(), ok bool) {
	if l.limit < 0 {
		return func() {}, true
	}
	client := clientNet(remoteAddr)
	sh := &l.shards[maphash.Comparable(l.seed, client)%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.inflight[client] >= l.limit {
		return nil, false
	}
	sh.inflight[client]++
	return func() {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.inflight[client]--; sh.inflight[client] <= 0 {
			delete(sh.inflight, client)
		}
	}, true
}

// clientNet is the network a client is counted by. Unparsable addresses
// (not from a TCP listener) share one bucket.
func clientNet(remoteAddr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}
