package main

// Purge for the edge: the flags of issue 12 (the edge's identity and the
// purge journal), the catch-up at start, the journal's poller and the
// registry entry. main.go calls it in a few marked places; the purge API
// itself is the handler's (edge.Handler.AdminHandler).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/internal/lograte"
	"github.com/edgecdn/edge/journal"
	"github.com/edgecdn/edge/store"
	"github.com/prometheus/client_golang/prometheus"
)

// catchUpTimeout bounds the read of the journal at start, before the
// listeners open: past it the edge serves anyway and goes on reading in
// the background.
const catchUpTimeout = 2 * time.Second

// purgeOptions are the purge flags.
type purgeOptions struct {
	name, region string
	adminURL     string
	journal      string
	poll         time.Duration
}

func (p *purgeOptions) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&p.name, "name", host, "this edge's `name` in purge answers and the journal's registry (letters, digits, . - _)")
	fs.StringVar(&p.region, "region", "", "this edge's `region` in purge answers and the registry (e.g. eu-west-1)")
	fs.StringVar(&p.adminURL, "admin-url", "", "`URL` at which the purge CLI reaches this edge's admin listener, for the registry (default: http:// and the -admin address, the host name for a wildcard address)")
	fs.StringVar(&p.journal, "purge-journal", "", "purge journal `URL` shared by every edge: s3://BUCKET/PREFIX[?region=...] (same options as -origin) or dir:PATH; the edge catches up at start, polls it, and registers in it")
	fs.DurationVar(&p.poll, "purge-poll", journal.DefaultPoll, "how often the edge reads the purge journal for purges it missed")
}

// validate checks the purge flags; errors name the flag.
func (p *purgeOptions) validate() error {
	if err := journal.CheckName(p.name); err != nil {
		return fmt.Errorf("-name: %v (set -name)", err)
	}
	if p.poll <= 0 {
		return fmt.Errorf("-purge-poll %s: must be positive", p.poll)
	}
	if p.adminURL != "" {
		u, err := url.Parse(p.adminURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-admin-url %q: want http://HOST:PORT or https://HOST:PORT", p.adminURL)
		}
	}
	return nil
}

// purgeSide is the edge's purge journal follower; nil without
// -purge-journal.
type purgeSide struct {
	o        *purgeOptions
	log      *slog.Logger
	follower *journal.Follower
	h        *edge.Handler // set by start, before the first read

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// setupJournal opens the journal (it reads nothing yet). The follower's
// metrics join reg; its state shows on /healthz?verbose (component). The
// time of its last complete read is kept in the cache directory.
func setupJournal(ctx context.Context, o *purgeOptions, c applier, cacheDir string, reg prometheus.Registerer, log *slog.Logger) (*purgeSide, error) {
	if o.journal == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, o.journal)
	if err != nil {
		return nil, fmt.Errorf("-purge-journal: %w", err)
	}
	ps := &purgeSide{o: o, log: lograte.Logger(log, time.Minute, time.Now)}
	ps.follower, err = journal.NewFollower(journal.FollowerConfig{
		Journal:    journal.New(st),
		Apply:      ps.apply,
		Applied:    c.PurgeApplied,
		Poll:       o.poll,
		StatePath:  filepath.Join(cacheDir, "journal-state.json"),
		Log:        ps.log,
		Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("-purge-journal: %w", err)
	}
	return ps, nil
}

// applier is what the follower needs of the cache.
type applier interface{ PurgeApplied(id string) bool }

// apply applies one journal record through the handler, as POST /purge
// would. A record the edge cannot take as it is (it passed the journal's
// checks, not the edge's) is applied as a soft purge of everything:
// nothing it may have selected survives it, nothing becomes unservable.
func (ps *purgeSide) apply(r journal.Record) error {
	soft := r.Mode != journal.Hard
	req := edge.PurgeRequest{URLs: r.URLs, Prefixes: r.Prefixes, Tags: r.Tags, All: r.All, Host: r.Host, Soft: &soft, ID: r.ID}
	if err := req.Validate(); err != nil {
		ps.log.Error("purge journal: a record the edge cannot apply as it is: soft-purging everything in its place", "id", r.ID, "err", err)
		yes := true
		req = edge.PurgeRequest{All: true, Soft: &yes, ID: r.ID}
	}
	_, err := ps.h.Purge(req, 0)
	if err != nil && errors.Is(err, edge.ErrUnknownHost) {
		return nil // a purge for sites this edge does not serve
	}
	return err
}

// catchUp reads the journal before the listeners open, for at most
// catchUpTimeout. A journal that cannot be read is logged and shown on
// /healthz?verbose; the edge serves anyway (availability first) and
// keeps trying every -purge-poll.
func (ps *purgeSide) catchUp(ctx context.Context, h *edge.Handler) {
	if ps == nil {
		return
	}
	ps.h = h
	cctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	start := time.Now()
	if err := ps.follower.Sync(cctx); err != nil {
		ps.log.Error("purge journal: cannot catch up at start: serving anyway; purges missed meanwhile apply once it can be read",
			"journal", ps.o.journal, "err", err, "waited", time.Since(start).Round(time.Millisecond).String())
		return
	}
	ps.log.Info("purge journal: caught up", "journal", ps.o.journal, "took", time.Since(start).Round(time.Millisecond).String())
}

// start registers the edge (its admin address now known) and polls the
// journal in the background until stop.
func (ps *purgeSide) start(ctx context.Context, adminAddr net.Addr) {
	if ps == nil {
		return
	}
	self := journal.Edge{Name: ps.o.name, Region: ps.o.region, AdminURL: ps.o.adminURL}
	if self.AdminURL == "" {
		self.AdminURL = defaultAdminURL(adminAddr)
	}
	ctx, ps.cancel = context.WithCancel(ctx)
	ps.done.Add(1)
	go func() {
		defer ps.done.Done()
		if err := ps.follower.Register(ctx, self); err != nil {
			if ctx.Err() == nil {
				ps.log.Error("purge journal: cannot register the edge (retried at each read of the journal)", "err", err)
			}
		} else {
			ps.log.Info("purge journal: registered", "name", self.Name, "region", self.Region, "admin_url", self.AdminURL)
		}
		ps.follower.Run(ctx)
	}()
}

// stop ends the polling and waits for it.
func (ps *purgeSide) stop() {
	if ps == nil || ps.cancel == nil {
		return
	}
	ps.cancel()
	ps.done.Wait()
}

// defaultAdminURL is how others reach the admin listener when -admin-url
// is not given: its address, with the host name for a wildcard one.
func defaultAdminURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// component reports the journal on /healthz?verbose.
func (ps *purgeSide) component() edge.Component { return journalComponent{ps.follower} }

type journalComponent struct{ f *journal.Follower }

func (c journalComponent) Health() []edge.ComponentHealth {
	ok, detail := c.f.Health()
	return []edge.ComponentHealth{{Name: "purge journal", OK: ok, Detail: detail}}
}
