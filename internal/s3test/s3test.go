// Package s3test runs a real S3-compatible server (versitygw with its posix
// backend) for tests, so that S3 code is tested against S3 semantics over
// real HTTP rather than against a mock.
//
// A test calls Start, creates buckets and objects through the Server, and
// points the code under test at OriginURL or Endpoint:
//
//	srv := s3test.Start(t)
//	srv.CreateBucket(t, "site")
//	srv.Put(t, "site", "app/widget.js", body, s3test.PutOptions{ContentType: "text/javascript"})
//	o, err := origin.Parse(ctx, srv.OriginURL("site", "app"))
//
// The binary is <module root>/bin/versitygw (install it with `make tools`,
// i.e. scripts/install-tools.sh) or the file named by $VERSITYGW.
// EDGE_SKIP_S3=1 skips such tests instead of failing them.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the server's region.
const Region = "us-east-1"

// accessKey is the root user's access key. The secret is random per
// Server, so that a client of one Server can never be served by another
// that happens to hold the same port.
const accessKey = "edgetest"

const (
	readyTimeout = 20 * time.Second
	startTries   = 3 // fresh ports to try when the chosen one is taken
)

// Server is a running versitygw. Its methods are safe for concurrent use,
// but Stop and Restart must not race with requests a test expects to work.
type Server struct {
	bin     string
	secret  string
	dataDir string
	logPath string
	addr    string // 127.0.0.1:PORT, fixed for the Server's life
	client  *s3.Client

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd.Wait returns
	err  error         // cmd.Wait's result, valid after done
}

// Start starts versitygw on a free loopback port with an empty data
// directory, waits until it answers ListBuckets, and registers a cleanup
// that kills it.
//
// Start also sets, with t.Setenv, AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY to the server's root credentials (the secret is
// random per Server), empties
// AWS_SESSION_TOKEN and AWS_PROFILE, and sets AWS_EC2_METADATA_DISABLED=true,
// so that code which loads credentials from the SDK's default chain (the S3
// origin) reaches this server and never probes instance metadata. Because of
// t.Setenv, Start cannot be used in parallel tests or their parents.
//
// Start fails the test when the binary is missing, unless EDGE_SKIP_S3=1.
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Getenv("EDGE_SKIP_S3") == "1" {
		t.Skip("EDGE_SKIP_S3=1: skipping test that needs versitygw")
	}
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("s3test: %v; run `make tools` (scripts/install-tools.sh) or set $VERSITYGW", err)
	}
	secret := rand.Text()
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	dir := t.TempDir()
	s := &Server{
		bin:     bin,
		secret:  secret,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(s.dataDir, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(s.Stop)

	var lastErr error
	for range startTries {
		s.addr, err = freePort()
		if err != nil {
			t.Fatalf("s3test: picking a port: %v", err)
		}
		s.client = newClient("http://"+s.addr, s.secret)
		if lastErr = s.start(); lastErr == nil {
			return s
		}
		s.Stop()
		if !s.portTaken() {
			break
		}
	}
	t.Fatalf("s3test: starting %s: %v\n%s", bin, lastErr, s.logTail())
	return nil
}

// findBinary returns $VERSITYGW, or <module root>/bin/versitygw.
func findBinary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$VERSITYGW: %w", err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not found: %w", err)
	}
	return p, nil
}

// moduleRoot walks up from the working directory (a test's package
// directory) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort returns a loopback address that was free a moment ago. Another
// process may take it before versitygw binds it; Start then tries again.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// portTaken reports whether the log says the listen address was in use.
func (s *Server) portTaken() bool {
	return strings.Contains(s.logTail(), "address already in use")
}

// start runs the binary and waits for it to be ready.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.bin,
		"--access", accessKey,
		"--secret", s.secret,
		"--region", Region,
		"--port", s.addr,
		"--keep-alive",
		"--quiet",
		"posix", s.dataDir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return s.waitReady(p)
}

// waitReady polls ListBuckets until it succeeds, the process exits, or
// readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		reqCtx, reqCancel := context.WithTimeout(ctx, time.Second)
		_, err := s.client.ListBuckets(reqCtx, &s3.ListBucketsInput{})
		reqCancel()
		if err == nil {
			return nil
		}
		timer := time.NewTimer(backoff)
		select {
		case <-p.done:
			timer.Stop()
			return fmt.Errorf("versitygw exited before it was ready: %v", p.err)
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("versitygw not ready after %v: %w", readyTimeout, err)
		case <-timer.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// Stop kills the server (its whole process group) and waits for it to exit.
// The data directory and the address are kept for Restart. Stop on a
// stopped Server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	killProcessGroup(p.cmd)
	<-p.done
}

// Restart starts a stopped server again, on the same address and with the
// same data, and waits until it is ready. On a running server it stops it
// first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.Stop()
		t.Fatalf("s3test: restarting versitygw on %s: %v\n%s", s.addr, err, s.logTail())
	}
}

// Endpoint returns the server's URL, "http://127.0.0.1:PORT".
func (s *Server) Endpoint() string { return "http://" + s.addr }

// OriginURL returns the origin spec for bucket and prefix on this server:
// "s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:PORT&path_style=true&region=us-east-1".
// prefix may be empty.
func (s *Server) OriginURL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + s.Endpoint() + "&path_style=true&region=" + Region
}

// Client returns an S3 client for the server: path style, the root
// credentials (static, not from the environment), region us-east-1.
func (s *Server) Client() *s3.Client { return s.client }

func newClient(endpoint, secret string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secret, ""),
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.DisableCompression = true
		}),
		RetryMaxAttempts: 1,
		// Plain CRC32 headers rather than aws-chunked trailers: simpler
		// on the wire, and what every S3-compatible server understands.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates bucket.
func (s *Server) CreateBucket(t testing.TB, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("s3test: create bucket %q: %v", bucket, err)
	}
}

// PutOptions are the stored headers of an object; zero fields are not sent.
type PutOptions struct {
	ContentType     string
	ContentEncoding string
	CacheControl    string
	// Metadata is user metadata, sent as x-amz-meta-NAME headers
	// ("surrogate-key": "release-42 tenants").
	Metadata map[string]string
}

// Put stores body under bucket/key and returns the object's ETag as the
// server reports it (quoted).
func (s *Server) Put(t testing.TB, bucket, key string, body []byte, opts PutOptions) string {
	t.Helper()
	in := &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		// A bytes.Reader: the SDK needs a seekable body to sign the
		// payload over plain HTTP.
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	if opts.ContentEncoding != "" {
		in.ContentEncoding = aws.String(opts.ContentEncoding)
	}
	if opts.CacheControl != "" {
		in.CacheControl = aws.String(opts.CacheControl)
	}
	if len(opts.Metadata) > 0 {
		in.Metadata = opts.Metadata
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		t.Fatalf("s3test: put %s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.ETag)
}

// logTail returns the end of the server's output, for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no versitygw output: " + err.Error() + ")"
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "versitygw output (last " + strconv.Itoa(len(b)) + " bytes):\n" + string(b)
}
