package edge

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
sites:
  - hosts: [cdn.example.com]
    origin: s3://assets/prod?region=us-west-2
    ttl: 2m
    rules:
      - prefix: /widget/v
        cache_control: public, max-age=31536000, immutable
        ttl: 24h
  - negative_ttl: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sites) != 2 || *cfg.Sites[0].TTL != Duration(2*time.Minute) || *cfg.Sites[0].Rules[0].TTL != Duration(24*time.Hour) || *cfg.Sites[1].NegativeTTL != Duration(3*time.Second) || cfg.Sites[1].TTL != nil {
		t.Fatalf("decoded %+v", cfg)
	}
	if cfg, err := ParseConfig(nil); err != nil || len(cfg.Sites) != 0 {
		t.Fatalf("empty file: %v %+v", err, cfg)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "sites:\n  - hosts: [a]\n    ttls: 1m\n", "line 3: sites[0].ttls: unknown field; did you mean ttl?"},
		{"misspelt rule field", "sites:\n  - rules:\n      - prefix: /w\n        cache_contol: x\n", "line 4: sites[0].rules[0].cache_contol: unknown field; did you mean cache_control?"},
		{"field far from any", "sites:\n  - colour: blue\n", "line 2: sites[0].colour: unknown field"},
		{"string for a list", "sites:\n  - hosts: a.example\n", "line 2: sites[0].hosts: want a list"},
		{"list for a string", "sites:\n  - index: [a, b]\n", "line 2: sites[0].index: want a single value, not a list"},
		{"field twice", "sites:\n  - ttl: 1m\n    ttl: 2m\n", "line 3: sites[0].ttl: given twice"},
		{"bad duration", "sites:\n  - ttl: 5 minutes\n", "line 2: sites[0].ttl: \"5 minutes\" is not a duration"},
		{"negative duration", "sites:\n  - ttl: -5m\n", "line 2: sites[0].ttl: \"-5m\" is negative"},
		{"hop-by-hop header", "sites:\n  - headers: {Connection: close}\n", "sites[0].headers.Connection: Connection is a hop-by-hop header"},
		{"edge-owned header", "sites:\n  - rules:\n      - prefix: /\n        headers: {content-length: 5}\n", "line 4: sites[0].rules[0].headers.content-length: Content-Length is set by the edge"},
		{"CORS header in headers", "sites:\n  - headers: {Access-Control-Allow-Origin: \"*\"}\n", "use cors:"},
		{"remove Vary", "sites:\n  - remove_headers: [vary]\n", "sites[0].remove_headers[0]: Vary cannot be removed"},
		{"header value on two lines", "sites:\n  - headers: {X-A: \"a\\nb\"}\n", "sites[0].headers.X-A: the value must be one line"},
		{"cors without origins", "sites:\n  - cors: {allow_methods: [GET]}\n", "sites[0].cors.allow_origins: empty"},
		{"cors origin with a path", "sites:\n  - cors: {allow_origins: [https://a.example/login]}\n", "sites[0].cors.allow_origins[0]: \"https://a.example/login\" has more than scheme"},
		{"cors star and more", "sites:\n  - cors: {allow_origins: [\"*\", https://a.example]}\n", "sites[0].cors.allow_origins[0]: \"*\" allows every origin"},
		{"cors lower-case method", "sites:\n  - cors: {allow_origins: [\"*\"], allow_methods: [get]}\n", "sites[0].cors.allow_methods[0]"},
		{"cors bad max_age", "sites:\n  - cors: {allow_origins: [\"*\"], max_age: soon}\n", "sites[0].cors.max_age: \"soon\" is not a duration"},
		{"two defaults", "sites:\n  - ttl: 1m\n  - ttl: 2m\n", "line 3: sites[1].hosts"},
		{"duplicate host", "sites:\n  - hosts: [a, b]\n  - hosts: [B]\n", "sites[1].hosts[0]: host \"b\" is already in sites[0]"},
		{"host with port", "sites:\n  - hosts: [a:443]\n", "sites[0].hosts[0]"},
		{"bad origin", "sites:\n  - origin: ftp://x\n", "line 2: sites[0].origin"},
		{"index with slash", "sites:\n  - index: a/b.html\n", "sites[0].index"},
		{"relative prefix", "sites:\n  - rules:\n    - prefix: w/\n", "line 3: sites[0].rules[0].prefix"},
		{"header injection", "sites:\n  - rules:\n    - prefix: /w\n      cache_control: \"a\\r\\nSet-Cookie: x\"\n", "cache_control: must be one line"},
		{"not yaml", "sites: [", "not valid YAML: line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
