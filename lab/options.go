package lab

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Regions the lab knows the round-trip times of, in default order.
var Regions = []string{"us-west-2", "eu-west-1", "ap-south-1"}

// rttMatrix is the round trip between two regions, like the real ones
// (us↔eu ~140 ms, eu↔ap ~120 ms, us↔ap ~220 ms); inside a region ~2 ms.
var rttMatrix = map[[2]string]time.Duration{
	{"us-west-2", "eu-west-1"}:  140 * time.Millisecond,
	{"eu-west-1", "ap-south-1"}: 120 * time.Millisecond,
	{"us-west-2", "ap-south-1"}: 220 * time.Millisecond,
}

// inRegionRTT is the round trip inside a region.
const inRegionRTT = 2 * time.Millisecond

// RTT returns the round trip the lab injects between regions a and b.
func RTT(a, b string) time.Duration {
	if a == b {
		return inRegionRTT
	}
	if d, ok := rttMatrix[[2]string{a, b}]; ok {
		return d
	}
	return rttMatrix[[2]string{b, a}]
}

// Scenario names, in the order a full run runs them.
const (
	Steady          = "steady"
	RegionLoss      = "region-loss"
	RegionPartition = "region-partition"
	S3Loss          = "s3-loss"
	Release         = "release"
	ColdStart       = "cold-start"
)

// Scenarios lists every scenario, in run order.
var Scenarios = []string{Steady, RegionLoss, RegionPartition, S3Loss, Release, ColdStart}

// Mode is how the lab separates regions.
type Mode string

const (
	// ModeAuto uses namespaces when it can, else loopback addresses.
	ModeAuto Mode = "auto"
	// ModeNetns puts each region and each browser population in a
	// network namespace (root or CAP_NET_ADMIN).
	ModeNetns Mode = "netns"
	// ModeLoopback gives each region loopback addresses in one
	// namespace: it runs anywhere, with the limits the report states.
	ModeLoopback Mode = "loopback"
)

// Options configure a run. The zero value of a field means its default,
// said on each field.
type Options struct {
	// Regions to build, from Regions. Empty means all three.
	Regions []string
	// EdgesPerRegion is 1 or 2. Zero means 2.
	EdgesPerRegion int
	// Clients is the number of simulated browsers per region. Zero
	// means 6.
	Clients int
	// Duration is the length of each scenario's main phase (steady
	// traffic; an outage lasts at least this long). Zero means 30s.
	Duration time.Duration
	// Scenarios to run, in the order of Scenarios whatever the order
	// given. Empty means all.
	Scenarios []string
	// Fallback lists the dnsgeo fallback settings region-loss and
	// region-partition run with, each a run of its own. Nil means both
	// (false, then true).
	Fallback []bool
	// Mode picks namespaces or loopback addresses. Empty means ModeAuto.
	Mode Mode
	// Bin is a directory holding the edge, dnsgeo and purge binaries.
	// Empty means building them from the module around the working
	// directory into the run's directory.
	Bin string
	// DNSTTL is the TTL of dnsgeo's routed answers and HealthInterval
	// its probe interval. Zero means dnsgeo's defaults (20 s, 2 s); the
	// short form in the tests shortens both to save time.
	DNSTTL         time.Duration
	HealthInterval time.Duration
	// PurgePoll is the edges' -purge-poll. Zero means 1s: a region cut
	// off during a release catches up from the journal soon after its
	// link returns (its own dnsgeo may send browsers back at once).
	PurgePoll time.Duration
	// PurgeTimeout is the purge CLI's --timeout. Zero means the CLI's
	// default (10 s): with a region cut off, each purge command waits
	// that long for its edges.
	PurgeTimeout time.Duration
	// Keep leaves the world running after the scenarios, until the
	// context is done, and prints how to reach it.
	Keep bool
	// Log receives progress lines. Nil discards them.
	Log io.Writer
}

// withDefaults returns o with defaults applied, or an error naming the
// option.
func (o Options) withDefaults() (Options, error) {
	if len(o.Regions) == 0 {
		o.Regions = slices.Clone(Regions)
	}
	for i, r := range o.Regions {
		if !slices.Contains(Regions, r) {
			return o, fmt.Errorf("-regions: unknown region %q (known: %s)", r, strings.Join(Regions, ", "))
		}
		if slices.Contains(o.Regions[:i], r) {
			return o, fmt.Errorf("-regions: %q listed twice", r)
		}
	}
	if len(o.Regions) < 2 {
		return o, errors.New("-regions: at least two (a region fails over to another)")
	}
	if o.EdgesPerRegion == 0 {
		o.EdgesPerRegion = 2
	}
	if o.EdgesPerRegion < 1 || o.EdgesPerRegion > 2 {
		return o, fmt.Errorf("edges per region %d: 1 or 2", o.EdgesPerRegion)
	}
	if o.Clients == 0 {
		o.Clients = 6
	}
	if o.Clients < 1 || o.Clients > 100 {
		return o, fmt.Errorf("-clients %d: 1 to 100 browsers per region", o.Clients)
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.Duration < 2*time.Second {
		return o, fmt.Errorf("-duration %s: at least 2s", o.Duration)
	}
	var scen []string
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return o, fmt.Errorf("-scenario: unknown scenario %q (known: %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	for _, s := range Scenarios {
		if len(o.Scenarios) == 0 || slices.Contains(o.Scenarios, s) {
			scen = append(scen, s)
		}
	}
	o.Scenarios = scen
	if o.Fallback == nil {
		o.Fallback = []bool{false, true}
	}
	switch o.Mode {
	case "":
		o.Mode = ModeAuto
	case ModeAuto, ModeNetns, ModeLoopback:
	default:
		return o, fmt.Errorf("-mode %q: auto, netns or loopback", o.Mode)
	}
	if o.DNSTTL == 0 {
		o.DNSTTL = 20 * time.Second
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 2 * time.Second
	}
	if o.DNSTTL < time.Second || o.DNSTTL%time.Second != 0 {
		return o, fmt.Errorf("DNS TTL %s: whole seconds, at least 1s", o.DNSTTL)
	}
	if o.PurgePoll == 0 {
		o.PurgePoll = time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o, nil
}

// ParseRegions reads -regions: a number (the first N of Regions) or a
// comma-separated list of names.
func ParseRegions(s string) ([]string, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 2 || n > len(Regions) {
			return nil, fmt.Errorf("-regions %d: 2 to %d", n, len(Regions))
		}
		return slices.Clone(Regions[:n]), nil
	}
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// Check validates the options as Run would, so that a command can
// report bad flags before building anything.
func (o Options) Check() error {
	_, err := o.withDefaults()
	return err
}
