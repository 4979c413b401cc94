package tls

import (
	"crypto/tls"
	"slices"
)

// TLS 1.2 cipher suites the server accepts: ECDHE key exchange with an
// AEAD only (no CBC, no RSA key exchange), the set Mozilla's
// "intermediate" configuration recommends. TLS 1.3's suites are all AEAD
// and not configurable in Go.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 suites ServerConfig allows, for
// callers that must match them (the benchmark's nginx).
func CipherSuites() []uint16 { return slices.Clone(cipherSuites) }

// ServerConfig returns the listener's configuration: TLS 1.2 and 1.3
// only, the suites above, ALPN h2 and http/1.1 (and acme-tls/1, answered
// by getCert with a challenge certificate), certificates from getCert.
// Session tickets are on; set shared keys with Tickets.Apply.
func ServerConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   slices.Clone(cipherSuites),
		NextProtos:     []string{"h2", "http/1.1", ACMETLS1Protocol},
		GetCertificate: getCert,
	}
}

// ACMETLS1Protocol is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737).
const ACMETLS1Protocol = "acme-tls/1"
