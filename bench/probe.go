package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Accept-Encoding values of the scenarios.
const (
	acceptBrowser = "gzip, deflate, br" // what a browser sends
	acceptNone    = ""                  // curl, scripts: no header
)

// probeCase is one request the probe makes to every server.
type probeCase struct {
	path, accept string
}

var probeCases = []probeCase{
	{pathConfig, acceptBrowser},
	{pathConfig, acceptNone},
	{pathWidget, acceptBrowser},
	{pathWidget, acceptNone},
	{pathGzipped, acceptBrowser},
	{pathGzipped, acceptNone},
	{pathMissing, acceptBrowser},
}

// probeResult is what a server answered to a probeCase, on the second
// request (the first fills the cache).
type probeResult struct {
	Status   int
	Encoding string
	Bytes    int  // body bytes on the wire
	Hit      bool // by the server's own cache header
	Correct  bool // the decoded body is the object's bytes (or a 404 for the missing path)
	Problem  string
}

// probe asks s for every probe case twice and checks the second answer.
// It also leaves every fixed object cached, in every variant.
func probe(ctx context.Context, s *server, c *corpus) ([]probeResult, error) {
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var out []probeResult
	for _, pc := range probeCases {
		var res probeResult
		for range 2 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(pc.path), nil)
			if pc.accept != "" {
				req.Header.Set("Accept-Encoding", pc.accept)
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, fmt.Errorf("probe %s %s: %w", s.name, pc.path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("probe %s %s: %w", s.name, pc.path, err)
			}
			res = probeResult{
				Status:   resp.StatusCode,
				Encoding: resp.Header.Get("Content-Encoding"),
				Bytes:    len(body),
				Hit:      s.cached(resp.Header),
			}
			res.Correct, res.Problem = checkBody(c, pc, res, body)
			time.Sleep(50 * time.Millisecond) // let a background store settle
		}
		out = append(out, res)
	}
	return out, nil
}

// checkBody decodes body and compares it with the object.
func checkBody(c *corpus, pc probeCase, res probeResult, body []byte) (bool, string) {
	want := c.identity(pc.path)
	if want == nil {
		if res.Status != http.StatusNotFound {
			return false, fmt.Sprintf("status %d, want 404", res.Status)
		}
		return true, ""
	}
	if res.Status != http.StatusOK {
		return false, fmt.Sprintf("status %d", res.Status)
	}
	if !accepts(pc.accept, res.Encoding) {
		return false, fmt.Sprintf("Content-Encoding %q not acceptable to %q", res.Encoding, pc.accept)
	}
	got, err := decode(res.Encoding, body)
	if err != nil {
		return false, fmt.Sprintf("decoding %s: %v", res.Encoding, err)
	}
	if !bytes.Equal(got, want) {
		return false, fmt.Sprintf("decoded body differs (%d bytes, want %d)", len(got), len(want))
	}
	return true, ""
}

// accepts reports whether a client sending accept takes coding. No
// Accept-Encoding takes identity only (the edge's rule, and what clients
// without the header can actually read).
func accepts(accept, coding string) bool {
	if coding == "" || coding == "identity" {
		return true
	}
	for _, a := range strings.Split(accept, ",") {
		if strings.EqualFold(strings.TrimSpace(strings.Split(a, ";")[0]), coding) {
			return true
		}
	}
	return false
}

func decode(coding string, body []byte) ([]byte, error) {
	switch coding {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case "br":
		return io.ReadAll(brotli.NewReader(bytes.NewReader(body)))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return io.ReadAll(zr)
	}
	return nil, fmt.Errorf("unknown coding %q", coding)
}
