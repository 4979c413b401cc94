package origin

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Timeouts and pool sizes of the HTTP client that talks to S3. They bound
// how long a dead or unreachable endpoint can hold a fill; a slow body is
// bounded by the caller's ctx instead. The dial and response-header
// timeouts are defaults that the URL can override (connect_timeout=,
// header_timeout=).
const (
	s3DialTimeout           = 2 * time.Second
	s3TLSHandshakeTimeout   = 3 * time.Second
	s3ResponseHeaderTimeout = 5 * time.Second
	s3IdleConnTimeout       = 90 * time.Second
	s3MaxIdleConnsPerHost   = 64
	s3MaxIdleConns          = 256
	// s3MaxAttempts counts the first try: the SDK does not retry. The
	// edge wraps every origin in a Failover, which retries with its own
	// bounded, jittered backoff and then moves to the next origin;
	// retries stacked inside it would multiply tries and delay failover.
	s3MaxAttempts = 1
)

// S3 is an Origin backed by one S3 bucket, optionally under a key prefix.
// It works with AWS S3 and with S3-compatible servers (endpoint=, path_style=).
// Safe for concurrent use.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string // no leading or trailing slash; "" for the whole bucket
	name   string // for String
}

// NewS3 builds an S3 origin from a URL of the form
//
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&connect_timeout=D&header_timeout=D]
//
// Key "/a/b.js" maps to object PREFIX/a/b.js (or a/b.js without a prefix).
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
// NewS3 does not contact S3.
func NewS3(ctx context.Context, u *url.URL) (*S3, error) {
	if u.Scheme != "s3" {
		return nil, fmt.Errorf("s3 origin: scheme %q, want s3", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("s3 origin: credentials in the URL are not supported; use the AWS default chain (environment, shared config, roles)")
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("s3 origin: missing bucket (want s3://BUCKET[/PREFIX])")
	}
	if u.Fragment != "" {
		return nil, errors.New("s3 origin: unexpected #fragment")
	}
	bucket := u.Host
	if u.Port() != "" || strings.ContainsAny(bucket, "[]:") {
		return nil, fmt.Errorf("s3 origin: invalid bucket name %q", bucket)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if _, ok := cleanKey(prefix); !ok {
			return nil, fmt.Errorf("s3 origin: invalid prefix %q", prefix)
		}
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("s3 origin: query: %w", err)
	}
	var unknown []string
	for k, v := range q {
		switch k {
		case "region", "endpoint", "path_style", "connect_timeout", "header_timeout":
			if len(v) != 1 {
				return nil, fmt.Errorf("s3 origin: parameter %s given %d times", k, len(v))
			}
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("s3 origin: unknown parameters %s (known: region, endpoint, path_style, connect_timeout, header_timeout)", strings.Join(unknown, ", "))
	}
	region := q.Get("region")
	endpoint := q.Get("endpoint")
	if q.Has("endpoint") {
		e, err := url.Parse(endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return nil, fmt.Errorf("s3 origin: endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", endpoint)
		}
	}
	pathStyle := false
	if q.Has("path_style") {
		pathStyle, err = strconv.ParseBool(q.Get("path_style"))
		if err != nil {
			return nil, fmt.Errorf("s3 origin: path_style %q: want true or false", q.Get("path_style"))
		}
	}

	dialTimeout, err := durationParam(q, "connect_timeout", s3DialTimeout)
	if err != nil {
		return nil, err
	}
	headerTimeout, err := durationParam(q, "header_timeout", s3ResponseHeaderTimeout)
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
			t.TLSHandshakeTimeout = s3TLSHandshakeTimeout
			t.ResponseHeaderTimeout = headerTimeout
			t.IdleConnTimeout = s3IdleConnTimeout
			t.MaxIdleConns = s3MaxIdleConns
			t.MaxIdleConnsPerHost = s3MaxIdleConnsPerHost
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
		return nil, fmt.Errorf("s3 origin: loading AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		o.RetryMaxAttempts = s3MaxAttempts
		// Checksum validation of responses would wrap Body in a reader
		// that only reports a mismatch at EOF, and it cannot check
		// multipart objects anyway. The disk tier keeps its own checksums.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})

	name := "s3://" + bucket
	if prefix != "" {
		name += "/" + prefix
	}
	return &S3{client: client, bucket: bucket, prefix: prefix, name: name}, nil
}

// durationParam returns the positive duration in query parameter name, or
// def when the parameter is absent.
func durationParam(q url.Values, name string, def time.Duration) (time.Duration, error) {
	if !q.Has(name) {
		return def, nil
	}
	d, err := time.ParseDuration(q.Get(name))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("s3 origin: %s %q: want a positive duration such as 2s or 500ms", name, q.Get(name))
	}
	return d, nil
}

// String returns "s3://BUCKET[/PREFIX]", without the query.
func (o *S3) String() string { return o.name }

// objectKey maps a cleaned key to the S3 object key.
func (o *S3) objectKey(name string) string {
	if o.prefix == "" {
		return name
	}
	return o.prefix + "/" + name
}

// Get fetches key with GetObject. A key that cleanKey rejects is
// ErrNotFound without a request. A missing bucket is not ErrNotFound but an
// origin failure: it means misconfiguration (or a deleted bucket), and must
// not turn every cached object into a cached 404.
func (o *S3) Get(ctx context.Context, key string, cond Conditions) (*Object, error) {
	name, ok := cleanKey(key)
	if !ok {
		return nil, fmt.Errorf("origin s3 get %q: invalid key: %w", key, ErrNotFound)
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(o.bucket),
		Key:    aws.String(o.objectKey(name)),
	}
	if cond.IfNoneMatch != "" {
		in.IfNoneMatch = aws.String(cond.IfNoneMatch)
	}
	if !cond.IfModifiedSince.IsZero() {
		in.IfModifiedSince = aws.Time(cond.IfModifiedSince)
	}
	out, err := o.client.GetObject(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("origin s3 get %q: %w", key, classifyS3Error(err))
	}
	obj := &Object{
		Body:            out.Body,
		Size:            aws.ToInt64(out.ContentLength),
		ETag:            aws.ToString(out.ETag),
		LastModified:    aws.ToTime(out.LastModified),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
		CacheControl:    aws.ToString(out.CacheControl),
	}
	if out.ContentLength == nil {
		obj.Size = -1
	}
	// Some S3-compatible servers ignore a condition and answer 200 (versitygw
	// ignores If-Modified-Since). Apply the condition here too, so callers
	// see the same outcome from every server.
	if notModified(cond, obj.ETag, obj.LastModified) {
		out.Body.Close()
		return nil, fmt.Errorf("origin s3 get %q: %w", key, ErrNotModified)
	}
	return obj, nil
}

// classifyS3Error maps an SDK error to ErrNotFound, ErrForbidden or
// ErrNotModified, keeping the SDK error in the chain; any other error is
// returned as is.
//
// The HTTP status is the ground truth: a 304 has no body, so the SDK can
// only make a generic "NotModified" API error of it, and a 404 or 403 to a
// GET carries whatever error code the server chose.
func classifyS3Error(err error) error {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) {
		return err // network, timeout, cancellation, ...
	}
	switch re.HTTPStatusCode() {
	case http.StatusNotModified:
		return fmt.Errorf("%w: %w", ErrNotModified, err)
	case http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrForbidden, err)
	case http.StatusNotFound:
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
