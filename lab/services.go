package lab

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Buckets on the S3 server.
const (
	bucketPrimary = "primary" // the objects, as the edges' first origin
	bucketReplica = "replica" // the same objects, the edges' second origin
	bucketControl = "control" // certificates, ticket keys, the purge journal
	sitePrefix    = "site"    // the objects' prefix in both buckets
	s3Region      = "us-east-1"
	s3AccessKey   = "edgelab"
)

// versity is the S3 server (versitygw, posix backend).
type versity struct {
	*proc
	addr   netip.AddrPort
	secret string
	client *s3.Client
}

func startVersity(ctx context.Context, ps *procs, bin, dir string, addr netip.AddrPort) (*versity, error) {
	v := &versity{addr: addr, secret: rand.Text()}
	data := filepath.Join(dir, "s3")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	v.proc = ps.add(&proc{name: "versitygw", bin: bin, logPath: filepath.Join(dir, "logs", "versitygw.log"),
		args: []string{"--access", s3AccessKey, "--secret", v.secret, "--region", s3Region, "--port", addr.String(), "--keep-alive", "--quiet", "posix", data},
		env:  childEnv()})
	v.client = s3.New(s3.Options{
		BaseEndpoint:               aws.String(v.endpoint()),
		UsePathStyle:               true,
		Region:                     s3Region,
		Credentials:                credentials.NewStaticCredentialsProvider(s3AccessKey, v.secret, ""),
		RetryMaxAttempts:           3,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	if err := v.start(); err != nil {
		return nil, err
	}
	err := waitFor(ctx, 20*time.Second, func() error {
		if err := v.exited(); err != nil {
			return stop(err)
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := v.client.ListBuckets(c, &s3.ListBucketsInput{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("versitygw on %s: %w", addr, err)
	}
	for _, b := range []string{bucketPrimary, bucketReplica, bucketControl} {
		if _, err := v.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return nil, fmt.Errorf("creating bucket %s: %w", b, err)
		}
	}
	return v, nil
}

func (v *versity) endpoint() string { return "http://" + v.addr.String() }

// env is what a program needs to sign its S3 requests.
func (v *versity) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s3AccessKey, "AWS_SECRET_ACCESS_KEY=" + v.secret, "AWS_REGION=" + s3Region, "AWS_EC2_METADATA_DISABLED=true"}
}

// url is an s3:// URL (as -origin, -purge-journal and --origin take)
// for bucket/prefix through endpoint.
func s3URL(bucket, prefix, endpoint string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + endpoint + "&path_style=true&region=" + s3Region
}

// put stores an object in bucket.
func (v *versity) put(ctx context.Context, bucket, key string, body []byte, contentType, cacheControl, tags string) error {
	_, err := v.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType),
		CacheControl:  aws.String(cacheControl),
		Metadata:      map[string]string{"surrogate-key": tags},
	})
	if err != nil {
		return fmt.Errorf("uploading s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// deletePrefix deletes every object of bucket under prefix.
func (v *versity) deletePrefix(ctx context.Context, bucket, prefix string) error {
	p := s3.NewListObjectsV2Paginator(v.client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if _, err := v.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
				return fmt.Errorf("deleting s3://%s/%s: %w", bucket, aws.ToString(o.Key), err)
			}
		}
	}
	return nil
}

// pebble is the ACME CA (Pebble), with validations always passing: the
// orders, finalizations, certificates and the edges' shared store are
// real; the HTTP-01 round trip to an edge is what is left out.
type pebble struct {
	*proc
	dir, mgmt netip.AddrPort
	caFile    string         // trusts Pebble's own HTTPS (-acme-ca-roots)
	client    *http.Client   // trusts it too
	roots     *x509.CertPool // the root of the certificates Pebble issues (what browsers trust)
	rootsFile string
}

func startPebble(ctx context.Context, ps *procs, bin, dir string, core netip.Addr, ports func() (int, error)) (*pebble, error) {
	p := &pebble{}
	pd := filepath.Join(dir, "pebble")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		return nil, err
	}
	// Pebble's own HTTPS certificate, from a CA made for this run.
	caPEM, certPEM, keyPEM, err := makeCA(core)
	if err != nil {
		return nil, err
	}
	p.caFile = filepath.Join(pd, "ca.pem")
	for name, b := range map[string][]byte{"ca.pem": caPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(pd, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	a, err := ports()
	if err != nil {
		return nil, err
	}
	m, err := ports()
	if err != nil {
		return nil, err
	}
	p.dir, p.mgmt = netip.AddrPortFrom(core, uint16(a)), netip.AddrPortFrom(core, uint16(m))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  p.dir.String(),
		"managementListenAddress":        p.mgmt.String(),
		"certificate":                    filepath.Join(pd, "cert.pem"),
		"privateKey":                     filepath.Join(pd, "key.pem"),
		"httpPort":                       5002,
		"tlsPort":                        5001,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles":                       map[string]any{"default": map[string]any{"description": "edge-lab"}},
	}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(pd, "pebble.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	p.proc = ps.add(&proc{name: "pebble", bin: bin, args: []string{"-config", cfgPath, "-strict=false"},
		logPath: filepath.Join(dir, "logs", "pebble.log"),
		env:     childEnv("PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")})
	if err := p.start(); err != nil {
		return nil, err
	}
	err = waitFor(ctx, 20*time.Second, func() error {
		if err := p.exited(); err != nil {
			return stop(err)
		}
		resp, err := p.client.Get("https://" + p.dir.String() + "/dir")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("directory: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebble: %w", err)
	}
	// The root Pebble issues under: browsers and dnsgeo's probes trust it.
	resp, err := p.client.Get("https://" + p.mgmt.String() + "/roots/0")
	if err != nil {
		return nil, fmt.Errorf("pebble: fetching its issuing root: %w", err)
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("pebble: fetching its issuing root: %v %s", err, resp.Status)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(rb) {
		return nil, fmt.Errorf("pebble: the issuing root is not PEM")
	}
	p.rootsFile = filepath.Join(pd, "issuer-root.pem")
	return p, os.WriteFile(p.rootsFile, rb, 0o644)
}

// directory is the ACME directory URL.
func (p *pebble) directory() string { return "https://" + p.dir.String() + "/dir" }

// orders counts the new orders Pebble accepted, from its log: counted at
// the CA, not by the edges.
func (p *pebble) orders() int {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Count(b, []byte("Added order "))
}

// makeCA returns a CA certificate and a certificate and key for Pebble's
// HTTPS on addr, in PEM.
func makeCA(addr netip.Addr) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "edge-lab CA for Pebble's own HTTPS"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "pebble"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "pebble"},
		IPAddresses:  []net.IP{addr.AsSlice()},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// freePort returns a TCP port free on addr a moment ago.
func freePort(addr netip.Addr) (int, error) {
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return strconv.Atoi(p)
}

// stopError ends waitFor at once.
type stopError struct{ error }

func stop(err error) error { return stopError{err} }

// waitFor calls f until it returns nil, a stop error, or timeout (or
// ctx) ends: the lab's one way of waiting for a process to be ready.
func waitFor(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if s, ok := err.(stopError); ok {
			return s.error
		}
		select {
		case <-ctx.Done():
			if strings.TrimSpace(err.Error()) == "" {
				return ctx.Err()
			}
			return fmt.Errorf("%w (after %s)", err, timeout)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}
