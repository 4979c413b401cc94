package edge

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/edgecdn/edge/internal/s3test"
	"github.com/edgecdn/edge/negotiate"
)

// TestBrokenObjectNeverLoops: an object S3 holds in a coding the edge
// cannot transcode (declared gzip but not gzip, a gzip stream cut short,
// a coding the edge does not know) is fetched once, whatever the clients
// ask. Clients that accept the stored coding get exactly the stored
// bytes, the others a clean 502; the failure is logged once and counted.
// GETs are counted at the S3 side, through the fault proxy.
func TestBrokenObjectNeverLoops(t *testing.T) {
	e := startFaultEdge(t)
	gz := gzipBytes(t, text(20<<10))
	cases := []struct {
		name, coding string
		stored       []byte
		derivation   bool // a derivation is tried (and fails) for the other codings
	}{
		{"not-gzip", "gzip", text(6000), true},
		{"truncated-gzip", "gzip", gz[:len(gz)/2], true},
		{"unknown-coding", "deflate", []byte("x\x9c\xcb\x48\xcd\xc9\xc9\x07\x00\x06\x2c\x02\x15"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "broken-" + tc.name + ".js"
			e.srv.Put(t, "assets", "site/"+key, tc.stored, s3test.PutOptions{ContentType: "text/javascript", ContentEncoding: tc.coding})
			failuresBefore := e.cache.Stats().DerivationFailures
			var wg sync.WaitGroup
			for i := range 120 {
				ae := []string{"br", "", "gzip, br", tc.coding, "zstd", "identity"}[i%6]
				wg.Add(1)
				go func() {
					defer wg.Done()
					res := e.get(t, "/"+key, "Accept-Encoding", ae)
					body := readBody(t, res)
					accepts := negotiate.Accepts([]string{ae}, tc.coding) && ae != ""
					switch {
					case accepts && (res.StatusCode != 200 || !bytes.Equal(body, tc.stored) || res.Header.Get("Content-Encoding") != tc.coding):
						t.Errorf("%q: %d, Content-Encoding %q, stored bytes %v", ae, res.StatusCode, res.Header.Get("Content-Encoding"), bytes.Equal(body, tc.stored))
					case !accepts && res.StatusCode != 502:
						t.Errorf("%q: status %d, want 502 (a 200 here would not be the stored bytes)", ae, res.StatusCode)
					case res.Header.Get("Vary") != "Accept-Encoding":
						t.Errorf("%q: Vary %q", ae, res.Header.Get("Vary"))
					}
				}()
			}
			wg.Wait()
			e.cache.Wait()
			if got := e.proxy.GetsFor(key); got != 1 {
				t.Errorf("S3 saw %d GETs for %s, want 1", got, key)
			}
			failures := e.cache.Stats().DerivationFailures
			var n uint64
			for c := range failures {
				n += failures[c] - failuresBefore[c]
			}
			if want := map[bool]uint64{true: 1, false: 0}[tc.derivation]; n != want {
				t.Errorf("derivation failures counted: %d, want %d", n, want)
			}
			if tc.derivation {
				var mine int
				for _, r := range e.logs.matching("not valid in its content coding") {
					if strings.HasSuffix(attrs(r)["key"], key) {
						mine++
					}
				}
				if mine != 1 {
					t.Errorf("the failure was logged %d times, want once", mine)
				}
			}
			if len(e.logs.matching("cannot serve the object in a coding the client accepts")) == 0 {
				t.Error("the 502s were not logged")
			}
		})
	}
	// The broken objects stay cached: a later request is a hit.
	res := e.get(t, "/broken-not-gzip.js", "Accept-Encoding", "gzip")
	if cs := res.Header.Get("Cache-Status"); res.StatusCode != 200 || !strings.HasPrefix(cs, "edge; hit") {
		t.Errorf("later request: %d %q", res.StatusCode, cs)
	}
}
