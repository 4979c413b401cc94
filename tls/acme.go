package tls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/edgecdn/edge/store"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/acme"
	"golang.org/x/net/idna"
)

// LetsEncrypt is the default ACME directory: Let's Encrypt production.
const LetsEncrypt = acme.LetsEncryptURL

// Defaults of ACMEConfig.
const (
	DefaultRenewRemaining = 1.0 / 3
	DefaultCheckInterval  = time.Minute
	DefaultLeaseTTL       = 10 * time.Minute
	DefaultPollInterval   = 2 * time.Second
	maxBackoff            = time.Hour
)

// ACMEConfig configures ACME.
type ACMEConfig struct {
	// Directory is the CA's directory URL. Empty means LetsEncrypt.
	Directory string
	// Email is the account's contact; empty means none.
	Email string
	// Domains are the only names ACME ever orders certificates for.
	Domains []string
	// Store is where certificates, the account key, challenge answers
	// and leases live, shared by every edge.
	Store store.Store
	// HTTPClient talks to the CA (with -acme-ca-roots in its transport).
	// Nil means http.DefaultClient.
	HTTPClient *http.Client
	// ChallengeTypes in order of preference. Nil means tls-alpn-01, then
	// http-01. Both are answered whichever is chosen.
	ChallengeTypes []string
	// RenewRemaining: a certificate is renewed when this fraction of its
	// lifetime remains. Zero means DefaultRenewRemaining (a third).
	RenewRemaining float64
	// LeaseTTL bounds how long a crashed edge can hold up an order; an
	// order is abandoned after half of it. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// PollInterval is how often an edge waiting for another's order looks
	// in the store. Zero means DefaultPollInterval.
	PollInterval time.Duration
	// Holder names this edge in leases. Empty means HOSTNAME-PID-RANDOM.
	Holder string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger gets every failure. Nil means slog.Default().
	Logger *slog.Logger
}

// ACME keeps a certificate for each of its domains, from the shared store
// or ordered from the CA under a lease, and renews it when a third of its
// lifetime remains. Safe for concurrent use.
type ACME struct {
	cfg     ACMEConfig
	domains []string // normalised
	leases  *store.Leases
	log     *slog.Logger
	now     func() time.Time

	failures *prometheus.CounterVec // edge_tls_renewal_failures_total

	clientMu sync.Mutex
	client   *acme.Client // registered; nil until first needed

	mu       sync.Mutex
	certs    map[string]*tls.Certificate
	lastErr  map[string]string
	nextTry  map[string]time.Time
	backoff  map[string]time.Duration
	inflight map[string]chan struct{} // closed when the name's obtain ends
	alpn     map[string]*tls.Certificate
	tokens   map[string]string // HTTP-01 path → key authorization
}

// NewACME returns an ACME for cfg. It does not contact the CA or the
// store: Run and Check do.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if cfg.Store == nil {
		return nil, errors.New("acme: no store")
	}
	if len(cfg.Domains) == 0 {
		return nil, errors.New("acme: no domains")
	}
	var domains []string
	for _, d := range cfg.Domains {
		n, err := normalizeName(d)
		if err != nil || n == "" || strings.Contains(n, "*") || net.ParseIP(n) != nil {
			return nil, fmt.Errorf("acme: domain %q: want a DNS name such as cdn.example.com", d)
		}
		if !slices.Contains(domains, n) {
			domains = append(domains, n)
		}
	}
	if cfg.Directory == "" {
		cfg.Directory = LetsEncrypt
	}
	if cfg.ChallengeTypes == nil {
		cfg.ChallengeTypes = []string{"tls-alpn-01", "http-01"}
	}
	if cfg.RenewRemaining <= 0 || cfg.RenewRemaining >= 1 {
		cfg.RenewRemaining = DefaultRenewRemaining
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "edge_tls_renewal_failures_total",
		Help: "Failed attempts to obtain or renew an ACME certificate, by name.",
	}, []string{"name"})
	// Every name starts at 0, so that increase() sees the first failure
	// (a series born at 1 shows no increase) and the series exists for
	// alerts and dashboards before anything fails.
	for _, d := range domains {
		failures.WithLabelValues(d)
	}
	return &ACME{
		cfg:      cfg,
		domains:  domains,
		leases:   store.NewLeases(cfg.Store, cfg.Holder, cfg.Now),
		log:      cfg.Logger,
		now:      cfg.Now,
		failures: failures,
		certs:    map[string]*tls.Certificate{},
		lastErr:  map[string]string{},
		nextTry:  map[string]time.Time{},
		backoff:  map[string]time.Duration{},
		inflight: map[string]chan struct{}{},
		alpn:     map[string]*tls.Certificate{},
		tokens:   map[string]string{},
	}, nil
}

// normalizeName lower-cases a name, drops a trailing dot and turns an
// IDN into its A-label form.
func normalizeName(name string) (string, error) {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if name == "" {
		return "", nil
	}
	return idna.Lookup.ToASCII(name)
}

// Domains returns the names ACME manages.
func (a *ACME) Domains() []string { return slices.Clone(a.domains) }

func (a *ACME) allowed(name string) bool { return slices.Contains(a.domains, name) }

// Certificate returns the certificate held for name, or nil.
func (a *ACME) Certificate(name string) *tls.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.certs[name]
}

// renewAt is when c is due for renewal: when RenewRemaining of its
// lifetime remains.
func (a *ACME) renewAt(c *tls.Certificate) time.Time {
	life := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)
	return c.Leaf.NotAfter.Add(-time.Duration(float64(life) * a.cfg.RenewRemaining))
}

func (a *ACME) due(c *tls.Certificate) bool { return c == nil || !a.now().Before(a.renewAt(c)) }

// Run checks every domain at once and then at each tick (nil means every
// DefaultCheckInterval) until ctx is done.
func (a *ACME) Run(ctx context.Context, tick <-chan time.Time) {
	if tick == nil {
		t := time.NewTicker(DefaultCheckInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		a.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// Check makes one pass over the domains: each one without a certificate,
// or whose certificate is due, is loaded from the store or ordered. It
// returns when the pass is done; failures are logged, counted and retried
// on a later pass with a backoff (1 minute doubling to 1 hour). A
// certificate that could not be renewed is kept and served.
func (a *ACME) Check(ctx context.Context) {
	var wg sync.WaitGroup
	for _, name := range a.domains {
		a.mu.Lock()
		c, next := a.certs[name], a.nextTry[name]
		a.mu.Unlock()
		if !a.due(c) || a.now().Before(next) {
			continue
		}
		wg.Go(func() { _ = a.obtain(ctx, name) })
	}
	wg.Wait()
}

// obtain gets a certificate for name into memory, once at a time per
// name in this process; concurrent callers wait for the one in flight.
func (a *ACME) obtain(ctx context.Context, name string) error {
	a.mu.Lock()
	if ch, ok := a.inflight[name]; ok {
		a.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if a.now().Before(a.nextTry[name]) {
		// Backing off after a failure: handshakes must not hammer the CA.
		err := fmt.Errorf("backing off after: %s", a.lastErr[name])
		a.mu.Unlock()
		return err
	}
	ch := make(chan struct{})
	a.inflight[name] = ch
	old := a.certs[name]
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.inflight, name)
		a.mu.Unlock()
		close(ch)
	}()

	c, err := a.obtainShared(ctx, name, old)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down: not a failure of the CA
		}
		b := min(max(2*a.backoff[name], time.Minute), maxBackoff)
		a.backoff[name] = b
		a.nextTry[name] = a.now().Add(b)
		a.lastErr[name] = err.Error()
		a.failures.WithLabelValues(name).Inc()
		a.log.Error("tls: obtaining certificate failed; serving the one held, if any, and retrying", "name", name, "err", err, "retry_in", b.String(),
			"held_until", heldUntil(old))
		return err
	}
	a.certs[name] = c
	delete(a.lastErr, name)
	delete(a.backoff, name)
	delete(a.nextTry, name)
	return nil
}

// hold serves c for name unless the one held expires later.
func (a *ACME) hold(name string, c *tls.Certificate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.certs[name]; old == nil || c.Leaf.NotAfter.After(old.Leaf.NotAfter) {
		a.certs[name] = c
	}
}

func heldUntil(c *tls.Certificate) string {
	if c == nil {
		return "none"
	}
	return c.Leaf.NotAfter.UTC().Format(time.RFC3339)
}

// obtainShared returns a certificate for name that is not due for
// renewal: from the store, or ordered under the name's lease, or, while
// another edge holds the lease, from the store once that edge has put it
// there.
func (a *ACME) obtainShared(ctx context.Context, name string, old *tls.Certificate) (*tls.Certificate, error) {
	lease := "cert/" + name
	for {
		c, err := a.load(ctx, name)
		if err != nil {
			// Unreachable store: ordering now could make every edge order.
			return nil, fmt.Errorf("reading the certificate store: %w", err)
		}
		if c != nil && !a.due(c) {
			return c, nil
		}
		if c != nil {
			// Due, but better than nothing or than an older one: serve it
			// while the renewal runs, and if it fails.
			a.hold(name, c)
		}
		ok, holder, err := a.leases.Acquire(ctx, lease, a.cfg.LeaseTTL)
		if err != nil {
			return nil, err
		}
		if ok {
			return a.orderUnderLease(ctx, name, lease)
		}
		a.log.Debug("tls: another edge is ordering; waiting for its certificate", "name", name, "holder", holder.Holder, "lease_expires", holder.Expires)
		t := time.NewTimer(a.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (a *ACME) orderUnderLease(ctx context.Context, name, lease string) (*tls.Certificate, error) {
	defer func() {
		// Release even when ctx is done, so the others need not wait
		// for the lease to expire.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := a.leases.Release(rctx, lease); err != nil {
			a.log.Warn("tls: releasing the order lease", "name", name, "err", err)
		}
	}()
	// Another edge may have finished between our look and the lease.
	if c, err := a.load(ctx, name); err != nil {
		return nil, fmt.Errorf("reading the certificate store: %w", err)
	} else if c != nil && !a.due(c) {
		return c, nil
	}
	octx, cancel := context.WithTimeout(ctx, a.cfg.LeaseTTL/2)
	defer cancel()
	c, err := a.order(octx, name)
	if err != nil {
		return nil, err
	}
	b, err := encodeCert(c)
	if err != nil {
		return nil, err
	}
	if err := a.cfg.Store.Put(ctx, name, b); err != nil {
		// Serve it anyway; the others will order their own.
		a.log.Error("tls: writing the new certificate to the store", "name", name, "err", err)
	}
	a.log.Info("tls: certificate obtained", "name", name, "not_after", c.Leaf.NotAfter.UTC(), "renew_at", a.renewAt(c).UTC())
	return c, nil
}

// load reads name's certificate from the store: nil, nil when there is
// none, or one that does not parse or is not for name (logged).
func (a *ACME) load(ctx context.Context, name string) (*tls.Certificate, error) {
	b, err := a.cfg.Store.Get(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := decodeCert(b)
	if err == nil {
		err = c.Leaf.VerifyHostname(name)
	}
	if err != nil {
		a.log.Error("tls: certificate in the store is unusable; ordering a new one", "name", name, "store", a.cfg.Store.String(), "err", err)
		return nil, nil
	}
	return c, nil
}

// acmeClient returns a registered client, creating the account key in
// the store if there is none (Create: concurrent edges agree on one).
func (a *ACME) acmeClient(ctx context.Context) (*acme.Client, error) {
	a.clientMu.Lock()
	defer a.clientMu.Unlock()
	if a.client != nil {
		return a.client, nil
	}
	key, err := a.accountKey(ctx)
	if err != nil {
		return nil, err
	}
	c := &acme.Client{Key: key, DirectoryURL: a.cfg.Directory, HTTPClient: a.cfg.HTTPClient, UserAgent: "edge"}
	acct := &acme.Account{}
	if a.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + a.cfg.Email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme: registering the account at %s: %w", a.cfg.Directory, err)
	}
	a.client = c
	return c, nil
}

func (a *ACME) accountKey(ctx context.Context) (*ecdsa.PrivateKey, error) {
	for range 2 {
		b, err := a.cfg.Store.Get(ctx, accountKey)
		if err == nil {
			blk, _ := pem.Decode(b)
			if blk == nil {
				return nil, fmt.Errorf("acme: account key in %s: not PEM", a.cfg.Store)
			}
			k, err := x509.ParseECPrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("acme: account key in %s: %w", a.cfg.Store, err)
			}
			return k, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("acme: reading the account key: %w", err)
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		err = a.cfg.Store.Create(ctx, accountKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("acme: writing the account key: %w", err)
		}
		// Another edge created one first: use that.
	}
	return nil, errors.New("acme: account key vanished from the store")
}

// order runs one ACME order for name (RFC 8555 §7.4).
func (a *ACME) order(ctx context.Context, name string) (*tls.Certificate, error) {
	client, err := a.acmeClient(ctx)
	if err != nil {
		return nil, err
	}
	o, err := client.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return nil, fmt.Errorf("acme: new order: %w", err)
	}
	for _, zurl := range o.AuthzURLs {
		z, err := client.GetAuthorization(ctx, zurl)
		if err != nil {
			return nil, fmt.Errorf("acme: authorization: %w", err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		if z.Status != acme.StatusPending {
			return nil, fmt.Errorf("acme: authorization for %s is %s", name, z.Status)
		}
		var chal *acme.Challenge
		for _, typ := range a.cfg.ChallengeTypes {
			for _, c := range z.Challenges {
				if c.Type == typ && chal == nil {
					chal = c
				}
			}
		}
		if chal == nil {
			return nil, fmt.Errorf("acme: the CA offers no challenge of types %v for %s", a.cfg.ChallengeTypes, name)
		}
		cleanup, err := a.present(ctx, client, name, chal)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		if _, err := client.Accept(ctx, chal); err != nil {
			return nil, fmt.Errorf("acme: accepting the %s challenge: %w", chal.Type, err)
		}
		if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
			return nil, fmt.Errorf("acme: %s challenge for %s: %w", chal.Type, name, err)
		}
	}
	if o, err = client.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("acme: waiting for the order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := client.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		// When the CA finalizes asynchronously and its answer to the
		// finalize request has no Location (Pebble's has none),
		// CreateOrderCert loses the order ("Post \"\""). The order's own
		// URL still leads to the certificate.
		fo, werr := client.WaitOrder(ctx, o.URI)
		if werr != nil || fo.CertURL == "" {
			return nil, fmt.Errorf("acme: finalizing the order: %w", err)
		}
		if der, err = client.FetchCert(ctx, fo.CertURL, true); err != nil {
			return nil, fmt.Errorf("acme: fetching the certificate: %w", err)
		}
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// present makes the challenge's answer available, here and in the store
// for the other edges (the CA may reach any of them), and returns how to
// take it down.
func (a *ACME) present(ctx context.Context, client *acme.Client, name string, chal *acme.Challenge) (func(), error) {
	bg := context.WithoutCancel(ctx)
	switch chal.Type {
	case "http-01":
		resp, err := client.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		path := client.HTTP01ChallengePath(chal.Token)
		a.mu.Lock()
		a.tokens[path] = resp
		a.mu.Unlock()
		if err := a.cfg.Store.Put(ctx, httpTokenKey(chal.Token), []byte(resp)); err != nil {
			a.log.Warn("tls: sharing the HTTP-01 answer (only this edge can answer)", "name", name, "err", err)
		}
		return func() {
			a.mu.Lock()
			delete(a.tokens, path)
			a.mu.Unlock()
			_ = a.cfg.Store.Delete(bg, httpTokenKey(chal.Token))
		}, nil
	case "tls-alpn-01":
		cert, err := client.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.alpn[name] = &cert
		a.mu.Unlock()
		if b, err := encodeCert(&cert); err == nil {
			if err := a.cfg.Store.Put(ctx, alpnKey(name), b); err != nil {
				a.log.Warn("tls: sharing the TLS-ALPN-01 answer (only this edge can answer)", "name", name, "err", err)
			}
		}
		return func() {
			a.mu.Lock()
			delete(a.alpn, name)
			a.mu.Unlock()
			_ = a.cfg.Store.Delete(bg, alpnKey(name))
		}, nil
	}
	return nil, fmt.Errorf("acme: unsupported challenge type %q", chal.Type)
}

// errUnknownName answers a handshake for a name that is not ours.
var errUnknownName = errors.New("no certificate for this server name")

// GetCertificate answers handshakes for ACME's domains: TLS-ALPN-01
// challenges, and the certificate held. For a domain that has none yet
// it waits, within the handshake's deadline, for the order in flight
// (starting one if none is). Any other name is an error and never starts
// an order.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name, err := normalizeName(hello.ServerName)
	if err != nil || !a.allowed(name) {
		return nil, errUnknownName
	}
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ACMETLS1Protocol {
		a.mu.Lock()
		c := a.alpn[name]
		a.mu.Unlock()
		if c != nil {
			return c, nil
		}
		b, err := a.cfg.Store.Get(hello.Context(), alpnKey(name))
		if err != nil {
			return nil, fmt.Errorf("no TLS-ALPN-01 challenge in progress for %s", name)
		}
		return decodeCert(b)
	}
	if c := a.Certificate(name); c != nil {
		return c, nil
	}
	ctx := hello.Context()
	done := make(chan struct{})
	go func() {
		// Not tied to this handshake: the order goes on for the next one.
		_ = a.obtain(context.WithoutCancel(ctx), name)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("certificate for %s not ready: %w", name, ctx.Err())
	}
	if c := a.Certificate(name); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("no certificate for %s yet", name)
}

// HTTPHandler answers ACME HTTP-01 challenges
// (/.well-known/acme-challenge/TOKEN) for ACME's domains and passes every
// other request to next. The Host may carry a port (the CA sends one
// when it validates on a port other than 80), which is ignored.
func (a *ACME) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			next.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		name, err := normalizeName(host)
		if err != nil || !a.allowed(name) {
			http.Error(w, "unknown host", http.StatusForbidden)
			return
		}
		a.mu.Lock()
		resp, ok := a.tokens[r.URL.Path]
		a.mu.Unlock()
		if !ok {
			token := strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")
			b, err := a.cfg.Store.Get(r.Context(), httpTokenKey(token))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, store.ErrInvalidKey) {
					a.log.Warn("tls: reading an HTTP-01 answer", "err", err)
				}
				http.NotFound(w, r)
				return
			}
			resp = string(b)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(resp))
	})
}

// CertStatus is what /healthz?verbose and the metrics show of one
// certificate.
type CertStatus struct {
	Name     string // the SNI name, or the static file
	Source   string // "acme" or "static FILE"
	NotAfter time.Time
	RenewAt  time.Time // ACME only
	Err      string    // the last failure, if the last attempt failed
}

// Status returns the state of each domain's certificate.
func (a *ACME) Status() []CertStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []CertStatus
	for _, name := range a.domains {
		s := CertStatus{Name: name, Source: "acme", Err: a.lastErr[name]}
		if c := a.certs[name]; c != nil {
			s.NotAfter, s.RenewAt = c.Leaf.NotAfter, a.renewAt(c)
		}
		out = append(out, s)
	}
	return out
}
