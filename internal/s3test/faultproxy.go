package s3test

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// FaultProxy is an HTTP proxy between S3 clients and a Server that counts
// requests and breaks them on demand, to test how the code under test
// copes with an S3 that fails:
//
//	srv := s3test.Start(t)
//	p := s3test.NewFaultProxy(t, srv.Endpoint())
//	o, err := origin.Parse(ctx, p.OriginURL("site", ""))
//	p.SetFault(s3test.Fault{Status: 503}) // SlowDown from now on
//
// For a server that is down altogether, use Server.Stop. Requests keep the
// Host header the client sent (the proxy's), which is what the client
// signed, so SigV4 signatures still verify at the server. The methods are
// safe for concurrent use.
type FaultProxy struct {
	target *url.URL
	srv    *httptest.Server
	tr     *http.Transport
	rp     *httputil.ReverseProxy

	closed    chan struct{} // closed by Close: held requests give up
	closeOnce sync.Once

	requests atomic.Int64
	faults   atomic.Int64

	mu    sync.Mutex
	fault Fault
	gets  map[string]int64 // GETs per URL path
	seen  []seenRequest    // every request, for Seen
}

// seenRequest is what Seen reports of a request.
type seenRequest struct {
	method, path string
	header       http.Header
}

// Fault says how the proxy breaks requests. The zero value passes requests
// through unchanged. The fields combine in this order: first the waits
// (HeaderDelay, then Hold), then Refuse, else Status, else CutBodyAfter or
// WrongLength, else the request is forwarded.
type Fault struct {
	// Status, if not 0, answers with this status and an S3 XML error
	// body, without contacting the target.
	Status int
	// Code is the S3 error code in the body. "" means the usual one for
	// Status: 500 InternalError, 503 SlowDown, 403 AccessDenied,
	// 404 NoSuchKey; for other statuses the status text without spaces.
	Code string
	// HeaderDelay waits this long before going on (or until the client
	// gives up). Tests that must not depend on time use Hold instead.
	HeaderDelay time.Duration
	// Hold, if not nil, waits until it is closed (or the client gives up)
	// before going on.
	Hold chan struct{}
	// Held, if not nil, gets a value (without blocking) each time a
	// request starts waiting on Hold, so a test knows it is in flight.
	Held chan struct{}
	// CutBodyAfter, if positive, forwards the request and sends the
	// target's status and headers, Content-Length included, but only this
	// many bytes of the body, and then closes the connection: a truncated
	// body. It needs a response with a Content-Length (S3 GETs have one).
	CutBodyAfter int64
	// WrongLength, if positive, forwards the request and sends the
	// target's response with Content-Length set to this value, then the
	// real body, then closes the connection. A length above the real one
	// makes the client's read fail; one below looks like a shorter,
	// complete body (nothing at the HTTP level can tell).
	WrongLength int64
	// Refuse closes the connection at once, without a response.
	Refuse bool
	// Only, if set, applies the fault only to requests whose URL path
	// contains it; the others pass through.
	Only string
}

// active reports whether f changes anything.
func (f Fault) active() bool {
	return f.Status != 0 || f.HeaderDelay > 0 || f.Hold != nil || f.CutBodyAfter > 0 || f.WrongLength > 0 || f.Refuse
}

// NewFaultProxy starts a proxy to target (a URL such as Server.Endpoint())
// on a loopback port, and registers a cleanup that closes it.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("s3test: fault proxy target %q: want http://HOST:PORT", target)
	}
	p := &FaultProxy{
		target: u,
		closed: make(chan struct{}),
		gets:   map[string]int64{},
		tr: &http.Transport{
			// Never decode: the client gets the bytes as the server sent
			// them.
			DisableCompression:  true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // signed by the client
		},
		Transport:     p.tr,
		FlushInterval: -1, // stream the body as it comes
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			// The target is down or the client went away: a 502, as a real
			// proxy in front of S3 would answer, without log noise.
			http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.Close)
	return p
}

// URL returns the proxy's URL, "http://127.0.0.1:PORT".
func (p *FaultProxy) URL() string { return p.srv.URL }

// OriginURL is Server.OriginURL through the proxy.
func (p *FaultProxy) OriginURL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + p.URL() + "&path_style=true&region=" + Region
}

// SetFault applies f to the requests that arrive from now on, until the
// next SetFault. Requests already past the fault check are not affected.
func (p *FaultProxy) SetFault(f Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// Requests returns how many requests for objects (paths /BUCKET/KEY, any
// method) the proxy has seen, faulted ones included.
func (p *FaultProxy) Requests() int64 { return p.requests.Load() }

// Faults returns how many requests an active fault applied to.
func (p *FaultProxy) Faults() int64 { return p.faults.Load() }

// GetsFor returns how many GET requests the proxy has seen, faulted ones
// included, whose URL path contains pathSubstring.
func (p *FaultProxy) GetsFor(pathSubstring string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for path, c := range p.gets {
		if strings.Contains(path, pathSubstring) {
			n += c
		}
	}
	return n
}

// Seen returns the headers of the requests with this method whose URL
// path contains pathSubstring, in the order they arrived, faulted ones
// included: what the client sent, as S3 would receive it.
func (p *FaultProxy) Seen(method, pathSubstring string) []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []http.Header
	for _, r := range p.seen {
		if r.method == method && strings.Contains(r.path, pathSubstring) {
			out = append(out, r.header)
		}
	}
	return out
}

// Close stops the proxy; held requests give up. Close is idempotent and
// also runs at the test's cleanup.
func (p *FaultProxy) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
}

// ClientFor returns an S3 client like Client (path style, the root
// credentials, no retries) that talks to endpoint instead, for example a
// FaultProxy's URL.
func (s *Server) ClientFor(endpoint string) *s3.Client {
	return newClient(endpoint, s.secret)
}

// isObjectPath reports whether a path-style URL path names an object:
// /BUCKET/KEY with both non-empty.
func isObjectPath(path string) bool {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return ok && bucket != "" && key != ""
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if isObjectPath(path) {
		p.requests.Add(1)
	}
	p.mu.Lock()
	f := p.fault
	if r.Method == http.MethodGet {
		p.gets[path]++
	}
	p.seen = append(p.seen, seenRequest{r.Method, path, r.Header.Clone()})
	p.mu.Unlock()

	if !f.active() || (f.Only != "" && !strings.Contains(path, f.Only)) {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.faults.Add(1)

	if f.HeaderDelay > 0 {
		t := time.NewTimer(f.HeaderDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			abort(w)
			return
		case <-p.closed:
			t.Stop()
			abort(w)
			return
		}
	}
	if f.Hold != nil {
		if f.Held != nil {
			select {
			case f.Held <- struct{}{}:
			default:
			}
		}
		select {
		case <-f.Hold:
		case <-r.Context().Done():
			abort(w)
			return
		case <-p.closed:
			abort(w)
			return
		}
	}
	switch {
	case f.Refuse:
		abort(w)
	case f.Status != 0:
		writeS3Error(w, r, f.Status, f.Code)
	case f.CutBodyAfter > 0 || f.WrongLength > 0:
		p.forwardBroken(w, r, f)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// abort closes the client's connection without a response.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Cannot happen on the HTTP/1.1 httptest server; the standard way
		// to abort a response otherwise.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

// defaultCodes are the S3 error codes a Fault uses by default.
var defaultCodes = map[int]string{
	http.StatusInternalServerError: "InternalError",
	http.StatusServiceUnavailable:  "SlowDown",
	http.StatusForbidden:           "AccessDenied",
	http.StatusNotFound:            "NoSuchKey",
}

// writeS3Error answers like S3 does when it fails: an XML Error document.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	if code == "" {
		code = defaultCodes[status]
	}
	if code == "" {
		code = strings.ReplaceAll(http.StatusText(status), " ", "")
	}
	body := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+
		"<Error><Code>%s</Code><Message>fault injected by s3test.FaultProxy</Message>"+
		"<Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>",
		html.EscapeString(code), html.EscapeString(r.URL.Path))
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amz-Request-Id", "faultproxy")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		io.WriteString(w, body)
	}
}

// forwardBroken forwards r and sends the response back on the raw
// connection, with the body cut short or a false Content-Length, and
// closes the connection. It writes the response itself because net/http's
// ResponseWriter would refuse to send a body that disagrees with its
// Content-Length.
func (p *FaultProxy) forwardBroken(w http.ResponseWriter, r *http.Request, f Fault) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.target.Scheme
	out.URL.Host = p.target.Host
	out.Host = r.Host // signed by the client
	out.Header.Del("Connection")
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	h := resp.Header.Clone()
	h.Del("Transfer-Encoding")
	h.Set("Connection", "close") // the client must not reuse the connection
	switch {
	case f.WrongLength > 0:
		h.Set("Content-Length", strconv.FormatInt(f.WrongLength, 10))
	case resp.ContentLength >= 0:
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	bw := brw.Writer
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	h.Write(bw)
	bw.WriteString("\r\n")
	if r.Method != http.MethodHead {
		var body io.Reader = resp.Body
		if f.CutBodyAfter > 0 {
			body = io.LimitReader(resp.Body, f.CutBodyAfter)
		}
		copyFlushing(bw, body)
	}
	bw.Flush()
}

// copyFlushing copies src to bw, flushing after each read so the client
// gets bytes as they come.
func copyFlushing(bw *bufio.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := bw.Write(buf[:n]); werr != nil {
				return
			}
			if bw.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
