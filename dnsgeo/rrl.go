package dnsgeo

import (
	"hash/maphash"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// rrlAction is what response rate limiting does with one UDP response.
type rrlAction uint8

const (
	rrlSend rrlAction = iota // under the limit
	rrlSlip                  // over: send a truncated, empty response (TC=1)
	rrlDrop                  // over: send nothing
)

// Response classes, as in BIND's RRL: answers and NODATA are limited
// per name and type; NXDOMAIN per zone (so random names do not each get
// their own budget); errors per client network alone.
const (
	rrlClassAnswer byte = iota + 1
	rrlClassNXDomain
	rrlClassError
)

const (
	rrlShards     = 16
	rrlMaxEntries = 1 << 17 // tracked keys per generation, all shards
	rrlGeneration = time.Second
)

// rrl limits identical responses per client network to a rate with a
// one-second burst (a token bucket), to keep the server from being used
// to reflect and amplify traffic toward a spoofed address. Over the
// limit, every slip-th response is sent truncated: a real resolver then
// retries over TCP, where the source address is proven; the rest are
// dropped.
//
// Memory is bounded: buckets live in two generations of one second,
// and a key not seen for two generations is forgotten (its bucket would
// be full again anyway). When a generation is full, new keys share one
// overflow bucket per shard, so a flood of spoofed sources is limited
// as a whole rather than tracked one by one.
type rrl struct {
	rate   float64 // tokens per second, also the burst
	slip   int
	v4, v6 int // prefix lengths of a client network
	exempt []netip.Prefix
	now    func() time.Time
	seed   maphash.Seed
	shards [rrlShards]rrlShard
}

type rrlShard struct {
	mu       sync.Mutex
	cur      map[uint64]*bucket
	prev     map[uint64]*bucket
	genStart time.Time
	overflow bucket
}

type bucket struct {
	tokens  float64
	last    time.Time
	limited uint32 // responses over the limit so far, for slip
}

func newRRL(c RRLConfig, exempt []netip.Prefix, now func() time.Time) *rrl {
	r := &rrl{
		rate:   float64(c.ResponsesPerSecond),
		slip:   *c.Slip,
		v4:     c.IPv4PrefixLength,
		v6:     c.IPv6PrefixLength,
		exempt: slices.Clone(exempt),
		now:    now,
		seed:   maphash.MakeSeed(),
	}
	for i := range r.shards {
		r.shards[i].cur = make(map[uint64]*bucket)
		r.shards[i].prev = make(map[uint64]*bucket)
	}
	return r
}

// network returns the client network that client belongs to.
func (r *rrl) network(client netip.Addr) netip.Prefix {
	client = client.Unmap()
	bits := r.v6
	if client.Is4() {
		bits = r.v4
	}
	p, _ := client.Prefix(bits)
	return p
}

// check counts one response of class (with name, the lower-case wire
// form, and type for answers) to client and says what to do with it.
func (r *rrl) check(client netip.Addr, class byte, name []byte, qtype uint16) rrlAction {
	for _, p := range r.exempt {
		if p.Contains(client.Unmap()) {
			return rrlSend
		}
	}
	var h maphash.Hash
	h.SetSeed(r.seed)
	net := r.network(client)
	b := net.Addr().As16()
	h.Write(b[:])
	h.WriteByte(byte(net.Bits()))
	h.WriteByte(class)
	if class != rrlClassError {
		h.Write(name)
		h.WriteByte(byte(qtype >> 8))
		h.WriteByte(byte(qtype))
	}
	key := h.Sum64()

	now := r.now()
	s := &r.shards[key%rrlShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.genStart) >= rrlGeneration {
		s.prev, s.cur = s.cur, s.prev
		clear(s.cur)
		s.genStart = now
	}
	bk := s.cur[key]
	if bk == nil {
		bk = s.prev[key]
		switch {
		case bk != nil:
			s.cur[key] = bk
		case len(s.cur) >= rrlMaxEntries/rrlShards:
			bk = &s.overflow
		default:
			bk = &bucket{tokens: r.rate, last: now}
			s.cur[key] = bk
		}
	}
	if el := now.Sub(bk.last).Seconds(); el > 0 {
		bk.tokens = min(r.rate, bk.tokens+el*r.rate)
	}
	bk.last = now
	if bk.tokens >= 1 {
		bk.tokens--
		return rrlSend
	}
	bk.limited++
	if r.slip > 0 && bk.limited%uint32(r.slip) == 0 {
		return rrlSlip
	}
	return rrlDrop
}
