package main

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"testing"
)

// TestBridgeLogPackage: a library's log.Printf comes out as a JSON record
// at level WARN.
func TestBridgeLogPackage(t *testing.T) {
	prev := slog.Default()
	defer func() {
		slog.SetDefault(prev)
		slog.SetLogLoggerLevel(slog.LevelInfo)
	}()
	var buf lockedBuffer
	buf.b = new(bytes.Buffer)
	bridgeLogPackage(&buf)
	log.Printf("failed to sufficiently increase receive buffer size (was: %d kiB, wanted: %d kiB, got: %d kiB)", 208, 7168, 416)
	var rec map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &rec); err != nil {
		t.Fatalf("not one JSON record: %q", buf.String())
	}
	if rec["level"] != "WARN" || rec["msg"] != "failed to sufficiently increase receive buffer size (was: 208 kiB, wanted: 7168 kiB, got: 416 kiB)" {
		t.Errorf("record %v", rec)
	}
}
