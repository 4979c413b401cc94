package dnsgeo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Listen opens UDP and TCP on the same address. With port 0, it picks
// a port free for both.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

// Serve answers DNS on pc (UDP, a *net.UDPConn) and ln (TCP) until
// ctx is done, then stops gracefully: it stops reading, answers every
// query it has read, waits (at most 5 s) for TCP clients that are in
// the middle of a query, and closes pc and ln. ready, if not nil, is
// called once both serve.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener, ready func()) error {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		ln.Close()
		return fmt.Errorf("dns server: UDP needs a *net.UDPConn, not %T", pc)
	}
	// One socket and loop per CPU (SO_REUSEPORT); where that is not
	// possible, every loop reads the one socket.
	socks, loops := []*net.UDPConn{uc}, runtime.GOMAXPROCS(0)
	if loops > 1 {
		extra, err := reusePort(uc, loops-1)
		if err != nil {
			s.log.Warn("UDP on one socket", "error", err)
		} else {
			socks, loops = append(socks, extra...), 1
		}
	}
	defer func() {
		for _, c := range socks {
			c.Close()
		}
	}()
	var closing atomic.Bool
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	var udp sync.WaitGroup
	for _, c := range socks {
		for range loops {
			udp.Go(func() {
				if err := s.serveUDP(c, &closing); err != nil {
					fail(fmt.Errorf("dns server: udp: %w", err))
				}
			})
		}
	}
	tcp := newTCPServer(s, ln)
	go func() {
		if err := tcp.serve(); err != nil {
			fail(fmt.Errorf("dns server: tcp: %w", err))
		}
	}()
	if ready != nil {
		ready()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	closing.Store(true)
	for _, c := range socks {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(err, tcp.shutdown(sctx))
	udp.Wait()
	return err
}

// AdminHandler serves /metrics (Prometheus text), /healthz (200 when a
// config is loaded and serving) and /status (JSON: regions' health and
// the table in use). Read-only; keep it on a private address.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.state.Load() == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := s.state.Load()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Zone     string         `json:"zone"`
			Prefixes int            `json:"latency_prefixes"`
			Regions  []RegionStatus `json:"regions"`
		}{st.cfg.Zone, st.router.table.Len(), st.prober.Status()})
	})
	return mux
}

// RunConfig is what Run needs: the command line of cmd/dnsgeo.
type RunConfig struct {
	ConfigPath  string // required
	LatencyPath string // optional
	Listen      string // DNS over UDP and TCP, e.g. "127.0.0.1:8053"
	Admin       string // admin HTTP listener; empty disables
	Logger      *slog.Logger
	// Reload receives a value for each SIGHUP: reload both files.
	Reload <-chan struct{}
	// WatchInterval is how often the files are checked for changes.
	// Zero means one second; negative disables watching.
	WatchInterval time.Duration
	// Ready, if set, is called with the bound addresses once serving.
	Ready func(dns, admin net.Addr)
}

// Run loads the files, serves DNS and the admin listener, probes
// regions and reloads on change or on rc.Reload, until ctx is done;
// then it shuts down gracefully. An error at startup is returned.
func Run(ctx context.Context, rc RunConfig) error {
	log := rc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rl := &Reloader{ConfigPath: rc.ConfigPath, LatencyPath: rc.LatencyPath, Logger: log}
	cfg, table, err := rl.Load()
	if err != nil {
		return err
	}
	srv, err := New(cfg, table, Options{Logger: log})
	if err != nil {
		return err
	}
	rl.Server = srv
	pc, ln, err := Listen(rc.Listen)
	if err != nil {
		return fmt.Errorf("listening for DNS: %w", err)
	}
	var adminLn net.Listener
	if rc.Admin != "" {
		if adminLn, err = net.Listen("tcp", rc.Admin); err != nil {
			pc.Close()
			ln.Close()
			return fmt.Errorf("listening for admin: %w", err)
		}
	}
	log.Info("config loaded", "config", rc.ConfigPath, "zone", cfg.Zone, "regions", cfg.regionNames, "latency", rc.LatencyPath, "prefixes", table.Len())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx) })

	var admin *http.Server
	if adminLn != nil {
		admin = &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener", "error", err)
			}
		})
	}
	wg.Go(func() {
		iv := rc.WatchInterval
		if iv == 0 {
			iv = time.Second
		}
		var tick <-chan time.Time
		if iv > 0 {
			t := time.NewTicker(iv)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-rc.Reload:
				log.Info("reload requested")
				rl.Reload()
			case <-tick:
				rl.Check()
			}
		}
	})

	err = srv.Serve(ctx, pc, ln, func() {
		var a net.Addr
		if adminLn != nil {
			a = adminLn.Addr()
		}
		log.Info("serving", "dns", pc.LocalAddr().String(), "admin", fmt.Sprint(a))
		if rc.Ready != nil {
			rc.Ready(pc.LocalAddr(), a)
		}
	})
	cancel()
	if admin != nil {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		_ = admin.Shutdown(sctx)
		c()
	}
	wg.Wait()
	log.Info("stopped")
	return err
}
