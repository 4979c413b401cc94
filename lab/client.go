package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/miekg/dns"
)

// cdnHost is the CDN's name: what dnsgeo routes and the edges have
// certificates for.
const (
	cdnZone = "lab.test."
	cdnHost = "cdn.lab.test"
	// pageOrigin is the customer's login page the widget runs on: the
	// browsers' requests are cross-origin, as in production.
	pageOrigin = "https://login.customer.test"
)

// What a browser waits for (the lab's stand-ins for a browser's
// timeouts).
const (
	// connectTimeout bounds one address's connection, TCP and TLS: on
	// it, the browser tries the next address of the answer, as a
	// browser's happy-eyeballs fallback does.
	connectTimeout = time.Second
	// dnsTimeout bounds one DNS server's answer before the next server.
	dnsTimeout = time.Second
	// requestTimeout bounds a request: a page whose script did not load
	// in this time is a failed login.
	requestTimeout = 10 * time.Second
	// thinkTime is the pause between two page loads of a browser.
	thinkTime = time.Second
)

// browser is one simulated browser: its own DNS cache and connection
// pool, in its region's namespace and from its region's address.
type browser struct {
	pop, id int
	view    *view
	servers []netip.AddrPort // dnsgeo servers as this browser dials them, nearest first
	port    int
	objects []*object
	tenant  int
	rec     *recorder
	net     *network
	roots   *x509.CertPool

	client *http.Client
	tr     *http.Transport

	mu      sync.Mutex
	addrs   []netip.Addr // the cached answer
	expires time.Time
	phase   float64  // the first answer is kept for this fraction of its TTL
	addrIdx sync.Map // *tls.Conn → position of its address in the answer
}

// browserHeaders are a recent Chrome's on a cross-origin script fetch.
var browserHeaders = map[string]string{
	"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Accept":          "*/*",
	"Accept-Encoding": "gzip, deflate, br, zstd",
	"Accept-Language": "en-US,en;q=0.9",
	"Origin":          pageOrigin,
	"Referer":         pageOrigin + "/",
	"Sec-Fetch-Site":  "cross-site",
	"Sec-Fetch-Mode":  "cors",
	"Sec-Fetch-Dest":  "script",
}

func newBrowser(pop, id int, v *view, servers []netip.AddrPort, n *network, objs []*object, rec *recorder, roots *x509.CertPool) *browser {
	b := &browser{pop: pop, id: id, view: v, servers: servers, port: n.httpsPort(), objects: objs,
		tenant: 1 + id%(len(objs)-1), rec: rec, net: n, roots: roots}
	// The browsers of a real population resolved at random moments:
	// their cached answers expire at random moments too. Browsers that
	// all started together would expire together, every TTL.
	b.phase = rand.New(rand.NewPCG(uint64(pop)<<32|uint64(id), 7)).Float64()
	b.tr = &http.Transport{
		DialTLSContext:        b.dialTLS,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // it sends its own Accept-Encoding and decodes itself
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
	}
	b.client = &http.Client{Transport: b.tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return b
}

// run loads the login page (the widget, then the tenant's config) over
// and over until ctx is done. Each page load is a new visit: its own
// connections (closed after it), as a new visitor's browser would open;
// the DNS cache is kept for the answer's TTL, as a host cache (or the
// resolver behind it) keeps it.
func (b *browser) run(ctx context.Context) {
	defer b.tr.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(uint64(b.pop), uint64(b.id)))
	// Browsers start spread over a think time, so their DNS caches
	// expire at different moments, as real ones do.
	if !sleep(ctx, time.Duration(rng.Int64N(int64(thinkTime)))) {
		return
	}
	for ctx.Err() == nil {
		for _, o := range []int{0, b.tenant} {
			b.fetch(ctx, o)
		}
		b.tr.CloseIdleConnections()
		jitter := time.Duration(rng.Int64N(int64(thinkTime / 2)))
		if !sleep(ctx, thinkTime-thinkTime/4+jitter) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fetch requests object o and records the outcome.
func (b *browser) fetch(ctx context.Context, o int) {
	obj := b.objects[o]
	rec := record{Start: b.rec.now(), Pop: b.pop, Browser: b.id, Object: o, Region: -1, Addr: -1}
	defer func() {
		if ctx.Err() == nil { // not a request cut short by the lab's end
			rec.End = b.rec.now()
			b.rec.add(rec)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var conn net.Conn
	rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { conn = i.Conn }})
	url := "https://" + cdnHost
	if b.port != 443 {
		url += ":" + strconv.Itoa(b.port)
	}
	req, _ := http.NewRequestWithContext(rctx, "GET", url+obj.path, nil)
	for k, v := range browserHeaders {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if conn != nil {
		if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
			rec.Region = b.net.regionOf(b.view.public(ap.Addr().Unmap()))
		}
		if i, ok := b.addrIdx.Load(conn); ok {
			rec.Addr = i.(int)
		}
	}
	if err != nil {
		rec.Region = -1
		rec.Err = classify(err)
		return
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		rec.Err = "body cut short: " + classify(err)
		return
	}
	rec.Stale = strings.Contains(resp.Header.Get("Cache-Status"), "stale")
	if resp.StatusCode != http.StatusOK {
		rec.Err = "status " + strconv.Itoa(resp.StatusCode)
		return
	}
	body, err := decode(raw, resp.Header.Get("Content-Encoding"))
	if err != nil {
		rec.Err = "wrong bytes: " + err.Error()
		return
	}
	if rec.Version = obj.version(body); rec.Version == 0 {
		rec.Err = "wrong bytes"
		return
	}
	// A page's script may read the response only when the edge says so.
	if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "*" && acao != pageOrigin {
		rec.Err = "CORS: Access-Control-Allow-Origin " + strconv.Quote(acao)
	}
}

// classify names a request's error briefly.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errNoAnswer):
		return "DNS: no answer"
	case errors.Is(err, errAllAddrs):
		return "connect: every address failed"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// decode undoes a Content-Encoding.
func decode(b []byte, coding string) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(coding)) {
	case "", "identity":
		return b, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("Content-Encoding %q not asked for", coding)
	}
	return io.ReadAll(r)
}

var (
	errNoAnswer = errors.New("no DNS server answered")
	errAllAddrs = errors.New("every address of the answer failed")
)

// dialTLS is the browser's connection: resolve (from its cache while the
// TTL lasts), then each address in order, TCP and TLS within
// connectTimeout, the next address on any failure.
func (b *browser) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, err := b.resolve(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, a := range addrs {
		c, err := b.connect(ctx, net.JoinHostPort(b.view.local(a).String(), port))
		if err == nil {
			b.addrIdx.Store(c, i)
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
	}
	return nil, fmt.Errorf("%w: %v", errAllAddrs, errors.Join(errs...))
}

func (b *browser) connect(ctx context.Context, addr string) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	raw, err := b.view.ns.dial(ctx, "tcp", addr, b.view.localAddr("tcp"))
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, &tls.Config{ServerName: cdnHost, RootCAs: b.roots, NextProtos: []string{"h2", "http/1.1"}})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// resolve returns the CDN's addresses: cached until the answer's TTL
// runs out, as a browser's host cache does, else asked of the dnsgeo
// servers in order (the nearest first).
func (b *browser) resolve(ctx context.Context) ([]netip.Addr, error) {
	b.mu.Lock()
	if time.Now().Before(b.expires) {
		defer b.mu.Unlock()
		return b.addrs, nil
	}
	b.mu.Unlock()
	var errs []error
	for _, s := range b.servers {
		addrs, ttl, err := lookup(ctx, b.view, s, cdnHost+".")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.mu.Lock()
		if b.expires.IsZero() {
			ttl = time.Duration(float64(ttl) * b.phase)
		}
		b.addrs, b.expires = addrs, time.Now().Add(ttl)
		b.mu.Unlock()
		return addrs, nil
	}
	return nil, fmt.Errorf("%w: %v", errNoAnswer, errors.Join(errs...))
}

// lookup asks server (in view) for name's A records over UDP, and over
// TCP when the answer is truncated, from the view's own address. It
// returns the addresses in the answer's order and the smallest TTL.
func lookup(ctx context.Context, v *view, server netip.AddrPort, name string) ([]netip.Addr, time.Duration, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.RecursionDesired = false
	q.SetEdns0(1232, false)
	var r *dns.Msg
	for _, network := range []string{"udp", "tcp"} {
		ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		c, err := v.ns.dial(ctx, network, server.String(), v.localAddr(network))
		if err != nil {
			cancel()
			return nil, 0, err
		}
		dl, _ := ctx.Deadline()
		c.SetDeadline(dl)
		dc := &dns.Conn{Conn: c, UDPSize: 1232}
		err = dc.WriteMsg(q)
		if err == nil {
			r, err = dc.ReadMsg()
		}
		c.Close()
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("%s over %s: %w", server, network, err)
		}
		if !r.Truncated {
			break
		}
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, 0, fmt.Errorf("%s: %s", server, dns.RcodeToString[r.Rcode])
	}
	var addrs []netip.Addr
	ttl := uint32(1 << 31)
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				addrs = append(addrs, ip)
				ttl = min(ttl, a.Hdr.Ttl)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, 0, fmt.Errorf("%s: no address in the answer", server)
	}
	return addrs, time.Duration(ttl) * time.Second, nil
}

// handshakeRTT times connections from v to addr: the median of n, each
// from the connect to the end of the TLS handshake. Through the lab's
// proxy a TCP connect completes locally, so the handshake's round trip
// is what carries the path's latency (plus a little of the edge's
// handshake work, the same for every region).
func handshakeRTT(ctx context.Context, v *view, addr string, roots *x509.CertPool, n int) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		start := time.Now()
		c, err := (&browser{view: v, roots: roots}).connect(ctx, addr)
		if err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
		c.Close()
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
