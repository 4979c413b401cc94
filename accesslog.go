package edge

import (
	"io"
	"log/slog"
	"net/http"
	"time"
)

// recorder notes a response's status and size for the access log. It
// keeps the interfaces of the ResponseWriter it wraps that the edge
// relies on: io.ReaderFrom (so large bodies still go out with sendfile),
// http.Flusher, and Unwrap for http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func newRecorder(w http.ResponseWriter) *recorder {
	return &recorder{ResponseWriter: w, status: http.StatusOK}
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom hands src to the wrapped writer's ReadFrom, which for a
// net/http connection sends a file with sendfile(2).
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(onlyWriter{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// onlyWriter hides every method but Write, so io.Copy does not call back
// into ReadFrom.
type onlyWriter struct{ io.Writer }

// Flush sends buffered data to the client.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (h *Handler) logAccess(r *http.Request, rec *recorder, d time.Duration) {
	h.accessLog.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("remote", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("uri", r.RequestURI),
		slog.String("proto", r.Proto),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.String("encoding", rec.Header().Get("Content-Encoding")),
		slog.String("cache", rec.Header().Get("Cache-Status")),
		slog.Duration("duration", d),
		slog.String("user_agent", r.UserAgent()),
	)
}
