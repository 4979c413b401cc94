package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/edgecdn/edge/internal/s3client"
)

// maxValue bounds what Get reads: values are small, and a huge object
// under a store key is a mistake that must not exhaust memory.
const maxValue = 16 << 20

// S3 is a Store in an S3 bucket under a key prefix. Create is a PutObject
// with If-None-Match: * (S3 conditional writes; versitygw supports them):
// S3 answers 412 Precondition Failed when the key exists, and 409 when a
// concurrent conditional write of the same key is in progress, and both
// mean fs.ErrExist. Every write asks for server-side encryption
// (x-amz-server-side-encryption: AES256, SSE-S3): the store holds private
// keys. S3-compatible servers that do not encrypt (versitygw's posix
// backend) ignore the header.
//
// IAM: s3:GetObject, s3:PutObject, s3:DeleteObject on
// arn:aws:s3:::BUCKET/PREFIX/*, and s3:ListBucket on the bucket with the
// condition s3:prefix = PREFIX/*. Without s3:ListBucket, S3 answers 403
// rather than 404 for a missing key, which is an error, not "not there".
type S3 struct {
	b *s3client.Bucket
}

// NewS3 returns a Store on b.
func NewS3(b *s3client.Bucket) *S3 { return &S3{b: b} }

func (s *S3) String() string { return s.b.Name() }

// sse is what every write asks for.
const sse = types.ServerSideEncryptionAes256

func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	out, err := s.b.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.b.Bucket), Key: aws.String(s.b.Key(key))})
	if err != nil {
		return nil, fmt.Errorf("store %s: get %q: %w", s, key, classify(err))
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxValue+1))
	if err != nil {
		return nil, fmt.Errorf("store %s: get %q: %w", s, key, err)
	}
	if len(b) > maxValue {
		return nil, fmt.Errorf("store %s: get %q: larger than %d bytes", s, key, maxValue)
	}
	return b, nil
}

func (s *S3) put(ctx context.Context, op, key string, value []byte, ifNoneMatch bool) error {
	if err := checkKey(key); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.b.Bucket),
		Key:    aws.String(s.b.Key(key)),
		// A bytes.Reader: the SDK needs a seekable body to sign the
		// payload over plain HTTP.
		Body:                 bytes.NewReader(value),
		ContentLength:        aws.Int64(int64(len(value))),
		ContentType:          aws.String("application/octet-stream"),
		ServerSideEncryption: sse,
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := s.b.Client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("store %s: %s %q: %w", s, op, key, classify(err))
	}
	return nil
}

func (s *S3) Put(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, "put", key, value, false)
}

func (s *S3) Create(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, "create", key, value, true)
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.b.Client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.b.Bucket), Key: aws.String(s.b.Key(key))})
	if err != nil {
		if err = classify(err); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("store %s: delete %q: %w", s, key, err)
	}
	return nil
}

func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	full := s.b.Key(prefix)
	if prefix == "" && s.b.Prefix != "" {
		full = s.b.Prefix + "/"
	}
	p := s3.NewListObjectsV2Paginator(s.b.Client, &s3.ListObjectsV2Input{Bucket: aws.String(s.b.Bucket), Prefix: aws.String(full)})
	var keys []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("store %s: list %q: %w", s, prefix, classify(err))
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if s.b.Prefix != "" {
				k = strings.TrimPrefix(k, s.b.Prefix+"/")
			}
			keys = append(keys, k)
		}
	}
	// S3 lists in UTF-8 binary order, which is Go's string order.
	return keys, nil
}

// classify maps S3's answers to the contract's errors, keeping the SDK
// error in the chain. The HTTP status is the ground truth; a missing
// bucket (404 NoSuchBucket) is a misconfiguration, never "not there".
func classify(err error) error {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	switch re.HTTPStatusCode() {
	case http.StatusNotFound:
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
			return err
		}
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	case http.StatusPreconditionFailed, http.StatusConflict:
		return fmt.Errorf("%w: %w", fs.ErrExist, err)
	}
	return err
}
