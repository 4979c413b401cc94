package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// network is the lab's address plan, and in namespace mode the
// namespaces, veths and bridge behind it.
//
// Every edge and dnsgeo has a real address, where it listens, and a
// public one, which dnsgeo answers and browsers dial. A public address
// is where the lab's latency proxy for it listens, in the namespace of
// whoever dials it (a view): so browsers of eu-west-1 dialing an
// address of us-west-2 go through a proxy that adds eu↔us latency,
// while the same address seen from us-west-2 adds 2 ms.
//
//	netns mode (root)                 loopback mode
//	bridge elabPID 10.N.0.1/16        -
//	S3, ACME: 10.N.0.1                S3, ACME: 127.0.0.1
//	region k: namespace, veth eth0    -
//	  edge e:  10.N.k.(10+e)          127.0.k.(10+e)
//	  dnsgeo:  10.N.k.53              127.0.k.53
//	  public:  198.18.k.(10+e), .53   127.1.k.(10+e), .53
//	browsers of k: namespace          -
//	  address: 10.N.(100+k).10        127.0.k.200
//	  views:   public addresses       127.(10+k).j.x for region j's 127.1.j.x
//
// (k counts from 1.) In netns mode the public addresses are local to
// each namespace (on lo), so a region's namespace and a browser
// namespace each have their own proxies; S3 and ACME are reached over
// the bridge without added latency.
type network struct {
	mode    Mode
	regions []string
	edges   int
	pid     int
	octet   int      // netns: N of 10.N.0.0/16
	bridge  string   // netns: the bridge
	veths   []string // netns: the veths' ends on the bridge
	region  []*netns // netns: by region index
	clients []*netns // netns: the browsers of each region
}

// Ports by mode: the well-known ones as root, unprivileged ones in
// loopback mode (which runs as anyone).
func (n *network) httpsPort() int {
	if n.mode == ModeNetns {
		return 443
	}
	return 8443
}

func (n *network) httpPort() int {
	if n.mode == ModeNetns {
		return 80
	}
	return 8080
}

func (n *network) dnsPort() int {
	if n.mode == ModeNetns {
		return 53
	}
	return 8053
}

const (
	adminPort    = 9080 // edges' admin listener
	dnsAdminPort = 8054 // dnsgeo's admin listener
	s3Port       = 9000 // an edge's S3 proxies: +0 primary, +1 replica, +2 control (certificates, journal)
)

// coreAddr is where S3 and ACME listen.
func (n *network) coreAddr() netip.Addr {
	if n.mode == ModeNetns {
		return netip.AddrFrom4([4]byte{10, byte(n.octet), 0, 1})
	}
	return netip.MustParseAddr("127.0.0.1")
}

func (n *network) real(k, host int) netip.Addr {
	if n.mode == ModeNetns {
		return netip.AddrFrom4([4]byte{10, byte(n.octet), byte(k + 1), byte(host)})
	}
	return netip.AddrFrom4([4]byte{127, 0, byte(k + 1), byte(host)})
}

func (n *network) public(k, host int) netip.Addr {
	if n.mode == ModeNetns {
		return netip.AddrFrom4([4]byte{198, 18, byte(k + 1), byte(host)})
	}
	return netip.AddrFrom4([4]byte{127, 1, byte(k + 1), byte(host)})
}

// edgeAddr is the real address of edge e (from 0) of region k.
func (n *network) edgeAddr(k, e int) netip.Addr { return n.real(k, 11+e) }

// dnsAddr is the real address of region k's dnsgeo.
func (n *network) dnsAddr(k int) netip.Addr { return n.real(k, 53) }

// publicEdge is the address dnsgeo answers for edge e of region k.
func (n *network) publicEdge(k, e int) netip.Addr { return n.public(k, 11+e) }

// publicDNS is the address browsers send region k's dnsgeo queries to.
func (n *network) publicDNS(k int) netip.Addr { return n.public(k, 53) }

// clientAddr is the address of region k's browsers.
func (n *network) clientAddr(k int) netip.Addr {
	if n.mode == ModeNetns {
		return netip.AddrFrom4([4]byte{10, byte(n.octet), byte(101 + k), 10})
	}
	return netip.AddrFrom4([4]byte{127, 0, byte(k + 1), 200})
}

// clientPrefix is the network of region k's browsers, as the latency
// table names it.
func (n *network) clientPrefix(k int) netip.Prefix {
	if n.mode == ModeNetns {
		return netip.PrefixFrom(n.clientAddr(k), 24).Masked()
	}
	return netip.PrefixFrom(n.clientAddr(k), 32)
}

// regionOf returns the region of a public or real address, or -1.
func (n *network) regionOf(a netip.Addr) int {
	b := a.As4()
	k := int(b[2]) - 1
	if k < 0 || k >= len(n.regions) {
		return -1
	}
	return k
}

// view is where one party dials the others from: a region's namespace
// (its dnsgeo probes edges) or a population of browsers.
type view struct {
	name   string
	ns     *netns
	region int        // whose round trips apply; -1: none (loopback mode's probes)
	src    netip.Addr // source of connections upstream; invalid: the kernel's choice
	k      int        // loopback mode: the population's index, for its addresses
	n      *network
}

// local is where this view's proxy for a public address listens, and
// what its browsers dial for it.
func (v *view) local(public netip.Addr) netip.Addr {
	if v.n.mode == ModeNetns || v.region < 0 {
		return public
	}
	b := public.As4()
	return netip.AddrFrom4([4]byte{127, byte(11 + v.k), b[2], b[3]})
}

// public maps an address a browser dialed back to the public one.
func (v *view) public(local netip.Addr) netip.Addr {
	if v.n.mode == ModeNetns || v.region < 0 {
		return local
	}
	b := local.As4()
	return netip.AddrFrom4([4]byte{127, 1, b[2], b[3]})
}

// localAddr is the source address upstream connections bind, or nil.
func (v *view) localAddr(network string) net.Addr {
	if !v.src.IsValid() {
		return nil
	}
	if network == "udp" {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(v.src, 0))
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(v.src, 0))
}

// regionView is region k's namespace seen as a view (netns mode), or
// in loopback mode the one view of the dnsgeo probes (no latency).
func (n *network) regionView(k int) *view {
	if n.mode == ModeNetns {
		return &view{name: n.regions[k], ns: n.region[k], region: k, n: n}
	}
	return &view{name: "probes", region: -1, n: n}
}

// clientView is region k's browsers.
func (n *network) clientView(k int) *view {
	v := &view{name: n.regions[k] + " browsers", region: k, src: n.clientAddr(k), k: k, n: n}
	if n.mode == ModeNetns {
		v.ns = n.clients[k]
	}
	return v
}

// regionNS is the namespace region k's processes run in (nil in
// loopback mode).
func (n *network) regionNS(k int) *netns {
	if n.mode == ModeNetns {
		return n.region[k]
	}
	return nil
}

// netnsUnavailable says why namespace mode cannot run here, or "".
func netnsUnavailable() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip(8) (iproute2) not found"
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return "no network namespaces in this kernel"
	}
	return ""
}

// setup builds the network. In netns mode a failure part way is undone
// by teardown, which the caller always runs.
func (n *network) setup(ctx context.Context, logf func(string, ...any)) error {
	if n.mode != ModeNetns {
		return nil
	}
	removeStale(ctx, logf)
	octet, err := freeOctet()
	if err != nil {
		return err
	}
	n.octet = octet
	n.bridge = "elab" + strconv.Itoa(n.pid)
	if err := ip(ctx, "link", "add", n.bridge, "type", "bridge"); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"addr", "add", fmt.Sprintf("10.%d.0.1/16", octet), "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := ip(ctx, args...); err != nil {
			return err
		}
	}
	// The public addresses, on lo in every namespace: each has its own
	// proxies behind them.
	var public []netip.Addr
	for k := range n.regions {
		for e := range n.edges {
			public = append(public, n.publicEdge(k, e))
		}
		public = append(public, n.publicDNS(k))
	}
	attach := func(name, veth string, addrs []netip.Addr) (*netns, error) {
		ns, err := newNetns(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := ip(ctx, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name); err != nil {
			return ns, err
		}
		n.veths = append(n.veths, veth)
		if err := ip(ctx, "link", "set", veth, "master", n.bridge, "up"); err != nil {
			return ns, err
		}
		for _, a := range addrs {
			if err := ns.ip(ctx, "addr", "add", a.String()+"/16", "dev", "eth0"); err != nil {
				return ns, err
			}
		}
		if err := ns.ip(ctx, "link", "set", "eth0", "up"); err != nil {
			return ns, err
		}
		for _, a := range public {
			if err := ns.ip(ctx, "addr", "add", a.String()+"/32", "dev", "lo"); err != nil {
				return ns, err
			}
		}
		return ns, nil
	}
	for k, r := range n.regions {
		addrs := []netip.Addr{n.real(k, 1), n.dnsAddr(k)}
		for e := range n.edges {
			addrs = append(addrs, n.edgeAddr(k, e))
		}
		ns, err := attach(fmt.Sprintf("edgelab%d-%s", n.pid, r), fmt.Sprintf("el%dr%d", n.pid, k+1), addrs)
		if ns != nil {
			n.region = append(n.region, ns)
		}
		if err != nil {
			return err
		}
		cs, err := attach(fmt.Sprintf("edgelab%d-%s-browsers", n.pid, r), fmt.Sprintf("el%dc%d", n.pid, k+1), []netip.Addr{n.clientAddr(k)})
		if cs != nil {
			n.clients = append(n.clients, cs)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// freeOctet picks N for 10.N.0.0/16 among 100–199 that no interface
// address or route of this namespace uses (another run's bridge among
// them).
func freeOctet() (int, error) {
	out, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		return 0, fmt.Errorf("ip route: %w", err)
	}
	addrs, _ := exec.Command("ip", "-4", "-o", "addr").Output()
	used := string(out) + string(addrs)
	for o := 100; o < 200; o++ {
		if !strings.Contains(used, fmt.Sprintf(" 10.%d.", o)) {
			return o, nil
		}
	}
	return 0, errors.New("no free 10.N.0.0/16 (100 ≤ N < 200) for the lab's bridge")
}

// cut takes region k's link down (netns mode): connections to and from
// it hang, as in a real partition. up restores it.
func (n *network) cut(ctx context.Context, k int, down bool) error {
	state := "up"
	if down {
		state = "down"
	}
	return n.region[k].ip(ctx, "link", "set", "eth0", state)
}

// teardown deletes every namespace (their veths go with them) and the
// bridge, and reports what it could not delete.
func (n *network) teardown() error {
	var errs []error
	// A namespace outlives its name while anything still refers to it,
	// and its veth with it: deleting our end deletes both, now.
	for _, v := range n.veths {
		if err := ip(context.Background(), "link", "del", v); err != nil {
			errs = append(errs, err)
		}
	}
	n.veths = nil
	for _, ns := range append(n.region, n.clients...) {
		if err := ns.delete(); err != nil {
			errs = append(errs, err)
		}
	}
	n.region, n.clients = nil, nil
	if n.bridge != "" {
		if err := ip(context.Background(), "link", "del", n.bridge); err != nil {
			errs = append(errs, err)
		}
		n.bridge = ""
	}
	return errors.Join(errs...)
}
