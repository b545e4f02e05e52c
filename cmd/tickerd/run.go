package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/internal/cli"
	"tickerd/simulator"
	"tickerd/stream"
)

// shutdownGrace bounds how long SIGTERM waits for sessions to take their
// close message.
const shutdownGrace = 10 * time.Second

func run(c *config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cache := conflate.New()
	registerCacheMetrics(reg, cache)
	ingestMetrics := feed.NewMetrics(reg)
	sink, stopRecording, err := startRecording(c, cache, reg, log) // -record wraps cache
	if err != nil {
		return err
	}
	defer stopRecording() // after the feeds have stopped: deferred first, run last
	node, stopCluster, err := startCluster(c, cache, sink, reg, log)
	if err != nil {
		return err
	}
	defer stopCluster() // after the feeds have stopped, before the recording
	var src stream.Source = cache
	if node != nil {
		sink = node // feeds publish to the cluster; the stream comes back to the cache
		if c.cluster.interest {
			src = node.Source()
		}
	}
	health := newHealth(cache, sink, c.staleAfter, reg)
	health.cluster = node
	auth, err := openAuth(c, log)
	if err != nil {
		return err
	}
	var cert *certificate
	if c.tlsCert != "" {
		if cert, err = loadCertificate(c.tlsCert, c.tlsKey); err != nil {
			return err
		}
	}

	cfg := stream.Config{
		MaxHz:                c.maxHz,
		Heartbeat:            c.heartbeat,
		StallTimeout:         c.stallTimeout,
		MaxConnAge:           c.maxConnAge,
		MaxSymbols:           c.maxSymbols,
		AllowedOrigins:       cli.SplitList(c.allowedOrigins),
		MaxSessionBPS:        c.maxSessionBPS,
		PacingMaxGap:         pacingGap(c.pacingMaxGap),
		NoCompression:        !c.compression,
		StreamPadding:        c.streamPadding,
		WSDeflateMaxSessions: c.wsDeflateMax,
		AdminKey:             c.adminKey,
		AuthTimeout:          c.authTimeout,
		MaxOpRate:            c.maxOpRate,
		MaxOpSymbols:         c.maxOpSymbols,
		MaxMessageBytes:      c.maxMessage,
		Registerer:           reg,
		Log:                  log,
	}
	var delayed *conflate.DelayLine
	if auth != nil {
		cfg.Auth = auth
		// The delayed tier: the cache as it was -delay ago. It runs
		// whenever -auth is set, so that a reload may add delayed groups.
		delayed = conflate.NewDelayLine(cache, conflate.DelayConfig{Delay: c.delay, MaxBytes: c.delayBuffer})
		registerDelayMetrics(reg, delayed)
		cfg.Delayed, cfg.Delay = delayed.Cache(), c.delay
		if node != nil && c.cluster.interest {
			cfg.Delayed = node.Wrap(delayed.Cache()) // delayed subscribers need the symbol followed too
		}
	}
	srv := stream.NewServer(src, cfg)
	onHangup(ctx, func() {
		if auth != nil {
			_ = srv.Reload() // logs its outcome
		}
		if cert != nil {
			if err := cert.reload(); err != nil {
				log.Error("TLS certificate reload failed; the previous one stays", "err", err)
			} else {
				log.Info("TLS certificate reloaded", "cert", c.tlsCert)
			}
		}
	})

	mux := http.NewServeMux()
	srv.Register(mux)
	mux.Handle("POST /v1/ingest", clusterIngest(node, &feed.IngestHandler{
		Sink: health.Sink("http"), Key: c.ingestKey, MaxBody: c.maxBody,
		Counter: ingestMetrics.Counter("http"), Log: log,
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", health.serveReady)
	registerUI(mux)
	registerDebug(mux)
	replays := registerReplayAdmin(mux, c.adminKey)

	if node != nil && !c.cluster.interest {
		waitSynced(node, 10*time.Second, log)
	}
	ln, err := listen(c.addr, c.reuseport)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	if c.ingestKey == "" {
		log.Warn("no -ingest-key: POST /v1/ingest accepts loopback peers only")
	}

	// Feeds run until ctx ends; each has an owner that waits for it.
	feedCtx, stopFeeds := context.WithCancel(context.Background())
	var feeds sync.WaitGroup
	defer func() { stopFeeds(); feeds.Wait() }()
	feeds.Add(1)
	go func() { defer feeds.Done(); health.run(feedCtx) }()
	if delayed != nil {
		feeds.Add(1)
		go func() { defer feeds.Done(); delayed.Run(feedCtx) }()
	}
	for _, f := range c.feeds.Values {
		if err := startFeed(feedCtx, &feeds, f, c, health.h, replays, ingestMetrics, log); err != nil {
			ln.Close()
			return err
		}
	}

	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext:       stream.ConnContext,
	}
	served := make(chan error, 1)
	scheme := "http://"
	if cert != nil {
		scheme = "https://"
		hs.TLSConfig = cert.config()
		go func() { served <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { served <- hs.Serve(ln) }()
	}
	log.Info("tickerd serving", "url", scheme+displayAddr(ln.Addr()), "feeds", feedsForLog(c.feeds.Values))

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: closing sessions")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	stopFeeds()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("sessions did not all close in time", "err", err)
	}
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	feeds.Wait()
	log.Info("stopped")
	return nil
}

// startFeed starts one -feed source under wg.
func startFeed(ctx context.Context, wg *sync.WaitGroup, spec string, c *config, health *feed.Health,
	replays *replayFeeds, m *feed.Metrics, log *slog.Logger) error {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "none":
		return nil
	case "sim":
		sim, err := simulator.New(simulator.Config{Symbols: c.simSymbols, Rate: c.simRate, Seed: c.simSeed})
		if err != nil {
			return fmt.Errorf("-feed sim: %w", err)
		}
		counted := countingSink{Sink: health.Sink("sim"), c: m.Counter("sim")}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sim.Run(ctx, counted); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("simulator stopped", "err", err)
			}
		}()
		log.Info("simulated feed", "symbols", c.simSymbols, "rate", c.simRate, "seed", c.simSeed)
	case "replay":
		return replays.start(ctx, wg, arg, countingSink{Sink: health.Sink("replay"), c: m.Counter("replay")}, log)
	case "tcp":
		ln, err := net.Listen("tcp", arg)
		if err != nil {
			return fmt.Errorf("-feed %s: %w", spec, err)
		}
		a := &feed.TCPAdapter{Sink: health.Sink("tcp"), Counter: m.Counter("tcp"), Log: log,
			Conns: func(delta int) { health.Connected("tcp", delta) }}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Serve(ctx, ln); err != nil {
				log.Error("tcp feed stopped", "addr", arg, "err", err)
			}
		}()
		log.Info("tcp feed listening", "addr", ln.Addr().String())
	case "csv":
		return startCSV(ctx, wg, arg, health.Sink("csv"), m, log)
	case "ws":
		return startWS(ctx, wg, arg, health.Sink("ws"), func(d int) { health.Connected("ws", d) }, m, log)
	}
	return nil
}

// countingSink counts what an internal feed applies.
type countingSink struct {
	feed.Sink
	c feed.Counter
}

func (s countingSink) Apply(u *feed.Update) bool {
	s.c.Accept(1)
	return s.Sink.Apply(u)
}

// registerDelayMetrics reports the delayed tier's buffer.
func registerDelayMetrics(reg prometheus.Registerer, d *conflate.DelayLine) {
	gauge := func(name, help string, f func(conflate.DelayStats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(d.Stats()) })
	}
	reg.MustRegister(
		gauge("tickerd_delay_buffer_bytes", "Estimated memory of the changes the delayed tier holds (bounded by -delay-buffer).",
			func(s conflate.DelayStats) float64 { return float64(s.Bytes) }),
		gauge("tickerd_delay_buffer_records", "Per-symbol change records the delayed tier holds.",
			func(s conflate.DelayStats) float64 { return float64(s.Records) }),
		gauge("tickerd_delay_granularity_seconds", "Width of the delayed tier's time buckets (wider when its buffer is near its bound).",
			func(s conflate.DelayStats) float64 { return s.Granularity.Seconds() }),
		gauge("tickerd_delay_lag_seconds", "How far the delayed tier is behind -delay (its oldest buffered bucket).",
			func(s conflate.DelayStats) float64 { return s.Lag.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_delay_compactions_total", Help: "Times the delayed tier merged its buckets to stay under -delay-buffer.",
		}, func() float64 { return float64(d.Stats().Compactions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_delay_applied_total", Help: "Change records the delayed tier applied to its cache.",
		}, func() float64 { return float64(d.Stats().Applied) }),
	)
}

func registerCacheMetrics(reg prometheus.Registerer, cache *conflate.Cache) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tickerd_symbols", Help: "Symbols holding data in the snapshot cache.",
		}, func() float64 { return float64(cache.Stats().Symbols) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_updates_applied_total", Help: "Updates that changed the snapshot cache.",
		}, func() float64 { return float64(cache.Stats().Applied) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tickerd_updates_unchanged_total", Help: "Updates dropped because they changed nothing.",
		}, func() float64 { return float64(cache.Stats().Unchanged) }),
	)
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port) + "/"
}

// registerDebug serves Go's profiles under /debug/pprof/ to loopback peers
// only: they reveal internals and cost CPU.
func registerDebug(mux *http.ServeMux) {
	loopback := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !feed.IsLoopback(r.RemoteAddr) {
				http.Error(w, "debug endpoints are open to loopback peers only", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /debug/pprof/", loopback(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", loopback(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", loopback(http.HandlerFunc(pprof.Trace)))
}

// pacingGap maps -pacing-max-gap to stream.Config, where 0 means the
// default and a negative value turns pacing off.
func pacingGap(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
