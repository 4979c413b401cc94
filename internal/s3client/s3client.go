// Package s3client turns an s3:// URL into a configured aws-sdk-go-v2 S3
// client, a bucket and a key prefix. The origin (objects to serve) and the
// store (certificates, ticket keys, the purge journal) both name their
// bucket this way, so the URL syntax, its query options, the timeouts and
// the error messages are the same for -origin, -cert-cache and
// -ticket-keys:
//
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=D&header_timeout=D]
package s3client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Timeouts and pool sizes of the HTTP client that talks to S3. They bound
// how long a dead or unreachable endpoint can hold a request; a slow body
// is bounded by the caller's ctx instead. The dial and response-header
// timeouts are defaults that the URL can override (connect_timeout=,
// header_timeout=).
const (
	DefaultDialTimeout           = 2 * time.Second
	TLSHandshakeTimeout          = 3 * time.Second
	DefaultResponseHeaderTimeout = 5 * time.Second
	IdleConnTimeout              = 90 * time.Second
	MaxIdleConnsPerHost          = 64
	MaxIdleConns                 = 256
	// MaxAttempts counts the first try: the SDK does not retry. Callers
	// retry with their own bounded backoff (the origin's Failover moves
	// on to the next origin); retries stacked inside would multiply
	// tries and delay failover.
	MaxAttempts = 1
)

// Bucket is a client bound to one bucket and key prefix.
type Bucket struct {
	Client *s3.Client
	Bucket string
	Prefix string // no leading or trailing slash; "" for the whole bucket
}

// Name returns "s3://BUCKET[/PREFIX]", without the query.
func (b *Bucket) Name() string {
	if b.Prefix == "" {
		return "s3://" + b.Bucket
	}
	return "s3://" + b.Bucket + "/" + b.Prefix
}

// Key maps a name relative to the prefix to the object key.
func (b *Bucket) Key(name string) string {
	if b.Prefix == "" {
		return name
	}
	return b.Prefix + "/" + name
}

// ParseURL parses spec with url.Parse, keeping only the reason of a
// failure (a *url.Error repeats the whole spec, password included).
func ParseURL(spec string) (*url.URL, error) {
	u, err := url.Parse(spec)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	return u, nil
}

// Redact returns spec fit for an error message: with any password in a
// URL that parses replaced by "xxxxx", and anything before an "@" in the
// authority of one that does not parse hidden, in case it is a secret.
func Redact(spec string) string {
	u, err := url.Parse(spec)
	if err == nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return u.Redacted()
		}
		return spec
	}
	rest := strings.TrimPrefix(spec, "s3://")
	auth, _, _ := strings.Cut(rest, "/")
	if i := strings.LastIndex(auth, "@"); i >= 0 {
		return "s3://xxxxx" + rest[i:]
	}
	return spec
}

// New builds a Bucket from a URL of the form
//
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=D&header_timeout=D]
//
// Credentials come from the SDK's default chain (environment, shared config
// files, SSO, container and instance roles), never from the URL. The region
// is the region parameter, else the default chain's, else us-east-1.
// endpoint= points the client at an S3-compatible server and path_style=true
// puts the bucket in the path rather than the host name, as most of them
// need. connect_timeout= bounds establishing a TCP connection (default 2s)
// and header_timeout= the wait for the response headers once the request
// is sent (default 5s); both take a positive time.ParseDuration value such
// as "500ms" or "2s". Unknown parameters are an error, so a typo never goes
// unnoticed.
//
// what starts every error message ("s3 origin", "s3 store"). New does not
// contact S3.
func New(ctx context.Context, u *url.URL, what string) (*Bucket, error) {
	if u.Scheme != "s3" {
		return nil, fmt.Errorf("%s: scheme %q, want s3", what, u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the URL are not supported; use the AWS default chain (environment, shared config, roles)", what)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("%s: missing bucket (want s3://BUCKET[/PREFIX])", what)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%s: unexpected #fragment", what)
	}
	bucket := u.Host
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" && !validPrefix(prefix) {
		return nil, fmt.Errorf("%s: invalid prefix %q", what, prefix)
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%s: query: %w", what, err)
	}
	var unknown []string
	for k, v := range q {
		switch k {
		case "region", "endpoint", "path_style", "connect_timeout", "header_timeout":
			if len(v) != 1 {
				return nil, fmt.Errorf("%s: parameter %s given %d times", what, k, len(v))
			}
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("%s: unknown parameters %s (known: region, endpoint, path_style, connect_timeout, header_timeout)", what, strings.Join(unknown, ", "))
	}
	region := q.Get("region")
	endpoint := q.Get("endpoint")
	if q.Has("endpoint") {
		e, err := url.Parse(endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return nil, fmt.Errorf("%s: endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", what, endpoint)
		}
	}
	pathStyle := false
	if q.Has("path_style") {
		pathStyle, err = strconv.ParseBool(q.Get("path_style"))
		if err != nil {
			return nil, fmt.Errorf("%s: path_style %q: want true or false", what, q.Get("path_style"))
		}
	}
	if msg := checkBucketName(bucket, pathStyle); msg != "" {
		return nil, fmt.Errorf("%s: invalid bucket name %q: %s", what, bucket, msg)
	}
	dialTimeout, err := DurationParam(q, "connect_timeout", DefaultDialTimeout, what)
	if err != nil {
		return nil, err
	}
	headerTimeout, err := DurationParam(q, "header_timeout", DefaultResponseHeaderTimeout, what)
	if err != nil {
		return nil, err
	}

	// A BuildableClient, not a bare *http.Client: LoadDefaultConfig can only
	// apply AWS_CA_BUNDLE to a BuildableClient.
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = dialTimeout
		}).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = TLSHandshakeTimeout
			t.ResponseHeaderTimeout = headerTimeout
			t.IdleConnTimeout = IdleConnTimeout
			t.MaxIdleConns = MaxIdleConns
			t.MaxIdleConnsPerHost = MaxIdleConnsPerHost
			// Never decode: we want the bytes exactly as stored. The SDK
			// already asks S3 for identity; this keeps net/http from
			// adding Accept-Encoding: gzip and unzipping behind our back.
			t.DisableCompression = true
		})
	opts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: loading AWS config: %w", what, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		o.RetryMaxAttempts = MaxAttempts
		// Checksum validation of responses would wrap Body in a reader
		// that only reports a mismatch at EOF, and it cannot check
		// multipart objects anyway. The disk tier keeps its own checksums.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	return &Bucket{Client: client, Bucket: bucket, Prefix: prefix}, nil
}

// validPrefix accepts what fs.ValidPath accepts, without backslashes (a
// path separator on Windows, and an escape route on some S3-compatible
// servers) or NUL.
func validPrefix(p string) bool {
	return fs.ValidPath(p) && p != "." && !strings.ContainsAny(p, "\\\x00")
}

// DurationParam returns the positive duration in query parameter name
// (def when absent); errors start with what. The HTTP origin takes its
// timeouts the same way.
func DurationParam(q url.Values, name string, def time.Duration, what string) (time.Duration, error) {
	if !q.Has(name) {
		return def, nil
	}
	d, err := time.ParseDuration(q.Get(name))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %s %q: want a positive duration such as 2s or 500ms", what, name, q.Get(name))
	}
	return d, nil
}

// checkBucketName says what is wrong with an S3 bucket name, or "": 3 to
// 63 characters, lower-case letters, digits, dots and hyphens, starting
// and ending with a letter or digit, no two dots in a row, not an IPv4
// address (the general purpose bucket rules). A name S3 would refuse is
// an error at start rather than a 403 or 404 on every request. With
// path-style addressing the legacy us-east-1 names (before March 2018:
// up to 255 characters, upper case and underscores) still work, and are
// allowed.
func checkBucketName(b string, pathStyle bool) string {
	if pathStyle && len(b) >= 3 && len(b) <= 255 && strings.Trim(b, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == "" {
		return ""
	}
	if len(b) < 3 || len(b) > 63 {
		return "3 to 63 characters"
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return "only lower-case letters, digits, dots and hyphens (a legacy us-east-1 name needs path_style=true)"
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return "must start and end with a letter or digit"
	}
	if strings.Contains(b, "..") {
		return "no two dots in a row"
	}
	if ip := net.ParseIP(b); ip != nil {
		return "must not look like an IP address"
	}
	return ""
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
