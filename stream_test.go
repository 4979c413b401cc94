package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
	"github.com/edgecdn/edge/origin"
)

// pipeOrigin answers every Get with the next body the test feeds it, so
// the test decides when each byte exists at the origin.
type pipeOrigin struct {
	bodies chan io.ReadCloser
	size   int64
	gets   atomic.Int64
}

func (o *pipeOrigin) String() string { return "pipe:test" }

func (o *pipeOrigin) Get(ctx context.Context, key string, _ origin.Conditions) (*origin.Object, error) {
	o.gets.Add(1)
	select {
	case b := <-o.bodies:
		return &origin.Object{Body: b, Size: o.size, ETag: `"big"`, LastModified: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestLargeObjectStreamsToClient(t *testing.T) {
	big := text(1 << 20)
	org := &pipeOrigin{bodies: make(chan io.ReadCloser, 2), size: int64(len(big))}
	te := newTestEdge(t, Site{Origin: org}, cache.Config{MaxMemoryObject: 64 << 10})
	srv := httptest.NewServer(te.h)
	defer srv.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", srv.URL+"/big.bin", nil)
		return tr.RoundTrip(req)
	}

	// A transfer that breaks half way: the client sees the break, and
	// nothing is cached.
	pr, pw := io.Pipe()
	org.bodies <- pr
	resc := make(chan *http.Response, 1)
	go func() {
		res, err := get()
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	pw.Write(big[:300<<10])
	res := <-resc
	half := make([]byte, 300<<10)
	if _, err := io.ReadFull(res.Body, half); err != nil || !bytes.Equal(half, big[:300<<10]) {
		t.Fatalf("first 300 KiB before the origin sent the rest: %v", err)
	}
	pw.CloseWithError(errors.New("connection reset by origin"))
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Fatal("a transfer cut at the origin reached the client as complete")
	}
	res.Body.Close()

	// A transfer that completes: bytes reach the client while the origin
	// still sends, then the object is cached on disk.
	pr, pw = io.Pipe()
	org.bodies <- pr
	go func() {
		res, err := get()
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	pw.Write(big[:512<<10])
	res = <-resc
	first := make([]byte, 512<<10)
	if _, err := io.ReadFull(res.Body, first); err != nil || !bytes.Equal(first, big[:512<<10]) {
		t.Fatalf("first half while the origin is still sending: %v", err)
	}
	pw.Write(big[512<<10:])
	pw.Close()
	rest, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !bytes.Equal(append(first, rest...), big) {
		t.Fatalf("whole body: %v, %d bytes", err, len(first)+len(rest))
	}
	if got := org.gets.Load(); got != 2 {
		t.Fatalf("origin requests %d, want 2 (the broken one was not cached)", got)
	}
	te.cache.Close() // waits for the commit to disk
	te2 := newTestEdge(t, Site{Origin: org}, cache.Config{Dir: te.dir, MaxMemoryObject: 64 << 10})
	res = te2.get(t, "GET", "/big.bin")
	if got := readBody(t, res); res.StatusCode != 200 || !bytes.Equal(got, big) {
		t.Fatalf("from disk after the transfer: status %d, %d bytes", res.StatusCode, len(got))
	}
	if got := org.gets.Load(); got != 2 {
		t.Fatalf("origin requests %d after restart, want 2", got)
	}
}
