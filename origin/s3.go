package origin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/edgecdn/edge/internal/s3client"
)

// Timeouts and pool sizes of the HTTP client that talks to S3, as
// internal/s3client sets them (shared with the certificate store).
const (
	s3DialTimeout           = s3client.DefaultDialTimeout
	s3ResponseHeaderTimeout = s3client.DefaultResponseHeaderTimeout
	s3MaxIdleConnsPerHost   = s3client.MaxIdleConnsPerHost
	// s3MaxAttempts counts the first try: the SDK does not retry. The
	// edge wraps every origin in a Failover, which retries with its own
	// bounded, jittered backoff and then moves to the next origin;
	// retries stacked inside it would multiply tries and delay failover.
	s3MaxAttempts = s3client.MaxAttempts
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
// The URL's syntax, its parameters, credentials and timeouts are
// internal/s3client's (s3client.New): credentials come from the SDK's
// default chain, never from the URL; unknown parameters are an error.
//
// NewS3 does not contact S3.
func NewS3(ctx context.Context, u *url.URL) (*S3, error) {
	b, err := s3client.New(ctx, u, "s3 origin")
	if err != nil {
		return nil, err
	}
	return &S3{client: b.Client, bucket: b.Bucket, prefix: b.Prefix, name: b.Name()}, nil
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
		SurrogateKeys:   surrogateKeys(out.Metadata),
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

// Stat describes key with HeadObject: the same answer as Get, without the
// body and without transferring it.
func (o *S3) Stat(ctx context.Context, key string) (*Object, error) {
	name, ok := cleanKey(key)
	if !ok {
		return nil, fmt.Errorf("origin s3 head %q: invalid key: %w", key, ErrNotFound)
	}
	out, err := o.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(o.bucket), Key: aws.String(o.objectKey(name))})
	if err != nil {
		return nil, fmt.Errorf("origin s3 head %q: %w", key, classifyS3Error(err))
	}
	obj := &Object{
		Size:            aws.ToInt64(out.ContentLength),
		ETag:            aws.ToString(out.ETag),
		LastModified:    aws.ToTime(out.LastModified),
		ContentType:     aws.ToString(out.ContentType),
		ContentEncoding: aws.ToString(out.ContentEncoding),
		CacheControl:    aws.ToString(out.CacheControl),
		SurrogateKeys:   surrogateKeys(out.Metadata),
	}
	if out.ContentLength == nil {
		obj.Size = -1
	}
	return obj, nil
}

// surrogateKeys reads the purge tags from an object's user metadata
// (x-amz-meta-surrogate-key; the SDK gives user metadata without the
// prefix, keys in lower case).
func surrogateKeys(meta map[string]string) []string {
	for k, v := range meta {
		if strings.EqualFold(k, "surrogate-key") {
			return parseSurrogateKeys(v)
		}
	}
	return nil
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
		// Only "no such key" is a missing object. A missing bucket, or a
		// server that answers 404 for an unknown access key (versitygw's
		// XAdminUserNotFound, where AWS says 403 InvalidAccessKeyId), is
		// a broken origin, not a cacheable 404. A HEAD's error has no
		// body, so no code.
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() != "NoSuchKey" && ae.ErrorCode() != "NotFound" && ae.ErrorCode() != "" {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
