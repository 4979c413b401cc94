package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/edgecdn/edge/origin"
)

func startTestOrigin(t *testing.T) (*originServer, *corpus) {
	t.Helper()
	c, err := loadCorpus(t.TempDir()) // no shared assets there: the generated widget
	if err != nil {
		t.Fatal(err)
	}
	o := newOriginServer(c.objects(), c.widget, c.config, 4096)
	if err := o.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.close)
	return o, c
}

// TestOriginWithS3Client drives the fake origin with the edge's own S3
// client (aws-sdk-go-v2, SigV4, path style), as the edge does in a run.
func TestOriginWithS3Client(t *testing.T) {
	o, c := startTestOrigin(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "bench")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "bench")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	ctx := context.Background()
	s3, err := origin.Parse(ctx, "s3://"+bucket+"?endpoint=http://"+o.addr()+"&path_style=true&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key    string
		body         []byte
		ctype, cenc  string
		wantNotFound bool
	}{
		{name: "widget", key: pathWidget, body: c.widget, ctype: "application/javascript"},
		{name: "config", key: pathConfig, body: c.config, ctype: "application/json"},
		{name: "stored gzip", key: pathGzipped, body: c.gzipped, ctype: "application/javascript", cenc: "gzip"},
		{name: "cold widget", key: "/cold/x.js", body: c.widget, ctype: "application/javascript"},
		{name: "cold config", key: "/cold/x.json", body: c.config, ctype: "application/json"},
		{name: "memory object", key: "/mem/7.bin", ctype: "application/octet-stream"},
		{name: "missing", key: pathMissing, wantNotFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := s3.Get(ctx, tt.key, origin.Conditions{})
			if tt.wantNotFound {
				if !errors.Is(err, origin.ErrNotFound) {
					t.Fatalf("Get = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != nil && !bytes.Equal(body, tt.body) {
				t.Errorf("body: %d bytes, want %d", len(body), len(tt.body))
			}
			if tt.body == nil && len(body) != 4096 {
				t.Errorf("body: %d bytes, want 4096", len(body))
			}
			if obj.ContentType != tt.ctype || obj.ContentEncoding != tt.cenc {
				t.Errorf("Content-Type %q, Content-Encoding %q; want %q, %q", obj.ContentType, obj.ContentEncoding, tt.ctype, tt.cenc)
			}
			if obj.ETag == "" || obj.LastModified.IsZero() || obj.CacheControl == "" {
				t.Errorf("missing validators or Cache-Control: %+v", obj)
			}
			_, err = s3.Get(ctx, tt.key, origin.Conditions{IfNoneMatch: obj.ETag})
			if !errors.Is(err, origin.ErrNotModified) {
				t.Errorf("conditional Get = %v, want ErrNotModified", err)
			}
		})
	}
	if n := o.count(key(pathWidget)); n != 2 {
		t.Errorf("origin counted %d requests for the widget, want 2", n)
	}
}

func TestOriginPlainHTTP(t *testing.T) {
	o, c := startTestOrigin(t)
	resp, err := http.Get("http://" + o.addr() + "/" + bucket + pathMissing)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/xml" || !strings.Contains(string(body), "<Code>NoSuchKey</Code>") {
		t.Errorf("missing key: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+o.addr()+"/"+bucket+pathConfig, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(c.config)) {
		t.Errorf("HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	resp, err = http.Get("http://" + o.addr() + "/otherbucket" + pathConfig)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "NoSuchBucket") {
		t.Errorf("other bucket: %d %s", resp.StatusCode, body)
	}
}

func TestCorpus(t *testing.T) {
	c, err := loadCorpus(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.widget) != widgetSize || len(c.config) != configSize {
		t.Errorf("sizes: widget %d, config %d", len(c.widget), len(c.config))
	}
	got, err := decode("gzip", c.gzipped)
	if err != nil || !bytes.Equal(got, c.widget) {
		t.Errorf("stored gzip object does not decode to the widget: %v", err)
	}
	if !strings.HasPrefix(string(c.config), "{") || !strings.HasSuffix(string(c.config), "}") {
		t.Errorf("config is not a JSON object: %q…", c.config[:20])
	}
}
