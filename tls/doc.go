// Package tls gives the edge its certificates and its TLS configuration:
// certificates from ACME (Let's Encrypt) for the names the operator lists,
// shared by every edge through one store (package store), static
// certificate files reloaded when they change, and session-ticket keys
// shared by the edges of a region so that a session started on one edge
// resumes on another.
//
// Import it as edgetls beside crypto/tls.
//
// How a certificate is obtained. At start, and then every minute, ACME
// checks each name it manages: a certificate in memory that is not due
// for renewal is kept; else it looks in the store, where another edge may
// have put a newer one; else it takes the name's lease in the store (a
// conditional create, so one edge of many wins), looks once more, orders
// the certificate from the CA, answers the CA's challenge (TLS-ALPN-01 on
// the HTTPS listener or HTTP-01 on the HTTP listener; the challenge
// answers are put in the store too, so whichever edge the CA reaches can
// answer), writes the result to the store and releases the lease. The
// edges that lost the lease wait for the result in the store. A
// certificate is due for renewal when a third of its lifetime remains
// (two days of a six-day certificate, thirty of ninety).
//
// Why not autocert's Manager: it renews a fixed 30 days before expiry
// (which renews six-day certificates in a loop), orders from every edge
// at once, and runs on timers a test cannot drive. Its storage format
// and key names are kept (the store is an autocert.Cache: see Cache), and
// the protocol is golang.org/x/crypto/acme's.
//
// Nothing but a name in the list ever starts an order: a handshake for
// another name, or none, is answered from what is there or fails.
package tls
