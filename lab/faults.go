package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
)

// The faults the scenarios inject, each undone by its counterpart.

// killRegion kills every process of region k at once (SIGKILL): its
// edges and its dnsgeo.
func (w *World) killRegion(k int) {
	var wg sync.WaitGroup
	for _, p := range append(w.regionProcs(k), w.dns[k]) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.kill()
		}()
	}
	wg.Wait()
}

func (w *World) regionProcs(k int) []*proc {
	var ps []*proc
	for _, e := range w.edges[k] {
		ps = append(ps, e.proc)
	}
	return ps
}

// restoreRegion starts region k's processes again (the edges with the
// disk caches they had, as after a reboot) and waits until they serve.
func (w *World) restoreRegion(ctx context.Context, k int) error {
	if err := w.dns[k].start(); err != nil {
		return err
	}
	if err := w.startEdges(ctx, w.edges[k]); err != nil {
		return err
	}
	return w.waitDNS(ctx, k)
}

// partition cuts region k off (on) or heals it. In netns mode its link
// goes down: connections to it and from it (to S3 too) hang. In
// loopback mode the lab's proxies into the region hang and its DNS
// datagrams are dropped, which is as close as one namespace gets.
func (w *World) partition(ctx context.Context, k int, on bool) error {
	if w.net.mode == ModeNetns {
		return w.net.cut(ctx, k, on)
	}
	var errs []error
	for _, t := range w.tcp {
		if t.region == k {
			errs = append(errs, t.p.hang(on))
		}
	}
	for _, u := range w.udp {
		if u.region == k {
			u.p.drop.Store(on)
		}
	}
	f := s3Pass
	if on {
		f = s3Hang
	}
	for _, ps := range w.s3p[k] {
		for _, p := range ps {
			p.setFault(f)
		}
	}
	return errors.Join(errs...)
}

// Roles of an edge's S3 proxies.
const (
	rolePrimary = 0
	roleReplica = 1
	roleControl = 2
)

// setS3 sets the fault of one role's proxies at every edge.
func (w *World) setS3(role int, f s3Fault) {
	for _, row := range w.s3p {
		for _, ps := range row {
			ps[role].setFault(f)
		}
	}
}

// coldRestart kills every edge at once, empties their caches and the
// shared certificate store and ticket keys (a new fleet), and returns;
// startEdges starts them again.
func (w *World) coldRestart(ctx context.Context) error {
	all := w.allEdges()
	var wg sync.WaitGroup
	for _, e := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.kill()
		}()
	}
	wg.Wait()
	for _, e := range all {
		if err := os.RemoveAll(e.cacheDir); err != nil {
			return err
		}
	}
	for _, prefix := range []string{"certs/", "tickets/"} {
		if err := w.s3.deletePrefix(ctx, bucketControl, prefix); err != nil {
			return fmt.Errorf("emptying the certificate store: %w", err)
		}
	}
	return nil
}
