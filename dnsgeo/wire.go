package dnsgeo

import (
	"bytes"
	"net/netip"

	"github.com/miekg/dns"
)

// wireQuery is a query as the fast path reads it: slices of the
// packet, no copies.
type wireQuery struct {
	qname []byte // the question's name, wire form, as sent
	qtype uint16
	qend  int // offset just after the question
	edns  bool
	do    bool
	limit int // size limit of a UDP reply

	ecs     bool       // has a Client Subnet option (RFC 7871)
	ecsData []byte     // its data as sent: family, source, scope, address
	ecsAddr netip.Addr // the address to route on, when the source length is not 0
}

// parseQuery reads the queries the fast path answers: one question of
// class IN with an uncompressed name, no answer or authority records,
// and at most one additional record, an OPT (owner ".", version 0)
// whose options are a valid Client Subnet option, NSID, COOKIE or
// PADDING (options miekg/dns parses whatever their content). Anything
// else, valid or not, is left to the reference path: it returns false.
//
// What it accepts, miekg/dns parses too, to the same values; the
// differential fuzz test (FuzzFastPath) holds it to that.
func parseQuery(pkt []byte, q *wireQuery) bool {
	if len(pkt) < headerLen+5 || pkt[2]&(bitQR|bitOpcode) != 0 ||
		be16(pkt[4:]) != 1 || be16(pkt[6:]) != 0 || be16(pkt[8:]) != 0 {
		return false
	}
	ar := be16(pkt[10:])
	if ar > 1 {
		return false
	}
	off, size := headerLen, 0
	for {
		if off >= len(pkt) {
			return false
		}
		l := int(pkt[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 { // a compression pointer or another label type
			return false
		}
		if size += 1 + l; size >= maxNameWire {
			return false
		}
		off += 1 + l
	}
	if off+4 > len(pkt) || be16(pkt[off+2:]) != dns.ClassINET {
		return false
	}
	q.qname, q.qtype, q.qend = pkt[headerLen:off], be16(pkt[off:]), off+4
	switch q.qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone, dns.TypeMAILA, dns.TypeMAILB:
		return false
	}
	q.edns, q.do, q.ecs, q.limit = false, false, false, noEDNSSize
	if ar == 0 {
		return true
	}
	off = q.qend
	if off+optHeaderLen > len(pkt) || pkt[off] != 0 || be16(pkt[off+1:]) != dns.TypeOPT || pkt[off+6] != 0 {
		return false
	}
	end := off + optHeaderLen + int(be16(pkt[off+9:]))
	if end > len(pkt) {
		return false
	}
	q.edns, q.do = true, pkt[off+7]&0x80 != 0
	q.limit = max(noEDNSSize, min(int(be16(pkt[off+3:])), maxUDPSize))
	for o := off + optHeaderLen; o < end; {
		if o+4 > end {
			return false
		}
		code, n := be16(pkt[o:]), int(be16(pkt[o+2:]))
		if o += 4; o+n > end {
			return false
		}
		switch code {
		case dns.EDNS0SUBNET:
			if q.ecs || !q.parseECS(pkt[o:o+n]) {
				return false
			}
		case dns.EDNS0NSID, dns.EDNS0COOKIE, dns.EDNS0PADDING:
		default:
			return false
		}
		o += n
	}
	return true
}

// parseECS takes a Client Subnet option that is valid by RFC 7871 §6:
// a known family, source and scope lengths the family allows, exactly
// the address octets the source length needs, no bits set past it.
func (q *wireQuery) parseECS(d []byte) bool {
	if len(d) < 4 {
		return false
	}
	family, source, scope, addr := be16(d), int(d[2]), int(d[3]), d[4:]
	bits := 0
	switch family {
	case 0: // what dig sends for +subnet=0
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return false
	}
	if source > bits || scope > bits || len(addr) != (source+7)/8 {
		return false
	}
	if source%8 != 0 && addr[len(addr)-1]&(0xFF>>(source%8)) != 0 {
		return false
	}
	q.ecs, q.ecsData = true, d
	if source > 0 {
		var a16 [16]byte
		if family == 1 {
			var a4 [4]byte
			copy(a4[:], addr)
			q.ecsAddr = netip.AddrFrom4(a4)
		} else {
			copy(a16[:], addr)
			q.ecsAddr = netip.AddrFrom16(a16)
		}
	}
	return true
}

// ecsSource returns the SOURCE PREFIX-LENGTH of the query's ECS option.
func (q *wireQuery) ecsSource() int { return int(q.ecsData[2]) }

// optLen is the size of the OPT record appendOPT writes.
func (q *wireQuery) optLen(ede []byte, hasEDE bool) int {
	if !q.edns {
		return 0
	}
	n := optHeaderLen
	if q.ecs {
		n += 4 + len(q.ecsData)
	}
	if hasEDE {
		n += 4 + 2 + len(ede)
	}
	return n
}

// appendOPT appends the reply's OPT record: our buffer size, the DO
// bit copied, the query's ECS option echoed with scope, then the
// Extended DNS Error when there is one. The same bytes as miekg/dns
// packs for the reference path's OPT.
func (q *wireQuery) appendOPT(b []byte, scope int, edeCode uint16, ede []byte, hasEDE bool) []byte {
	b = appendOPTHeader(b, q.do, q.optLen(ede, hasEDE)-optHeaderLen)
	if q.ecs {
		d := q.ecsData
		b = append(b, 0, dns.EDNS0SUBNET, byte(len(d)>>8), byte(len(d)), d[0], d[1], d[2], byte(scope))
		b = append(b, d[4:]...)
	}
	if hasEDE {
		n := 2 + len(ede)
		b = append(b, 0, dns.EDNS0EDE, byte(n>>8), byte(n), byte(edeCode>>8), byte(edeCode))
		b = append(b, ede...)
	}
	return b
}

// lowerName writes the wire-form name in lower case into dst (ASCII
// letters only: DNS names compare without case, RFC 4343) and returns
// it.
func lowerName(dst, name []byte) []byte {
	dst = dst[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// endsWithName reports whether the wire-form name ends with the
// wire-form name suffix, at a label boundary.
func endsWithName(name, suffix []byte) bool {
	cut := len(name) - len(suffix)
	if cut < 0 || !bytes.Equal(name[cut:], suffix) {
		return false
	}
	off := 0
	for off < cut {
		off += 1 + int(name[off])
	}
	return off == cut
}
