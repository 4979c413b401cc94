package origin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgecdn/edge/internal/s3client"
)

// Timeouts of the HTTP origin's client, as for S3: they bound how long a
// dead or unreachable server can hold a fetch; a slow body is bounded by
// the caller's ctx. connect_timeout= and header_timeout= override the
// first and the third.
const (
	httpDialTimeout           = 2 * time.Second
	httpTLSHandshakeTimeout   = 3 * time.Second
	httpResponseHeaderTimeout = 5 * time.Second
	httpIdleConnTimeout       = 90 * time.Second
	httpMaxIdleConnsPerHost   = 64

	// maxErrorBody is how much of a 5xx answer's body an HTTP origin
	// keeps, so that the client can be given the origin's own error page
	// when no cached copy can stand in.
	maxErrorBody = 64 << 10
)

// HTTP is an Origin that is an HTTP or HTTPS server: an application, a
// bucket's website endpoint, an object store behind a load balancer.
// Unlike S3, it answers with any status and any header fields, which it
// passes on (Object.Status, Object.Header) for the edge to read with HTTP
// caching semantics (RFC 9111). Safe for concurrent use.
type HTTP struct {
	base   *url.URL // scheme, host and path prefix (no trailing slash)
	client *http.Client
	name   string
}

// NewHTTP builds an HTTP origin from a URL of the form
//
//	http(s)://HOST[:PORT][/PREFIX][?ca_file=PEM&connect_timeout=D&header_timeout=D]
//
// Key "/a/b.js?v=2" is fetched as PREFIX/a/b.js?v=2 on HOST. HTTPS
// servers are verified against the system's roots, plus the PEM
// certificates in ca_file= (a private CA). connect_timeout= bounds
// establishing a connection (default 2s) and header_timeout= the wait for
// the response headers (default 5s). Unknown parameters are an error.
// Credentials in the URL are not accepted: they would end up in logs.
//
// NewHTTP does not contact the server.
func NewHTTP(u *url.URL) (*HTTP, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("http origin: scheme %q, want http or https", u.Scheme)
	}
	if u.User != nil {
		return nil, errors.New("http origin: credentials in the URL are not supported")
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, errors.New("http origin: missing host (want http(s)://HOST[:PORT][/PREFIX])")
	}
	if u.Fragment != "" {
		return nil, errors.New("http origin: unexpected #fragment")
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	if prefix != "" {
		if _, ok := cleanKey(strings.TrimPrefix(prefix, "/")); !ok {
			return nil, fmt.Errorf("http origin: invalid path prefix %q", u.Path)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("http origin: query: %w", err)
	}
	var unknown []string
	for k, v := range q {
		switch k {
		case "ca_file", "connect_timeout", "header_timeout":
			if len(v) != 1 {
				return nil, fmt.Errorf("http origin: parameter %s given %d times", k, len(v))
			}
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("http origin: unknown parameters %s (known: ca_file, connect_timeout, header_timeout)", strings.Join(unknown, ", "))
	}
	dial, err := s3client.DurationParam(q, "connect_timeout", httpDialTimeout, "http origin")
	if err != nil {
		return nil, err
	}
	header, err := s3client.DurationParam(q, "header_timeout", httpResponseHeaderTimeout, "http origin")
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := q.Get("ca_file"); f != "" {
		if u.Scheme != "https" {
			return nil, errors.New("http origin: ca_file= is for an https:// origin")
		}
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("http origin: ca_file: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("http origin: ca_file %s: no PEM certificate in it", f)
		}
		tlsConf.RootCAs = roots
	}
	tr := &http.Transport{
		Proxy:                 nil, // an origin is reached directly: no HTTP(S)_PROXY surprise
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   httpTLSHandshakeTimeout,
		ResponseHeaderTimeout: header,
		IdleConnTimeout:       httpIdleConnTimeout,
		MaxIdleConnsPerHost:   httpMaxIdleConnsPerHost,
		ForceAttemptHTTP2:     true,
		// The edge negotiates codings itself: it asks for gzip (or the
		// body as stored) and must see Content-Encoding, not have the
		// transport decode it behind its back.
		DisableCompression: true,
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: prefix}
	return &HTTP{
		base: base,
		// No redirects followed: a redirect is an answer, cached and
		// passed on like any other.
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		name:   base.String(),
	}, nil
}

// String returns the base URL, "https://app.example.com/assets".
func (o *HTTP) String() string { return o.name }

// URL returns the origin's URL for key ("/path?query").
func (o *HTTP) URL(key string) string {
	return o.base.Scheme + "://" + o.base.Host + o.base.Path + key
}

// Transport is the origin's HTTP transport, for requests the edge passes
// through without caching (a reverse proxy for POST and the other unsafe
// methods).
func (o *HTTP) Transport() http.RoundTripper { return o.client.Transport }

// Get fetches key ("/path", or "/path?query") with a GET. cond.Header
// fields are sent as given (the edge's forwarded fields); the validators
// in cond are added.
//
// The answer: a 304 to a conditional request is an error wrapping
// ErrNotModified, a *NotModifiedError carrying the 304's header fields
// (RFC 9111 §4.3.4 updates the stored ones from them). 500, 502, 503 and
// 504 are failures (a *StatusError, keeping the start of the body), so
// that they are retried, fail over to the next origin and count against
// the circuit. Any other status is an answer: an Object with Status,
// Header and Body. ErrNotFound is never returned: a 404 is an answer with
// a body and header fields of its own, which HTTP caching rules decide
// about.
func (o *HTTP) Get(ctx context.Context, key string, cond Conditions) (*Object, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL(key), nil)
	if err != nil {
		return nil, fmt.Errorf("http origin get %q: %w", key, err)
	}
	for k, vs := range cond.Header {
		req.Header[k] = vs
	}
	if cond.IfNoneMatch != "" {
		req.Header.Set("If-None-Match", cond.IfNoneMatch)
	}
	if !cond.IfModifiedSince.IsZero() {
		req.Header.Set("If-Modified-Since", cond.IfModifiedSince.UTC().Format(http.TimeFormat))
	}
	if _, set := req.Header["Accept-Encoding"]; !set {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	res, err := o.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http origin get %q: %w", key, err)
	}
	dropHopByHop(res.Header)
	switch res.StatusCode {
	case http.StatusNotModified:
		res.Body.Close()
		return nil, &NotModifiedError{Header: res.Header}
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		body, rerr := io.ReadAll(io.LimitReader(res.Body, maxErrorBody+1)) // what arrives: a failure either way
		res.Body.Close()
		whole := rerr == nil && len(body) <= maxErrorBody
		return nil, &StatusError{Status: res.StatusCode, Header: res.Header, Body: body[:min(len(body), maxErrorBody)], Whole: whole, key: key}
	}
	obj := objectOf(res.StatusCode, res.Header, res.Body, res.ContentLength)
	if res.Request.Method == http.MethodHead || res.StatusCode == http.StatusNoContent {
		obj.Size = 0
	}
	return obj, nil
}

// objectOf is the Object for an HTTP answer.
func objectOf(status int, h http.Header, body io.ReadCloser, size int64) *Object {
	obj := &Object{
		Body:            body,
		Size:            size,
		Status:          status,
		Header:          h,
		ETag:            h.Get("ETag"),
		ContentType:     h.Get("Content-Type"),
		ContentEncoding: h.Get("Content-Encoding"),
		CacheControl:    strings.Join(h.Values("Cache-Control"), ", "),
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		obj.LastModified = lm
	}
	return obj
}

// NotModifiedError is an HTTP origin's 304: it wraps ErrNotModified and
// carries the header fields the 304 came with.
type NotModifiedError struct {
	Header http.Header
}

func (e *NotModifiedError) Error() string { return "origin: not modified (304)" }

// Unwrap makes errors.Is(err, ErrNotModified) hold.
func (e *NotModifiedError) Unwrap() error { return ErrNotModified }

// StatusError is an HTTP origin's answer that is a failure of the origin
// (500, 502, 503, 504): the status, header fields, and the start of the
// body, which a client may be given when nothing cached can stand in.
type StatusError struct {
	Status int
	Header http.Header
	Body   []byte
	// Whole reports that Body is all of the answer's body, not its
	// start: only then may the answer be stored.
	Whole bool
	key   string
}

// Object is the answer as an Object, for a caller that stores it (the
// origin said how long it may be used): nil unless the body is Whole.
func (e *StatusError) Object() *Object {
	if !e.Whole {
		return nil
	}
	return objectOf(e.Status, e.Header, io.NopCloser(bytes.NewReader(e.Body)), int64(len(e.Body)))
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("http origin get %q: %d %s", e.key, e.Status, http.StatusText(e.Status))
}

// hopByHop are the connection's own header fields (RFC 9110 §7.6.1),
// never stored or passed on.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// dropHopByHop removes the hop-by-hop fields from h, and those the
// Connection field names.
func dropHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		delete(h, name)
	}
}

// RoundTrip sends req, a request the edge does not cache (POST, PUT,
// DELETE, ...), to the origin as it is: its path and query under the
// origin's prefix, to the origin's host. It is an http.RoundTripper for a
// reverse proxy; nothing is retried (the methods are not idempotent).
func (o *HTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = o.base.Scheme, o.base.Host
	out.URL.Path = o.base.Path + req.URL.Path
	if req.URL.RawPath != "" {
		out.URL.RawPath = o.base.Path + req.URL.RawPath
	}
	out.Host = o.base.Host
	out.RequestURI = ""
	res, err := o.client.Transport.RoundTrip(out)
	if err != nil {
		return nil, fmt.Errorf("http origin %s %q: %w", req.Method, req.URL.Path, err)
	}
	res.Request = req // the request as the caller named it
	return res, nil
}

// RoundTrip sends req to the first origin whose circuit is not open and
// that takes such requests (an HTTP origin; see HTTP.RoundTrip), once:
// the requests the edge passes through are not idempotent, so they are
// neither retried nor failed over.
func (f *Failover) RoundTrip(req *http.Request) (*http.Response, error) {
	for _, m := range f.members {
		rt, ok := m.origin.(http.RoundTripper)
		if ok && f.usable(m) {
			return rt.RoundTrip(req)
		}
	}
	return nil, fmt.Errorf("origin: no origin of %s takes %s requests now", f.name, req.Method)
}

// Proxies reports that the origin takes requests as they are (RoundTrip).
func (o *HTTP) Proxies() bool { return true }

// Proxies reports whether one of the origins takes requests as they are
// (an HTTP origin): then RoundTrip can pass them.
func (f *Failover) Proxies() bool {
	for _, m := range f.members {
		if p, ok := m.origin.(interface{ Proxies() bool }); ok && p.Proxies() {
			return true
		}
	}
	return false
}
