package dnsgeo

import (
	"log/slog"
	"os"
	"time"
)

// Reloader keeps a Server's config and latency table in step with their
// files: Check reloads whichever file changed (size, modification time
// or identity, so an atomic rename counts), Reload reloads both (for
// SIGHUP). A new file is validated first, with the other file in use;
// a bad one is refused and logged, and the old snapshot keeps serving.
// Not safe for concurrent use: one goroutine owns it (see Run).
//
// Write files by renaming a complete temporary file over them: a file
// caught half-written is refused (and retried when it changes again),
// but one cut at a line boundary may parse.
type Reloader struct {
	ConfigPath  string
	LatencyPath string // empty: no latency table
	Server      *Server
	Logger      *slog.Logger

	cfgStamp, tableStamp stamp
}

type stamp struct {
	size int64
	mod  time.Time
	info os.FileInfo
}

func statStamp(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{size: fi.Size(), mod: fi.ModTime(), info: fi}, nil
}

func (a stamp) same(b stamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == b.info
	}
	return a.size == b.size && a.mod.Equal(b.mod) && os.SameFile(a.info, b.info)
}

// Load reads both files for the first time.
func (r *Reloader) Load() (*Config, *Table, error) {
	r.cfgStamp, _ = statStamp(r.ConfigPath)
	cfg, err := LoadConfig(r.ConfigPath)
	if err != nil {
		return nil, nil, err
	}
	table := EmptyTable()
	if r.LatencyPath != "" {
		r.tableStamp, _ = statStamp(r.LatencyPath)
		if table, err = LoadTable(r.LatencyPath); err != nil {
			return nil, nil, err
		}
	}
	return cfg, table, nil
}

// Reload reloads both files (SIGHUP). It returns whether the new
// snapshot is in use.
func (r *Reloader) Reload() bool { return r.check(true) }

// Check reloads the files that changed since the last look. It returns
// whether a new snapshot is in use.
func (r *Reloader) Check() bool { return r.check(false) }

func (r *Reloader) check(force bool) bool {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := r.Server.metrics
	cs, cerr := statStamp(r.ConfigPath)
	cfgChanged := force || !cs.same(r.cfgStamp)
	var ts stamp
	var terr error
	tableChanged := false
	if r.LatencyPath != "" {
		ts, terr = statStamp(r.LatencyPath)
		tableChanged = force || !ts.same(r.tableStamp)
	}
	if !cfgChanged && !tableChanged {
		return false
	}
	// Remember what we looked at even when it is bad, so a bad file is
	// reported once, not every poll, and retried when it changes.
	r.cfgStamp, r.tableStamp = cs, ts

	cfg, table := r.Server.Config(), r.Server.Table()
	newCfg, newTable := false, false
	if cfgChanged {
		c, err := LoadConfig(r.ConfigPath)
		if cerr != nil {
			err = cerr
		}
		if err != nil {
			log.Error("config reload refused; old config keeps serving", "file", r.ConfigPath, "error", err)
			m.reloads.WithLabelValues("config", "error").Inc()
		} else {
			cfg, newCfg = c, true
		}
	}
	if tableChanged {
		start := time.Now()
		t, err := LoadTable(r.LatencyPath)
		if terr != nil {
			err = terr
		}
		if err != nil {
			log.Error("latency table reload refused; old table keeps serving", "file", r.LatencyPath, "error", err)
			m.reloads.WithLabelValues("latency", "error").Inc()
		} else {
			table, newTable = t, true
			log.Info("latency table parsed", "file", r.LatencyPath, "prefixes", t.Len(), "took", time.Since(start))
		}
	}
	if !newCfg && !newTable {
		return false
	}
	if err := r.Server.Update(cfg, table); err != nil {
		log.Error("reload refused; old snapshot keeps serving", "error", err)
		m.reloads.WithLabelValues("config", "error").Inc()
		return false
	}
	if newCfg {
		m.reloads.WithLabelValues("config", "ok").Inc()
	}
	if newTable {
		m.reloads.WithLabelValues("latency", "ok").Inc()
	}
	log.Info("reloaded", "config", newCfg, "latency", newTable, "regions", cfg.regionNames, "prefixes", table.Len())
	return true
}
