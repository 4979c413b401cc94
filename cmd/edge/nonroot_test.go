//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUnwritableCacheDirectory runs the edge as an unprivileged user on
// a cache directory it cannot write, as a container volume mounted with
// the wrong owner looks: the edge starts and serves from memory, says so
// loudly in the log, and /healthz?verbose shows the disk degraded while
// /healthz stays 200 (the edge can serve). It needs root to change user.
func TestUnwritableCacheDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the edge as another user")
	}
	const nobody = 65534
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "edge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cacheDir := filepath.Join(dir, "cache") // root's, 0755: nobody cannot write it
	if err := os.Mkdir(cacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Let nobody reach the binary: t.TempDir's directories are 0700. Only
	// those: the temporary directory itself (/tmp, 1777) is not ours.
	for p := dir; p != os.TempDir() && p != filepath.Dir(p); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-cache-dir", cacheDir, "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Env = []string{"HOME=/nonexistent", "PATH=/usr/bin:/bin"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	var degraded string
	var httpAddr, adminAddr string
	sc := bufio.NewScanner(stderr)
	for httpAddr == "" && sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		switch msg, _ := rec["msg"].(string); {
		case strings.Contains(msg, "disk degraded"):
			degraded, _ = rec["err"].(string)
		case msg == "edge serving":
			httpAddr, adminAddr = rec["http"].(string), rec["admin"].(string)
		}
	}
	go io.Copy(io.Discard, stderr)
	if httpAddr == "" {
		t.Fatal("the edge did not start serving")
	}
	if !strings.Contains(degraded, cacheDir) || !strings.Contains(degraded, "permission denied") {
		t.Errorf("the log does not say the cache directory is not writable: %q", degraded)
	}
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("http://" + httpAddr + "/widget/v1/login.js"); code != 200 || len(body) < 100 {
		t.Errorf("widget from memory: %d, %d bytes", code, len(body))
	}
	// Keep-warm fetched the must-serve paths into memory: healthy, and
	// the disk shown degraded.
	code, body := get("http://" + adminAddr + "/healthz?verbose")
	if code != 200 || !strings.Contains(body, "disk: degraded") || !strings.Contains(body, cacheDir) {
		t.Errorf("/healthz?verbose: %d\n%s", code, body)
	}
}
