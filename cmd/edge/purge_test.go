package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgecdn/edge/journal"
	"github.com/edgecdn/edge/store"
)

func TestPurgeFlagsChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-name", "a/b"}, "-name"},
		{[]string{"-name", ""}, "-name"},
		{[]string{"-purge-poll", "0s"}, "-purge-poll"},
		{[]string{"-admin-url", "ftp://x"}, "-admin-url"},
		{[]string{"-admin-url", "10.0.0.1:9080"}, "-admin-url"},
		{[]string{"-purge-journal", "ftp://bucket"}, "-purge-journal"},
		{[]string{"-purge-journal", "s3://bucket?colour=red"}, "-purge-journal"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"-cache-dir", t.TempDir(), "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, tc.args...)
		code := run(context.Background(), args, &stdout, &stderr, hooks{ready: func(net.Addr, net.Addr) { t.Error("started serving") }})
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want non-zero naming %s", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// edgeRun is one in-process run of the edge command.
type edgeRun struct {
	public, admin string
	cancel        context.CancelFunc
	done          chan int
	stopOnce      sync.Once
	stderr        *lines
}

func runEdge(t *testing.T, args ...string) *edgeRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &edgeRun{cancel: cancel, done: make(chan int, 1), stderr: newLines()}
	addrs := make(chan [2]net.Addr, 1)
	go func() {
		e.done <- run(ctx, append([]string{"-http", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...), io.Discard, e.stderr,
			hooks{ready: func(h, a net.Addr) { addrs <- [2]net.Addr{h, a} }})
	}()
	select {
	case a := <-addrs:
		e.public, e.admin = "http://"+a[0].String(), "http://"+a[1].String()
	case code := <-e.done:
		t.Fatalf("edge exited with %d:\n%s", code, e.stderr.String())
	}
	t.Cleanup(e.stop)
	return e
}

func (e *edgeRun) stop() {
	e.stopOnce.Do(func() {
		e.cancel()
		<-e.done
	})
}

func (e *edgeRun) get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestJournalAtStart: a purge recorded while the edge was down is
// applied before its listeners open: its first answer is the new
// version. The edge registers in the journal, and /healthz?verbose shows
// the journal.
func TestJournalAtStart(t *testing.T) {
	site, cacheDir, jdir := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(site, "t.json"), []byte(`{"v":1}`), 0o644)
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("journal-token-0123456789\n"), 0o600)
	args := []string{"-origin", "dir:" + site, "-cache-dir", cacheDir, "-must-serve", "/t.json", "-ttl", "24h",
		"-purge-journal", "dir:" + jdir, "-name", "edge-7", "-region", "test-1", "-admin-token-file", token}

	e := runEdge(t, args...)
	if code, body := e.get(t, e.public+"/t.json"); code != 200 || body != `{"v":1}` {
		t.Fatalf("v1: %d %q", code, body)
	}
	e.stop()

	// Down: a release uploads v2 and records a hard purge.
	os.WriteFile(filepath.Join(site, "t.json"), []byte(`{"v":2}`), 0o644)
	st, _ := store.NewDir(jdir)
	j := journal.New(st)
	now := time.Now()
	if err := j.Append(context.Background(), journal.Record{ID: journal.NewID(now), Time: now, URLs: []string{"/t.json"}, Mode: journal.Hard}); err != nil {
		t.Fatal(err)
	}

	e = runEdge(t, args...)
	if code, body := e.get(t, e.public+"/t.json"); code != 200 || body != `{"v":2}` {
		t.Fatalf("first answer after the restart: %d %q, want v2", code, body)
	}
	e.stderr.waitFor(t, "purge journal: registered", e.done)
	edges, err := j.Edges(context.Background())
	if err != nil || len(edges) != 1 || edges[0].Name != "edge-7" || edges[0].Region != "test-1" || edges[0].AdminURL != e.admin {
		t.Fatalf("registry: %+v, %v (admin at %s)", edges, err, e.admin)
	}
	if _, body := e.get(t, e.public+"/healthz?verbose"); !strings.Contains(body, "purge journal: ok") {
		t.Fatalf("/healthz?verbose lacks the journal:\n%s", body)
	}
	if _, body := e.get(t, e.admin+"/metrics", "Authorization", "Bearer journal-token-0123456789"); !strings.Contains(body, "edge_purge_journal_lag_seconds") || !strings.Contains(body, `edge_purges_total{mode="hard",selector="url"} 1`) {
		t.Fatalf("/metrics lacks the journal's lag or the purge:\n%s", body)
	}
}
