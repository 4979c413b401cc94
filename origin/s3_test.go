package origin

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/edgecdn/edge/internal/s3test"
)

// newTestS3 builds an S3 origin from spec, failing the test on error.
func newTestS3(t *testing.T, spec string) *S3 {
	t.Helper()
	u, err := url.Parse(spec)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", spec, err)
	}
	o, err := NewS3(context.Background(), u)
	if err != nil {
		t.Fatalf("NewS3(%q): %v", spec, err)
	}
	return o
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readObject reads and closes obj.Body.
func readObject(t *testing.T, obj *Object) []byte {
	t.Helper()
	defer obj.Body.Close()
	b, err := io.ReadAll(obj.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return b
}

// isOriginFailure reports whether err is a failure of the origin rather
// than one of the three answers the Origin contract names.
func isOriginFailure(err error) bool {
	return err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrNotModified)
}

func TestS3Get(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "site")

	widget := []byte("console.log('widget');\n")
	bigJS := bytes.Repeat([]byte("function f(){return 42}\n"), 500)
	bigGz := gzipBytes(t, bigJS)
	root := []byte("at the bucket root")
	nested := []byte(`{"tenant":"a"}`)

	type put struct {
		key  string
		body []byte
		opts s3test.PutOptions
	}
	puts := []put{
		{"app/widget.js", widget, s3test.PutOptions{ContentType: "text/javascript", CacheControl: "public, max-age=300"}},
		{"app/big.js", bigGz, s3test.PutOptions{ContentType: "text/javascript", ContentEncoding: "gzip"}},
		{"app/v1/tenants/a.json", nested, s3test.PutOptions{ContentType: "application/json"}},
		{"root.txt", root, s3test.PutOptions{ContentType: "text/plain; charset=utf-8"}},
		{"other/secret.txt", []byte("not under app/"), s3test.PutOptions{}},
	}
	etags := map[string]string{}
	for _, p := range puts {
		etags[p.key] = srv.Put(t, "site", p.key, p.body, p.opts)
	}

	prefixed := newTestS3(t, srv.OriginURL("site", "app"))
	whole := newTestS3(t, srv.OriginURL("site", ""))
	slashed := newTestS3(t, "s3://site/app/?endpoint="+srv.Endpoint()+"&path_style=true&region=us-east-1")
	noBucket := newTestS3(t, srv.OriginURL("no-such-bucket", ""))

	tests := []struct {
		name   string
		origin *S3
		key    string
		// want is the object expected (Body aside); nil when an error is.
		want     *Object
		wantBody []byte
		// wantErr is the sentinel error expected; errOther means an origin
		// failure, none of the sentinels.
		wantErr error
	}{
		{
			name: "plain object", origin: prefixed, key: "/widget.js",
			want:     &Object{Size: int64(len(widget)), ETag: etags["app/widget.js"], ContentType: "text/javascript", CacheControl: "public, max-age=300"},
			wantBody: widget,
		},
		{
			// The stored gzip bytes, exactly: neither the SDK nor net/http
			// may decode them.
			name: "gzip object comes back raw", origin: prefixed, key: "/big.js",
			want:     &Object{Size: int64(len(bigGz)), ETag: etags["app/big.js"], ContentType: "text/javascript", ContentEncoding: "gzip"},
			wantBody: bigGz,
		},
		{
			name: "nested key under prefix", origin: prefixed, key: "/v1/tenants/a.json",
			want:     &Object{Size: int64(len(nested)), ETag: etags["app/v1/tenants/a.json"], ContentType: "application/json"},
			wantBody: nested,
		},
		{
			name: "prefix with trailing slash", origin: slashed, key: "/widget.js",
			want:     &Object{Size: int64(len(widget)), ETag: etags["app/widget.js"], ContentType: "text/javascript", CacheControl: "public, max-age=300"},
			wantBody: widget,
		},
		{
			name: "no prefix", origin: whole, key: "/root.txt",
			want:     &Object{Size: int64(len(root)), ETag: etags["root.txt"], ContentType: "text/plain; charset=utf-8"},
			wantBody: root,
		},
		{
			name: "no prefix, key without leading slash", origin: whole, key: "app/widget.js",
			want:     &Object{Size: int64(len(widget)), ETag: etags["app/widget.js"], ContentType: "text/javascript", CacheControl: "public, max-age=300"},
			wantBody: widget,
		},
		{name: "missing key", origin: prefixed, key: "/nope.js", wantErr: ErrNotFound},
		{name: "key outside prefix is not visible", origin: prefixed, key: "/other/secret.txt", wantErr: ErrNotFound},
		{name: "dot-dot cannot leave prefix", origin: prefixed, key: "/../other/secret.txt", wantErr: ErrNotFound},
		{name: "directory-like key", origin: prefixed, key: "/v1/", wantErr: ErrNotFound},
		{name: "empty key", origin: prefixed, key: "/", wantErr: ErrNotFound},
		// A missing bucket is misconfiguration, not a missing object: it
		// must not be cached as a 404 for every key (versitygw, like S3,
		// answers 404 NoSuchBucket).
		{name: "missing bucket", origin: noBucket, key: "/root.txt", wantErr: errOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			obj, err := tc.origin.Get(ctx, tc.key, Conditions{})
			if tc.wantErr != nil {
				if obj != nil {
					obj.Body.Close()
				}
				switch {
				case tc.wantErr == errOther && !isOriginFailure(err):
					t.Fatalf("Get(%q) error = %v, want an origin failure (none of the sentinel errors)", tc.key, err)
				case tc.wantErr != errOther && !errors.Is(err, tc.wantErr):
					t.Fatalf("Get(%q) error = %v, want %v", tc.key, err, tc.wantErr)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tc.key) {
					t.Errorf("error %q does not name the key %q", err, tc.key)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%q): %v", tc.key, err)
			}
			body := readObject(t, obj)
			if !bytes.Equal(body, tc.wantBody) {
				t.Errorf("body: got %d bytes %.40q, want %d bytes %.40q", len(body), body, len(tc.wantBody), tc.wantBody)
			}
			if tc.want.ETag == "" || !strings.HasPrefix(tc.want.ETag, `"`) {
				t.Errorf("Put returned ETag %q, want a quoted tag", tc.want.ETag)
			}
			got := *obj
			got.Body = nil
			if got.LastModified.IsZero() {
				t.Error("LastModified is zero")
			}
			got.LastModified = time.Time{}
			if !reflect.DeepEqual(got, *tc.want) {
				t.Errorf("object:\n got %+v\nwant %+v", got, *tc.want)
			}
		})
	}
}

// errOther stands for "an origin failure" in wantErr.
var errOther = errors.New("any error but the sentinels")

func TestS3Conditional(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "site")
	body := []byte("tenant config v1")
	etag := srv.Put(t, "site", "cfg.json", body, s3test.PutOptions{ContentType: "application/json"})
	o := newTestS3(t, srv.OriginURL("site", ""))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obj, err := o.Get(ctx, "/cfg.json", Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	readObject(t, obj)
	lm := obj.LastModified

	tests := []struct {
		name        string
		cond        Conditions
		notModified bool
		wantHTTP304 bool // the server itself answered 304
	}{
		{name: "If-None-Match current ETag", cond: Conditions{IfNoneMatch: etag}, notModified: true, wantHTTP304: true},
		{name: "If-None-Match *", cond: Conditions{IfNoneMatch: "*"}, notModified: true, wantHTTP304: true},
		{name: "If-None-Match old ETag", cond: Conditions{IfNoneMatch: `"0123456789abcdef0123456789abcdef"`}},
		// versitygw ignores If-Modified-Since (S3 answers 304); Get
		// applies the condition itself, so both look the same to callers.
		{name: "If-Modified-Since Last-Modified", cond: Conditions{IfModifiedSince: lm}, notModified: true},
		{name: "If-Modified-Since later", cond: Conditions{IfModifiedSince: lm.Add(time.Hour)}, notModified: true},
		{name: "If-Modified-Since earlier", cond: Conditions{IfModifiedSince: lm.Add(-time.Hour)}},
		// RFC 9110 §13.1.3: If-Modified-Since is ignored with If-None-Match.
		{name: "If-None-Match old wins over If-Modified-Since", cond: Conditions{IfNoneMatch: `"old"`, IfModifiedSince: lm.Add(time.Hour)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := o.Get(ctx, "/cfg.json", tc.cond)
			if !tc.notModified {
				if err != nil {
					t.Fatalf("Get: %v, want the object", err)
				}
				if got := readObject(t, obj); !bytes.Equal(got, body) {
					t.Errorf("body = %q, want %q", got, body)
				}
				return
			}
			if !errors.Is(err, ErrNotModified) {
				if obj != nil {
					obj.Body.Close()
				}
				t.Fatalf("Get: err = %v, want ErrNotModified", err)
			}
			var re *smithyhttp.ResponseError
			if got := errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified; got != tc.wantHTTP304 {
				t.Errorf("server answered 304: %v, want %v (err %v)", got, tc.wantHTTP304, err)
			}
		})
	}
}

// TestS3Unavailable checks that an origin that is down or hangs fails fast
// with an origin failure, never ErrNotFound (which the cache would store).
func TestS3Unavailable(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "site")
	srv.Put(t, "site", "a.js", []byte("a"), s3test.PutOptions{})
	stopped := newTestS3(t, srv.OriginURL("site", ""))
	srv.Stop()

	// A server that accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	conns.Go(func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	})
	t.Cleanup(func() { hang.Close(); conns.Wait() })
	hanging := newTestS3(t, "s3://site?path_style=true&region=us-east-1&endpoint=http://"+hang.Addr().String())

	tests := []struct {
		name    string
		origin  *S3
		timeout time.Duration
		// wantDeadline: the error must be the ctx deadline.
		wantDeadline bool
	}{
		{name: "stopped server", origin: stopped, timeout: 3 * time.Second},
		{name: "hanging server", origin: hanging, timeout: 300 * time.Millisecond, wantDeadline: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			start := time.Now()
			obj, err := tc.origin.Get(ctx, "/a.js", Conditions{})
			elapsed := time.Since(start)
			if obj != nil {
				obj.Body.Close()
			}
			if !isOriginFailure(err) {
				t.Fatalf("Get: err = %v, want an origin failure", err)
			}
			if tc.wantDeadline && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Get: err = %v, want context.DeadlineExceeded in the chain", err)
			}
			// Generous slack for a loaded machine; the point is that Get
			// neither hangs nor waits out a long retry schedule.
			if limit := tc.timeout + time.Second; elapsed > limit {
				t.Errorf("Get took %v, want under %v", elapsed, limit)
			}
		})
	}
}

// TestS3Forbidden checks that a refusal (here: a wrong secret, which S3
// and versitygw answer with 403) is ErrForbidden, not ErrNotFound.
func TestS3Forbidden(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "site")
	srv.Put(t, "site", "a.js", []byte("a"), s3test.PutOptions{})
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	o := newTestS3(t, srv.OriginURL("site", ""))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, key := range []string{"/a.js", "/missing.js"} {
		obj, err := o.Get(ctx, key, Conditions{})
		if obj != nil {
			obj.Body.Close()
		}
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("Get(%q) with a wrong secret: err = %v, want ErrForbidden", key, err)
		}
	}
}

// TestS3SurrogateKeysAndStat: the purge tags in x-amz-meta-surrogate-key
// reach the Object, from Get and from Stat; Stat (HeadObject) gives the
// ETag Get does without a GET reaching S3.
func TestS3SurrogateKeysAndStat(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "site")
	etag := srv.Put(t, "site", "app/w.js", []byte("widget"), s3test.PutOptions{
		ContentType: "text/javascript",
		Metadata:    map[string]string{"surrogate-key": "  release-42 widget\ttenants "},
	})
	srv.Put(t, "site", "app/plain.js", []byte("plain"), s3test.PutOptions{})
	proxy := s3test.NewFaultProxy(t, srv.Endpoint())
	o := newTestS3(t, proxy.OriginURL("site", "app"))
	ctx := context.Background()

	obj, err := o.Get(ctx, "/w.js", Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	readObject(t, obj)
	want := []string{"release-42", "widget", "tenants"}
	if strings.Join(obj.SurrogateKeys, ",") != strings.Join(want, ",") {
		t.Fatalf("Get: surrogate keys %q, want %q", obj.SurrogateKeys, want)
	}
	gets := proxy.GetsFor("w.js")
	st, err := Stat(ctx, o, "/w.js")
	if err != nil {
		t.Fatal(err)
	}
	if st.ETag != etag || st.Body != nil || st.Size != 6 || strings.Join(st.SurrogateKeys, ",") != strings.Join(want, ",") {
		t.Fatalf("Stat: %+v, want ETag %s, no body, 6 bytes, keys %q", st, etag, want)
	}
	if proxy.GetsFor("w.js") != gets {
		t.Fatal("Stat sent a GET to S3")
	}
	if heads := proxy.Seen("HEAD", "w.js"); len(heads) != 1 {
		t.Fatalf("Stat: %d HEADs at S3, want 1", len(heads))
	}
	if st, err := Stat(ctx, o, "/plain.js"); err != nil || st.SurrogateKeys != nil {
		t.Fatalf("no metadata: %v, %v", st, err)
	}
	if _, err := Stat(ctx, o, "/missing.js"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a missing key: %v, want ErrNotFound", err)
	}
	// An origin without Stat (a directory): Get, body closed.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.js"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := Stat(ctx, d, "/a.js"); err != nil || st.Body != nil || st.Size != 3 || st.ETag == "" {
		t.Fatalf("dir Stat: %+v, %v", st, err)
	}
}
