package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Churn's shape and its tolerances.
const (
	churnSteady      = 5000             // steady sessions
	churnRate        = 500              // churning sessions started per second
	churnFor         = 60 * time.Second // how long the churn lasts
	churnSymbols     = 20               // symbols of every session
	churnMinLife     = 100 * time.Millisecond
	churnMaxLife     = time.Second      // a churning session lives a random time in [min, max)
	churnSnapTimeout = 10 * time.Second // for a churning session's snapshots
	churnWarmUp      = 3 * time.Second  // steady load before the baseline

	// After the churn the server's goroutines must come back to within
	// churnGoroutineSlack of the baseline in churnRecovery (its idle
	// WebSocket drive goroutines exit after 2 s), and its settled RSS to
	// within the larger of churnRSSFraction and churnRSSSlack.
	churnGoroutineSlack = 50
	churnRecovery       = 10 * time.Second
	churnRSSFraction    = 0.10
	churnRSSSlack       = 16 << 20
)

// ChurnStats is what churn measured besides the steady sessions' report.
type ChurnStats struct {
	Rate      float64 `json:"rate"`      // churning sessions started per second, as asked
	Seconds   float64 `json:"seconds"`   // how long the churn lasted
	Started   int64   `json:"started"`   // churning sessions started
	Completed int64   `json:"completed"` // connected, got every snapshot, then left
	Sessions  *Report `json:"sessions"`  // what the churning sessions saw: connects, failures, messages

	// Server goroutines (go_goroutines) outside the WebSocket drive pool,
	// whose size follows the write concurrency of the load and is
	// reported apart (DrivePool*).
	GoroutinesBaseline int     `json:"goroutinesBaseline"` // before the churn (median of five samples)
	GoroutinesPeak     int     `json:"goroutinesPeak"`     // highest sample during the churn
	GoroutinesAfter    int     `json:"goroutinesAfter"`    // after the churn, once back within tolerance or at the limit
	DrivePoolBaseline  int     `json:"drivePoolBaseline"`
	DrivePoolPeak      int     `json:"drivePoolPeak"`
	DrivePoolAfter     int     `json:"drivePoolAfter"`
	RecoverySeconds    float64 `json:"recoverySeconds"` // from the churn's end to GoroutinesAfter
	GoroutineSlack     int     `json:"goroutineSlack"`  // tolerance above the baseline
	RSSBaseline        int64   `json:"rssBaseline"`     // bytes, settled after a forced GC, before the churn
	RSSPeak            int64   `json:"rssPeak"`         // highest sample during the churn
	RSSAfter           int64   `json:"rssAfter"`        // settled after a forced GC, after the churn
	RSSSlack           int64   `json:"rssSlack"`        // tolerance above the baseline, bytes
}

// Churn measures what sessions that come and go leave behind: 5,000
// steady WebSocket sessions (20 symbols at maxHz 4 of tickerd's simulator,
// 5,000 symbols at 10,000 updates/s) stay open while 500 sessions a
// second, for 60 s, each connect, subscribe to 20 symbols, receive their
// snapshots and disconnect after a random life of 0.1–1 s. The steady
// sessions must see no error; once the churn stops, the server's
// goroutines (outside its pool of WebSocket drive goroutines, reported
// apart) and its RSS (settled after a
// forced GC) must come back to their pre-churn baseline within the stated
// tolerances. Conns sets the steady sessions, Rate the churn rate and
// Duration how long the churn lasts.
func Churn(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	churn := &churner{
		rate:    or(sc.Rate, churnRate),
		dur:     or(sc.Duration, churnFor),
		symbols: or(sc.Symbols, churnSymbols),
		seed:    or(sc.Seed, 1) + 1, // churning sessions pick apart from the steady ones
	}
	cfg := sc.load(Config{Conns: churnSteady, MaxHz: 4, Check: true})
	cfg.Symbols, cfg.Duration, cfg.Rate = churn.symbols, churn.dur, 2000 // the steady window is the churn
	srv, stop, err := sc.startServer(ctx, "-sim-symbols", "5000", "-sim-rate", "10000", "-sim-seed", "1")
	if err != nil {
		return nil, err
	}
	rep := &ScenarioReport{Name: "churn", ServerArgs: srv.Args, Conns: cfg.Conns}
	st := &ChurnStats{Rate: churn.rate, GoroutineSlack: churnGoroutineSlack}
	rep.Churn = st
	runErr := func() error {
		universe, err := FetchSymbols(ctx, srv.URL)
		if err != nil {
			return err
		}
		cfg.URLs, cfg.Universe = []string{srv.URL}, universe
		churn.cfg = Config{URLs: cfg.URLs, Transports: cfg.Transports, Symbols: churn.symbols, MaxHz: cfg.MaxHz}
		churn.picker = NewPicker(universe, 0, churn.seed)

		var start, end ProcSample
		var stepErr error
		var churning, peaks sync.WaitGroup
		churnCtx, stopChurn := context.WithCancel(ctx)
		peakCtx, stopPeaks := context.WithCancel(ctx)
		stopAll := func() {
			stopChurn()
			churning.Wait()
			stopPeaks()
			peaks.Wait()
		}
		defer stopAll()
		cfg.SteadyStart = func() {
			if stepErr = sc.churnBaseline(ctx, srv, st); stepErr != nil {
				return
			}
			start, stepErr = srv.Sample()
			sc.logf("churn: %.0f sessions/s for %v beside %d steady sessions", churn.rate, churn.dur, cfg.Conns)
			churning.Go(func() { churn.run(churnCtx, sc.logf) })
			peaks.Go(func() { sc.churnPeaks(peakCtx, srv, st) })
		}
		cfg.SteadyEnd = func() {
			if stepErr != nil {
				return
			}
			end, stepErr = srv.Sample()
			churning.Wait() // the churn stops by itself at the end of its duration
			stopPeaks()
			peaks.Wait()
			if stepErr == nil {
				stepErr = sc.churnRecover(ctx, srv, st)
			}
		}
		client, err := Run(ctx, cfg)
		stopAll()
		if err != nil {
			return err
		}
		rep.Client = client
		st.Seconds = churn.seconds
		st.Started, st.Completed = churn.started.Load(), churn.completed.Load()
		st.Sessions = churn.report()
		if stepErr != nil {
			return stepErr
		}
		if !start.At.IsZero() && !end.At.IsZero() {
			rep.Server.fill(start, end)
			rep.Server.RSSLoaded = st.RSSBaseline
			rep.Server.ForcedGC = true
		}
		rep.Problems = append(rep.Problems, st.problems()...)
		return nil
	}()
	return rep.finish(srv, stop, runErr)
}

// problems lists the churn's failures: churning sessions that failed or
// broke the protocol, and a server that did not come back to baseline.
func (st *ChurnStats) problems() []string {
	var p []string
	if st.Sessions != nil {
		for _, s := range st.Sessions.Problems() {
			p = append(p, "churning sessions: "+s)
		}
	}
	if st.Started > 0 && st.GoroutinesAfter > st.GoroutinesBaseline+st.GoroutineSlack {
		p = append(p, fmt.Sprintf("server goroutines %d after the churn, baseline %d (tolerance +%d within %v)",
			st.GoroutinesAfter, st.GoroutinesBaseline, st.GoroutineSlack, churnRecovery))
	}
	if st.Started > 0 && st.RSSAfter > st.RSSBaseline+st.RSSSlack {
		p = append(p, fmt.Sprintf("server RSS %s after the churn, baseline %s (tolerance +%s)",
			byteSize(st.RSSAfter), byteSize(st.RSSBaseline), byteSize(st.RSSSlack)))
	}
	return p
}

// churnBaseline records the server's goroutines and settled RSS with the
// steady sessions open, before the churn.
func (sc *ScenarioConfig) churnBaseline(ctx context.Context, srv *Server, st *ChurnStats) error {
	// A warm-up under the steady load first, so that the server's pools
	// and buffers have grown to their steady size before the baseline.
	if !sleepUntil(ctx, time.Now().Add(churnWarmUp)) {
		return ctx.Err()
	}
	base, _, err := settleRSS(ctx, srv, 15*time.Second)
	if err != nil {
		return err
	}
	// The median of five samples.
	var gs []int
	for range 5 {
		g, err := serverGoroutines(ctx, srv)
		if err != nil {
			return err
		}
		gs = append(gs, g.sessionBound())
		st.DrivePoolBaseline = g.pool
		if !sleepUntil(ctx, time.Now().Add(200*time.Millisecond)) {
			return ctx.Err()
		}
	}
	slices.Sort(gs)
	st.GoroutinesBaseline = gs[len(gs)/2]
	st.RSSBaseline = base.RSS
	st.RSSSlack = max(int64(float64(base.RSS)*churnRSSFraction), churnRSSSlack)
	st.GoroutinesPeak, st.RSSPeak = st.GoroutinesBaseline, base.RSS
	sc.logf("churn baseline: %d goroutines, RSS %s", st.GoroutinesBaseline, byteSize(base.RSS))
	return nil
}

// churnPeaks samples the server once a second until ctx ends.
func (sc *ScenarioConfig) churnPeaks(ctx context.Context, srv *Server, st *ChurnStats) {
	for sleepUntil(ctx, time.Now().Add(time.Second)) {
		if g, err := serverGoroutines(ctx, srv); err == nil {
			st.GoroutinesPeak = max(st.GoroutinesPeak, g.sessionBound())
			st.DrivePoolPeak = max(st.DrivePoolPeak, g.pool)
		}
		if p, err := srv.Sample(); err == nil {
			st.RSSPeak = max(st.RSSPeak, p.RSS)
		}
	}
}

// churnRecover waits up to churnRecovery for the server's goroutines to
// come back within tolerance, then settles its RSS after a forced GC.
func (sc *ScenarioConfig) churnRecover(ctx context.Context, srv *Server, st *ChurnStats) error {
	t0 := time.Now()
	for {
		g, err := serverGoroutines(ctx, srv)
		if err != nil {
			return err
		}
		st.GoroutinesAfter, st.DrivePoolAfter = g.sessionBound(), g.pool
		if g.sessionBound() <= st.GoroutinesBaseline+st.GoroutineSlack || time.Since(t0) >= churnRecovery {
			break
		}
		if !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			return ctx.Err()
		}
	}
	st.RecoverySeconds = time.Since(t0).Seconds()
	after, _, err := settleRSS(ctx, srv, 15*time.Second)
	if err != nil {
		return err
	}
	st.RSSAfter = after.RSS
	sc.logf("churn over: %d goroutines after %.1fs, RSS %s", st.GoroutinesAfter, st.RecoverySeconds, byteSize(after.RSS))
	return nil
}

// goroutineCount is the server's goroutines at one moment: all of them,
// and those of its pool of WebSocket drive goroutines, which by design
// keeps as many warm goroutines as the peak concurrency of writes needed
// while any of them is handed work every 2 s: a size set by load, not by
// the sessions that came and went.
type goroutineCount struct{ total, pool int }

// sessionBound returns the goroutines outside the drive pool.
func (g goroutineCount) sessionBound() int { return g.total - g.pool }

// drivePoolFrame names the drive pool's goroutines in a goroutine profile.
const drivePoolFrame = "tickerd/stream.(*drivers).loop"

// serverGoroutines reads the server's goroutine profile (debug=1, one
// block per distinct stack with its count), whose total is what
// go_goroutines of /metrics reports.
func serverGoroutines(ctx context.Context, srv *Server) (goroutineCount, error) {
	var g goroutineCount
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return g, fmt.Errorf("bench: goroutines: %w", err)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return g, fmt.Errorf("bench: goroutines: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return g, fmt.Errorf("bench: goroutines: HTTP status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	block, seenTotal := 0, false
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "goroutine profile: total "); ok {
			g.total, err = strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return g, fmt.Errorf("bench: goroutines: %q: %w", line, err)
			}
			seenTotal = true
			continue
		}
		if n, rest, ok := strings.Cut(line, " @ "); ok && rest != "" {
			block, _ = strconv.Atoi(n)
			continue
		}
		if block > 0 && strings.Contains(line, drivePoolFrame) {
			g.pool += block
			block = 0 // count a block once
		}
	}
	if err := sc.Err(); err != nil {
		return g, fmt.Errorf("bench: goroutines: %w", err)
	}
	if !seenTotal {
		return g, errors.New("bench: goroutines: no total in the profile")
	}
	return g, nil
}

// churner starts short-lived WebSocket sessions at a steady rate. Its
// sessions count into a runner of their own, so their figures stay apart
// from the steady sessions'.
type churner struct {
	cfg     Config // URLs, transport, symbols and maxHz of the churning sessions
	rate    float64
	dur     time.Duration
	symbols int
	seed    uint64
	picker  *Picker

	r         *runner
	seconds   float64 // how long the churn ran
	started   atomic.Int64
	completed atomic.Int64
}

// run starts churning sessions at c.rate for c.dur, or until ctx ends,
// and waits for every one of them to end.
func (c *churner) run(ctx context.Context, logf func(string, ...any)) {
	c.cfg.Logf = logf
	c.r = newRunner(c.cfg)
	rng := rand.New(rand.NewPCG(c.seed, 0))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; ; i++ {
		at := t0.Add(time.Duration(float64(i) / c.rate * float64(time.Second)))
		if at.Sub(t0) >= c.dur || !sleepUntil(ctx, at) {
			break
		}
		life := churnMinLife + time.Duration(rng.Int64N(int64(churnMaxLife-churnMinLife)))
		s := c.r.newSession(i, c.picker.Pick(i, c.symbols))
		c.started.Add(1)
		wg.Go(func() { c.one(ctx, s, life) })
	}
	c.seconds = time.Since(t0).Seconds()
	wg.Wait()
}

// one runs a churning session: it connects, waits for the snapshot of
// every symbol (at most churnSnapTimeout), stays until life has passed
// since it started, and disconnects.
func (c *churner) one(ctx context.Context, s *session, life time.Duration) {
	start := time.Now()
	lifeCtx, leave := context.WithCancel(ctx)
	defer leave()
	var (
		got      int
		timedOut atomic.Bool
		lifeEnd  *time.Timer
	)
	snapTimer := time.AfterFunc(churnSnapTimeout, func() {
		timedOut.Store(true)
		leave()
	})
	defer snapTimer.Stop()
	s.onConnect = func() {}
	s.msgFunc = func(m *Msg) {
		s.msg(m)
		if m.Kind != KindSnapshot {
			return
		}
		if got++; got == len(s.symbols) && snapTimer.Stop() {
			lifeEnd = time.AfterFunc(max(0, life-time.Since(start)), leave)
		}
	}
	err := dialWS(lifeCtx, s)
	if lifeEnd != nil {
		lifeEnd.Stop()
	}
	s.shard.flush(&s.tally)
	switch {
	case ctx.Err() != nil:
		return // the scenario ended: not the session's fault
	case err == nil && timedOut.Load():
		err = &readError{kind: "no_snapshot", err: fmt.Errorf("%d of %d snapshots in %v", got, len(s.symbols), churnSnapTimeout)}
	case err == nil:
		c.completed.Add(1)
		return
	}
	s.run.stats.failed.Add(1)
	s.shard.count(failures, failureKind(err))
	s.run.logf("churning session %d: %v", s.index, err)
}

// report returns what the churning sessions saw.
func (c *churner) report() *Report {
	rep := newReport()
	if c.r == nil {
		return rep
	}
	rep.Transport, rep.URLs, rep.Symbols, rep.MaxHz, rep.Seed, rep.Procs =
		"ws", c.cfg.URLs, c.symbols, c.cfg.MaxHz, c.seed, 1
	rep.Conns = int(c.started.Load())
	c.r.stats.fill(rep, c.r.transports)
	return rep
}
