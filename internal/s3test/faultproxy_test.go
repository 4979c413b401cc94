package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestFaultProxy runs every fault against a real versitygw through a real
// SDK client, in sequence on one proxy, as a test would switch faults.
func TestFaultProxy(t *testing.T) {
	srv := Start(t)
	srv.CreateBucket(t, "bkt")
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	srv.Put(t, "bkt", "dir/a.bin", body, PutOptions{ContentType: "application/octet-stream"})
	srv.Put(t, "bkt", "b.txt", []byte("bee"), PutOptions{})
	p := NewFaultProxy(t, srv.Endpoint())
	client := srv.ClientFor(p.URL())

	// get fetches key through the proxy and reads the whole body.
	get := func(t *testing.T, key string) (got []byte, getErr, readErr error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key)})
		if err != nil {
			return nil, err, nil
		}
		defer out.Body.Close()
		got, err = io.ReadAll(out.Body)
		return got, nil, err
	}
	// wantStatus checks that err is an S3 error with this status and code.
	wantStatus := func(t *testing.T, err error, status int, code string) {
		t.Helper()
		var re *smithyhttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != status {
			t.Fatalf("err = %v, want an HTTP %d response error", err, status)
		}
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != code {
			t.Errorf("err = %v, want S3 error code %s", err, code)
		}
	}

	t.Run("pass through", func(t *testing.T) {
		req, faults, gets := p.Requests(), p.Faults(), p.GetsFor("a.bin")
		got, gerr, rerr := get(t, "dir/a.bin")
		if gerr != nil || rerr != nil {
			t.Fatalf("get: %v, read: %v", gerr, rerr)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("body: got %d bytes, want %d", len(got), len(body))
		}
		if d := p.Requests() - req; d != 1 {
			t.Errorf("Requests grew by %d, want 1", d)
		}
		if d := p.GetsFor("a.bin") - gets; d != 1 {
			t.Errorf("GetsFor(a.bin) grew by %d, want 1", d)
		}
		if d := p.Faults() - faults; d != 0 {
			t.Errorf("Faults grew by %d, want 0", d)
		}
		// Bucket-level requests are not object requests.
		req = p.Requests()
		if _, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("bkt")}); err != nil {
			t.Fatalf("ListObjectsV2 through the proxy: %v", err)
		}
		if d := p.Requests() - req; d != 0 {
			t.Errorf("Requests grew by %d on a bucket listing, want 0", d)
		}
	})

	statusCases := []struct {
		name   string
		fault  Fault
		status int
		code   string
	}{
		{"500", Fault{Status: 500}, 500, "InternalError"},
		{"503 SlowDown", Fault{Status: 503}, 503, "SlowDown"},
		{"403", Fault{Status: 403}, 403, "AccessDenied"},
		{"404", Fault{Status: 404}, 404, "NoSuchKey"},
		{"custom code", Fault{Status: 503, Code: "ServiceUnavailable"}, 503, "ServiceUnavailable"},
	}
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			p.SetFault(tc.fault)
			defer p.SetFault(Fault{})
			faults, gets := p.Faults(), p.GetsFor("a.bin")
			_, err, _ := get(t, "dir/a.bin")
			wantStatus(t, err, tc.status, tc.code)
			if d := p.Faults() - faults; d != 1 {
				t.Errorf("Faults grew by %d, want 1", d)
			}
			if d := p.GetsFor("a.bin") - gets; d != 1 {
				t.Errorf("GetsFor grew by %d, want 1", d)
			}
		})
	}

	t.Run("truncated body", func(t *testing.T) {
		p.SetFault(Fault{CutBodyAfter: 1000})
		defer p.SetFault(Fault{})
		got, gerr, rerr := get(t, "dir/a.bin")
		if gerr != nil {
			t.Fatalf("GetObject: %v, want the headers to arrive", gerr)
		}
		if !errors.Is(rerr, io.ErrUnexpectedEOF) {
			t.Errorf("read error = %v, want io.ErrUnexpectedEOF", rerr)
		}
		if !bytes.Equal(got, body[:1000]) {
			t.Errorf("read %d bytes, want the first 1000", len(got))
		}
	})

	t.Run("Content-Length too long", func(t *testing.T) {
		p.SetFault(Fault{WrongLength: int64(len(body)) + 100})
		defer p.SetFault(Fault{})
		got, gerr, rerr := get(t, "dir/a.bin")
		if gerr != nil {
			t.Fatalf("GetObject: %v", gerr)
		}
		if !errors.Is(rerr, io.ErrUnexpectedEOF) {
			t.Errorf("read error = %v, want io.ErrUnexpectedEOF", rerr)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("read %d bytes, want the %d real ones", len(got), len(body))
		}
	})

	t.Run("Content-Length too short", func(t *testing.T) {
		// Undetectable at the HTTP level: the client reads a shorter body.
		p.SetFault(Fault{WrongLength: 10})
		defer p.SetFault(Fault{})
		got, gerr, rerr := get(t, "dir/a.bin")
		if gerr != nil || rerr != nil {
			t.Fatalf("get: %v, read: %v", gerr, rerr)
		}
		if !bytes.Equal(got, body[:10]) {
			t.Errorf("read %q, want %q", got, body[:10])
		}
		// The connection was not reused: the next request is clean.
		p.SetFault(Fault{})
		if got, gerr, rerr := get(t, "b.txt"); gerr != nil || rerr != nil || string(got) != "bee" {
			t.Errorf("next get = %q, %v, %v; want bee", got, gerr, rerr)
		}
	})

	t.Run("refuse", func(t *testing.T) {
		p.SetFault(Fault{Refuse: true})
		defer p.SetFault(Fault{})
		_, err, _ := get(t, "dir/a.bin")
		// The SDK reports a failed send as a response error with status 0.
		var re *smithyhttp.ResponseError
		if err == nil || (errors.As(err, &re) && re.HTTPStatusCode() != 0) {
			t.Fatalf("err = %v, want a connection error without an HTTP status", err)
		}
		t.Logf("refused: %v", err)
	})

	t.Run("hold", func(t *testing.T) {
		hold := make(chan struct{})
		p.SetFault(Fault{Hold: hold})
		defer p.SetFault(Fault{})
		// Held: the client's deadline passes first.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("b.txt")})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("held GetObject: err = %v, want context.DeadlineExceeded", err)
		}
		// Released: requests go through.
		close(hold)
		if got, gerr, rerr := get(t, "b.txt"); gerr != nil || rerr != nil || string(got) != "bee" {
			t.Errorf("after release: %q, %v, %v; want bee", got, gerr, rerr)
		}
	})

	t.Run("header delay", func(t *testing.T) {
		const delay = 30 * time.Millisecond
		p.SetFault(Fault{HeaderDelay: delay})
		defer p.SetFault(Fault{})
		start := time.Now()
		if got, gerr, rerr := get(t, "b.txt"); gerr != nil || rerr != nil || string(got) != "bee" {
			t.Fatalf("get: %q, %v, %v; want bee", got, gerr, rerr)
		}
		if elapsed := time.Since(start); elapsed < delay {
			t.Errorf("answered after %v, want at least %v", elapsed, delay)
		}
	})

	t.Run("only", func(t *testing.T) {
		p.SetFault(Fault{Status: http.StatusInternalServerError, Only: "b.txt"})
		defer p.SetFault(Fault{})
		faults := p.Faults()
		if _, gerr, rerr := get(t, "dir/a.bin"); gerr != nil || rerr != nil {
			t.Errorf("a.bin (not matched): %v, %v; want it to pass", gerr, rerr)
		}
		_, err, _ := get(t, "b.txt")
		wantStatus(t, err, 500, "InternalError")
		if d := p.Faults() - faults; d != 1 {
			t.Errorf("Faults grew by %d, want 1", d)
		}
	})
}

// TestFaultProxyStoppedTarget checks that a stopped server behind the
// proxy is a 502 from the proxy, and that the proxy recovers on Restart.
func TestFaultProxyStoppedTarget(t *testing.T) {
	srv := Start(t)
	srv.CreateBucket(t, "bkt")
	srv.Put(t, "bkt", "k", []byte("v"), PutOptions{})
	p := NewFaultProxy(t, srv.Endpoint())
	client := srv.ClientFor(p.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	srv.Stop()
	_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadGateway {
		t.Fatalf("err = %v, want a 502 from the proxy", err)
	}
	srv.Restart(t)
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	out.Body.Close()
}

// TestFaultProxyCloseReleasesHeld checks that Close does not wait for a
// Hold that is never released.
func TestFaultProxyCloseReleasesHeld(t *testing.T) {
	srv := Start(t)
	srv.CreateBucket(t, "bkt")
	p := NewFaultProxy(t, srv.Endpoint())
	p.SetFault(Fault{Hold: make(chan struct{})}) // never closed
	client := srv.ClientFor(p.URL())
	done := make(chan error, 1)
	go func() {
		_, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k")})
		done <- err
	}()
	// Close may run before or after the request arrives; either way it
	// must return, and the request must fail.
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a request was held")
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("held request succeeded after Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("held request did not fail after Close")
	}
}
