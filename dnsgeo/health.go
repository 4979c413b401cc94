package dnsgeo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Prober checks every region's health URL and keeps each region's
// up/down state. A region goes down after Fall consecutive failures and
// up again after Rise consecutive successes, so one lost probe neither
// flaps the region nor delays failover by more than one interval.
// Regions start up (a server that boots during an outage learns it
// within Fall rounds; one that boots healthy answers at once).
//
// A probe succeeds when the URL answers a 2xx status within the
// timeout, on a new connection (no keep-alive: a probe must see what a
// new browser would see), with the certificate verified for https
// (system roots plus HealthConfig.CAFile), redirects not followed.
//
// The Prober does not own a clock or a ticker: ProbeAll runs one round
// and returns when it is done; Server.Run calls it on each tick. Tests
// call ProbeAll themselves, with a clock they control.
type Prober struct {
	cfg     HealthConfig
	client  *http.Client
	now     func() time.Time
	log     *slog.Logger
	targets []*target // index: region index
	down    atomic.Uint64
	onProbe func(region string, ok bool, latency time.Duration, up bool)
}

type target struct {
	region string
	url    string

	mu          sync.Mutex
	up          bool
	fails, oks  int // consecutive
	lastLatency time.Duration
	lastProbe   time.Time
	lastChange  time.Time
	lastErr     string
}

// RegionStatus is the health of one region, for /status and tests.
type RegionStatus struct {
	Region      string        `json:"region"`
	URL         string        `json:"url,omitempty"`
	Up          bool          `json:"up"`
	Failures    int           `json:"consecutive_failures"`
	Successes   int           `json:"consecutive_successes"`
	LastLatency time.Duration `json:"last_probe_latency_ns"`
	LastProbe   time.Time     `json:"last_probe"`
	LastChange  time.Time     `json:"last_change"`
	LastError   string        `json:"last_error,omitempty"`
}

// newProber makes a prober for c's regions. State of regions that prev
// also probed at the same URL carries over, so a reload neither forgets
// an outage nor restarts the count.
func newProber(c *Config, prev *Prober, now func() time.Time, log *slog.Logger) (*Prober, error) {
	client, err := healthClient(c.Health)
	if err != nil {
		return nil, err
	}
	p := &Prober{cfg: c.Health, client: client, now: now, log: log}
	var down uint64
	for i, name := range c.regionNames {
		t := &target{region: name, url: c.Regions[name].Health, up: true}
		if prev != nil {
			for _, o := range prev.targets {
				if o.region == name && o.url == t.url {
					o.mu.Lock()
					t.up, t.fails, t.oks = o.up, o.fails, o.oks
					t.lastLatency, t.lastProbe, t.lastChange, t.lastErr = o.lastLatency, o.lastProbe, o.lastChange, o.lastErr
					o.mu.Unlock()
				}
			}
		}
		if !t.up {
			down |= 1 << i
		}
		p.targets = append(p.targets, t)
	}
	p.down.Store(down)
	return p, nil
}

// Down returns the set of regions that are down, bit i for region i.
// One atomic load: this is what every routed query reads.
func (p *Prober) Down() uint64 { return p.down.Load() }

// ProbeAll probes every region with a health URL, concurrently, and
// returns when all probes are done and the state is updated.
func (p *Prober) ProbeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for i, t := range p.targets {
		if t.url == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := p.probe(ctx, t.url)
			p.record(i, t, err, time.Since(start))
		}()
	}
	wg.Wait()
}

func (p *Prober) probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if p.cfg.Host != "" {
		req.Host = p.cfg.Host
	}
	req.Header.Set("User-Agent", "dnsgeo-health/1")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// record applies one probe result to region i's state.
func (p *Prober) record(i int, t *target, err error, latency time.Duration) {
	now := p.now()
	t.mu.Lock()
	t.lastProbe = now
	t.lastLatency = latency
	wasUp := t.up
	if err != nil {
		t.fails++
		t.oks = 0
		t.lastErr = err.Error()
		if t.up && t.fails >= p.cfg.Fall {
			t.up = false
			t.lastChange = now
		}
	} else {
		t.oks++
		t.fails = 0
		t.lastErr = ""
		if !t.up && t.oks >= p.cfg.Rise {
			t.up = true
			t.lastChange = now
		}
	}
	up, fails, oks, lastErr := t.up, t.fails, t.oks, t.lastErr
	t.mu.Unlock()

	if up != wasUp {
		for {
			old := p.down.Load()
			next := old | 1<<i
			if up {
				next = old &^ (1 << i)
			}
			if p.down.CompareAndSwap(old, next) {
				break
			}
		}
		if up {
			p.log.Info("region up", "region", t.region, "url", t.url, "consecutive_successes", oks, "latency", latency)
		} else {
			p.log.Warn("region down", "region", t.region, "url", t.url, "consecutive_failures", fails, "error", lastErr)
		}
	}
	if p.onProbe != nil {
		p.onProbe(t.region, err == nil, latency, up)
	}
}

// Status returns every region's state, in region name order.
func (p *Prober) Status() []RegionStatus {
	out := make([]RegionStatus, 0, len(p.targets))
	for _, t := range p.targets {
		t.mu.Lock()
		out = append(out, RegionStatus{
			Region: t.region, URL: t.url, Up: t.up, Failures: t.fails, Successes: t.oks,
			LastLatency: t.lastLatency, LastProbe: t.lastProbe, LastChange: t.lastChange, LastError: t.lastErr,
		})
		t.mu.Unlock()
	}
	return out
}

// healthClient is the HTTP client of the probes: no proxy from the
// environment (a probe must reach the edge itself), no keep-alive, no
// redirects, certificates verified.
func healthClient(h HealthConfig) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if h.CAFile != "" {
		extra, err := loadCAFile(h.CAFile)
		if err != nil {
			return nil, err
		}
		for _, c := range extra {
			roots.AddCert(c)
		}
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: h.Timeout}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: hostOnly(h.Host), MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: h.Timeout,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       h.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// loadCAFile reads a PEM bundle of CA certificates.
func loadCAFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificates in " + path)
	}
	return certs, nil
}
