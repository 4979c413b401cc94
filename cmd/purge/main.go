// Command purge purges, warms and inspects objects on every edge of the
// CDN, on every release:
//
//	purge url https://cdn.example.com/widget/v1/login.js --journal s3://edge-journal/prod --verify --origin s3://login-assets/prod
//	purge prefix /tenants/ --host cdn.example.com --edges-dns edges.cdn.svc:9080
//	purge tag release-42 --hard --edges-file edges.txt
//	purge all --journal s3://edge-journal/prod --allow-catchup
//	purge warm /widget/v2/login.js --journal s3://edge-journal/prod
//	purge status /widget/v1/login.js --edges http://10.0.0.1:9080,http://10.0.0.2:9080
//
// With --journal, a purge is first written to the journal, which every
// edge reads at start and every -purge-poll, so that an edge that is down
// now applies it on its return; then it is sent to every edge at once.
// The exit status is 0 only when every edge confirmed. Run purge -h for
// every option.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/edgecdn/edge"
)

// Exit statuses.
const (
	exitOK       = 0 // every edge confirmed (and --verify found the current version everywhere)
	exitNotAll   = 1 // some edge did not confirm, or --verify failed, or the journal could not be written
	exitUsage    = 2 // bad command line or option value; nothing was sent
	exitNoTarget = 3 // no edge to send to
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// commands and what they take.
var commands = map[string]struct {
	args    string // for usage
	min     int
	max     int // -1: any
	summary string
}{
	"url":    {"URL...", 1, -1, "purge these objects (every variant, every coding)"},
	"prefix": {"PATH...", 1, -1, "purge every object whose path starts with PATH"},
	"tag":    {"TAG...", 1, -1, "purge every object tagged TAG (S3 metadata x-amz-meta-surrogate-key)"},
	"all":    {"", 0, 0, "purge every object (of --host's site, with --host)"},
	"warm":   {"URL...", 1, -1, "have every edge fetch these objects and derive their codings"},
	"status": {"URL", 1, 1, "show what every edge holds for one URL"},
}

// options are the command line.
type options struct {
	command     string
	args        []string
	hard        bool
	host        string
	edges       string
	edgesFile   string
	edgesDNS    string
	journal     string
	tokenFile   string
	token       string
	timeout     time.Duration
	resolver    string
	origin      string
	verify      bool
	json        bool
	allowCatch  bool
	concurrency int
	retries     int
	retention   time.Duration
	registryAge time.Duration
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: purge COMMAND [options] ARGS...   (options may also follow the arguments)

Commands:
`)
	for _, name := range []string{"url", "prefix", "tag", "all", "warm", "status"} {
		c := commands[name]
		fmt.Fprintf(w, "  %-20s %s\n", name+" "+c.args, c.summary)
	}
	fmt.Fprint(w, `
A URL is https://HOST/PATH (the host selects the site) or a /PATH (with
--host, or the edges' default site). Edges come from --edges, --edges-file,
--edges-dns and the registry in --journal, together.

Exit status: 0 every edge confirmed; 1 some did not (named), --verify
failed, or the journal could not be written; 2 bad usage; 3 no edge found.

Options:
`)
	fs.VisitAll(func(f *flag.Flag) {
		name, help := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			help += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, help)
	})
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.hard, "hard", false, "hard purge: never serve the objects again, not even stale when the origin fails (default: soft, revalidate)")
	fs.StringVar(&o.host, "host", "", "limit the purge to the site serving `HOST` (default: every site; a full URL names its own)")
	fs.Func("edges", "edges' admin `URLs`, comma-separated (http://10.0.0.1:9080,...); repeatable", func(v string) error {
		if o.edges != "" {
			v = o.edges + "," + v
		}
		o.edges = v
		return nil
	})
	fs.StringVar(&o.edgesFile, "edges-file", "", "`file` of edges' admin URLs, one per line, # comments")
	fs.StringVar(&o.edgesDNS, "edges-dns", "", "every A and AAAA record of `NAME[:PORT]` is an edge (a Kubernetes headless service); port default 9080; http:// unless given as https://NAME[:PORT]")
	fs.StringVar(&o.journal, "journal", "", "purge journal `URL` (s3://BUCKET/PREFIX[?...] or dir:PATH, as the edges' -purge-journal): write the purge there first, and send it to every edge registered there")
	fs.StringVar(&o.tokenFile, "token-file", "", "`file` holding the edges' admin token (default: $EDGE_ADMIN_TOKEN)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for each edge, retries included")
	fs.StringVar(&o.resolver, "resolver", "", "DNS server `ADDR` (host:port) for --edges-dns (default: the system's)")
	fs.StringVar(&o.origin, "origin", "", "origin `URL` (as the edges' -origin: s3://BUCKET/PREFIX[?...] or dir:PATH) where --verify reads each object's current ETag")
	fs.BoolVar(&o.verify, "verify", false, "url: then check that every edge serves the origin's current version of each URL (warming it), retrying for 3 × --timeout")
	fs.BoolVar(&o.json, "json", false, "print one JSON document on stdout instead of lines")
	fs.BoolVar(&o.allowCatch, "allow-catchup", false, "count unreachable edges registered in the journal (they apply the purge on their return) as success")
	fs.IntVar(&o.concurrency, "concurrency", 64, "edges contacted at once")
	fs.IntVar(&o.retries, "retries", 2, "retries per edge after a failed attempt (network errors, 5xx, 429), within --timeout")
	fs.DurationVar(&o.retention, "retention", 30*24*time.Hour, "with --journal: records older than this are deleted after each purge; keep it above the longest TTL plus stale-if-error in force (edges down longer soft-purge everything on return)")
	fs.DurationVar(&o.registryAge, "registry-max-age", 24*time.Hour, "with --journal: registry entries not refreshed for this long are taken as decommissioned and skipped")
	return fs
}

// parseArgs parses COMMAND [options] ARGS..., options anywhere after the
// command (and "--" ending them).
func parseArgs(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, stderr)
	if len(args) == 0 {
		usage(stderr, fs)
		return nil, errors.New("no command")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		return nil, flag.ErrHelp
	}
	// Options before the command are taken too.
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() == 0 {
		return nil, errors.New("no command")
	}
	args = fs.Args()
	o.command = args[0]
	c, ok := commands[o.command]
	if !ok {
		return nil, fmt.Errorf("unknown command %q (url, prefix, tag, all, warm, status)", o.command)
	}
	rest := args[1:]
	var after []string
	if i := slices.Index(rest, "--"); i >= 0 {
		rest, after = rest[:i], rest[i+1:]
	}
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err // flag.ErrHelp included: the caller prints the usage
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		o.args = append(o.args, rest[0])
		rest = rest[1:]
	}
	o.args = append(o.args, after...)
	switch {
	case len(o.args) < c.min:
		return nil, fmt.Errorf("%s: want %s", o.command, c.args)
	case c.max >= 0 && len(o.args) > c.max:
		if c.max == 0 {
			return nil, fmt.Errorf("%s takes no arguments (got %q)", o.command, o.args)
		}
		return nil, fmt.Errorf("%s: want %s (got %d)", o.command, c.args, len(o.args))
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", o.timeout)
	}
	if o.concurrency < 1 {
		return nil, fmt.Errorf("--concurrency %d: at least 1", o.concurrency)
	}
	if o.retries < 0 || o.retries > 10 {
		return nil, fmt.Errorf("--retries %d: 0 to 10", o.retries)
	}
	if o.retention < time.Hour {
		return nil, fmt.Errorf("--retention %s: at least 1h (and above the longest TTL plus stale-if-error)", o.retention)
	}
	if o.verify && o.command != "url" {
		return nil, fmt.Errorf("--verify: only with url")
	}
	if o.verify && o.origin == "" {
		return nil, errors.New("--verify needs --origin (where the current ETag is read)")
	}
	if o.hard && (o.command == "warm" || o.command == "status") {
		return nil, fmt.Errorf("--hard: only with url, prefix, tag and all")
	}
	if strings.ContainsAny(o.host, "/: ") {
		return nil, fmt.Errorf("--host %q: a host name, without scheme, port or path", o.host)
	}
	if o.edges == "" && o.edgesFile == "" && o.edgesDNS == "" && o.journal == "" {
		return nil, errors.New("no edges: give --edges, --edges-file, --edges-dns or --journal")
	}
	tok := getenv("EDGE_ADMIN_TOKEN")
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		tok = string(b)
	}
	o.token = strings.TrimSpace(tok)
	if o.token == "" {
		return nil, errors.New("no admin token: give --token-file or set EDGE_ADMIN_TOKEN")
	}
	if strings.ContainsAny(o.token, " \t\r\n") {
		return nil, errors.New("admin token: must be one word")
	}
	return o, nil
}

// splitURL takes a URL argument apart: https://HOST/PATH, or /PATH (the
// host is --host's).
func splitURL(arg, defHost string) (host, path string, err error) {
	if strings.HasPrefix(arg, "/") {
		if strings.ContainsAny(arg, "?#") {
			return "", "", fmt.Errorf("%q: no query string or fragment (the edges key objects by path)", arg)
		}
		return defHost, arg, nil
	}
	u, err := url.Parse(arg)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("%q: want https://HOST/PATH or /PATH", arg)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q: no query string or fragment (the edges key objects by path)", arg)
	}
	h := strings.ToLower(u.Hostname())
	if defHost != "" && !strings.EqualFold(defHost, h) {
		return "", "", fmt.Errorf("%q: its host is not --host %s", arg, defHost)
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if pp, err := url.PathUnescape(p); err == nil {
		p = pp
	}
	return h, p, nil
}

// requests turns the command into one request per host.
func (o *options) requests() ([]edge.PurgeRequest, error) {
	soft := !o.hard
	var reqs []edge.PurgeRequest
	switch o.command {
	case "url", "warm", "status":
		byHost := map[string]*edge.PurgeRequest{}
		var order []string
		for _, a := range o.args {
			host, path, err := splitURL(a, o.host)
			if err != nil {
				return nil, err
			}
			r, ok := byHost[host]
			if !ok {
				r = &edge.PurgeRequest{Host: host}
				byHost[host] = r
				order = append(order, host)
			}
			r.URLs = append(r.URLs, path)
		}
		for _, h := range order {
			reqs = append(reqs, *byHost[h])
		}
	case "prefix":
		reqs = []edge.PurgeRequest{{Prefixes: o.args, Host: o.host}}
	case "tag":
		reqs = []edge.PurgeRequest{{Tags: o.args, Host: o.host}}
	case "all":
		reqs = []edge.PurgeRequest{{All: true, Host: o.host}}
	}
	for i := range reqs {
		if o.command != "warm" && o.command != "status" {
			reqs[i].Soft = &soft
		}
		// The edges' own rules, before anything reaches an edge or the
		// journal: a record an edge refused to apply would stand for a
		// purge of everything.
		if err := reqs[i].Validate(); err != nil {
			return nil, err
		}
	}
	return reqs, nil
}

// run is main, made testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := parseArgs(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout, newFlagSet(&options{}, io.Discard))
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "purge: %v\n", err)
		fmt.Fprintln(stderr, "Run purge -h for usage.")
		return exitUsage
	}
	reqs, err := o.requests()
	if err != nil {
		fmt.Fprintf(stderr, "purge: %v\n", err)
		return exitUsage
	}
	c := newCLI(o, stdout, stderr)
	return c.run(ctx, reqs)
}
