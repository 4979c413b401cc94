package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/rs/zerolog"
)

// upstreamDialTimeout bounds a proxy's connection to the real address.
// Longer than any client's connect timeout, so that a partition shows
// to the client as its own timeout, as it would without a proxy.
const upstreamDialTimeout = 10 * time.Second

// toxics is the toxiproxy server the TCP proxies share: it holds no
// listener of its own (the lab makes them, inside namespaces); the
// proxies use its toxic chains.
var toxics = sync.OnceValue(func() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
})

// tcpProxy forwards the connections it accepts at a public address in a
// view to the real address, each direction delayed by half the round
// trip between the view's region and the target's (toxiproxy's latency
// toxic). It can hang, to stand for a partition in loopback mode
// (toxiproxy's timeout toxic with no timeout: nothing gets through).
//
// A client's connect completes at the proxy; what the round trip delays
// is every byte after it.
type tcpProxy struct {
	name     string
	ln       net.Listener
	view     *view
	upstream string
	tp       *toxiproxy.Proxy

	hung   atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// newTCPProxy listens at listen in v's namespace and forwards to
// upstream with a round trip of rtt.
func newTCPProxy(v *view, listen, upstream netip.AddrPort, rtt time.Duration) (*tcpProxy, error) {
	ln, err := v.ns.listen(listen.String())
	if err != nil {
		return nil, fmt.Errorf("proxy for %s in %s: %w", listen, v.name, err)
	}
	name := v.name + " → " + upstream.String()
	p := &tcpProxy{name: name, ln: ln, view: v, upstream: upstream.String(), conns: map[net.Conn]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.tp = toxiproxy.NewProxy(toxics(), name, listen.String(), upstream.String())
	if half := (rtt / 2).Milliseconds(); half > 0 {
		for _, dir := range []string{"upstream", "downstream"} {
			if err := p.addToxic(fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, dir, dir, half)); err != nil {
				ln.Close()
				return nil, err
			}
		}
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *tcpProxy) addToxic(js string) error {
	if _, err := p.tp.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		return fmt.Errorf("proxy %s: toxic %s: %w", p.name, js, err)
	}
	return nil
}

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *tcpProxy) handle(c net.Conn) {
	defer p.wg.Done()
	if !p.track(c) {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, upstreamDialTimeout)
	up, err := p.view.ns.dial(ctx, "tcp", p.upstream, p.view.localAddr("tcp"))
	cancel()
	if err != nil {
		// Refused or timed out upstream: the client sees its connection
		// closed, as soon as the proxy knows.
		p.untrack(c)
		c.Close()
		return
	}
	if !p.track(up) {
		p.untrack(c)
		c.Close()
		return
	}
	name := c.RemoteAddr().String() + "→" + up.LocalAddr().String()
	p.tp.Toxics.StartLink(toxics(), name+" up", &closing{Conn: c, done: func() { p.untrack(c) }}, up, stream.Upstream)
	p.tp.Toxics.StartLink(toxics(), name+" down", &closing{Conn: up, done: func() { p.untrack(up) }}, c, stream.Downstream)
}

// closing is a connection that, once its reader is done, drops out of
// the proxy's list of connections to close.
type closing struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *closing) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.once.Do(c.done)
	}
	return n, err
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// hang stops (true) or resumes (false) everything through the proxy:
// connections are still accepted, but no byte gets through either way.
func (p *tcpProxy) hang(on bool) error {
	if p.hung.Swap(on) == on {
		return nil
	}
	for _, dir := range []string{"upstream", "downstream"} {
		name := "hang_" + dir
		if on {
			if err := p.addToxic(fmt.Sprintf(`{"name":%q,"type":"timeout","stream":%q,"attributes":{"timeout":0}}`, name, dir)); err != nil {
				return err
			}
		} else if err := p.tp.Toxics.RemoveToxic(context.Background(), name); err != nil {
			return fmt.Errorf("proxy %s: removing %s: %w", p.name, name, err)
		}
	}
	return nil
}

// close stops the proxy and closes every connection through it.
func (p *tcpProxy) close() {
	p.cancel()
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// udpDelayer forwards DNS datagrams that arrive at a public address in a
// view to the real server, each way after half the round trip, from a
// socket per client in the view's namespace (bound to the view's own
// address, so the server sees the client's address as a resolver's).
type udpDelayer struct {
	name     string
	pc       *net.UDPConn
	view     *view
	upstream *net.UDPAddr
	delay    time.Duration

	drop   atomic.Bool // a partition: every datagram is lost
	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow
	closed bool
	wg     sync.WaitGroup
	timers sync.WaitGroup
}

type udpFlow struct {
	up   *net.UDPConn
	last atomic.Int64 // unix nanoseconds of the last datagram
}

// udpFlowIdle is how long a client's socket upstream is kept without
// traffic.
const udpFlowIdle = 30 * time.Second

func newUDPDelayer(v *view, listen, upstream netip.AddrPort, rtt time.Duration) (*udpDelayer, error) {
	pc, err := v.ns.listenUDP(listen.String())
	if err != nil {
		return nil, fmt.Errorf("DNS delayer for %s in %s: %w", listen, v.name, err)
	}
	d := &udpDelayer{name: v.name + " → " + upstream.String(), pc: pc, view: v,
		upstream: net.UDPAddrFromAddrPort(upstream), delay: rtt / 2, flows: map[netip.AddrPort]*udpFlow{}}
	d.wg.Add(1)
	go d.serve()
	return d, nil
}

func (d *udpDelayer) later(f func()) {
	d.timers.Add(1)
	time.AfterFunc(d.delay, func() {
		defer d.timers.Done()
		f()
	})
}

func (d *udpDelayer) serve() {
	defer d.wg.Done()
	buf := make([]byte, 65535)
	lastSweep := time.Now()
	for {
		n, from, err := d.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if time.Since(lastSweep) > udpFlowIdle {
			d.sweep()
			lastSweep = time.Now()
		}
		if d.drop.Load() {
			continue
		}
		f, err := d.flow(from)
		if err != nil {
			continue // the client times out, as with a lost datagram
		}
		f.last.Store(time.Now().UnixNano())
		msg := append([]byte(nil), buf[:n]...)
		d.later(func() { f.up.Write(msg) })
	}
}

// flow returns the client's socket upstream, made on first use, with a
// reader that sends the server's answers back to the client.
func (d *udpDelayer) flow(client netip.AddrPort) (*udpFlow, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, net.ErrClosed
	}
	if f := d.flows[client]; f != nil {
		return f, nil
	}
	c, err := d.view.ns.dial(context.Background(), "udp", d.upstream.String(), d.view.localAddr("udp"))
	if err != nil {
		return nil, err
	}
	f := &udpFlow{up: c.(*net.UDPConn)}
	d.flows[client] = f
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		buf := make([]byte, 65535)
		for {
			n, err := f.up.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP port unreachable (the server is down): the client times out
			}
			if d.drop.Load() {
				continue
			}
			msg := append([]byte(nil), buf[:n]...)
			d.later(func() { d.pc.WriteToUDPAddrPort(msg, client) })
		}
	}()
	return f, nil
}

func (d *udpDelayer) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	cut := time.Now().Add(-udpFlowIdle).UnixNano()
	for k, f := range d.flows {
		if f.last.Load() < cut {
			f.up.Close()
			delete(d.flows, k)
		}
	}
}

func (d *udpDelayer) close() {
	d.mu.Lock()
	d.closed = true
	for _, f := range d.flows {
		f.up.Close()
	}
	d.mu.Unlock()
	d.pc.Close()
	d.wg.Wait()
	d.timers.Wait()
}
