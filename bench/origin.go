package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bucket is the one bucket the origin serves. Every server reaches the
// same objects under it: the edge as s3://bench (path style), nginx and
// Varnish as http://ORIGIN/bench/KEY.
const bucket = "bench"

// object is one stored object, with the headers S3 would send for it.
type object struct {
	body            []byte
	contentType     string
	contentEncoding string // "" or "gzip": as stored, never changed in flight
	cacheControl    string
	etag            string // quoted
	lastModified    time.Time
}

// Generated objects. Keys under these prefixes are made on demand, so a
// scenario can ask for as many cold objects as it needs.
const (
	coldPrefix = "cold/" // cold/ANYTHING.js: the widget under a new name; cold/ANYTHING.json: the tenant config
	memPrefix  = "mem/"  // mem/N.bin: an incompressible object of memObjectSize bytes
)

// originServer is an S3-compatible-enough HTTP server: GET and HEAD of
// /BUCKET/KEY with the headers S3 sends (ETag, Last-Modified, Content-Type,
// Content-Length, Content-Encoding, Cache-Control), 304 for a matching
// If-None-Match or an unchanged If-Modified-Since, 404 with S3's XML error
// for a missing key. It ignores SigV4 signatures and query parameters
// (x-id=GetObject), and counts what it is asked per key.
//
// Latency is added before each answer, to model the round trip to S3.
type originServer struct {
	objects map[string]*object // fixed objects by key
	widget  []byte             // body of every cold/*.js object
	config  []byte             // body of every cold/*.json object
	memSize int
	random  []byte // the pool mem/ objects are cut from

	latency atomic.Int64 // time.Duration added to each request
	total   atomic.Int64
	mu      sync.Mutex
	counts  map[string]int64 // requests per key (GET and HEAD)

	srv *http.Server
	ln  net.Listener
}

// lastModified is the same for every object: a fixed date, so that all
// servers see the same validators in every run.
var lastModified = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func newOriginServer(objs map[string]*object, widget, config []byte, memSize int) *originServer {
	o := &originServer{objects: objs, widget: widget, config: config, memSize: memSize, counts: map[string]int64{}}
	if memSize > 0 {
		// 8 MiB of random bytes (plus one object's length, so every
		// window fits): objects are windows into it at different offsets.
		// No server deduplicates bodies, so they are as good as unique.
		o.random = make([]byte, 8<<20+memSize)
		r := rand.NewChaCha8([32]byte{1})
		_, _ = r.Read(o.random)
	}
	return o
}

// start serves on a fresh 127.0.0.1 port.
func (o *originServer) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	o.ln = ln
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	go func() { _ = o.srv.Serve(ln) }()
	return nil
}

func (o *originServer) addr() string { return o.ln.Addr().String() }

func (o *originServer) close() {
	if o.srv != nil {
		_ = o.srv.Close()
	}
}

func (o *originServer) setLatency(d time.Duration) { o.latency.Store(int64(d)) }

// count returns how many requests key has had.
func (o *originServer) count(key string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[key]
}

// countPrefix returns how many requests keys starting with prefix have had.
func (o *originServer) countPrefix(prefix string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n int64
	for k, c := range o.counts {
		if strings.HasPrefix(k, prefix) {
			n += c
		}
	}
	return n
}

// lookup returns the object under key, making generated ones.
func (o *originServer) lookup(key string) *object {
	if obj, ok := o.objects[key]; ok {
		return obj
	}
	switch {
	case strings.HasPrefix(key, coldPrefix) && strings.HasSuffix(key, ".js"):
		return &object{
			body:         o.widget,
			contentType:  "application/javascript",
			cacheControl: "public, max-age=3600",
			etag:         etagOf([]byte(key)),
			lastModified: lastModified,
		}
	case strings.HasPrefix(key, coldPrefix) && strings.HasSuffix(key, ".json"):
		return &object{
			body:         o.config,
			contentType:  "application/json",
			cacheControl: "public, max-age=3600",
			etag:         etagOf([]byte(key)),
			lastModified: lastModified,
		}
	case strings.HasPrefix(key, memPrefix) && strings.HasSuffix(key, ".bin") && o.random != nil:
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(key, memPrefix), ".bin"))
		if err != nil || n < 0 {
			return nil
		}
		off := (n * 65537) % (len(o.random) - o.memSize)
		return &object{
			body:         o.random[off : off+o.memSize],
			contentType:  "application/octet-stream",
			cacheControl: "public, max-age=3600",
			etag:         etagOf([]byte(key)),
			lastModified: lastModified,
		}
	}
	return nil
}

func (o *originServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(o.latency.Load()); d > 0 {
		time.Sleep(d)
	}
	b, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	o.total.Add(1)
	o.mu.Lock()
	o.counts[key]++
	o.mu.Unlock()

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.URL.Path)
		return
	}
	if b != bucket {
		s3Error(w, http.StatusNotFound, "NoSuchBucket", "/"+b)
		return
	}
	obj := o.lookup(key)
	if obj == nil {
		s3Error(w, http.StatusNotFound, "NoSuchKey", r.URL.Path)
		return
	}
	h := w.Header()
	h.Set("ETag", obj.etag)
	h.Set("Last-Modified", obj.lastModified.Format(http.TimeFormat))
	h.Set("Cache-Control", obj.cacheControl)
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-amz-request-id", "BENCH")
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etagListMatch(inm, obj.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !obj.lastModified.After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", obj.contentType)
	if obj.contentEncoding != "" {
		h.Set("Content-Encoding", obj.contentEncoding)
	}
	h.Set("Content-Length", strconv.Itoa(len(obj.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(obj.body)
	}
}

// s3Error answers as S3 does: an XML error document.
func s3Error(w http.ResponseWriter, status int, code, resource string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-amz-request-id", "BENCH")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>BENCH</RequestId></Error>",
		code, http.StatusText(status), resource)
}

// etagListMatch is the weak comparison of RFC 9110 §13.1.2 against a list.
func etagListMatch(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// etagOf is an S3-style ETag: a quoted hex digest.
func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// newObject stores body with S3's headers.
func newObject(body []byte, contentType, contentEncoding, cacheControl string) *object {
	return &object{
		body:            bytes.Clone(body),
		contentType:     contentType,
		contentEncoding: contentEncoding,
		cacheControl:    cacheControl,
		etag:            etagOf(body),
		lastModified:    lastModified,
	}
}
