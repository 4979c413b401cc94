package tls

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/edgecdn/edge/store"
	"golang.org/x/crypto/acme/autocert"
)

// Cache is an autocert.Cache on a store: the certificate cache every edge
// shares. Keys and values are autocert's (a certificate under its domain
// name, as PEM: the private key, then the chain; the ACME account key
// under "acme_account+key"), so an autocert.Manager could use the same
// store. Get answers autocert.ErrCacheMiss only for a key that is not
// there; a store that cannot be reached is an error.
type Cache struct{ Store store.Store }

var _ autocert.Cache = Cache{}

func (c Cache) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.Store.Get(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, autocert.ErrCacheMiss
	}
	return b, err
}

func (c Cache) Put(ctx context.Context, key string, data []byte) error {
	return c.Store.Put(ctx, key, data)
}

func (c Cache) Delete(ctx context.Context, key string) error { return c.Store.Delete(ctx, key) }

// accountKey is autocert's cache key of the ACME account key.
const accountKey = "acme_account+key"

// tokenKey and alpnKey are autocert's cache keys of challenge answers.
func httpTokenKey(token string) string { return token + "+http-01" }
func alpnKey(name string) string       { return name + "+token" }

// encodeCert returns c as autocert stores it: the private key, then the
// chain, in PEM. The key never goes anywhere else (no log, no error).
func encodeCert(c *tls.Certificate) ([]byte, error) {
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", c.PrivateKey)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	for _, b := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b})...)
	}
	return out, nil
}

// decodeCert parses what encodeCert wrote (or autocert, or an operator:
// any PEM private key block and certificate blocks) and checks that the
// leaf matches the key. Errors never quote the key.
func decodeCert(b []byte) (*tls.Certificate, error) {
	var keyDER []byte
	var certs [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch {
		case blk.Type == "CERTIFICATE":
			certs = append(certs, blk.Bytes)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY"):
			if keyDER != nil {
				return nil, errors.New("more than one private key")
			}
			keyDER = blk.Bytes
		}
	}
	if keyDER == nil {
		return nil, errors.New("no private key")
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	cert, err := tls.X509KeyPair(
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0]}),
		pem.EncodeToMemory(&pem.Block{Type: pemKeyType(keyDER), Bytes: keyDER}))
	if err != nil {
		return nil, err
	}
	cert.Certificate = certs
	return &cert, nil
}

// pemKeyType names the PEM block a DER key parses as, so that
// tls.X509KeyPair accepts it.
func pemKeyType(der []byte) string {
	if _, err := x509.ParseECPrivateKey(der); err == nil {
		return "EC PRIVATE KEY"
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return "RSA PRIVATE KEY"
	}
	return "PRIVATE KEY"
}
