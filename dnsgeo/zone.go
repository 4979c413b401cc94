package dnsgeo

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// zone is the static part of the answer: the apex SOA and NS, the
// configured records, and which names are routed. Owner names are kept
// lower-case; answers take the case of the query (see answer in
// server.go). Immutable after compileZone.
type zone struct {
	origin string // lower-case, fully qualified
	soa    *dns.SOA
	nodes  map[string]*node // every owner name and empty non-terminal
}

// node is one owner name.
type node struct {
	rrsets map[uint16][]dns.RR
	cname  *dns.CNAME // when set, the node has no other data
	routed bool       // A and AAAA come from latency routing
}

// empty reports whether the name owns nothing: an empty non-terminal
// (RFC 8020: NODATA, not NXDOMAIN, because names exist below it).
func (n *node) empty() bool { return len(n.rrsets) == 0 && n.cname == nil && !n.routed }

// inZone reports whether the lower-case name is at or below the apex.
func (z *zone) inZone(name string) bool {
	if z.origin == "." {
		return true
	}
	return name == z.origin || (len(name) > len(z.origin) && name[len(name)-len(z.origin)-1] == '.' && strings.HasSuffix(name, z.origin))
}

// lookup returns the node for a lower-case name, nil when the name does
// not exist.
func (z *zone) lookup(name string) *node { return z.nodes[name] }

// forbidden record types: the server writes SOA and NS itself, does not
// sign (no DNSSEC types), and does not delegate.
var forbidden = map[uint16]string{
	dns.TypeSOA:        "the SOA comes from the soa field",
	dns.TypeNS:         "NS records come from the ns field (delegations are not supported)",
	dns.TypeRRSIG:      "DNSSEC is not supported",
	dns.TypeNSEC:       "DNSSEC is not supported",
	dns.TypeNSEC3:      "DNSSEC is not supported",
	dns.TypeNSEC3PARAM: "DNSSEC is not supported",
	dns.TypeDNSKEY:     "DNSSEC is not supported",
	dns.TypeDS:         "DNSSEC is not supported",
	dns.TypeOPT:        "not a record type",
	dns.TypeTSIG:       "not a record type",
	dns.TypeTKEY:       "not a record type",
	dns.TypeDNAME:      "DNAME is not supported",
}

func compileZone(c *Config, v *validator) *zone {
	z := &zone{origin: c.Zone, nodes: make(map[string]*node)}
	apex := z.node(c.Zone)
	z.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: c.Zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: c.SOA.TTL},
		Ns:      c.SOA.NS,
		Mbox:    c.SOA.Mbox,
		Serial:  c.SOA.Serial,
		Refresh: c.SOA.Refresh,
		Retry:   c.SOA.Retry,
		Expire:  c.SOA.Expire,
		Minttl:  c.SOA.NegativeTTL,
	}
	apex.rrsets[dns.TypeSOA] = []dns.RR{z.soa}
	for _, ns := range c.NS {
		apex.rrsets[dns.TypeNS] = append(apex.rrsets[dns.TypeNS], &dns.NS{
			Hdr: dns.RR_Header{Name: c.Zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: c.SOA.TTL},
			Ns:  ns,
		})
	}

	for i, r := range c.Routed {
		name, err := c.absName(r)
		if err != nil {
			v.fail(err, "routed", i)
			continue
		}
		if !z.inZone(name) {
			v.fail(fmt.Errorf("%s is outside the zone %s", name, c.Zone), "routed", i)
			continue
		}
		n := z.node(name)
		if n.routed {
			v.fail(fmt.Errorf("%s is listed twice", name), "routed", i)
		}
		n.routed = true
	}

	cnameAt := make(map[string]int) // owner -> index in records
	for i, text := range c.Records {
		rr, err := parseRecord(text, c.Zone)
		if err != nil {
			v.fail(err, "records", i)
			continue
		}
		h := rr.Header()
		h.Name = dns.CanonicalName(h.Name)
		if !z.inZone(h.Name) {
			v.fail(fmt.Errorf("%s is outside the zone %s", h.Name, c.Zone), "records", i)
			continue
		}
		if h.Class != dns.ClassINET {
			v.fail(errors.New("only class IN is supported"), "records", i)
			continue
		}
		if why, ok := forbidden[h.Rrtype]; ok {
			v.fail(fmt.Errorf("%s record: %s", dns.TypeToString[h.Rrtype], why), "records", i)
			continue
		}
		if strings.HasPrefix(h.Name, "*.") || strings.Contains(h.Name, ".*.") {
			v.fail(errors.New("wildcard names are not supported"), "records", i)
			continue
		}
		n := z.node(h.Name)
		switch {
		case h.Rrtype == dns.TypeCNAME && h.Name == c.Zone:
			v.fail(errors.New("CNAME at the zone apex (it has SOA and NS)"), "records", i)
			continue
		case h.Rrtype == dns.TypeCNAME && (len(n.rrsets) > 0 || n.routed || n.cname != nil):
			v.fail(fmt.Errorf("CNAME at %s, which has other data", h.Name), "records", i)
			continue
		case h.Rrtype != dns.TypeCNAME && n.cname != nil:
			v.fail(fmt.Errorf("%s has a CNAME, so it can have no other data", h.Name), "records", i)
			continue
		case n.routed && (h.Rrtype == dns.TypeA || h.Rrtype == dns.TypeAAAA):
			v.fail(fmt.Errorf("%s is routed: its addresses come from regions", h.Name), "records", i)
			continue
		}
		if h.Rrtype == dns.TypeCNAME {
			n.cname = rr.(*dns.CNAME)
			cnameAt[h.Name] = i
			continue
		}
		set := n.rrsets[h.Rrtype]
		if len(set) > 0 && set[0].Header().Ttl != h.Ttl {
			v.fail(fmt.Errorf("TTL %d differs from %d of the other %s records of %s (RFC 2181 §5.2)", h.Ttl, set[0].Header().Ttl, dns.TypeToString[h.Rrtype], h.Name), "records", i)
			continue
		}
		dup := false
		for _, o := range set {
			if dns.IsDuplicate(o, rr) {
				dup = true
			}
		}
		if dup {
			v.fail(errors.New("duplicate record"), "records", i)
			continue
		}
		n.rrsets[h.Rrtype] = append(set, rr)
	}
	// A CNAME chain inside the zone must end (the server follows it).
	owners := make([]string, 0, len(cnameAt))
	for owner := range cnameAt {
		owners = append(owners, owner)
	}
	slices.SortFunc(owners, func(a, b string) int { return cnameAt[a] - cnameAt[b] })
	for _, owner := range owners {
		i := cnameAt[owner]
		seen := map[string]bool{owner: true}
		for name := owner; ; {
			n := z.nodes[name]
			if n == nil || n.cname == nil {
				break
			}
			next := dns.CanonicalName(n.cname.Target)
			if seen[next] {
				v.fail(fmt.Errorf("CNAME loop through %s", next), "records", i)
				break
			}
			seen[next] = true
			name = next
		}
	}
	// Empty non-terminals exist (RFC 8020) and answer NODATA.
	for name := range z.nodes {
		for p := name; p != c.Zone; {
			i := strings.IndexByte(p, '.')
			if i < 0 || i+1 >= len(p) {
				break
			}
			p = p[i+1:]
			if !z.inZone(p) {
				break
			}
			z.node(p)
		}
	}
	return z
}

func (z *zone) node(name string) *node {
	n := z.nodes[name]
	if n == nil {
		n = &node{rrsets: make(map[uint16][]dns.RR)}
		z.nodes[name] = n
	}
	return n
}

// parseRecord parses one record in zone-file syntax, names relative to
// origin. Directives ($INCLUDE, $ORIGIN, ...) and several records in one
// string are refused.
func parseRecord(text, origin string) (dns.RR, error) {
	if strings.HasPrefix(strings.TrimSpace(text), "$") {
		return nil, errors.New("zone-file directives are not allowed")
	}
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	zp.SetDefaultTTL(DefaultStaticTTL)
	zp.SetIncludeAllowed(false)
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		var pe *dns.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%q: %s", text, strings.TrimPrefix(pe.Error(), "dns: "))
		}
		return nil, fmt.Errorf("%q: %w", text, err)
	}
	if !ok || rr == nil {
		return nil, fmt.Errorf("%q: no record", text)
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("%q: one record per entry", text)
	}
	return rr, nil
}
