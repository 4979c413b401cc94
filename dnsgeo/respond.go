package dnsgeo

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// headerLen is the size of a DNS message header (RFC 1035 §4.1.1).
const headerLen = 12

// Bits of the second and third byte of a header (RFC 1035 §4.1.1,
// RFC 4035 §3.2 for AD and CD).
const (
	bitQR     = 0x80 // byte 2
	bitOpcode = 0x78 // byte 2
	bitTC     = 0x02 // byte 2
	bitRD     = 0x01 // byte 2
	bitCD     = 0x10 // byte 3
)

// respond answers one DNS message from client: a UDP datagram, or a
// TCP message without its length prefix. It is the whole request path
// of both transports. The reply is written into out when it fits (else
// into a new buffer); nil means that nothing is sent.
//
// Packets shorter than a header are dropped, and responses (QR set)
// are never answered, so two servers cannot be made to loop. Every
// other packet gets a reply, subject to rate limiting on UDP.
func (s *Server) respond(pkt []byte, client netip.Addr, udp bool, out []byte) (reply []byte) {
	if len(pkt) < headerLen {
		s.metrics.malformed.Inc()
		return nil
	}
	if pkt[2]&bitQR != 0 {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			s.metrics.panics.Inc()
			s.panics.Add(1)
			s.log.Error("panic answering query", "panic", fmt.Sprint(v), "query", fmt.Sprintf("%x", pkt))
			reply, _ = rejectReply(pkt, dns.RcodeServerFailure, out)
		}
	}()
	st := s.state.Load()
	if reply, ok := s.fast(st, pkt, client, udp, out); ok {
		return reply
	}
	return s.slow(st, pkt, client, udp, out)
}

// slow answers pkt the reference way: miekg/dns parses it, answer
// builds a dns.Msg, miekg/dns packs it.
func (s *Server) slow(st *snapshot, pkt []byte, client netip.Addr, udp bool, out []byte) []byte {
	// The header screen: what is not one plain query is answered
	// without parsing the rest (and without the work of parsing 500
	// additional records).
	switch {
	case int(pkt[2]&bitOpcode)>>3 != dns.OpcodeQuery:
		return s.rejected(st, pkt, client, udp, dns.RcodeNotImplemented, out)
	case be16(pkt[4:]) != 1 || be16(pkt[6:]) != 0 || be16(pkt[8:]) != 0 || be16(pkt[10:]) > 2:
		return s.rejected(st, pkt, client, udp, dns.RcodeFormatError, out)
	}
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		s.metrics.malformed.Inc()
		return s.rejected(st, pkt, client, udp, dns.RcodeFormatError, out)
	}
	rep := st.answer(req, pkt, client, unpinned)
	m := rep.msg
	if udp && st.rrl != nil {
		var nb [maxNameWire]byte
		switch st.rrl.check(client, rep.class, wireName(nb[:], rep.name), rep.qtype) {
		case rrlDrop:
			s.metrics.rrlDropped.Inc()
			return nil
		case rrlSlip:
			s.metrics.rrlSlipped.Inc()
			emptyTruncated(m)
		}
	}
	limit := dns.MaxMsgSize
	if udp {
		limit = rep.limitUDP
	}
	buf, truncated, err := packFit(m, limit, out)
	if err != nil {
		s.log.Error("packing response", "error", err, "question", req.Question)
		buf, _ = rejectReply(pkt, dns.RcodeServerFailure, out)
		s.metrics.query(rep.qtype, dns.RcodeServerFailure)
		return buf
	}
	if truncated {
		s.metrics.truncated.Inc()
	}
	if len(m.Question) == 1 {
		// The question was packed in lower case (see answer); give it
		// back the query's spelling. Same labels, so the same length,
		// and names compressed to it follow.
		_, _ = dns.PackDomainName(req.Question[0].Name, buf, headerLen, nil, false)
	}
	// Counted before the write: a client that has its answer must find
	// it in the metrics.
	s.count(st, rep.qtype, m.Rcode, rep.routed, rep.region, rep.source)
	return buf
}

// count records one response in the metrics.
func (s *Server) count(st *snapshot, qtype uint16, rcode int, routed bool, region int, src routeSource) {
	s.metrics.query(qtype, rcode)
	switch {
	case !routed:
	case region >= 0:
		st.answered[region][src].Inc()
	case src == sourceAllDown:
		for i := range st.answered {
			st.answered[i][sourceAllDown].Inc()
		}
	}
}

// rejected answers a packet that failed the header screen or did not
// parse, rate limited with the other errors (per client network) so
// that garbage cannot make the server a reflector.
func (s *Server) rejected(st *snapshot, pkt []byte, client netip.Addr, udp bool, rcode int, out []byte) []byte {
	reply, qtype := rejectReply(pkt, rcode, out)
	if udp && st.rrl != nil {
		switch st.rrl.check(client, rrlClassError, nil, 0) {
		case rrlDrop:
			s.metrics.rrlDropped.Inc()
			return nil
		case rrlSlip:
			s.metrics.rrlSlipped.Inc()
			reply[2] |= bitTC
		}
	}
	s.metrics.query(qtype, rcode)
	return reply
}

// rejectReply builds the reply to a packet that was not parsed as a
// whole: rcode, the header bits a reply may carry (QR, the query's
// opcode, RD and CD copied; never AA, TC, RA, AD or Z, which would send
// clients to TCP or claim recursion), the first question when it can
// be read, and an OPT record when the query had one: RFC 6891 §6.1.1
// says a reply to an EDNS query MUST have one, and §7 that a FORMERR
// without it means "no EDNS here", which makes resolvers fall back. It
// returns the question's type, 0 when it could not be read.
func rejectReply(pkt []byte, rcode int, out []byte) ([]byte, uint16) {
	b := out[:0]
	if cap(b) < headerLen+maxNameWire+4+optHeaderLen {
		b = make([]byte, 0, headerLen+maxNameWire+4+optHeaderLen)
	}
	b = append(b, pkt[0], pkt[1], bitQR|pkt[2]&(bitOpcode|bitRD), pkt[3]&bitCD|byte(rcode&0xF),
		0, 0, 0, 0, 0, 0, 0, 0)
	qd, an, ns, ar := int(be16(pkt[4:])), int(be16(pkt[6:])), int(be16(pkt[8:])), int(be16(pkt[10:]))
	if qd == 0 {
		if do, _, found := findOPT(pkt, headerLen, 0, an+ns, ar); found {
			b = appendOPTHeader(b, do, 0)
			b[11] = 1
		}
		return b, 0
	}
	nb, end, ok := appendName(b, pkt, headerLen)
	if !ok || end+4 > len(pkt) {
		return b, 0
	}
	b = append(nb, pkt[end:end+4]...)
	b[5] = 1
	qtype := be16(pkt[end:])
	if do, _, found := findOPT(pkt, end+4, qd-1, an+ns, ar); found {
		b = appendOPTHeader(b, do, 0)
		b[11] = 1
	}
	return b, qtype
}

// packFit packs m into out (or a new buffer when it does not fit
// there) within limit bytes, cleanly: first it drops the additional
// records (RFC 2181 §9: no TC for those), then, if the answer itself
// does not fit, it sends no partial RRset but an empty answer with TC
// set, so the client retries over TCP (RFC 7766). It reports whether
// TC was set.
func packFit(m *dns.Msg, limit int, out []byte) ([]byte, bool, error) {
	buf, err := m.PackBuffer(out)
	if err != nil || len(buf) <= limit {
		return buf, false, err
	}
	opt := m.IsEdns0()
	if len(m.Extra) > 0 && !(len(m.Extra) == 1 && opt != nil) {
		m.Extra = nil
		if opt != nil {
			m.Extra = []dns.RR{opt}
		}
		if buf, err = m.PackBuffer(out); err != nil || len(buf) <= limit {
			return buf, false, err
		}
	}
	emptyTruncated(m)
	buf, err = m.PackBuffer(out)
	return buf, true, err
}

// emptyTruncated turns m into an empty response with TC set, keeping
// the question, the rcode and the OPT record (with its options).
func emptyTruncated(m *dns.Msg) {
	opt := m.IsEdns0()
	m.Answer, m.Ns, m.Extra = nil, nil, nil
	if opt != nil {
		m.Extra = []dns.RR{opt}
	}
	m.Truncated = true
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// maxNameWire is the longest domain name in wire form (RFC 1035 §2.3.4).
const maxNameWire = 255

// wireName packs the presentation name into buf and returns the wire
// form (nil for ""), for rate limiting keys.
func wireName(buf []byte, name string) []byte {
	if name == "" {
		return nil
	}
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// appendName appends the wire form of the name at off in msg, with
// compression pointers followed (at most as many as miekg/dns follows,
// and never past 255 bytes), and returns the offset after the name as
// it is written at off.
func appendName(b, msg []byte, off int) ([]byte, int, bool) {
	end, ptrs, size := -1, 0, 0
	for {
		if off >= len(msg) {
			return b, 0, false
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				return append(b, 0), end, size+1 <= maxNameWire
			}
			if off+1+c > len(msg) {
				return b, 0, false
			}
			if size += 1 + c; size >= maxNameWire {
				return b, 0, false
			}
			b = append(b, msg[off:off+1+c]...)
			off += 1 + c
		case 0xC0:
			if off+1 >= len(msg) {
				return b, 0, false
			}
			if end < 0 {
				end = off + 2
			}
			if ptrs++; ptrs > 126 {
				return b, 0, false
			}
			off = (c&0x3F)<<8 | int(msg[off+1])
		default: // 0x40 and 0x80 are not labels (RFC 6891 §5)
			return b, 0, false
		}
	}
}

// skipName returns the offset after the name at off, without
// following compression pointers.
func skipName(msg []byte, off int) (int, bool) {
	for {
		if off >= len(msg) {
			return 0, false
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, true
			}
			off += 1 + c
		case 0xC0:
			return off + 2, off+2 <= len(msg)
		default:
			return 0, false
		}
	}
}

// findOPT looks for an OPT record in the additional section of msg,
// whose questions (after the first) and answer and authority records
// start at off, and returns its DO bit and its RDATA (nil when cut
// short). It reads only the records' headers.
func findOPT(msg []byte, off, questions, records, additional int) (do bool, rdata []byte, found bool) {
	var ok bool
	for range questions {
		if off, ok = skipName(msg, off); !ok {
			return false, nil, false
		}
		off += 4
	}
	for i := range records + additional {
		if off, ok = skipName(msg, off); !ok || off+10 > len(msg) {
			return false, nil, false
		}
		end := off + 10 + int(be16(msg[off+8:]))
		if i >= records && be16(msg[off:]) == dns.TypeOPT {
			if end <= len(msg) {
				rdata = msg[off+10 : end]
			}
			return msg[off+6]&0x80 != 0, rdata, true
		}
		off = end
	}
	return false, nil, false
}

// wireECS returns the data of the first Client Subnet option of the
// query msg as it was sent, nil when there is none. The parsed option
// has lost what answer needs to check: how many address octets came.
func wireECS(msg []byte) []byte {
	off, ok := skipName(msg, headerLen)
	if !ok {
		return nil
	}
	_, rdata, found := findOPT(msg, off+4, int(be16(msg[4:]))-1, int(be16(msg[6:]))+int(be16(msg[8:])), int(be16(msg[10:])))
	if !found {
		return nil
	}
	for len(rdata) >= 4 {
		code, n := be16(rdata), int(be16(rdata[2:]))
		if 4+n > len(rdata) {
			return nil
		}
		if code == dns.EDNS0SUBNET {
			return rdata[4 : 4+n]
		}
		rdata = rdata[4+n:]
	}
	return nil
}

// optHeaderLen is the size of an OPT record without options.
const optHeaderLen = 11

// appendOPTHeader appends our OPT record with rdlen bytes of options
// to follow: owner ".", our buffer size, extended rcode 0, version 0,
// the DO bit copied from the query (RFC 3225 §3), no other flags.
func appendOPTHeader(b []byte, do bool, rdlen int) []byte {
	var flags byte
	if do {
		flags = 0x80
	}
	return append(b, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(maxUDPSize>>8), byte(maxUDPSize&0xFF),
		0, 0, flags, 0, byte(rdlen>>8), byte(rdlen))
}
