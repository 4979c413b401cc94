package tls

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// KeyPair names one static certificate: a PEM chain and its key.
type KeyPair struct{ CertFile, KeyFile string }

// Static holds certificates from files (-tls-cert, -tls-key), chosen by
// SNI, and reloads them when the files change (Check) or on demand
// (Reload, on SIGHUP). A file that is missing or bad keeps the
// certificate loaded before and logs the error, so a half-finished
// deployment of new files never takes HTTPS down. Safe for concurrent
// use.
type Static struct {
	log *slog.Logger

	mu    sync.Mutex
	pairs []staticPair
}

type staticPair struct {
	KeyPair
	cert      *tls.Certificate // nil until a load succeeds
	certBytes []byte           // as loaded, to see changes
	keyBytes  []byte
	err       string // the last load's failure
}

// NewStatic loads pairs. Unlike a reload, a bad file at start is an
// error: there is no previous certificate to keep.
func NewStatic(pairs []KeyPair, log *slog.Logger) (*Static, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Static{log: log}
	for _, p := range pairs {
		sp := staticPair{KeyPair: p}
		if err := sp.load(); err != nil {
			return nil, err
		}
		s.pairs = append(s.pairs, sp)
	}
	return s, nil
}

// load reads the files, and replaces the certificate if they changed and
// parse. It returns an error naming the files (never the key's bytes).
func (p *staticPair) load() error {
	cb, err := os.ReadFile(p.CertFile)
	if err != nil {
		return fmt.Errorf("-tls-cert %s: %w", p.CertFile, err)
	}
	kb, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return fmt.Errorf("-tls-key %s: %w", p.KeyFile, err)
	}
	if p.cert != nil && bytes.Equal(cb, p.certBytes) && bytes.Equal(kb, p.keyBytes) {
		return nil
	}
	c, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return fmt.Errorf("-tls-cert %s, -tls-key %s: %w", p.CertFile, p.KeyFile, err)
	}
	if len(c.Leaf.DNSNames) == 0 && len(c.Leaf.IPAddresses) == 0 {
		return fmt.Errorf("-tls-cert %s: the certificate names no DNS name or IP address", p.CertFile)
	}
	p.cert, p.certBytes, p.keyBytes = &c, cb, kb
	return nil
}

// Reload reads every pair's files again and takes those that changed and
// are good. It returns the errors of the others, which keep their
// certificate; each is also logged.
func (s *Static) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i := range s.pairs {
		p := &s.pairs[i]
		before := p.cert
		if err := p.load(); err != nil {
			if p.err != err.Error() {
				s.log.Error("tls: static certificate not reloaded; keeping the one loaded before", "cert", p.CertFile, "err", err)
			}
			p.err = err.Error()
			errs = append(errs, err)
			continue
		}
		p.err = ""
		if p.cert != before {
			s.log.Info("tls: static certificate reloaded", "cert", p.CertFile, "names", p.cert.Leaf.DNSNames, "not_after", p.cert.Leaf.NotAfter.UTC())
		}
	}
	return errors.Join(errs...)
}

// Watch reloads at each tick (nil means every 10 seconds) until stop is
// closed.
func (s *Static) Watch(stop <-chan struct{}, tick <-chan time.Time) {
	if tick == nil {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-tick:
			_ = s.Reload()
		}
	}
}

// certificate returns the first certificate valid for name (exact, or a
// wildcard), or nil.
func (s *Static) certificate(name string) *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pairs {
		if p.cert != nil && p.cert.Leaf.VerifyHostname(name) == nil {
			return p.cert
		}
	}
	return nil
}

// first returns the first pair's certificate, for clients that send no
// SNI.
func (s *Static) first() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pairs) == 0 {
		return nil
	}
	return s.pairs[0].cert
}

// Status returns the state of each static certificate.
func (s *Static) Status() []CertStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CertStatus
	for _, p := range s.pairs {
		st := CertStatus{Name: p.CertFile, Source: "static " + p.CertFile, Err: p.err}
		if p.cert != nil {
			st.NotAfter = p.cert.Leaf.NotAfter
			if len(p.cert.Leaf.DNSNames) > 0 {
				st.Name = p.cert.Leaf.DNSNames[0]
			}
		}
		out = append(out, st)
	}
	return out
}
