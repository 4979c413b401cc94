// Command edge-lab runs the whole CDN on this machine, the way it is
// deployed (regions in network namespaces, an edge or two and a dnsgeo
// per region, S3 with a replica, ACME, browsers everywhere), puts it
// through the faults operators meet, and writes a report:
//
//	make lab                                   # three regions, every scenario, a report in lab/results/
//	go run ./cmd/edge-lab -scenario region-loss -duration 20s
//	go run ./cmd/edge-lab -regions 2 -keep     # and leave it running to look around
//
// It needs Linux, and root for network namespaces; without them it uses
// loopback addresses per region and says what that mode cannot show. It
// prints one line per scenario on stdout and exits 1 when a goal is
// missed. The lab itself is package lab.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edgecdn/edge/lab"
)

// Exit statuses.
const (
	exitOK     = 0
	exitMissed = 1 // a goal was missed
	exitUsage  = 2
	exitFailed = 3 // the lab could not run (a tool missing, a part that would not start)
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edge-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	regions := fs.String("regions", strings.Join(lab.Regions, ","), "regions to build: a number (the first N of "+strings.Join(lab.Regions, ", ")+") or a comma-separated list")
	duration := fs.Duration("duration", 30*time.Second, "length of each scenario's main phase (steady traffic; an outage lasts at least this long)")
	var scenarios []string
	fs.Func("scenario", "run only this scenario (repeatable): "+strings.Join(lab.Scenarios, ", "), func(s string) error {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				scenarios = append(scenarios, n)
			}
		}
		return nil
	})
	keep := fs.Bool("keep", false, "leave the world running after the scenarios, until interrupted, and print how to reach it")
	out := fs.String("out", "lab/results", "`directory` the report (Markdown and PNG) is written to")
	records := fs.String("records", "", "also write every browser request to this CSV `file`")
	clients := fs.Int("clients", 6, "simulated browsers per region")
	edges := fs.Int("edges", 2, "edges per region (1 or 2)")
	mode := fs.String("mode", string(lab.ModeAuto), "auto (namespaces when root, else loopback addresses), netns or loopback")
	bin := fs.String("bin", "", "`directory` with prebuilt edge, dnsgeo and purge binaries (default: go build them from this module)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: edge-lab [flags]\n\nRuns the whole CDN on this machine (regions, edges, dnsgeo, S3, ACME, browsers), puts it\nthrough the scenarios, and writes a report. One line per scenario on stdout; exit status 1\nwhen a goal is missed, 3 when the lab cannot run.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edge-lab: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	// Zero means "the default" to package lab; on the command line it is
	// a mistake.
	switch {
	case *clients < 1:
		fmt.Fprintf(stderr, "edge-lab: -clients %d: at least 1\n", *clients)
		return exitUsage
	case *edges < 1:
		fmt.Fprintf(stderr, "edge-lab: -edges %d: 1 or 2\n", *edges)
		return exitUsage
	case *duration <= 0:
		fmt.Fprintf(stderr, "edge-lab: -duration %s: at least 2s\n", *duration)
		return exitUsage
	}
	regs, err := lab.ParseRegions(*regions)
	if err != nil {
		fmt.Fprintf(stderr, "edge-lab: %v\n", err)
		return exitUsage
	}
	o := lab.Options{Regions: regs, Duration: *duration, Scenarios: scenarios, Keep: *keep, Clients: *clients,
		EdgesPerRegion: *edges, Mode: lab.Mode(*mode), Bin: *bin, Log: stderr}
	if err := o.Check(); err != nil {
		fmt.Fprintf(stderr, "edge-lab: %v\n", err)
		return exitUsage
	}
	rep, err := lab.Run(ctx, o)
	if rep == nil {
		fmt.Fprintf(stderr, "edge-lab: %v\n", err)
		if errors.Is(err, lab.ErrMissingTool) {
			fmt.Fprintln(stderr, "edge-lab: install the test servers with `make tools` (scripts/install-tools.sh)")
		}
		return exitFailed
	}
	for _, res := range rep.Results {
		fmt.Fprintln(stdout, res.Line())
	}
	md, png, serr := rep.Save(*out)
	if serr != nil {
		fmt.Fprintf(stderr, "edge-lab: writing the report: %v\n", serr)
		return exitFailed
	}
	fmt.Fprintf(stderr, "edge-lab: report: %s, chart: %s\n", md, png)
	if *records != "" {
		f, err := os.Create(*records)
		if err == nil {
			err = rep.WriteCSV(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "edge-lab: -records: %v\n", err)
			return exitFailed
		}
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "edge-lab: %v\n", err)
		return exitFailed
	case rep.Missed():
		return exitMissed
	}
	return exitOK
}
