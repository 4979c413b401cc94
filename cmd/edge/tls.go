package main

// HTTPS for the edge: the flags of issue 11, certificates (ACME through a
// shared store, static files), session-ticket keys, the HTTPS and HTTP/3
// listeners, HSTS, Alt-Svc, the redirect from plain HTTP, and what SIGHUP
// re-reads. main.go calls it in a few marked places.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/store"
	edgetls "github.com/edgecdn/edge/tls"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go/http3"
)

// tlsOptions are the HTTPS flags.
type tlsOptions struct {
	httpsAddr     string
	domains       string
	acmeDirectory string
	acmeEmail     string
	acmeCARoots   string
	certCache     string
	tlsCerts      stringList
	tlsKeys       stringList
	redirectHTTPS bool
	hstsMaxAge    time.Duration
	ticketKeys    string
	http3         bool
	altSvcPort    int // 0: the port -https bound
}

func (t *tlsOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&t.httpsAddr, "https", "", "HTTPS listener `address` (e.g. :443); empty means none")
	fs.StringVar(&t.domains, "domains", "", "comma-separated `names` the edge may get ACME certificates for (e.g. cdn.example.com); nothing else ever triggers an order")
	fs.StringVar(&t.acmeDirectory, "acme-directory", edgetls.LetsEncrypt, "ACME directory `URL` (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory)")
	fs.StringVar(&t.acmeEmail, "acme-email", "", "contact `address` for the ACME account (expiry warnings)")
	fs.StringVar(&t.acmeCARoots, "acme-ca-roots", "", "PEM `file` of roots trusted for the ACME directory's own TLS (test and private CAs)")
	fs.StringVar(&t.certCache, "cert-cache", "", "certificate store `URL` shared by all edges: s3://BUCKET/PREFIX[?region=...] (same options as -origin) or dir:PATH; default dir:<-cache-dir>/certs")
	fs.Var(&t.tlsCerts, "tls-cert", "static certificate chain `file` (PEM); repeatable, paired in order with -tls-key, chosen by SNI, reloaded when it changes and on SIGHUP")
	fs.Var(&t.tlsKeys, "tls-key", "private key `file` (PEM) of the -tls-cert at the same position")
	fs.BoolVar(&t.redirectHTTPS, "redirect-https", false, "answer plain-HTTP requests with 308 to HTTPS, except ACME HTTP-01 challenges and /healthz")
	fs.DurationVar(&t.hstsMaxAge, "hsts-max-age", 0, "Strict-Transport-Security max-age on HTTPS responses (e.g. 8760h); 0 sends none")
	fs.StringVar(&t.ticketKeys, "ticket-keys", "", "where the edges of a region share TLS session-ticket keys: s3://BUCKET/PREFIX or dir:PATH (the edges create and rotate them daily), or file:PATH (an operator-managed file, read only); empty: per-process keys")
	fs.BoolVar(&t.http3, "http3", false, "also serve HTTP/3 (QUIC) on the UDP port of -https, advertised with Alt-Svc")
	fs.IntVar(&t.altSvcPort, "alt-svc-port", 0, "UDP `port` Alt-Svc advertises for HTTP/3, when a load balancer maps it (e.g. 443 outside, -https :8443 inside); 0 means the port of -https")
}

// validate checks the HTTPS flags together; errors name the flag.
func (t *tlsOptions) validate() error {
	if len(t.tlsCerts) != len(t.tlsKeys) {
		return fmt.Errorf("-tls-cert and -tls-key: %d certificates, %d keys; give them in pairs", len(t.tlsCerts), len(t.tlsKeys))
	}
	acme := strings.TrimSpace(t.domains) != ""
	if t.httpsAddr == "" {
		for _, f := range []struct {
			set  bool
			name string
		}{{acme, "-domains"}, {len(t.tlsCerts) > 0, "-tls-cert"}, {t.redirectHTTPS, "-redirect-https"}, {t.hstsMaxAge != 0, "-hsts-max-age"}, {t.http3, "-http3"}, {t.altSvcPort != 0, "-alt-svc-port"}, {t.ticketKeys != "", "-ticket-keys"}} {
			if f.set {
				return fmt.Errorf("%s needs -https", f.name)
			}
		}
		return nil
	}
	if !acme && len(t.tlsCerts) == 0 {
		return errors.New("-https: no certificates: give -domains (ACME) or -tls-cert/-tls-key")
	}
	if t.altSvcPort != 0 && !t.http3 {
		return errors.New("-alt-svc-port needs -http3")
	}
	if t.altSvcPort < 0 || t.altSvcPort > 65535 {
		return fmt.Errorf("-alt-svc-port %d: not a port (1-65535, or 0 for the port of -https)", t.altSvcPort)
	}
	if t.hstsMaxAge < 0 {
		return fmt.Errorf("-hsts-max-age %s: negative", t.hstsMaxAge)
	}
	if _, _, err := net.SplitHostPort(t.httpsAddr); err != nil {
		return fmt.Errorf("-https %q: %v", t.httpsAddr, err)
	}
	return nil
}

// ticketKeysAtStart bounds the wait for the shared session-ticket keys
// before the HTTPS listeners serve.
const ticketKeysAtStart = 5 * time.Second

// handshakeTimeout bounds a TLS handshake (and the request headers after
// it): a client that stalls mid-handshake holds a connection no longer.
const handshakeTimeout = 10 * time.Second

// tlsSide is the edge's HTTPS: set up before the handler (it reports
// health and metrics through it), served once the handler exists.
type tlsSide struct {
	o       *tlsOptions
	log     *slog.Logger
	certs   *edgetls.Certificates
	tickets *edgetls.Tickets
	config  *tls.Config

	handshakeErrors prometheus.Counter
	tooEarly        prometheus.Counter

	ctx    context.Context
	cancel context.CancelFunc
	srv    *http.Server
	h3     *http3.Server
	addr   net.Addr     // the TCP listener's
	port   atomic.Value // string: the TCP listener's port, once serving
	udp    net.PacketConn
}

// setupTLS opens the certificate store and loads the certificates. It
// returns nil when -https is not set.
func setupTLS(ctx context.Context, o *tlsOptions, cacheDir string, reg prometheus.Registerer, log *slog.Logger) (*tlsSide, error) {
	if o.httpsAddr == "" {
		return nil, nil
	}
	t := &tlsSide{o: o, log: log, certs: &edgetls.Certificates{}}
	if len(o.tlsCerts) > 0 {
		var pairs []edgetls.KeyPair
		for i := range o.tlsCerts {
			pairs = append(pairs, edgetls.KeyPair{CertFile: o.tlsCerts[i], KeyFile: o.tlsKeys[i]})
		}
		s, err := edgetls.NewStatic(pairs, log)
		if err != nil {
			return nil, err
		}
		t.certs.Static = s
	}
	if domains := splitList(o.domains); len(domains) > 0 {
		spec := o.certCache
		if spec == "" {
			spec = "dir:" + filepath.Join(cacheDir, "certs")
		}
		st, err := store.Open(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("-cert-cache: %w", err)
		}
		client := http.DefaultClient
		if o.acmeCARoots != "" {
			pem, err := os.ReadFile(o.acmeCARoots)
			if err != nil {
				return nil, fmt.Errorf("-acme-ca-roots: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-acme-ca-roots %s: no PEM certificate", o.acmeCARoots)
			}
			client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: http.ProxyFromEnvironment}}
		}
		a, err := edgetls.NewACME(edgetls.ACMEConfig{Directory: o.acmeDirectory, Email: o.acmeEmail, Domains: domains, Store: st, HTTPClient: client, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-domains: %w", err)
		}
		t.certs.ACME = a
	}
	if o.ticketKeys != "" {
		cfg := edgetls.TicketsConfig{Logger: log}
		if path, ok := strings.CutPrefix(o.ticketKeys, "file:"); ok {
			cfg.File = path
		} else {
			st, err := store.Open(ctx, o.ticketKeys)
			if err != nil {
				return nil, fmt.Errorf("-ticket-keys: %w", err)
			}
			cfg.Store = st
		}
		tk, err := edgetls.NewTickets(cfg)
		if err != nil {
			return nil, fmt.Errorf("-ticket-keys: %w", err)
		}
		t.tickets = tk
	}
	if err := t.certs.Register(reg); err != nil {
		return nil, err
	}
	t.handshakeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edge_tls_handshake_errors_total",
		Help: "TLS handshakes that failed: unknown or no SNI, malformed ClientHello, plain HTTP on the TLS port, clients that stalled.",
	})
	if err := reg.Register(t.handshakeErrors); err != nil {
		return nil, err
	}
	t.tooEarly = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edge_http3_too_early_total",
		Help: "Requests with an unsafe method (POST, PUT, ...) that arrived in HTTP/3 0-RTT early data, answered 425 Too Early.",
	})
	if err := reg.Register(t.tooEarly); err != nil {
		return nil, err
	}
	t.config = edgetls.ServerConfig(t.certs.GetCertificate)
	if t.tickets != nil {
		t.tickets.Apply(t.config)
	}
	return t, nil
}

// component reports each certificate and the ticket keys on
// /healthz?verbose.
func (t *tlsSide) component() edge.Component { return tlsComponent{t} }

type tlsComponent struct{ t *tlsSide }

func (c tlsComponent) Health() []edge.ComponentHealth {
	var out []edge.ComponentHealth
	now := time.Now()
	for _, s := range c.t.certs.Status() {
		h := edge.ComponentHealth{Name: "certificate " + s.Name, OK: !s.NotAfter.IsZero() && now.Before(s.NotAfter) && s.Err == ""}
		if s.NotAfter.IsZero() {
			h.Detail = "none yet (" + s.Source + ")"
		} else {
			h.Detail = fmt.Sprintf("%s, expires %s (in %s)", s.Source, s.NotAfter.UTC().Format(time.RFC3339), s.NotAfter.Sub(now).Round(time.Minute))
			if !s.RenewAt.IsZero() {
				h.Detail += ", renews " + s.RenewAt.UTC().Format(time.RFC3339)
			}
		}
		if s.Err != "" {
			h.Detail += "; last attempt failed: " + s.Err
		}
		out = append(out, h)
	}
	if c.t.tickets != nil {
		ok, d := c.t.tickets.Status()
		out = append(out, edge.ComponentHealth{Name: "session-ticket keys", OK: ok, Detail: d})
	}
	return out
}

// plainHandler is the handler of the plain-HTTP listener: ACME HTTP-01
// challenges first, then, with -redirect-https, 308 to HTTPS for all but
// /healthz.
func (t *tlsSide) plainHandler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	next := h
	if t.o.redirectHTTPS {
		next = redirectHTTPS(h, t.httpsPort)
	}
	if t.certs.ACME != nil {
		next = t.certs.ACME.HTTPHandler(next)
	}
	return next
}

// redirectHTTPS answers 308 to the same URL over HTTPS, except /healthz
// (load balancers and dnsgeo probe it over plain HTTP). The port of
// httpsAddr is added only when the request's Host carried a port: behind
// a port mapping (443 outside, 8443 inside) browsers send none.
func redirectHTTPS(h http.Handler, httpsPort func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if hp, _, err := net.SplitHostPort(host); err == nil {
			host = hp
			if port := httpsPort(); port != "443" {
				host = net.JoinHostPort(hp, port)
			}
		}
		if host == "" {
			http.Error(w, "missing Host", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// secureHeaders adds Strict-Transport-Security (maxAge > 0) and Alt-Svc
// (altSvc != "") to every response, before h writes its own headers.
func secureHeaders(h http.Handler, maxAge time.Duration, altSvc string) http.Handler {
	if maxAge <= 0 && altSvc == "" {
		return h
	}
	hsts := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if maxAge > 0 {
			w.Header().Set("Strict-Transport-Security", hsts)
		}
		if altSvc != "" {
			w.Header().Set("Alt-Svc", altSvc)
		}
		h.ServeHTTP(w, r)
	})
}

// refuseEarlyData answers 425 Too Early (RFC 8470) to a request with an
// unsafe method that arrived in 0-RTT early data, before the handshake
// completed: anyone who saw those packets can replay them, to this edge or
// (the ticket keys being shared) to another. The client sends it again
// once the handshake is done. Safe methods are served: replaying a GET
// changes nothing, and 0-RTT saves a returning browser a round trip.
func refuseEarlyData(h http.Handler, refused prometheus.Counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && !r.TLS.HandshakeComplete {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
			default:
				refused.Inc()
				http.Error(w, "425 too early: send the request again once the handshake is complete", http.StatusTooEarly)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// handshakeLog receives net/http's ErrorLog lines for the HTTPS server:
// failed handshakes (scanners, bad clients) are counted and logged at
// debug level; anything else is a warning.
type handshakeLog struct {
	log    *slog.Logger
	errors prometheus.Counter
}

func (l handshakeLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		l.errors.Inc()
		l.log.Debug("tls: handshake failed", "err", msg)
	} else {
		l.log.Warn("https: " + msg)
	}
	return len(p), nil
}

// newHTTPSServer is the HTTPS server for h with the given handshake
// timeout (tests shorten it).
func newHTTPSServer(h http.Handler, hl handshakeLog, timeout time.Duration) *http.Server {
	srv := &http.Server{
		Handler: h,
		// net/http bounds the handshake by the smallest of these.
		ReadHeaderTimeout: timeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(hl, "", 0),
		// "OPTIONS *" reaches the handler (405) instead of net/http's 200.
		DisableGeneralOptionsHandler: true,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	return srv
}

// serve starts the HTTPS (and HTTP/3) listeners for h and the
// certificate and ticket-key loops. A listener that fails later sends its
// error on errc.
func (t *tlsSide) serve(ctx context.Context, h http.Handler, errc chan<- error) error {
	if t == nil {
		return nil
	}
	ln, err := net.Listen("tcp", t.o.httpsAddr)
	if err != nil {
		return fmt.Errorf("-https: %w", err)
	}
	t.addr = ln.Addr()
	t.port.Store(strconv.Itoa(t.addr.(*net.TCPAddr).Port))
	altSvc := ""
	if t.o.http3 {
		// The same port as the TCP listener (which may have been :0).
		udpAddr := net.JoinHostPort(hostOf(t.o.httpsAddr), strconv.Itoa(t.addr.(*net.TCPAddr).Port))
		if t.udp, err = net.ListenPacket("udp", udpAddr); err != nil {
			ln.Close()
			return fmt.Errorf("-http3: %w", err)
		}
		advertised := t.addr.(*net.TCPAddr).Port
		if t.o.altSvcPort != 0 {
			advertised = t.o.altSvcPort
		}
		altSvc = fmt.Sprintf(`h3=":%d"; ma=86400`, advertised)
		t.h3 = &http3.Server{
			Handler: secureHeaders(refuseEarlyData(h, t.tooEarly), t.o.hstsMaxAge, ""),
			Logger:  t.log, // handler panics; per-request lines are debug
			// As for HTTPS (newHTTPSServer): quic-go would read heads
			// of up to 1 MiB, and keep a connection without requests open
			// for as long as the client keeps QUIC alive.
			MaxHeaderBytes: maxHeaderBytes,
			IdleTimeout:    2 * time.Minute,
			// http3 clones the config it is given once, when it starts:
			// before -ticket-keys are loaded, and never again at a
			// rotation, so QUIC sessions would resume on this edge only.
			// Handing it t.config per handshake keeps the keys in force.
			TLSConfig: &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.config, nil }},
		}
	}
	hl := handshakeLog{log: t.log, errors: t.handshakeErrors}
	t.srv = newHTTPSServer(secureHeaders(h, t.o.hstsMaxAge, altSvc), hl, handshakeTimeout)
	t.ctx, t.cancel = context.WithCancel(ctx)
	if t.tickets != nil {
		// The region's keys before the first handshake: a session issued
		// under this process's own keys would resume on this edge only.
		// A store that does not answer in time delays the start no
		// further; Run keeps trying, and /healthz?verbose says so. Check
		// logs its own failures.
		cctx, cancel := context.WithTimeout(t.ctx, ticketKeysAtStart)
		_ = t.tickets.Check(cctx)
		cancel()
	}
	go func() { errc <- t.srv.Serve(tls.NewListener(ln, t.config)) }()
	if t.h3 != nil {
		go func() { errc <- t.h3.Serve(t.udp) }()
	}
	if t.certs.ACME != nil {
		go t.certs.ACME.Run(t.ctx, nil)
	}
	if t.tickets != nil {
		go t.tickets.Run(t.ctx, nil)
	}
	if t.certs.Static != nil {
		go t.certs.Static.Watch(t.ctx.Done(), nil)
	}
	return nil
}

// reload re-reads static certificates and ticket keys (SIGHUP). What
// was loaded before stays in use where it fails.
func (t *tlsSide) reload() error {
	var errs []error
	if t.certs.Static != nil {
		errs = append(errs, t.certs.Static.Reload())
	}
	if t.tickets != nil {
		errs = append(errs, t.tickets.Check(t.ctx))
	}
	return errors.Join(errs...)
}

// httpsPort is the HTTPS listener's port: as bound once serving (-https
// may say :0), else as given.
func (t *tlsSide) httpsPort() string {
	if p, ok := t.port.Load().(string); ok {
		return p
	}
	_, port, _ := net.SplitHostPort(t.o.httpsAddr)
	return port
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// shutdown stops the listeners, letting in-flight requests finish until
// ctx is done.
func (t *tlsSide) shutdown(ctx context.Context) {
	if t == nil || t.srv == nil {
		return
	}
	t.cancel()
	var wg sync.WaitGroup
	if t.h3 != nil {
		// Beside HTTPS, not before it: HTTP/3 waits for each client to
		// close its connection after GOAWAY, and one that vanished holds
		// it until its idle timeout; that must not use up the time of
		// HTTPS requests in flight.
		wg.Go(func() {
			if err := t.h3.Shutdown(ctx); err != nil {
				t.log.Warn("edge: HTTP/3 connections cut off", "err", err)
			}
			t.udp.Close() // the server has stopped reading it: nothing to report
		})
	}
	if err := t.srv.Shutdown(ctx); err != nil {
		t.log.Warn("edge: in-flight HTTPS requests cut off", "err", err)
	}
	wg.Wait()
}
