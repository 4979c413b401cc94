package main

import (
	"bufio"
	"io"
	"log/slog"
	"sync"
	"time"
)

// accessLogBuffer is how much of the access log gathers before it is
// written, and accessLogFlush the longest a line waits: nginx's
// access_log buffer= and flush=. A request then costs no write(2) of its
// own, which on a cache hit was a third of the edge's CPU per request.
const (
	accessLogBuffer = 64 << 10
	accessLogFlush  = time.Second
)

// bufferedLog is the access log's writer: slog's JSON handler writes each
// line into a buffer, which goes out when full, every accessLogFlush, and
// at Close. A line is never split across two writes. A failed write (a
// closed pipe, a full disk) is logged, once per interval, and the lines
// in the buffer are dropped: the access log never stops serving.
type bufferedLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	out  io.Writer
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}
}

// newBufferedLog returns a bufferedLog on out that flushes every
// accessLogFlush; log takes its write errors.
func newBufferedLog(out io.Writer, log *slog.Logger) *bufferedLog {
	t := time.NewTicker(accessLogFlush)
	b := newBufferedLogTicks(out, log, t.C)
	go func() { <-b.done; t.Stop() }()
	return b
}

// newBufferedLogTicks returns a bufferedLog on out that flushes at each
// value from tick.
func newBufferedLogTicks(out io.Writer, log *slog.Logger, tick <-chan time.Time) *bufferedLog {
	b := &bufferedLog{w: bufio.NewWriterSize(out, accessLogBuffer), out: out, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushAt(tick)
	return b
}

// Write takes one line (slog's handler writes a record at once). It
// never fails: a write error is logged (see failed).
func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) > b.w.Available() && b.w.Buffered() > 0 {
		b.flushLocked() // the line goes out whole, in the next write
	}
	if _, err := b.w.Write(p); err != nil {
		b.failed(err)
	}
	return len(p), nil
}

func (b *bufferedLog) flushAt(tick <-chan time.Time) {
	defer close(b.done)
	for {
		select {
		case <-tick:
			b.mu.Lock()
			b.flushLocked()
			b.mu.Unlock()
		case <-b.stop:
			return
		}
	}
}

func (b *bufferedLog) flushLocked() {
	if err := b.w.Flush(); err != nil {
		b.failed(err)
	}
}

// failed logs a write error and starts an empty buffer: bufio.Writer
// keeps an error forever once it has one.
func (b *bufferedLog) failed(err error) {
	b.log.Error("access log: write failed; the buffered lines are lost", "err", err)
	b.w.Reset(b.out)
}

// Close writes what is buffered and stops the flusher.
func (b *bufferedLog) Close() error {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return nil
}
