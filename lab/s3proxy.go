package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// s3Fault is how an S3 proxy breaks requests.
type s3Fault int32

const (
	s3Pass s3Fault = iota // forward
	s3Down                // 503 ServiceUnavailable, as S3 in an outage
	s3Hang                // hold the request until the fault ends or the client gives up (a partition, loopback mode)
)

// s3Proxy is an edge's way to one S3 endpoint: an HTTP proxy in the
// edge's namespace that forwards to the S3 server, counts what it
// forwards per method and object (at the S3 side of the edge, where the
// guide wants load counted), and fails on cue. Its connections upstream
// leave from the namespace, so a cut link cuts them too.
type s3Proxy struct {
	name  string
	ln    net.Listener
	srv   *http.Server
	tr    *http.Transport
	fault atomic.Int32

	mu      sync.Mutex
	counts  map[string]int64 // "GET /bucket/key" (or "GET? …" with a validator: a revalidation) → requests forwarded
	first   time.Time        // first request forwarded since the last mark
	faulted int64            // requests answered with a fault
	change  chan struct{}    // closed and replaced when the fault changes
}

func newS3Proxy(name string, ns *netns, listen netip.AddrPort, target string) (*s3Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := ns.listen(listen.String())
	if err != nil {
		return nil, fmt.Errorf("S3 proxy %s: %w", name, err)
	}
	p := &s3Proxy{name: name, ln: ln, counts: map[string]int64{}, change: make(chan struct{})}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return ns.dial(ctx, network, addr, nil)
		},
		DisableCompression:  true, // the edge gets S3's bytes as S3 sent them
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	p.tr = tr
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			// The client signed (SigV4) for the proxy's host: keep it,
			// and the signature verifies at the server.
			r.Out.Host = r.In.Host
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s3Fault(p.fault.Load()) {
		case s3Down:
			p.mu.Lock()
			p.faulted++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>edge-lab: this S3 endpoint is down</Message></Error>`)
			return
		case s3Hang:
			p.mu.Lock()
			ch := p.change
			p.mu.Unlock()
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
			if s3Fault(p.fault.Load()) != s3Pass {
				http.Error(w, "edge-lab: partitioned", http.StatusBadGateway)
				return
			}
		}
		p.count(r)
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

func (p *s3Proxy) count(r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := r.Method
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		m += "?"
	}
	p.counts[m+" "+r.URL.Path]++
	if p.first.IsZero() {
		p.first = time.Now()
	}
}

// setFault changes how requests are answered from now on; requests held
// by s3Hang go on (or fail) at once.
func (p *s3Proxy) setFault(f s3Fault) {
	p.fault.Store(int32(f))
	p.mu.Lock()
	close(p.change)
	p.change = make(chan struct{})
	p.mu.Unlock()
}

// mark forgets when the first request came, so firstSince reports the
// first one after now.
func (p *s3Proxy) mark() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.first = time.Time{}
}

// firstSince is the time of the first request forwarded since mark,
// zero if none.
func (p *s3Proxy) firstSince() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// snapshot returns the counts so far, and the requests faulted.
func (p *s3Proxy) snapshot() (map[string]int64, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out, p.faulted
}

// objectGETs returns the GETs of each object of bucket (by key) that
// count has over base: unconditional ones (fills), or with
// conditional, the revalidations.
func objectGETs(count, base map[string]int64, bucket string, conditional bool) map[string]int64 {
	out := map[string]int64{}
	prefix := "GET /" + bucket + "/"
	if conditional {
		prefix = "GET? /" + bucket + "/"
	}
	for k, v := range count {
		if key, ok := strings.CutPrefix(k, prefix); ok && key != "" && v > base[k] {
			out[key] += v - base[k]
		}
	}
	return out
}

func (p *s3Proxy) close() {
	p.setFault(s3Pass)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		p.srv.Close()
	}
	p.srv.Close()
	// Its connections to S3 were made in the edge's namespace: closed,
	// they no longer hold it.
	p.tr.CloseIdleConnections()
}
