package s3test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestServer checks the helper end to end: objects put are got back with
// their headers, and survive Stop and Restart on the same endpoint.
func TestServer(t *testing.T) {
	srv := Start(t)
	srv.CreateBucket(t, "bkt")
	body := []byte("hello, edge")
	etag := srv.Put(t, "bkt", "dir/x.txt", body, PutOptions{
		ContentType:     "text/plain",
		ContentEncoding: "identity",
		CacheControl:    "max-age=60",
	})
	if etag == "" {
		t.Error("Put returned no ETag")
	}

	get := func(t *testing.T) *s3.GetObjectOutput {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("dir/x.txt")})
		if err != nil {
			t.Fatalf("GetObject: %v", err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			t.Fatalf("reading body: %v", err)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("body = %q, want %q", got, body)
		}
		return out
	}
	out := get(t)
	for _, c := range []struct{ name, got, want string }{
		{"ETag", aws.ToString(out.ETag), etag},
		{"Content-Type", aws.ToString(out.ContentType), "text/plain"},
		{"Content-Encoding", aws.ToString(out.ContentEncoding), "identity"},
		{"Cache-Control", aws.ToString(out.CacheControl), "max-age=60"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	endpoint := srv.Endpoint()
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := srv.Client().ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Error("ListBuckets succeeded on a stopped server")
	}
	srv.Restart(t)
	if srv.Endpoint() != endpoint {
		t.Errorf("endpoint after Restart = %s, want %s", srv.Endpoint(), endpoint)
	}
	get(t)
}
