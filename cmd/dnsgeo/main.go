// Command dnsgeo is an authoritative DNS server that answers each query
// with the addresses of the fastest healthy region for the client.
//
//	dnsgeo -config dnsgeo.yaml -latency latency.csv -listen 127.0.0.1:8053 -admin 127.0.0.1:8054
//
// SIGHUP reloads both files (they are also watched for changes);
// SIGTERM and SIGINT stop it gracefully. Logs are JSON on stderr. See
// dnsgeo/README.md for the config file.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/edgecdn/edge/dnsgeo"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dnsgeo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "dnsgeo.yaml", "config `file` (YAML)")
	latency := fs.String("latency", "", "latency table `file` (CSV: prefix,region,rtt_ms); empty: default order for everyone")
	listen := fs.String("listen", "127.0.0.1:8053", "DNS `address`, UDP and TCP")
	admin := fs.String("admin", "127.0.0.1:8054", "admin `address` for /metrics, /healthz, /status; empty disables")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnsgeo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *version {
		v := "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		fmt.Fprintln(stdout, "dnsgeo", v)
		return 0
	}

	// A config or latency table that cannot be loaded is bad input, exit
	// 2 as the edge does; Run loads them again (and on every reload).
	if _, err := dnsgeo.LoadConfig(*config); err != nil {
		fmt.Fprintf(stderr, "dnsgeo: %v\n", err)
		return 2
	}
	if *latency != "" {
		if _, err := dnsgeo.LoadTable(*latency); err != nil {
			fmt.Fprintf(stderr, "dnsgeo: %v\n", err)
			return 2
		}
	}

	log := slog.New(slog.NewJSONHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()

	err := dnsgeo.Run(ctx, dnsgeo.RunConfig{
		ConfigPath:  *config,
		LatencyPath: *latency,
		Listen:      *listen,
		Admin:       *admin,
		Logger:      log,
		Reload:      reload,
	})
	if err != nil {
		log.Error("dnsgeo stopped", "error", err)
		return 1
	}
	return 0
}
