package dnsgeo

import (
	"log/slog"
	"sync"
	"time"
)

// errorLogInterval is how often one kind of I/O error is logged.
const errorLogInterval = 10 * time.Second

// errorLog logs the failures of the serving loops (socket reads and
// writes, accepts) at most once per errorLogInterval per operation,
// with the number left out since, so that a failing socket cannot
// flood the log. Every failure is also counted (dnsgeo_io_errors_total).
type errorLog struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	last    map[string]time.Time
	skipped map[string]int
}

func newErrorLog(log *slog.Logger, now func() time.Time) *errorLog {
	return &errorLog{log: log, now: now, last: make(map[string]time.Time), skipped: make(map[string]int)}
}

func (e *errorLog) report(op string, err error) {
	now := e.now()
	e.mu.Lock()
	last, seen := e.last[op]
	if seen && now.Sub(last) < errorLogInterval {
		e.skipped[op]++
		e.mu.Unlock()
		return
	}
	skipped := e.skipped[op]
	e.last[op], e.skipped[op] = now, 0
	e.mu.Unlock()
	e.log.Error("dns "+op+" failed", "error", err, "same_errors_not_logged", skipped)
}

// ioError counts and logs (rate limited) a failed socket operation.
func (s *Server) ioError(op string, err error) {
	s.metrics.ioErrors.WithLabelValues(op).Inc()
	s.errlog.report(op, err)
}
