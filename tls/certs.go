package tls

import (
	"crypto/tls"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// Certificates chooses the certificate for each handshake: a static
// certificate whose names match the SNI, else ACME's for its domains (a
// TLS-ALPN-01 challenge goes to ACME first). A client that sends no SNI
// gets the first static certificate, else the first ACME domain's. Any
// other name fails the handshake: nothing but ACME's own domains ever
// starts an order. An IP address as SNI counts as none. Either part may
// be nil.
type Certificates struct {
	Static *Static
	ACME   *ACME
}

// GetCertificate is a tls.Config.GetCertificate.
func (c *Certificates) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name, err := normalizeName(hello.ServerName)
	if err != nil {
		return nil, errUnknownName
	}
	if net.ParseIP(name) != nil {
		// RFC 6066 §3 forbids IP literals in SNI, but OpenSSL clients
		// connecting to an address send one: that is no SNI.
		name = ""
	}
	isChallenge := len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ACMETLS1Protocol
	if c.ACME != nil && isChallenge {
		return c.ACME.GetCertificate(hello)
	}
	if name == "" {
		if c.Static != nil {
			if cert := c.Static.first(); cert != nil {
				return cert, nil
			}
		}
		if c.ACME != nil {
			if cert := c.ACME.Certificate(c.ACME.domains[0]); cert != nil {
				return cert, nil
			}
		}
		return nil, errUnknownName
	}
	if c.Static != nil {
		if cert := c.Static.certificate(name); cert != nil {
			return cert, nil
		}
	}
	if c.ACME != nil && c.ACME.allowed(name) {
		return c.ACME.GetCertificate(hello)
	}
	return nil, errUnknownName
}

// Status returns every certificate's state, static ones first.
func (c *Certificates) Status() []CertStatus {
	var out []CertStatus
	if c.Static != nil {
		out = append(out, c.Static.Status()...)
	}
	if c.ACME != nil {
		out = append(out, c.ACME.Status()...)
	}
	return out
}

var expiryDesc = prometheus.NewDesc("edge_tls_certificate_expiry_seconds",
	"When each certificate the edge serves expires (NotAfter), in seconds since the Unix epoch; absent while a name has none.",
	[]string{"name"}, nil)

// Register adds edge_tls_certificate_expiry_seconds{name} and
// edge_tls_renewal_failures_total{name} to reg.
func (c *Certificates) Register(reg prometheus.Registerer) error {
	if err := reg.Register(expiryCollector{c}); err != nil {
		return err
	}
	if c.ACME != nil {
		return reg.Register(c.ACME.failures)
	}
	return nil
}

type expiryCollector struct{ c *Certificates }

func (e expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (e expiryCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, s := range e.c.Status() {
		if s.NotAfter.IsZero() || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(s.NotAfter.Unix()), s.Name)
	}
}
