package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileResult is a CPU profile of the edge under one scenario's load.
type profileResult struct {
	Scenario string
	Why      string
	File     string // the profile, beside the report
	Flat     string // go tool pprof -top, 15 entries by flat time
	Cum      string // the same, by cumulative time
}

// runProfiles profiles the edge under each hit scenario where it missed
// a target (-profile=auto), or under every one (-profile=always). The
// profiled runs are extra: they count in no table.
func (b *bench) runProfiles(ctx context.Context, running map[string]*server) error {
	edge, ok := running[nameEdge]
	if !ok || b.cfg.profile == "never" {
		return nil
	}
	for _, sc := range hitScenarios {
		if !b.cfg.has(sc.id) {
			continue
		}
		why := "Requested with -profile=always"
		if b.cfg.profile == "auto" {
			if !b.res.missedHit(sc.id) {
				continue
			}
			why = "The edge missed a target in this scenario"
		}
		b.logf("%s: CPU profile of the edge, %ds under the same load", sc.id, b.cfg.profileSeconds)
		p, err := b.profile(ctx, edge, sc)
		if err != nil {
			return err
		}
		p.Why = why
		b.res.Profiles = append(b.res.Profiles, p)
	}
	return nil
}

func (b *bench) profile(ctx context.Context, edge *server, sc hitScenario) (*profileResult, error) {
	secs := b.cfg.profileSeconds
	if err := os.MkdirAll(b.cfg.outDir, 0o755); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%s", b.res.Meta.Date.Format("2006-01-02")+"-"+b.res.Meta.SHA, sc.id)
	if b.cfg.quick {
		name += "-quick"
	}
	file := filepath.Join(b.cfg.outDir, name+".pprof")

	load := make(chan error, 1)
	go func() {
		_, err := b.wrk.run(ctx, edge, b.origin, sc.path, b.cfg.conns, time.Duration(secs+2)*time.Second, sc.headers, sc.expect404)
		load <- err
	}()
	time.Sleep(time.Second)
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", edge.admin, secs)
	client := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		<-load
		return nil, fmt.Errorf("profiling the edge: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if lerr := <-load; lerr != nil {
		return nil, lerr
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("profiling the edge: status %d, %v", resp.StatusCode, err)
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return nil, err
	}
	top := func(extra ...string) string {
		args := append([]string{"tool", "pprof", "-top", "-nodecount=15"}, extra...)
		args = append(args, b.env.edgeBin, file)
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("go tool pprof: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	return &profileResult{Scenario: sc.id, File: filepath.Base(file), Flat: top(), Cum: top("-cum")}, nil
}
