package dnsgeo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"
)

// Defaults applied by ParseConfig to fields left out (or zero) in the file.
const (
	DefaultTTL            = 20              // routed answers, seconds
	DefaultSOATTL         = 3600            // SOA and NS records, seconds
	DefaultNegativeTTL    = 60              // SOA MINIMUM, RFC 2308
	DefaultSerial         = 1               // SOA SERIAL
	DefaultRefresh        = 3600            // SOA REFRESH
	DefaultRetry          = 600             // SOA RETRY
	DefaultExpire         = 604800          // SOA EXPIRE
	DefaultHealthInterval = 2 * time.Second // between probe rounds
	DefaultHealthTimeout  = 1 * time.Second // per probe
	DefaultFall           = 2               // consecutive failures before down
	DefaultRise           = 2               // consecutive successes before up
	DefaultRRLRate        = 200             // identical responses per second per network
	DefaultRRLSlip        = 2               // every 2nd limited response is sent truncated
	DefaultRRLIPv4Prefix  = 24
	DefaultRRLIPv6Prefix  = 56
	DefaultStaticTTL      = 3600 // static records written without a TTL

	// MaxRegions bounds the number of regions: health state is one
	// 64-bit word so that a query reads it with a single atomic load.
	MaxRegions = 64
)

// Config is the contents of the config file, validated. Fields mirror
// the YAML keys; each is documented in README.md. Build one with
// LoadConfig or ParseConfig: a Config made by hand has not been checked.
type Config struct {
	// Zone is the apex this server is authoritative for ("example.test.").
	Zone string `yaml:"zone"`
	// TTL of routed answers, in seconds. Zero means DefaultTTL (20).
	TTL uint32 `yaml:"ttl"`
	// SOA of the zone; ns and mbox are required.
	SOA SOAConfig `yaml:"soa"`
	// NS lists the zone's name servers (every dnsgeo instance).
	NS []string `yaml:"ns"`
	// Records are static records in zone-file syntax, owner names
	// relative to the zone ("www 300 IN CNAME cdn").
	Records []string `yaml:"records"`
	// Routed names are answered by latency routing (A and AAAA).
	Routed []string `yaml:"routed"`
	// Regions by name.
	Regions map[string]*RegionConfig `yaml:"regions"`
	// DefaultOrder is the region preference for clients whose network
	// is not in the latency table. Regions left out follow, by name.
	DefaultOrder []string `yaml:"default_order"`
	// Fallback, when true, adds to a routed answer, after the addresses
	// of the region that answers, the first address of the next healthy
	// region in the client's order: a browser whose connections to the
	// first region are refused or time out tries that one at once,
	// instead of failing until the answer's TTL runs out. False (the
	// default) answers with one region's addresses only, as Route53
	// latency records do. The cost: a client that fails one connection
	// (a single address flapping, a lost SYN) lands on a farther region.
	Fallback bool `yaml:"fallback"`
	// Health configures the prober.
	Health HealthConfig `yaml:"health"`
	// RRL configures response rate limiting.
	RRL RRLConfig `yaml:"rrl"`

	file        string
	zone        *zone
	regionNames []string // sorted: region index i is regionNames[i]
	exempt      []netip.Prefix
}

// SOAConfig is the zone's SOA record. Times are in seconds.
type SOAConfig struct {
	NS          string `yaml:"ns"`           // MNAME, required
	Mbox        string `yaml:"mbox"`         // RNAME, required
	Serial      uint32 `yaml:"serial"`       // zero means 1
	Refresh     uint32 `yaml:"refresh"`      // zero means 3600
	Retry       uint32 `yaml:"retry"`        // zero means 600
	Expire      uint32 `yaml:"expire"`       // zero means 604800
	NegativeTTL uint32 `yaml:"negative_ttl"` // SOA MINIMUM; zero means 60
	TTL         uint32 `yaml:"ttl"`          // of the SOA and NS records; zero means 3600
}

// RegionConfig is one region: the addresses of its load balancer and
// the URL that tells whether it can serve.
type RegionConfig struct {
	A      []string `yaml:"a"`      // IPv4 addresses, in answer order
	AAAA   []string `yaml:"aaaa"`   // IPv6 addresses, in answer order
	Health string   `yaml:"health"` // http:// or https:// URL; empty: never probed, always up

	a, aaaa []netip.Addr
}

// HealthConfig configures the prober. A region is down after Fall
// consecutive failed probes and up again after Rise consecutive
// successes. A probe succeeds when the URL answers 2xx within Timeout.
type HealthConfig struct {
	Interval time.Duration `yaml:"interval"` // zero means 2s
	Timeout  time.Duration `yaml:"timeout"`  // zero means 1s; at most Interval
	Fall     int           `yaml:"fall"`     // zero means 2
	Rise     int           `yaml:"rise"`     // zero means 2
	// CAFile is a PEM bundle trusted for https health URLs in addition
	// to the system roots (for edges with private certificates).
	CAFile string `yaml:"ca_file"`
	// Host, when set, is sent as the Host header and TLS server name
	// (the name the edges' certificates carry) instead of the URL's host.
	Host string `yaml:"host"`
}

// RRLConfig configures response rate limiting (RFC-less but BIND/NSD
// style): identical responses to one client network are limited to
// ResponsesPerSecond; over the limit, every Slip-th response is sent
// truncated (TC, empty) so real resolvers retry over TCP, the rest are
// dropped. Only UDP is limited: TCP cannot be spoofed.
type RRLConfig struct {
	Enabled            *bool    `yaml:"enabled"`              // nil means true
	ResponsesPerSecond int      `yaml:"responses_per_second"` // zero means 200
	Slip               *int     `yaml:"slip"`                 // nil means 2; 0 drops all, 1 truncates all
	IPv4PrefixLength   int      `yaml:"ipv4_prefix_length"`   // zero means 24
	IPv6PrefixLength   int      `yaml:"ipv6_prefix_length"`   // zero means 56
	Exempt             []string `yaml:"exempt"`               // CIDRs never limited
}

// ConfigError is a problem in a config file: the file, the line and
// the field it is about.
type ConfigError struct {
	File  string
	Line  int
	Field string // dotted path, e.g. "regions.us-west-2.a[1]"
	Err   error
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Field, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads and validates the config file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes and validates a config file's contents; file
// names it in errors. Unknown fields, duplicate keys, bad names,
// addresses and CIDRs are errors naming file, line and field.
func ParseConfig(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err, nil)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &ConfigError{File: file, Line: 1, Err: errors.New("empty config")}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	c := &Config{file: file}
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(file, err, &root)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &ConfigError{File: file, Line: extra.Line, Err: errors.New("more than one YAML document")}
	}
	v := &validator{file: file, loc: locator{root: &root}}
	c.validate(v)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)
var yamlUnknown = regexp.MustCompile(`^field (\S+) not found in type .*$`)

// yamlError rewrites yaml.v3's errors as ConfigErrors that name the
// file, the line and (when the tree is known) the field.
func yamlError(file string, err error, root *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			return &ConfigError{File: file, Line: n, Err: errors.New(m[2])}
		}
		return &ConfigError{File: file, Line: 1, Err: errors.New(msg)}
	}
	var errs []error
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, &ConfigError{File: file, Err: errors.New(e)})
			continue
		}
		n, _ := strconv.Atoi(m[1])
		msg := m[2]
		u := yamlUnknown.FindStringSubmatch(msg)
		if u != nil {
			msg = "unknown field " + strconv.Quote(u[1])
		}
		field := ""
		if root != nil {
			key := ""
			if u != nil {
				key = u[1]
			}
			field = locator{root: root}.pathAt(n, key)
		}
		errs = append(errs, &ConfigError{File: file, Line: n, Field: field, Err: errors.New(msg)})
	}
	return errors.Join(errs...)
}

// locator finds the lines of fields in the YAML tree, for errors.
type locator struct{ root *yaml.Node }

func (l locator) top() *yaml.Node {
	n := l.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	return n
}

// line returns the line of the value at path (string keys, int
// indexes), or of the deepest ancestor that exists.
func (l locator) line(path ...any) int {
	n := l.top()
	line := n.Line
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					n, line, found = n.Content[i+1], n.Content[i+1].Line, true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || k < 0 || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}

// pathAt returns the dotted path of the key named key on line, or else
// of the first key or value on line.
func (l locator) pathAt(line int, key string) string {
	if key != "" {
		if p := l.pathAt(line, ""); p != "" {
			if exact := l.find(line, key); exact != "" {
				return exact
			}
			return p
		}
	}
	return l.find(line, "")
}

func (l locator) find(line int, key string) string {
	var walk func(n *yaml.Node, path string) (string, bool)
	walk = func(n *yaml.Node, path string) (string, bool) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line && (key == "" || k.Value == key) {
					return p, true
				}
				if r, ok := walk(v, p); ok {
					return r, true
				}
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if r, ok := walk(v, p); ok {
					return r, true
				}
			}
		default:
			if n.Line == line && key == "" {
				return path, true
			}
		}
		return "", false
	}
	p, _ := walk(l.top(), "")
	return p
}

type validator struct {
	file string
	loc  locator
	errs []error
}

// fail records an error about the field at path (YAML keys and indexes).
func (v *validator) fail(err error, path ...any) {
	var b strings.Builder
	for i, p := range path {
		switch k := p.(type) {
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	v.errs = append(v.errs, &ConfigError{File: v.file, Line: v.loc.line(path...), Field: b.String(), Err: err})
}

func (v *validator) failf(format string, args ...any) func(path ...any) {
	return func(path ...any) { v.fail(fmt.Errorf(format, args...), path...) }
}

var regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// validate applies defaults and checks every field, compiling the zone.
// Defaults are applied here and nowhere else.
func (c *Config) validate(v *validator) {
	// Zone.
	if c.Zone == "" {
		v.fail(errors.New("required"), "zone")
		return
	}
	if _, ok := dns.IsDomainName(c.Zone); !ok || !dns.IsFqdn(c.Zone) {
		v.fail(fmt.Errorf("%q is not a fully qualified domain name (it must end with a dot)", c.Zone), "zone")
		return
	}
	c.Zone = dns.CanonicalName(c.Zone)

	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL > 86400 {
		v.fail(fmt.Errorf("%d is longer than a day", c.TTL), "ttl")
	}

	// SOA and NS.
	s := &c.SOA
	setDefault(&s.Serial, DefaultSerial)
	setDefault(&s.Refresh, DefaultRefresh)
	setDefault(&s.Retry, DefaultRetry)
	setDefault(&s.Expire, DefaultExpire)
	setDefault(&s.NegativeTTL, DefaultNegativeTTL)
	setDefault(&s.TTL, DefaultSOATTL)
	if s.NS == "" {
		v.fail(errors.New("required"), "soa", "ns")
	} else if n, err := c.absName(s.NS); err != nil {
		v.fail(err, "soa", "ns")
	} else {
		s.NS = n
	}
	if s.Mbox == "" {
		v.fail(errors.New("required"), "soa", "mbox")
	} else if n, err := c.absName(s.Mbox); err != nil {
		v.fail(err, "soa", "mbox")
	} else {
		s.Mbox = n
	}
	if len(c.NS) == 0 {
		v.fail(errors.New("at least one name server is required"), "ns")
	}
	for i, ns := range c.NS {
		n, err := c.absName(ns)
		if err != nil {
			v.fail(err, "ns", i)
			continue
		}
		if slices.Contains(c.NS[:i], n) {
			v.fail(fmt.Errorf("duplicate name server %q", n), "ns", i)
		}
		c.NS[i] = n
	}

	// Regions.
	if len(c.Regions) == 0 {
		v.fail(errors.New("at least one region is required"), "regions")
	}
	if len(c.Regions) > MaxRegions {
		v.fail(fmt.Errorf("%d regions, at most %d are supported", len(c.Regions), MaxRegions), "regions")
	}
	for name, r := range c.Regions {
		if !regionName.MatchString(name) {
			v.fail(fmt.Errorf("region name %q: use lower-case letters, digits, '.', '_' and '-'", name), "regions", name)
			continue
		}
		c.regionNames = append(c.regionNames, name)
		if r == nil {
			v.fail(errors.New("region has no addresses"), "regions", name)
			c.Regions[name] = &RegionConfig{}
			continue
		}
		r.validate(v, name)
	}
	slices.Sort(c.regionNames)
	for i, name := range c.DefaultOrder {
		if _, ok := c.Regions[name]; !ok {
			v.fail(fmt.Errorf("unknown region %q", name), "default_order", i)
		} else if slices.Contains(c.DefaultOrder[:i], name) {
			v.fail(fmt.Errorf("region %q listed twice", name), "default_order", i)
		}
	}

	c.Health.validate(v)
	c.RRL.validate(v, c)

	// Routed names and static records.
	if len(v.errs) == 0 {
		c.zone = compileZone(c, v)
	}
}

func setDefault[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// absName makes a zone-file style name absolute: names without a final
// dot are relative to the zone; "@" is the zone.
func (c *Config) absName(s string) (string, error) {
	n := s
	if n == "@" {
		n = c.Zone
	} else if !dns.IsFqdn(n) {
		n = n + "." + c.Zone
	}
	if _, ok := dns.IsDomainName(n); !ok {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	return dns.CanonicalName(n), nil
}

func (r *RegionConfig) validate(v *validator, name string) {
	for i, s := range r.A {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil || !a.Is4():
			v.fail(fmt.Errorf("%q is not an IPv4 address", s), "regions", name, "a", i)
		case slices.Contains(r.a, a):
			v.fail(fmt.Errorf("duplicate address %s", a), "regions", name, "a", i)
		default:
			r.a = append(r.a, a)
		}
	}
	for i, s := range r.AAAA {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "":
			v.fail(fmt.Errorf("%q is not an IPv6 address", s), "regions", name, "aaaa", i)
		case slices.Contains(r.aaaa, a):
			v.fail(fmt.Errorf("duplicate address %s", a), "regions", name, "aaaa", i)
		default:
			r.aaaa = append(r.aaaa, a)
		}
	}
	if len(r.A) == 0 && len(r.AAAA) == 0 {
		v.fail(errors.New("region has no addresses (a or aaaa)"), "regions", name)
	}
	if r.Health != "" {
		u, err := url.Parse(r.Health)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail(fmt.Errorf("%q is not an http or https URL", r.Health), "regions", name, "health")
		}
	}
}

func (h *HealthConfig) validate(v *validator) {
	setDefault(&h.Interval, DefaultHealthInterval)
	setDefault(&h.Timeout, DefaultHealthTimeout)
	setDefault(&h.Fall, DefaultFall)
	setDefault(&h.Rise, DefaultRise)
	if h.Interval < 10*time.Millisecond {
		v.fail(fmt.Errorf("%v is too short (at least 10ms)", h.Interval), "health", "interval")
	}
	if h.Timeout < 0 || h.Timeout > h.Interval {
		v.fail(fmt.Errorf("%v must be positive and at most the interval (%v)", h.Timeout, h.Interval), "health", "timeout")
	}
	if h.Fall < 1 || h.Fall > 100 {
		v.fail(fmt.Errorf("%d must be between 1 and 100", h.Fall), "health", "fall")
	}
	if h.Rise < 1 || h.Rise > 100 {
		v.fail(fmt.Errorf("%d must be between 1 and 100", h.Rise), "health", "rise")
	}
	if h.CAFile != "" {
		if _, err := loadCAFile(h.CAFile); err != nil {
			v.fail(err, "health", "ca_file")
		}
	}
	if h.Host != "" {
		if _, err := url.Parse("http://" + h.Host + "/"); err != nil || strings.ContainsAny(h.Host, "/?#@ ") {
			v.fail(fmt.Errorf("%q is not a host name", h.Host), "health", "host")
		}
	}
}

func (r *RRLConfig) validate(v *validator, c *Config) {
	if r.Enabled == nil {
		t := true
		r.Enabled = &t
	}
	if r.Slip == nil {
		s := DefaultRRLSlip
		r.Slip = &s
	}
	setDefault(&r.ResponsesPerSecond, DefaultRRLRate)
	setDefault(&r.IPv4PrefixLength, DefaultRRLIPv4Prefix)
	setDefault(&r.IPv6PrefixLength, DefaultRRLIPv6Prefix)
	if r.ResponsesPerSecond < 1 || r.ResponsesPerSecond > 1_000_000 {
		v.fail(fmt.Errorf("%d must be between 1 and 1000000", r.ResponsesPerSecond), "rrl", "responses_per_second")
	}
	if *r.Slip < 0 || *r.Slip > 10 {
		v.fail(fmt.Errorf("%d must be between 0 and 10", *r.Slip), "rrl", "slip")
	}
	if r.IPv4PrefixLength < 1 || r.IPv4PrefixLength > 32 {
		v.fail(fmt.Errorf("%d must be between 1 and 32", r.IPv4PrefixLength), "rrl", "ipv4_prefix_length")
	}
	if r.IPv6PrefixLength < 1 || r.IPv6PrefixLength > 128 {
		v.fail(fmt.Errorf("%d must be between 1 and 128", r.IPv6PrefixLength), "rrl", "ipv6_prefix_length")
	}
	for i, s := range r.Exempt {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			v.fail(fmt.Errorf("%q is not a CIDR prefix", s), "rrl", "exempt", i)
			continue
		}
		if p != p.Masked() {
			v.fail(fmt.Errorf("%q has bits set beyond the prefix length (did you mean %s?)", s, p.Masked()), "rrl", "exempt", i)
			continue
		}
		c.exempt = append(c.exempt, p)
	}
}

// regionIndex returns the index of the named region, or -1.
func (c *Config) regionIndex(name string) int {
	i, ok := slices.BinarySearch(c.regionNames, name)
	if !ok {
		return -1
	}
	return i
}

// defaultOrder returns region indexes in default order: DefaultOrder
// first, then the regions it leaves out, by name.
func (c *Config) defaultOrder() []uint8 {
	order := make([]uint8, 0, len(c.regionNames))
	for _, name := range c.DefaultOrder {
		order = append(order, uint8(c.regionIndex(name)))
	}
	for i, name := range c.regionNames {
		if !slices.Contains(c.DefaultOrder, name) {
			order = append(order, uint8(i))
		}
	}
	return order
}
