package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"tickerd/feed"
)

// Config describes one load run, or this process's share of it.
type Config struct {
	URLs       []string      // tickerd base URLs (http://host:port); session i uses URLs[i%len]
	Transports []string      // ws, sse, ndjson or poll; session i uses Transports[i%len]
	Conns      int           // sessions in the whole run, over all processes
	Symbols    int           // symbols per session
	MaxHz      int           // maxHz asked per session; 0 = none asked (server default)
	Duration   time.Duration // steady window after the ramp
	Rate       float64       // new sessions per second over the whole run; 0 = all at once
	Zipf       float64       // Zipf exponent of symbol popularity; 0 = uniform
	Seed       uint64        // seeds the symbol choice

	// Slow is the fraction of sessions, in [0, 1], that read slowly: each
	// of them reads at most SlowBPS bytes per second (0 = DefaultSlowBPS,
	// 10 KiB/s) through a small socket receive buffer, so that the server
	// must conflate for it. They are spread evenly over the transports and
	// their latency is reported apart (Report.LatencySlow). 0 = none.
	Slow    float64
	SlowBPS int

	// Check runs the convergence check after the steady window, with the
	// sessions still open: it waits Settle (0 = one throttle interval plus
	// 1 s), then compares each session's view with GET /v1/snapshot. A
	// slow session gets the time its queued bytes take to drain at
	// SlowBPS on top of the contract's window.
	Check  bool
	Settle time.Duration

	ConnectTimeout time.Duration // per connection attempt; 0 = 10 s
	Universe       []string      // symbols to pick from; nil = GET /v1/symbols of URLs[0]

	// Worker and Workers spread a run over processes: this one runs the
	// sessions i with i%Workers == Worker. Workers 0 means 1.
	Worker, Workers int

	// Progress, if set, is called about once a second from one goroutine.
	Progress func(Progress)
	// SteadyStart and SteadyEnd, if set, are called when the steady window
	// starts (every session has connected or failed) and ends; the window
	// starts when SteadyStart returns.
	SteadyStart, SteadyEnd func()
	// Logf, if set, receives the first few session failures and server
	// errors, one line each.
	Logf func(format string, args ...any)
}

// Transports lists the transport names a Config accepts.
var Transports = []string{"ws", "sse", "ndjson", "poll"}

var dials = map[string]dial{"ws": dialWS, "sse": dialSSE, "ndjson": dialNDJSON, "poll": dialPoll}

// Config errors.
var (
	ErrNoURL       = errors.New("bench: no tickerd URL")
	ErrNoSymbols   = errors.New("bench: the server has no symbols to subscribe to")
	ErrBadConns    = errors.New("bench: conns and symbols must be positive")
	errBadSettings = errors.New("bench: bad settings")
)

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return 10 * time.Second
}

// throttle is the longest interval the server may hold a symbol's news
// back: 1/maxHz, or a conservative second when maxHz was not asked.
func (c *Config) throttle() time.Duration {
	if c.MaxHz > 0 {
		return time.Second / time.Duration(c.MaxHz)
	}
	return time.Second
}

func (c *Config) validate() error {
	if len(c.URLs) == 0 {
		return ErrNoURL
	}
	if c.Conns <= 0 || c.Symbols <= 0 {
		return ErrBadConns
	}
	if len(c.Transports) == 0 {
		return fmt.Errorf("%w: no transport", errBadSettings)
	}
	for _, t := range c.Transports {
		if dials[t] == nil {
			return fmt.Errorf("%w: unknown transport %q (want %s)", errBadSettings, t, strings.Join(Transports, ", "))
		}
	}
	if c.Rate < 0 || c.Zipf < 0 || c.MaxHz < 0 || c.Duration < 0 {
		return fmt.Errorf("%w: rate, zipf, max-hz and duration must not be negative", errBadSettings)
	}
	if c.Slow < 0 || c.Slow > 1 || c.SlowBPS < 0 {
		return fmt.Errorf("%w: slow must be a fraction in [0, 1] and slow-bps not negative", errBadSettings)
	}
	if c.Workers < 0 || c.Worker < 0 || (c.Workers > 0 && c.Worker >= c.Workers) {
		return fmt.Errorf("%w: worker %d of %d", errBadSettings, c.Worker, c.Workers)
	}
	return nil
}

// Progress is a live view of a run.
type Progress struct {
	Elapsed   time.Duration `json:"elapsed"`
	Target    int           `json:"target"`    // sessions to run
	Open      int64         `json:"open"`      // connected now
	Connected int64         `json:"connected"` // connected at least once
	Failed    int64         `json:"failed"`
	Data      int64         `json:"data"` // updates and snapshots so far
	Rate      float64       `json:"rate"` // updates and snapshots per second, last interval
	Latency   *Hist         `json:"latency"`
}

// String formats p as one progress line.
func (p Progress) String() string {
	p99 := "-"
	if p.Latency != nil && p.Latency.Count() > 0 {
		p99 = micros(p.Latency.Quantile(0.99))
	}
	return fmt.Sprintf("%4.0fs  open %d/%d  failed %d  msg/s %.0f  p99 %s",
		p.Elapsed.Seconds(), p.Open, p.Target, p.Failed, p.Rate, p99)
}

// runner is one Run in progress.
type runner struct {
	cfg        Config
	transports []string // distinct, in the order of cfg.Transports
	stats      *stats
	dialer     *websocket.Dialer
	slowDialer *websocket.Dialer // for slow readers; nil when there are none
	sessions   []*session
	logged     atomic.Int32
}

// maxLogged bounds the lines a run sends to Config.Logf.
const maxLogged = 20

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Logf == nil {
		return
	}
	switch n := r.logged.Add(1); {
	case n < maxLogged:
		r.cfg.Logf(format, args...)
	case n == maxLogged:
		r.cfg.Logf("further session failures and server errors are only counted")
	}
}

// Run runs the sessions of cfg that belong to this process: it ramps them
// up at cfg.Rate, holds them for cfg.Duration, optionally checks
// convergence, closes them and reports. When ctx is cancelled it stops
// early and still reports. An error means the run could not start.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	universe, err := cfg.universe(ctx)
	if err != nil {
		return nil, err
	}
	r := newRunner(cfg)
	picker := NewPicker(universe, cfg.Zipf, cfg.Seed)
	for i := cfg.Worker; i < cfg.Conns; i += cfg.Workers {
		r.sessions = append(r.sessions, r.newSession(i, picker.Pick(i, cfg.Symbols)))
	}
	return r.run(ctx)
}

// newRunner returns the runner of cfg, which has been validated, without
// sessions.
func newRunner(cfg Config) *runner {
	var transports []string
	for _, t := range cfg.Transports {
		if !slices.Contains(transports, t) {
			transports = append(transports, t)
		}
	}
	r := &runner{cfg: cfg, transports: transports, stats: newStats(len(transports)), dialer: newDialer(cfg.connectTimeout(), 0)}
	if cfg.Slow > 0 {
		r.slowDialer = newDialer(cfg.connectTimeout(), cfg.slowBPS())
	}
	return r
}

// newSession returns session i of the run, subscribing to symbols.
func (r *runner) newSession(i int, symbols []string) *session {
	cfg := &r.cfg
	transport := cfg.Transports[i%len(cfg.Transports)]
	s := &session{
		run:       r,
		index:     i,
		url:       cfg.URLs[i%len(cfg.URLs)],
		transport: transport,
		slow:      isSlow(i, len(cfg.Transports), cfg.Slow),
		symbols:   symbols,
		shard:     r.stats.shard(i),
	}
	s.tally.class = class(slices.Index(r.transports, transport), s.slow)
	s.msgFunc = s.msg
	s.seqs = make([]int64, len(s.symbols))
	if cfg.Check {
		s.vals = make([][feed.NumFields]string, len(s.symbols))
	}
	return s
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	cfg := &r.cfg
	rep := newReport()
	rep.Transport = strings.Join(cfg.Transports, ",")
	rep.URLs = slices.Clone(cfg.URLs)
	rep.Conns, rep.Symbols, rep.MaxHz = len(r.sessions), cfg.Symbols, cfg.MaxHz
	rep.Zipf, rep.Seed, rep.Procs = cfg.Zipf, cfg.Seed, 1
	if len(r.transports) > 1 {
		rep.ByTransport = map[string]*TransportStats{}
		for _, t := range r.transports {
			rep.ByTransport[t] = newTransportStats()
		}
	}
	for _, s := range r.sessions {
		if s.slow {
			rep.SlowConns++
		}
		if t := rep.ByTransport[s.transport]; t != nil {
			t.Conns++
			if s.slow {
				t.SlowConns++
			}
		}
	}
	if rep.SlowConns > 0 {
		rep.SlowBPS = cfg.slowBPS()
	}

	cpu0 := ownCPU()
	t0 := time.Now()
	rep.Start = t0
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		progressWG.Go(func() { r.progress(t0, progressDone) })
	}

	var sessions, settled sync.WaitGroup
	settled.Add(len(r.sessions))
	started := 0
	for _, s := range r.sessions {
		if cfg.Rate > 0 {
			at := t0.Add(time.Duration(float64(s.index) / cfg.Rate * float64(time.Second)))
			if !sleepUntil(ctx, at) {
				break
			}
		}
		d := dials[s.transport]
		sessions.Go(func() { s.loop(runCtx, d, settled.Done) })
		started++
	}
	for range len(r.sessions) - started {
		settled.Done()
	}
	allSettled := make(chan struct{})
	go func() {
		settled.Wait()
		close(allSettled)
	}()
	select {
	case <-allSettled:
	case <-ctx.Done():
	}

	rampEnd := time.Now()
	rep.RampSeconds = rampEnd.Sub(t0).Seconds()
	if cfg.SteadyStart != nil && ctx.Err() == nil {
		cfg.SteadyStart()
	}
	steadyStart := time.Now()
	data0, lat0 := r.stats.data(), r.stats.latency()
	sleepUntil(ctx, steadyStart.Add(cfg.Duration))
	steadyEnd := time.Now()
	rep.SteadyData = r.stats.data() - data0
	rep.LatencySteady = r.stats.latency().Sub(lat0)
	rep.SteadySeconds = steadyEnd.Sub(steadyStart).Seconds()
	if rep.SteadySeconds > 0 {
		rep.DataPerSec = float64(rep.SteadyData) / rep.SteadySeconds
	}
	rep.CPU, rep.MaxRSS = cpuSince(cpu0, t0)
	if cfg.SteadyEnd != nil {
		cfg.SteadyEnd()
	}

	if cfg.Check && ctx.Err() == nil {
		rep.Check = r.check(ctx)
	}
	stop()
	sessions.Wait()
	<-allSettled
	close(progressDone)
	progressWG.Wait()
	r.stats.fill(rep, r.transports)
	return rep, nil
}

// progress calls cfg.Progress once a second until done is closed.
func (r *runner) progress(t0 time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := int64(0), t0
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			data := r.stats.data()
			r.cfg.Progress(Progress{
				Elapsed:   now.Sub(t0),
				Target:    len(r.sessions),
				Open:      r.stats.open.Load(),
				Connected: r.stats.connected.Load(),
				Failed:    r.stats.failed.Load(),
				Data:      data,
				Rate:      float64(data-last) / now.Sub(lastAt).Seconds(),
				Latency:   r.stats.latency(),
			})
			last, lastAt = data, now
		}
	}
}

// sleepUntil waits until t; it returns false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// FetchSymbols returns the symbols of GET base/v1/symbols.
func FetchSymbols(ctx context.Context, base string) ([]string, error) {
	var body struct {
		Symbols []string `json:"symbols"`
	}
	if err := getJSON(ctx, strings.TrimSuffix(base, "/")+"/v1/symbols", &body); err != nil {
		return nil, err
	}
	return body.Symbols, nil
}

// apiClient is used for the REST calls of a run (symbols, snapshots).
var apiClient = &http.Client{Timeout: 30 * time.Second}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: GET %s: HTTP status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("bench: GET %s: %w", u, err)
	}
	return nil
}

// universe returns the symbols sessions pick from: cfg.Universe, or the
// first server's GET /v1/symbols.
func (cfg *Config) universe(ctx context.Context) ([]string, error) {
	universe := cfg.Universe
	if universe == nil {
		var err error
		if universe, err = FetchSymbols(ctx, cfg.URLs[0]); err != nil {
			return nil, err
		}
	}
	if len(universe) == 0 {
		return nil, ErrNoSymbols
	}
	return universe, nil
}
