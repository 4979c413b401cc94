package lab

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/miekg/dns"
)

// World is the CDN on this machine: the network, S3, the CA, the edges
// and dnsgeo servers of every region, and the browsers. Build it with
// newWorld; Close removes all of it.
type World struct {
	o    Options
	logf func(string, ...any)
	dir  string // everything the run writes: binaries, data, logs, config
	bins *binaries
	net  *network
	why  string // why loopback mode, when it is

	procs   procs
	s3      *versity
	ca      *pebble
	edges   [][]*edgeProc // by region
	dns     []*proc       // by region
	tcp     []targeted[*tcpProxy]
	udp     []targeted[*udpDelayer]
	s3p     [][][3]*s3Proxy // by region, edge: primary, replica, control
	objects []*object
	version int // the objects' current version at S3

	tokenFile, edgeConfig string
	dnsConfig, latency    string
	fallback              bool
	table                 [][]time.Duration // measured: [browsers' region][region]
	doneAt                []Released        // when the CLI said each release was everywhere
	results               []*Result

	rec      *recorder
	browsers []*browser
	stopB    context.CancelFunc
	wgB      sync.WaitGroup
}

// targeted is a proxy and the region it leads to.
type targeted[T any] struct {
	p      T
	region int
}

// edgeProc is one edge process.
type edgeProc struct {
	*proc
	region, idx int
	name        string
	cacheDir    string
}

// admin is the edge's admin URL, as the journal's registry gives it to
// the purge CLI: its real address in netns mode (a cut link cuts it); in
// loopback mode the public one, through a proxy a partition hangs.
func (w *World) admin(e *edgeProc) string {
	a := w.net.edgeAddr(e.region, e.idx)
	if w.net.mode != ModeNetns {
		a = w.net.publicEdge(e.region, e.idx)
	}
	return "http://" + netip.AddrPortFrom(a, adminPort).String()
}

// newWorld builds and starts everything, or returns an error having
// removed what it built.
func newWorld(ctx context.Context, o Options) (w *World, err error) {
	w = &World{o: o, rec: newRecorder(), objects: newObjects(), version: 1}
	w.logf = func(format string, args ...any) {
		fmt.Fprintf(o.Log, "edge-lab: %6.1fs  %s\n", w.rec.now().Seconds(), fmt.Sprintf(format, args...))
	}
	defer func() {
		if err != nil {
			w.Close()
			w = nil
		}
	}()
	removeStaleDirs(w.logf)
	if w.dir, err = os.MkdirTemp("", fmt.Sprintf("edge-lab-%d-", os.Getpid())); err != nil {
		return w, err
	}
	w.logf("building edge, dnsgeo and purge")
	if w.bins, err = buildBinaries(ctx, o.Bin, w.dir); err != nil {
		return w, err
	}
	mode := o.Mode
	if mode == ModeAuto {
		mode = ModeNetns
		if w.why = netnsUnavailable(); w.why != "" {
			mode = ModeLoopback
			w.logf("no network namespaces (%s): loopback addresses per region instead, with the limits the report states", w.why)
		}
	}
	w.net = &network{mode: mode, regions: o.Regions, edges: o.EdgesPerRegion, pid: os.Getpid()}
	w.logf("network: %s mode, regions %s, %d edge(s) each, %d browsers each", mode, strings.Join(o.Regions, ", "), o.EdgesPerRegion, o.Clients)
	if err = w.net.setup(ctx, w.logf); err != nil {
		return w, fmt.Errorf("network: %w", err)
	}
	core := w.net.coreAddr()
	port := func(fixed int) (int, error) {
		if mode == ModeNetns {
			return fixed, nil // the bridge address is this run's own
		}
		return freePort(core)
	}
	s3Port, err := port(7070)
	if err != nil {
		return w, err
	}
	if w.s3, err = startVersity(ctx, &w.procs, w.bins.versitygw, w.dir, netip.AddrPortFrom(core, uint16(s3Port))); err != nil {
		return w, err
	}
	for _, obj := range w.objects {
		for _, b := range []string{bucketPrimary, bucketReplica} {
			if err = w.s3.put(ctx, b, obj.key(), obj.get(1), obj.contentType, obj.cacheControl, obj.tags(1)); err != nil {
				return w, err
			}
		}
	}
	next := 14000
	if w.ca, err = startPebble(ctx, &w.procs, w.bins.pebble, w.dir, core, func() (int, error) { next++; return port(next) }); err != nil {
		return w, err
	}
	if err = w.writeFiles(); err != nil {
		return w, err
	}
	if err = w.startProxies(); err != nil {
		return w, err
	}
	w.logf("starting %d edges (ACME through Pebble, one shared certificate store)", len(o.Regions)*o.EdgesPerRegion)
	if err = w.startEdges(ctx, w.allEdges()); err != nil {
		return w, err
	}
	w.logf("measuring the latency table: every region's browsers time connections to every region")
	if err = w.measure(ctx); err != nil {
		return w, err
	}
	if err = w.startDNS(ctx); err != nil {
		return w, err
	}
	w.startBrowsers()
	return w, nil
}

// writeFiles writes the admin token and the edges' config file.
func (w *World) writeFiles() error {
	w.tokenFile = filepath.Join(w.dir, "admin-token")
	if err := os.WriteFile(w.tokenFile, []byte(rand.Text()+"\n"), 0o600); err != nil {
		return err
	}
	// CORS: the widget for any page, tenant configs for the customer's
	// login page, as README's example.
	w.edgeConfig = filepath.Join(w.dir, "edge.yaml")
	cfg := `sites:
  - hosts: [` + cdnHost + `]
    cors: {allow_origins: ["` + pageOrigin + `"]}
    rules:
      - prefix: /widget/
        cors: {allow_origins: ["*"]}
`
	return os.WriteFile(w.edgeConfig, []byte(cfg), 0o644)
}

// startProxies starts every edge's S3 proxies and every view's latency
// proxies.
func (w *World) startProxies() error {
	n := w.net
	for k := range n.regions {
		var row [][3]*s3Proxy
		for e := range n.edges {
			var ps [3]*s3Proxy
			for i, role := range []string{"primary", "replica", "control"} {
				name := fmt.Sprintf("%s-%d %s", n.regions[k], e+1, role)
				p, err := newS3Proxy(name, n.regionNS(k), netip.AddrPortFrom(n.edgeAddr(k, e), uint16(s3Port+i)), w.s3.endpoint())
				if err != nil {
					return err
				}
				ps[i] = p
			}
			row = append(row, ps)
		}
		w.s3p = append(w.s3p, row)
	}
	https, dnsPort := uint16(n.httpsPort()), uint16(n.dnsPort())
	var views []*view
	if n.mode == ModeNetns {
		for k := range n.regions {
			views = append(views, n.regionView(k))
		}
	} else {
		views = append(views, n.regionView(0)) // the probes' one view
	}
	for k := range n.regions {
		views = append(views, n.clientView(k))
	}
	for _, v := range views {
		for j := range n.regions {
			rtt := time.Duration(0)
			if v.region >= 0 {
				rtt = RTT(n.regions[v.region], n.regions[j])
			}
			for e := range n.edges {
				ports := []uint16{https}
				if n.mode != ModeNetns && v.region < 0 {
					ports = append(ports, adminPort) // the purge CLI's way in (see admin)
				}
				for _, port := range ports {
					p, err := newTCPProxy(v, netip.AddrPortFrom(v.local(n.publicEdge(j, e)), port), netip.AddrPortFrom(n.edgeAddr(j, e), port), rtt)
					if err != nil {
						return err
					}
					w.tcp = append(w.tcp, targeted[*tcpProxy]{p, j})
				}
			}
			if v.src.IsValid() { // browsers ask dnsgeo, over UDP and TCP
				listen, real := netip.AddrPortFrom(v.local(n.publicDNS(j)), dnsPort), netip.AddrPortFrom(n.dnsAddr(j), dnsPort)
				d, err := newUDPDelayer(v, listen, real, rtt)
				if err != nil {
					return err
				}
				w.udp = append(w.udp, targeted[*udpDelayer]{d, j})
				p, err := newTCPProxy(v, listen, real, rtt)
				if err != nil {
					return err
				}
				w.tcp = append(w.tcp, targeted[*tcpProxy]{p, j})
			}
		}
	}
	return nil
}

func (w *World) allEdges() []*edgeProc {
	if w.edges == nil {
		n := w.net
		for k, r := range n.regions {
			var row []*edgeProc
			for e := range n.edges {
				name := fmt.Sprintf("%s-%d", r, e+1)
				ep := &edgeProc{region: k, idx: e, name: name, cacheDir: filepath.Join(w.dir, "edges", name, "cache")}
				ep.proc = w.procs.add(&proc{name: "edge " + name, ns: n.regionNS(k), bin: w.bins.edge, logPath: filepath.Join(w.dir, "logs", "edge-"+name+".log"),
					env: childEnv(w.s3.env()...), args: w.edgeArgs(ep)})
				row = append(row, ep)
			}
			w.edges = append(w.edges, row)
		}
	}
	var all []*edgeProc
	for _, row := range w.edges {
		all = append(all, row...)
	}
	return all
}

// edgeArgs are an edge's flags: as a real deployment would give them,
// with the lab's addresses.
func (w *World) edgeArgs(e *edgeProc) []string {
	n := w.net
	a := n.edgeAddr(e.region, e.idx)
	at := func(port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }
	s3at := func(i int) string { return "http://" + at(s3Port+i) }
	return []string{
		"-http", at(n.httpPort()), "-https", at(n.httpsPort()), "-admin", at(adminPort),
		"-admin-token-file", w.tokenFile, "-admin-url", w.admin(e),
		"-cache-dir", e.cacheDir, "-config", w.edgeConfig,
		"-origin", s3URL(bucketPrimary, sitePrefix, s3at(0)),
		"-origin", s3URL(bucketReplica, sitePrefix, s3at(1)),
		"-must-serve", widgetPath + ",/tenants/acme.json",
		"-domains", cdnHost, "-acme-directory", w.ca.directory(), "-acme-ca-roots", w.ca.caFile,
		"-cert-cache", s3URL(bucketControl, "certs", s3at(2)),
		"-ticket-keys", s3URL(bucketControl, "tickets/"+n.regions[e.region], s3at(2)),
		"-purge-journal", s3URL(bucketControl, "journal", s3at(2)),
		"-purge-poll", w.o.PurgePoll.String(),
		"-name", e.name, "-region", n.regions[e.region],
	}
}

// startEdges starts edges all at once and waits until each serves
// HTTPS with its certificate, is healthy and is registered in the
// journal.
func (w *World) startEdges(ctx context.Context, edges []*edgeProc) error {
	for _, e := range edges {
		if err := e.start(); err != nil {
			return err
		}
	}
	errs := make([]error, len(edges))
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.waitEdge(ctx, e)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return waitFor(ctx, 20*time.Second, func() error {
		out, err := w.s3.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucketControl), Prefix: aws.String("journal/edges/")})
		if err != nil {
			return err
		}
		var names []string
		for _, o := range out.Contents {
			names = append(names, strings.TrimPrefix(aws.ToString(o.Key), "journal/edges/"))
		}
		for _, e := range edges {
			if !slices.Contains(names, e.name) {
				return fmt.Errorf("edge %s not in the journal's registry", e.name)
			}
		}
		return nil
	})
}

// waitEdge waits until e answers /healthz with 200 over HTTPS, with a
// certificate for the CDN's name from Pebble.
func (w *World) waitEdge(ctx context.Context, e *edgeProc) error {
	addr := netip.AddrPortFrom(w.net.edgeAddr(e.region, e.idx), uint16(w.net.httpsPort())).String()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: cdnHost, RootCAs: w.ca.roots},
	}}
	defer client.CloseIdleConnections()
	err := waitFor(ctx, 60*time.Second, func() error {
		if err := e.exited(); err != nil {
			return stop(err)
		}
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("edge %s: %w\n%s", e.name, err, e.logTail())
	}
	return nil
}

// measure fills the latency table: from every region's browsers, the
// median of five connections to every region's first edge, timed to the
// end of the TLS handshake.
func (w *World) measure(ctx context.Context) error {
	n := w.net
	w.table = make([][]time.Duration, len(n.regions))
	errs := make([]error, len(n.regions))
	var wg sync.WaitGroup
	for k := range n.regions {
		w.table[k] = make([]time.Duration, len(n.regions))
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := n.clientView(k)
			for j := range n.regions {
				addr := netip.AddrPortFrom(v.local(n.publicEdge(j, 0)), uint16(n.httpsPort())).String()
				d, err := handshakeRTT(ctx, v, addr, w.ca.roots, 5)
				if err != nil {
					errs[k] = fmt.Errorf("measuring %s → %s: %w", v.name, n.regions[j], err)
					return
				}
				w.table[k][j] = d
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("prefix,region,rtt_ms\n# measured by edge-lab: from each region's browsers, the median of 5 connections (connect to the end of the TLS handshake) to each region\n")
	for k := range n.regions {
		for j, r := range n.regions {
			fmt.Fprintf(&b, "%s,%s,%.1f\n", n.clientPrefix(k), r, float64(w.table[k][j].Microseconds())/1000)
		}
	}
	w.latency = filepath.Join(w.dir, "dns", "latency.csv")
	return writeAtomic(w.latency, b.String())
}

// dnsgeoConfig is the config every dnsgeo serves.
func (w *World) dnsgeoConfig() string {
	n := w.net
	var b strings.Builder
	fmt.Fprintf(&b, "zone: %s\nttl: %d\nsoa: {ns: ns1.%s, mbox: hostmaster.%s}\nns: [", cdnZone, int(w.o.DNSTTL/time.Second), cdnZone, cdnZone)
	for k := range n.regions {
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "ns%d.%s", k+1, cdnZone)
	}
	b.WriteString("]\nrecords:\n")
	for k := range n.regions {
		fmt.Fprintf(&b, "  - \"ns%d 3600 IN A %s\"\n", k+1, n.publicDNS(k))
	}
	b.WriteString("routed: [cdn]\nregions:\n")
	port := ""
	if n.httpsPort() != 443 {
		port = ":" + strconv.Itoa(n.httpsPort())
	}
	for k, r := range n.regions {
		var as []string
		for e := range n.edges {
			as = append(as, n.publicEdge(k, e).String())
		}
		fmt.Fprintf(&b, "  %s: {a: [%s], health: \"https://%s%s/healthz\"}\n", r, strings.Join(as, ", "), n.publicEdge(k, 0), port)
	}
	fmt.Fprintf(&b, "default_order: [%s]\n", strings.Join(n.regions, ", "))
	fmt.Fprintf(&b, "health: {interval: %s, timeout: %s, fall: 2, rise: 2, host: %s, ca_file: %s}\n",
		w.o.HealthInterval, min(time.Second, w.o.HealthInterval*4/5), cdnHost, w.ca.rootsFile)
	fmt.Fprintf(&b, "fallback: %v\n", w.fallback)
	return b.String()
}

// startDNS writes the config and starts one dnsgeo per region.
func (w *World) startDNS(ctx context.Context) error {
	n := w.net
	w.dnsConfig = filepath.Join(w.dir, "dns", "dnsgeo.yaml")
	if err := writeAtomic(w.dnsConfig, w.dnsgeoConfig()); err != nil {
		return err
	}
	w.dns = make([]*proc, len(n.regions))
	for k, r := range n.regions {
		w.dns[k] = w.procs.add(&proc{name: "dnsgeo " + r, ns: n.regionNS(k), bin: w.bins.dnsgeo,
			logPath: filepath.Join(w.dir, "logs", "dnsgeo-"+r+".log"), env: childEnv(),
			args: []string{"-config", w.dnsConfig, "-latency", w.latency,
				"-listen", netip.AddrPortFrom(n.dnsAddr(k), uint16(n.dnsPort())).String(),
				"-admin", netip.AddrPortFrom(n.dnsAddr(k), dnsAdminPort).String()}})
		if err := w.dns[k].start(); err != nil {
			return err
		}
	}
	for k := range n.regions {
		if err := w.waitDNS(ctx, k); err != nil {
			return err
		}
	}
	w.logf("dnsgeo serving in every region (TTL %s, probes every %s)", w.o.DNSTTL, w.o.HealthInterval)
	return nil
}

// waitDNS waits until region k's dnsgeo answers the CDN's name.
func (w *World) waitDNS(ctx context.Context, k int) error {
	addr := netip.AddrPortFrom(w.net.dnsAddr(k), uint16(w.net.dnsPort())).String()
	err := waitFor(ctx, 20*time.Second, func() error {
		if err := w.dns[k].exited(); err != nil {
			return stop(err)
		}
		q := new(dns.Msg)
		q.SetQuestion(cdnHost+".", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: 500 * time.Millisecond}).ExchangeContext(ctx, q, addr)
		if err != nil {
			return err
		}
		if len(r.Answer) == 0 {
			return fmt.Errorf("no answer: %s", dns.RcodeToString[r.Rcode])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dnsgeo %s: %w\n%s", w.net.regions[k], err, w.dns[k].logTail())
	}
	return nil
}

// setFallback rewrites dnsgeo's config with fallback on or off, has
// every running dnsgeo reload it (SIGHUP), and waits until each answers
// with it.
func (w *World) setFallback(ctx context.Context, on bool) error {
	w.fallback = on
	if err := writeAtomic(w.dnsConfig, w.dnsgeoConfig()); err != nil {
		return err
	}
	for k, p := range w.dns {
		if !p.running() {
			continue
		}
		p.signal(syscall.SIGHUP)
		addr := netip.AddrPortFrom(w.net.dnsAddr(k), uint16(w.net.dnsPort())).String()
		err := waitFor(ctx, 10*time.Second, func() error {
			q := new(dns.Msg)
			q.SetQuestion(cdnHost+".", dns.TypeA)
			r, _, err := (&dns.Client{Timeout: 500 * time.Millisecond}).ExchangeContext(ctx, q, addr)
			if err != nil {
				return err
			}
			// The lab's own address matches no prefix: the default order,
			// whose first region has EdgesPerRegion addresses.
			if got := len(r.Answer) > w.net.edges; got != on {
				return fmt.Errorf("dnsgeo %s: fallback %v not in force yet", w.net.regions[k], on)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	w.logf("dnsgeo fallback: %v", on)
	return nil
}

// useFallback sets dnsgeo's fallback (setFallback) and, when that
// changed it, waits a TTL: until every answer the browsers cached was
// given with the new setting.
func (w *World) useFallback(ctx context.Context, on bool) error {
	if on == w.fallback {
		return nil
	}
	if err := w.setFallback(ctx, on); err != nil {
		return err
	}
	w.logf("waiting a DNS TTL (%s) for the browsers' cached answers to carry it", w.o.DNSTTL)
	return wait(ctx, w.o.DNSTTL+time.Second)
}

// startBrowsers starts every region's browsers.
func (w *World) startBrowsers() {
	n := w.net
	ctx, cancel := context.WithCancel(context.Background())
	w.stopB = cancel
	for k := range n.regions {
		v := n.clientView(k)
		// The nearest dnsgeo first, as a resolver that has learned the
		// servers' round trips asks.
		order := make([]int, len(n.regions))
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(a, b int) int {
			return int(RTT(n.regions[k], n.regions[a]) - RTT(n.regions[k], n.regions[b]))
		})
		var servers []netip.AddrPort
		for _, j := range order {
			servers = append(servers, netip.AddrPortFrom(v.local(n.publicDNS(j)), uint16(n.dnsPort())))
		}
		for i := range w.o.Clients {
			b := newBrowser(k, i, v, servers, n, w.objects, w.rec, w.ca.roots)
			w.browsers = append(w.browsers, b)
			w.wgB.Add(1)
			go func() {
				defer w.wgB.Done()
				b.run(ctx)
			}()
		}
	}
	w.logf("%d browsers loading the login page", len(w.browsers))
}

// Close stops the browsers and every process, closes every proxy,
// deletes the namespaces and the run's files, and reports what it could
// not undo.
func (w *World) Close() error {
	var errs []error
	if w.stopB != nil {
		w.stopB()
		w.wgB.Wait()
		w.stopB = nil
	}
	if err := w.procs.stopAll(5 * time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, t := range w.tcp {
		t.p.close()
	}
	for _, u := range w.udp {
		u.p.close()
	}
	for _, row := range w.s3p {
		for _, ps := range row {
			for _, p := range ps {
				p.close()
			}
		}
	}
	w.tcp, w.udp, w.s3p = nil, nil, nil
	if w.net != nil {
		if err := w.net.teardown(); err != nil {
			errs = append(errs, err)
		}
	}
	if w.dir != "" {
		if err := os.RemoveAll(w.dir); err != nil {
			errs = append(errs, err)
		}
		w.dir = ""
	}
	return errors.Join(errs...)
}

// writeAtomic writes a file the way dnsgeo wants its files replaced: a
// temporary file renamed over the old one.
func writeAtomic(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
