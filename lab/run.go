package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Run builds the world, runs the scenarios of o in order, removes the
// world, and returns the report. The report is returned with an error
// too when a scenario could not finish (the scenarios before it are in
// it); interrupted (ctx done), it says so. Every process, namespace and
// file the run made is gone when Run returns; an error says what could
// not be removed.
func Run(ctx context.Context, o Options) (*Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	w, err := newWorld(ctx, o)
	if err != nil {
		return nil, err
	}
	runErr := w.runScenarios(ctx)
	kept := false
	if runErr == nil && o.Keep {
		w.describe()
		<-ctx.Done() // the interrupt that ends -keep is no failure
		kept = true
	}
	rep := w.report()
	switch {
	case ctx.Err() != nil && !kept:
		rep.Interrupts = "interrupted"
		runErr = ctx.Err()
	case runErr != nil:
		rep.Interrupts = runErr.Error()
	}
	w.logf("removing the world")
	if err := w.Close(); err != nil {
		return rep, errors.Join(runErr, fmt.Errorf("cleaning up: %w", err))
	}
	return rep, runErr
}

func (w *World) runScenarios(ctx context.Context) error {
	for _, s := range w.o.Scenarios {
		var err error
		done := len(w.results)
		switch s {
		case Steady:
			_, err = w.steady(ctx)
		case RegionLoss, RegionPartition:
			for _, fb := range w.o.Fallback {
				if _, err = w.regionOutage(ctx, s == RegionPartition, fb); err != nil {
					break
				}
			}
			if err == nil {
				err = w.useFallback(ctx, false) // the default, for what follows
			}
		case S3Loss:
			_, err = w.s3Loss(ctx)
		case Release:
			_, err = w.release(ctx)
		case ColdStart:
			_, err = w.coldStart(ctx)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s, err)
		}
		for _, res := range w.results[done:] {
			w.logf("%s", res.Line())
		}
	}
	return nil
}

// describe prints how to reach the world that -keep leaves running.
func (w *World) describe() {
	n := w.net
	var b strings.Builder
	fmt.Fprintf(&b, "the world stays up until interrupted (Ctrl-C). Logs and config: %s\n", w.dir)
	for k, r := range n.regions {
		ns := ""
		if n.mode == ModeNetns {
			ns = "ip netns exec " + n.clients[k].name + " "
		}
		fmt.Fprintf(&b, "  %s: edges %s… dnsgeo %s:%d; as its browsers: %sdig @%s -p %d %s\n", r, n.edgeAddr(k, 0), n.dnsAddr(k), n.dnsPort(),
			ns, n.clientView(k).local(n.publicDNS(k)), n.dnsPort(), cdnHost)
	}
	w.logf("%s", b.String())
}
