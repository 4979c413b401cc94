package edge

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/edgecdn/edge/cache"
)

// fileSink is a ResponseWriter that notes whether a body came to its
// ReadFrom as a file, which is what net/http sends with sendfile(2).
type fileSink struct {
	discard
	gotFile bool
}

func (f *fileSink) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		_, f.gotFile = lr.R.(*os.File)
	}
	return f.discard.ReadFrom(r)
}

// TestAccessLogKeepsSendfile: with the access log on, a body from the
// disk tier still reaches the connection's ReadFrom as a file, and the
// logging wrapper keeps Flush and Unwrap.
func TestAccessLogKeepsSendfile(t *testing.T) {
	for _, logged := range []bool{false, true} {
		te := newTestEdge(t, Site{}, cache.Config{MaxMemoryObject: 4 << 10})
		var log bytes.Buffer
		if logged {
			te.h.accessLog = slog.New(slog.NewJSONHandler(&log, nil))
		}
		big := text(200 << 10)
		te.org.put("/big.js", memObject{body: big})
		te.get(t, "GET", "/big.js") // fill: streamed, then committed to disk
		te.cache.Wait()
		w := &fileSink{discard: discard{h: http.Header{}}}
		te.h.ServeHTTP(w, httptest.NewRequest("GET", "/big.js", nil))
		if w.n != len(big) || !w.gotFile {
			t.Errorf("access log %v: %d bytes, sent as a file: %v", logged, w.n, w.gotFile)
		}
		if logged && !bytes.Contains(log.Bytes(), []byte(`"bytes":204800`)) {
			t.Errorf("the access log did not count the bytes sent with ReadFrom: %s", log.String())
		}
	}

	rec := newRecorder(httptest.NewRecorder())
	var w http.ResponseWriter = rec
	if _, ok := w.(http.Flusher); !ok {
		t.Error("the recorder hides http.Flusher")
	}
	if _, ok := w.(io.ReaderFrom); !ok {
		t.Error("the recorder hides io.ReaderFrom")
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		t.Errorf("ResponseController through the recorder: %v", err)
	}
	// Deadlines reach the connection through Unwrap.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(newRecorder(w)).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through the recorder: %v", err)
		}
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}
