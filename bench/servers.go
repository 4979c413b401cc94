package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

//go:embed nginx.conf.tmpl
var nginxTemplate string

//go:embed varnish.vcl.tmpl
var varnishTemplate string

// Server names, in the order the report lists them.
const (
	nameEdge    = "edge"
	nameEdgeLog = "edge-log" // the edge with -access-log on: what the log costs
	nameNginx   = "nginx"
	nameVarnish = "varnish"
)

// Cache sizes shared by the servers, large enough for the memory scenario.
const (
	memBytes  = 2 << 30 // edge -mem, Varnish malloc storage
	diskBytes = 4 << 30 // edge -disk, nginx max_size
)

// server is one running server under test.
type server struct {
	name string
	addr string // host:port of its HTTP listener
	// tlsAddr is its HTTPS listener (edge and nginx), same certificate.
	tlsAddr string
	scheme  string // "" means http
	admin   string // edge only: its admin listener (pprof)
	proc    *process
	dir     string
	// cached reports whether a response was a cache hit, by the server's
	// own header.
	cached func(http.Header) bool
}

// pids is the server's process tree: nginx master and workers, varnishd
// manager and child, the edge.
func (s *server) pids() []int { return descendants(s.proc.pid()) }

func (s *server) url(path string) string {
	if s.scheme != "" {
		return s.scheme + "://" + s.addr + path
	}
	return "http://" + s.addr + path
}

// env is what the harness knows to start servers: where things are.
type env struct {
	root     string // module root
	tmp      string // the run's temporary directory
	edgeBin  string
	origin   string // host:port of the origin
	cpu      int    // the core servers are pinned to
	procs    *procs
	isRoot   bool
	versions map[string]string
	// certFile and keyFile are the HTTPS scenarios' ECDSA P-256
	// certificate, served by the edge and nginx alike.
	certFile, keyFile string
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServer starts the named server in a fresh directory (so with an
// empty cache) and waits until it answers HTTP.
func (e *env) startServer(ctx context.Context, name string) (*server, error) {
	dir, err := os.MkdirTemp(e.tmp, name+"-")
	if err != nil {
		return nil, err
	}
	// Varnish's compiler and child run as unprivileged users.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, addr: addr, dir: dir}
	if name == nameEdge || name == nameEdgeLog || name == nameNginx {
		if s.tlsAddr, err = freePort(); err != nil {
			return nil, err
		}
	}
	switch name {
	case nameEdge:
		err = e.startEdge(s)
	case nameEdgeLog:
		// One JSON line per request to stdout, which goes to a file, as
		// nginx and Varnish here log nothing: the figure is the log's cost.
		err = e.startEdge(s, "-access-log")
	case nameNginx:
		err = e.startNginx(s)
	case nameVarnish:
		err = e.startVarnish(s)
	default:
		err = fmt.Errorf("unknown server %q", name)
	}
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s); err != nil {
		s.proc.stop()
		return nil, err
	}
	return s, nil
}

func (e *env) startEdge(s *server, extra ...string) error {
	admin, err := freePort()
	if err != nil {
		return err
	}
	s.admin = admin
	s.cached = func(h http.Header) bool { return strings.HasPrefix(h.Get("Cache-Status"), "edge; hit") }
	originURL := fmt.Sprintf("s3://%s?endpoint=http://%s&path_style=true&region=us-east-1", bucket, e.origin)
	env := []string{
		"GOMAXPROCS=1", // one pinned core
		"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + filepath.Join(s.dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.dir, "no-aws-credentials"),
	}
	args := append([]string{
		"-http", s.addr, "-admin", admin,
		"-origin", originURL,
		"-cache-dir", filepath.Join(s.dir, "cache"),
		"-mem", strconv.Itoa(memBytes), "-disk", strconv.Itoa(diskBytes),
		"-https", s.tlsAddr, "-tls-cert", e.certFile, "-tls-key", e.keyFile,
	}, extra...)
	s.proc, err = e.procs.start(s.name, e.cpu, env, filepath.Join(s.dir, "edge.log"), append([]string{e.edgeBin}, args...)...)
	return err
}

func (e *env) startNginx(s *server) error {
	s.cached = func(h http.Header) bool { return h.Get("X-Cache-Status") == "HIT" }
	for _, d := range []string{"tmp", "cache"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	conf := filepath.Join(s.dir, "nginx.conf")
	err := writeTemplate(conf, nginxTemplate, map[string]any{
		"Root":      e.isRoot,
		"Dir":       s.dir,
		"Listen":    s.addr,
		"Origin":    e.origin,
		"Bucket":    bucket,
		"DiskBytes": strconv.Itoa(diskBytes),
		"TLSListen": s.tlsAddr,
		"CertFile":  e.certFile,
		"KeyFile":   e.keyFile,
		"Ciphers":   nginxCiphers,
	})
	if err != nil {
		return err
	}
	s.proc, err = e.procs.start(nameNginx, e.cpu, nil, filepath.Join(s.dir, "nginx.out"),
		"nginx", "-p", s.dir, "-c", conf, "-e", filepath.Join(s.dir, "error.log"),
		"-g", "daemon off; master_process on;")
	return err
}

// varnishParams are varnishd's -p parameters, explained in bench/README.md.
var varnishParams = []string{
	"http_gzip_support=on", // the default, stated
	"thread_pools=2",       // the default; Varnish's docs advise against changing it
	"thread_pool_min=300",  // per pool: the 500 stampede clients find threads waiting
	"thread_pool_max=5000",
	"timeout_idle=120", // keep-alive as long as nginx's keepalive_timeout (default 5s)
	"listen_depth=4096",
}

func (e *env) startVarnish(s *server) error {
	s.cached = func(h http.Header) bool { return h.Get("X-Cache") == "HIT" }
	host, port, _ := net.SplitHostPort(e.origin)
	vcl := filepath.Join(s.dir, "bench.vcl")
	err := writeTemplate(vcl, varnishTemplate, map[string]any{
		"OriginHost": host, "OriginPort": port, "Bucket": bucket,
	})
	if err != nil {
		return err
	}
	args := []string{"varnishd", "-F",
		"-a", s.addr,
		"-f", vcl,
		"-n", filepath.Join(s.dir, "varnish"),
		"-s", "malloc," + strconv.Itoa(memBytes),
		"-T", "none",
	}
	if !e.isRoot {
		args = append(args, "-j", "none")
	}
	for _, p := range varnishParams {
		args = append(args, "-p", p)
	}
	s.proc, err = e.procs.start(nameVarnish, e.cpu, nil, filepath.Join(s.dir, "varnishd.log"), args...)
	return err
}

func writeTemplate(path, text string, data any) error {
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(text)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// waitReady polls s until it answers an HTTP request.
func waitReady(ctx context.Context, s *server) error {
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if s.proc.exited() {
			return fmt.Errorf("%s exited at start: %v\n%s", s.name, s.proc.err, s.proc.tail())
		}
		resp, err := client.Get(s.url("/bench-ready"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s within 30s: %v\n%s", s.name, s.addr, err, s.proc.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// buildEdge compiles ./cmd/edge into dir, as `make build` does but
// without -s -w, so that profiles have symbols.
func buildEdge(ctx context.Context, root, dir, version string) (string, error) {
	bin := filepath.Join(dir, "edge")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.version="+version, "-o", bin, "./cmd/edge")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/edge: %v\n%s", err, out)
	}
	return bin, nil
}

// versionOf runs a command and returns the first line of what it prints.
func versionOf(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

var errSkipped = errors.New("skipped")
