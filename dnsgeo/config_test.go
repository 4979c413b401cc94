package dnsgeo

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// minimalYAML is the smallest valid config.
const minimalYAML = `zone: example.test.
soa: {ns: ns1.example.test., mbox: hostmaster.example.test.}
ns: [ns1.example.test.]
regions:
  us-west-2: {a: [192.0.2.10]}
`

func TestConfigDefaults(t *testing.T) {
	c := mustConfig(t, minimalYAML)
	if c.TTL != 20 || c.SOA.NegativeTTL != 60 || c.SOA.TTL != 3600 || c.SOA.Serial != 1 {
		t.Errorf("ttl %d negative %d soa ttl %d serial %d", c.TTL, c.SOA.NegativeTTL, c.SOA.TTL, c.SOA.Serial)
	}
	h := c.Health
	if h.Interval != 2*time.Second || h.Timeout != time.Second || h.Fall != 2 || h.Rise != 2 {
		t.Errorf("health defaults %+v", h)
	}
	r := c.RRL
	if !*r.Enabled || r.ResponsesPerSecond != 200 || *r.Slip != 2 || r.IPv4PrefixLength != 24 || r.IPv6PrefixLength != 56 {
		t.Errorf("rrl defaults %+v", r)
	}
}

// TestExampleFiles: the README's example config and table load.
func TestExampleFiles(t *testing.T) {
	c, err := LoadConfig("testdata/dnsgeo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := LoadTable("testdata/latency.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.regionNames) != 3 || tb.Len() != 3 || c.Health.Host != "cdn.example.test" {
		t.Errorf("regions %v prefixes %d", c.regionNames, tb.Len())
	}
	if _, err := LoadConfig("testdata/missing.yaml"); err == nil {
		t.Error("missing file loaded")
	}
}

// TestConfigErrors: the config is strict, and every error names the
// file, the line and the field.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown field", minimalYAML + "zonee: x\n", `test.yaml:6: zonee: unknown field "zonee"`},
		{"unknown nested field", strings.Replace(minimalYAML, "{a: [192.0.2.10]}", "{a: [192.0.2.10], weight: 3}", 1), `test.yaml:5: regions.us-west-2.weight: unknown field "weight"`},
		{"duplicate region", minimalYAML + "  us-west-2: {a: [192.0.2.11]}\n", `test.yaml:6: regions.us-west-2: mapping key "us-west-2" already defined at line 5`},
		{"bad address", strings.Replace(minimalYAML, "192.0.2.10", "192.0.2.300", 1), `test.yaml:5: regions.us-west-2.a[0]: "192.0.2.300" is not an IPv4 address`},
		{"ipv6 in a", strings.Replace(minimalYAML, "{a: [192.0.2.10]}", "{a: [192.0.2.10, \"2001:db8::1\"]}", 1), `test.yaml:5: regions.us-west-2.a[1]: "2001:db8::1" is not an IPv4 address`},
		{"ipv4 in aaaa", strings.Replace(minimalYAML, "{a: [192.0.2.10]}", "{aaaa: [192.0.2.10]}", 1), `regions.us-west-2.aaaa[0]: "192.0.2.10" is not an IPv6 address`},
		{"duplicate address", strings.Replace(minimalYAML, "{a: [192.0.2.10]}", "{a: [192.0.2.10, 192.0.2.10]}", 1), `regions.us-west-2.a[1]: duplicate address 192.0.2.10`},
		{"no addresses", strings.Replace(minimalYAML, "{a: [192.0.2.10]}", "{health: \"http://192.0.2.10/\"}", 1), `test.yaml:5: regions.us-west-2: region has no addresses`},
		{"bad cidr", minimalYAML + "rrl:\n  exempt: [10.0.0.0/8, 10.0.0.0/40]\n", `test.yaml:7: rrl.exempt[1]: "10.0.0.0/40" is not a CIDR prefix`},
		{"cidr host bits", minimalYAML + "rrl: {exempt: [10.0.0.1/8]}\n", `rrl.exempt[0]: "10.0.0.1/8" has bits set beyond the prefix length (did you mean 10.0.0.0/8?)`},
		{"bad health url", strings.Replace(minimalYAML, "{a: [192.0.2.10]}", "{a: [192.0.2.10], health: \"ftp://x/\"}", 1), `test.yaml:5: regions.us-west-2.health: "ftp://x/" is not an http or https URL`},
		{"bad duration", minimalYAML + "health:\n  interval: fast\n", "test.yaml:7: health.interval: cannot unmarshal !!str `fast` into time.Duration"},
		{"timeout over interval", minimalYAML + "health: {interval: 1s, timeout: 2s}\n", `health.timeout: 2s must be positive and at most the interval (1s)`},
		{"missing ca file", minimalYAML + "health: {ca_file: /nonexistent.pem}\n", `test.yaml:6: health.ca_file: reading CA file`},
		{"bad ttl type", minimalYAML + "ttl: soon\n", "test.yaml:6: ttl: cannot unmarshal"},
		{"zone not fqdn", strings.Replace(minimalYAML, "zone: example.test.", "zone: example.test", 1), `test.yaml:1: zone: "example.test" is not a fully qualified domain name`},
		{"no zone", strings.Replace(minimalYAML, "zone: example.test.\n", "", 1), `zone: required`},
		{"no soa mbox", strings.Replace(minimalYAML, ", mbox: hostmaster.example.test.", "", 1), `test.yaml:2: soa.mbox: required`},
		{"no ns", strings.Replace(minimalYAML, "ns: [ns1.example.test.]\n", "", 1), `ns: at least one name server is required`},
		{"unknown default region", minimalYAML + "default_order: [us-west-2, mars-1]\n", `test.yaml:6: default_order[1]: unknown region "mars-1"`},
		{"bad region name", strings.Replace(minimalYAML, "us-west-2:", "US West:", 1), `regions.US West: region name "US West"`},
		{"bad record", minimalYAML + "records: [\"www 300 IN A 1.2.3\"]\n", `test.yaml:6: records[0]: "www 300 IN A 1.2.3"`},
		{"record outside the zone", minimalYAML + "records: [\"www.example.org. 300 IN A 192.0.2.1\"]\n", `records[0]: www.example.org. is outside the zone example.test.`},
		{"cname with data", minimalYAML + "records: [\"www 300 IN A 192.0.2.1\", \"www 300 IN CNAME cdn\"]\n", `records[1]: CNAME at www.example.test., which has other data`},
		{"data with cname", minimalYAML + "records: [\"www 300 IN CNAME cdn\", \"www 300 IN TXT x\"]\n", `records[1]: www.example.test. has a CNAME`},
		{"cname at apex", minimalYAML + "records: [\"@ 300 IN CNAME cdn\"]\n", `records[0]: CNAME at the zone apex`},
		{"routed with static address", minimalYAML + "routed: [cdn]\nrecords: [\"cdn 300 IN A 192.0.2.1\"]\n", `test.yaml:7: records[0]: cdn.example.test. is routed`},
		{"routed with cname", minimalYAML + "routed: [cdn]\nrecords: [\"cdn 300 IN CNAME www\"]\n", `records[0]: CNAME at cdn.example.test., which has other data`},
		{"routed twice", minimalYAML + "routed: [cdn, CDN]\n", `test.yaml:6: routed[1]: cdn.example.test. is listed twice`},
		{"routed outside", minimalYAML + "routed: [cdn.example.org.]\n", `routed[0]: cdn.example.org. is outside the zone`},
		{"ns record", minimalYAML + "records: [\"sub 300 IN NS ns.other.test.\"]\n", `records[0]: NS record: NS records come from the ns field (delegations are not supported)`},
		{"wildcard", minimalYAML + "records: [\"*.www 300 IN A 192.0.2.1\"]\n", `records[0]: wildcard names are not supported`},
		{"ttl mismatch", minimalYAML + "records: [\"www 300 IN A 192.0.2.1\", \"www 60 IN A 192.0.2.2\"]\n", `records[1]: TTL 60 differs from 300`},
		{"duplicate record", minimalYAML + "records: [\"www 300 IN A 192.0.2.1\", \"www 300 IN A 192.0.2.1\"]\n", `records[1]: duplicate record`},
		{"cname loop", minimalYAML + "records: [\"a 300 IN CNAME b\", \"b 300 IN CNAME a\"]\n", `CNAME loop through`},
		{"include", minimalYAML + "records: [\"$INCLUDE /etc/passwd\"]\n", `records[0]: zone-file directives are not allowed`},
		{"two records in one", minimalYAML + "records: [\"www 300 IN A 192.0.2.1\\nwww 300 IN A 192.0.2.2\"]\n", `one record per entry`},
		{"class", minimalYAML + "records: [\"www 300 CH TXT x\"]\n", `records[0]: only class IN is supported`},
		{"syntax", "zone: [\n", "test.yaml:"},
		{"empty", "", "test.yaml:1: empty config"},
		{"two documents", minimalYAML + "---\nzone: other.\n", "test.yaml:6: more than one YAML document"},
		{"rrl slip", minimalYAML + "rrl: {slip: 11}\n", "test.yaml:6: rrl.slip: 11 must be between 0 and 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "test.yaml" || ce.Line < 1 {
				t.Errorf("not a ConfigError with file and line: %#v", err)
			}
		})
	}
}

// TestConfigNames: names without a final dot are relative to the zone,
// as in a zone file; matching ignores case.
func TestConfigNames(t *testing.T) {
	c := mustConfig(t, strings.Replace(minimalYAML, "ns: [ns1.example.test.]", "ns: [NS1, ns2.example.test.]", 1)+"routed: [CDN, \"@\"]\n")
	if c.NS[0] != "ns1.example.test." || c.NS[1] != "ns2.example.test." {
		t.Errorf("ns %v", c.NS)
	}
	if n := c.zone.lookup("cdn.example.test."); n == nil || !n.routed {
		t.Error("routed CDN not found as cdn")
	}
	if n := c.zone.lookup("example.test."); n == nil || !n.routed {
		t.Error("routed @ is not the apex")
	}
}
