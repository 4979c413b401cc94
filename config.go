package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults for the freshness knobs a site may leave out.
const (
	DefaultTTL                  = 5 * time.Minute
	DefaultNegativeTTL          = 10 * time.Second
	DefaultStaleWhileRevalidate = time.Minute
	DefaultStaleIfError         = 24 * time.Hour
	DefaultIndex                = "index.html"
)

// Config is the optional YAML file (-config): the sites this edge serves
// and their per-path rules. Unknown fields are errors.
//
//	sites:
//	  - hosts: [cdn.example.com]
//	    origin: s3://login-assets/prod?region=us-west-2
//	    rules:
//	      - prefix: /widget/v
//	        cache_control: public, max-age=31536000, immutable
//	        ttl: 24h
//	      - prefix: /tenants/
//	        cache_control: public, max-age=60
//	        ttl: 60s
type Config struct {
	// Sites in the order they are matched. A site without hosts is the
	// default: it answers every Host no other site names. At most one
	// site may be the default.
	Sites []SiteConfig `yaml:"sites"`
}

// SiteConfig is one site: the hosts it answers, its origin and rules.
type SiteConfig struct {
	// Hosts are the Host header values (without port, any case) the site
	// answers. Empty means any host: the default site.
	Hosts []string `yaml:"hosts"`
	// Origin is where objects come from: s3://BUCKET[/PREFIX][?...] or
	// dir:PATH. Empty means the -origin flags (or the bundled demo site).
	Origin string `yaml:"origin"`
	// Origins, instead of Origin, lists several origins tried in order
	// (a bucket in this region, then a replica in another).
	Origins []string `yaml:"origins"`
	// Index is the object served for paths ending in "/". Default
	// index.html.
	Index string `yaml:"index"`
	// Query is what the site does with a request's query string: "keep"
	// (part of the cache key, forwarded to the origin) or "ignore".
	// Default: keep for an HTTP origin, ignore for S3 and directories.
	Query string `yaml:"query"`
	// TTL is how long an object stays fresh when neither its origin
	// Cache-Control nor a rule says. Unset means -ttl (default 5m); 0
	// means revalidate before every use.
	TTL *Duration `yaml:"ttl"`
	// NegativeTTL is how long a 404 from the origin is cached, so scans
	// for missing paths do not reach S3. Unset means -negative-ttl
	// (default 10s); 0 means not at all.
	NegativeTTL *Duration `yaml:"negative_ttl"`
	// StaleWhileRevalidate is how long after expiry a copy is still
	// served at once while one background request revalidates it, when
	// the origin's Cache-Control has no stale-while-revalidate. Unset
	// means -stale-while-revalidate (default 1m); 0 means never.
	StaleWhileRevalidate *Duration `yaml:"stale_while_revalidate"`
	// StaleIfError is how long after expiry a copy is served when the
	// origin fails, when the origin's Cache-Control has no stale-if-error.
	// Unset means -stale-if-error (default 24h); 0 means never.
	StaleIfError *Duration `yaml:"stale_if_error"`
	// MustServe lists paths this site must be able to serve (the current
	// widget, a tenant config): /healthz fails while any of them has no
	// usable copy, so DNS and load balancers take the edge out. The edge
	// keeps them cached and fresh in the background.
	MustServe []string `yaml:"must_serve"`
	// CORS lets pages on other origins read the site's responses; a
	// rule's cors replaces it for its paths. See CORS.
	CORS *CORS `yaml:"cors"`
	// Headers are set on every response of the site (304s and errors
	// included), after the origin's; a rule's are set after these.
	Headers map[string]string `yaml:"headers"`
	// RemoveHeaders are taken off the origin's responses.
	RemoveHeaders []string `yaml:"remove_headers"`
	// Rules apply per path; the first whose prefix matches wins.
	Rules []Rule `yaml:"rules"`
}

// OriginList is the site's origins in order: Origin alone, or Origins.
func (s *SiteConfig) OriginList() []string {
	if s.Origin != "" {
		return []string{s.Origin}
	}
	return s.Origins
}

// Rule sets caching for paths under a prefix.
type Rule struct {
	// Prefix of the URL path (starting with "/") the rule applies to.
	Prefix string `yaml:"prefix"`
	// CacheControl is sent to browsers instead of the origin's.
	CacheControl string `yaml:"cache_control"`
	// TTL is the edge's freshness for these paths when the origin's
	// Cache-Control sets none. Unset means the site's; 0 means
	// revalidate before every use.
	TTL *Duration `yaml:"ttl"`
	// StaleWhileRevalidate and StaleIfError override the site's for
	// these paths when the origin sets none. Unset means the site's; 0
	// means never.
	StaleWhileRevalidate *Duration `yaml:"stale_while_revalidate"`
	StaleIfError         *Duration `yaml:"stale_if_error"`
	// CORS, when set, replaces the site's for these paths.
	CORS *CORS `yaml:"cors"`
	// Headers are set on every response under the prefix (304s and
	// errors included), after the site's: Timing-Allow-Origin: "*",
	// X-Content-Type-Options: nosniff. A Vary here adds to the edge's.
	Headers map[string]string `yaml:"headers"`
	// RemoveHeaders are taken off the origin's responses under the
	// prefix, beside the site's.
	RemoveHeaders []string `yaml:"remove_headers"`
}

// Duration is a time.Duration written as "90s", "5m", "24h" in YAML.
type Duration time.Duration

// DurationOf returns a pointer to d as a Duration, for the optional
// fields of Rule and SiteConfig.
func DurationOf(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

// UnmarshalYAML accepts Go duration strings that are not negative.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses a duration as the config file and the flags take
// it: a Go duration ("90s", "5m", "24h", "0"), not negative. Its errors
// are the messages both show, after the flag's or the field's name.
func ParseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 90s, 5m, 24h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

// LoadConfig reads and validates the YAML file at path. Errors name the
// file, the line and the field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and validates a config file's contents.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlSyntaxError(err)
	}
	if len(root.Content) == 0 {
		return &cfg, nil // an empty file is an empty config
	}
	report := func(err error) error {
		var fe *fieldError
		if !errors.As(err, &fe) {
			return err
		}
		line := fe.line
		if line == 0 {
			line = lineOf(&root, fe.path)
		}
		if line > 0 {
			return fmt.Errorf("line %d: %s: %s", line, fe.field(), fe.msg)
		}
		return fmt.Errorf("%s: %s", fe.field(), fe.msg)
	}
	if err := checkShape(&root, reflect.TypeFor[Config](), nil); err != nil {
		return nil, report(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlSyntaxError(err)
	}
	if err := cfg.validate(); err != nil {
		return nil, report(err)
	}
	return &cfg, nil
}

// yamlSyntaxError words an error of the YAML decoder (a syntax error, or
// a value a field's own parser refused) without its "yaml: " prefix.
func yamlSyntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	return errors.New("not valid YAML: " + msg)
}

// fieldError is a validation error at a path of keys and indexes.
type fieldError struct {
	path []any // string keys and int indexes
	msg  string
	line int // where in the file, when known; else found from path
}

func (e *fieldError) Error() string { return e.field() + ": " + e.msg }

func (e *fieldError) field() string {
	var b strings.Builder
	for _, p := range e.path {
		switch p := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

func fieldErr(msg string, path ...any) error { return &fieldError{path: path, msg: msg} }

func (c *Config) validate() error {
	defaults := 0
	seen := map[string]int{}
	for i, s := range c.Sites {
		if len(s.Hosts) == 0 {
			defaults++
			if defaults > 1 {
				return fieldErr("a second site without hosts: only one site may be the default", "sites", i, "hosts")
			}
		}
		for j, h := range s.Hosts {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == "" || strings.ContainsAny(h, ":/ ") {
				return fieldErr(fmt.Sprintf("%q is not a host name (no port, scheme or path)", s.Hosts[j]), "sites", i, "hosts", j)
			}
			if k, dup := seen[h]; dup {
				return fieldErr(fmt.Sprintf("host %q is already in sites[%d]", h, k), "sites", i, "hosts", j)
			}
			seen[h] = i
		}
		if s.Origin != "" && len(s.Origins) > 0 {
			return fieldErr("give origin or origins, not both", "sites", i, "origins")
		}
		for j, o := range s.OriginList() {
			if !strings.HasPrefix(o, "s3://") && !strings.HasPrefix(o, "dir:") && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
				path := []any{"sites", i, "origin"}
				if len(s.Origins) > 0 {
					path = []any{"sites", i, "origins", j}
				}
				return fieldErr(fmt.Sprintf("%q: want s3://BUCKET[/PREFIX], http(s)://HOST[/PREFIX] or dir:PATH", o), path...)
			}
		}
		if s.Query != "" && s.Query != string(QueryKeep) && s.Query != string(QueryIgnore) {
			return fieldErr(fmt.Sprintf("%q: keep or ignore", s.Query), "sites", i, "query")
		}
		if strings.Contains(s.Index, "/") {
			return fieldErr(fmt.Sprintf("%q must be a file name without /", s.Index), "sites", i, "index")
		}
		for j, p := range s.MustServe {
			if _, ok := cleanPath(p); !ok {
				return fieldErr(fmt.Sprintf("%q is not a clean path starting with /", p), "sites", i, "must_serve", j)
			}
		}
		if err := checkPolicy(s.CORS, s.Headers, s.RemoveHeaders, "sites", i); err != nil {
			return err
		}
		for j, r := range s.Rules {
			if !strings.HasPrefix(r.Prefix, "/") {
				return fieldErr(fmt.Sprintf("%q must start with /", r.Prefix), "sites", i, "rules", j, "prefix")
			}
			if strings.ContainsAny(r.CacheControl, "\r\n") {
				return fieldErr("must be one line", "sites", i, "rules", j, "cache_control")
			}
			if err := checkPolicy(r.CORS, r.Headers, r.RemoveHeaders, "sites", i, "rules", j); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPolicy validates a site's or a rule's cors, headers and
// remove_headers, at path.
func checkPolicy(cors *CORS, headers map[string]string, remove []string, path ...any) error {
	if cors != nil {
		if field, msg := checkCORS(cors); msg != "" {
			return fieldErr(msg, append(path, "cors", field)...)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		if msg := checkHeaderName(name, false); msg != "" {
			return fieldErr(msg, append(path, "headers", name)...)
		}
		if strings.ContainsAny(headers[name], "\r\n\x00") {
			return fieldErr("the value must be one line", append(path, "headers", name)...)
		}
	}
	for k, name := range remove {
		if msg := checkHeaderName(name, true); msg != "" {
			return fieldErr(msg, append(path, "remove_headers", k)...)
		}
	}
	return nil
}

// lineOf finds the line of the node at path in a decoded YAML document.
func lineOf(n *yaml.Node, path []any) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, p := range path {
		switch p := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return n.Line
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return n.Line
			}
			n = next
		case int:
			if n.Kind != yaml.SequenceNode || p >= len(n.Content) {
				return n.Line
			}
			n = n.Content[p]
		}
	}
	return n.Line
}
