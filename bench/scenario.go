package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ScenarioConfig tunes a scenario. Zero fields take the scenario's
// defaults, so a quick run sets only Conns and Duration.
type ScenarioConfig struct {
	Tickerd string // tickerd binary; "" = build ./cmd/tickerd into a temp dir
	// ServerArgs are added to the scenario's tickerd flags (a later flag
	// wins: -pacing-max-gap 250ms, -max-hz 100, ...).
	ServerArgs []string
	Conns      int           // sessions; 0 = the scenario's default
	Symbols    int           // symbols per session; 0 = default
	Duration   time.Duration // steady window; 0 = default
	Rate       float64       // new sessions per second; 0 = default
	MaxHz      int           // maxHz asked per session; 0 = default
	Seed       uint64        // symbol choice; 0 = 1
	TargetKiB  float64       // footprint only: fail above this RSS per session; 0 = report only
	Slow       float64       // fraction of slow readers (Config.Slow); 0 = the scenario's default
	SlowBPS    int           // their read rate (Config.SlowBPS); 0 = DefaultSlowBPS

	// Procs is the number of client processes for scenarios that spread
	// their sessions (hold); 0 = DefaultProcs(conns). WorkerCommand
	// returns the command of worker i of n for cfg (see Spread); nil runs
	// every session in this process whatever Procs says.
	Procs         int
	WorkerCommand func(cfg Config, worker, workers int, universeFile string) *exec.Cmd

	Progress func(Progress)                   // as in Config
	Logf     func(format string, args ...any) // as in Config; also the scenario's steps
}

// ScenarioReport is what a scenario measured: the server process from
// /proc and the client's Report.
type ScenarioReport struct {
	Name       string      `json:"name"`
	Conns      int         `json:"conns"` // sessions asked for (the client's, for plots across runs)
	ServerArgs []string    `json:"serverArgs"`
	Server     ServerStats `json:"server"`
	Client     *Report     `json:"client"`
	Churn      *ChurnStats `json:"churn,omitempty"` // churn only
	// Nodes and Cluster are of a cluster scenario (hold-50k): each node's
	// figures, of which Server holds the totals (CPU and RSS summed, RSS
	// per session over all sessions), and the cross-node comparison.
	Nodes    []NodeStats   `json:"nodes,omitempty"`
	Cluster  *ClusterCheck `json:"cluster,omitempty"`
	Problems []string      `json:"problems,omitempty"` // empty for a clean run
}

// ServerStats is the server process as /proc saw it.
type ServerStats struct {
	RSSBaseline      int64   `json:"rssBaseline"`      // bytes, before any session (footprint)
	RSSLoaded        int64   `json:"rssLoaded"`        // bytes, with every session open, settled
	RSSPerSessionKiB float64 `json:"rssPerSessionKiB"` // (loaded - baseline) / sessions (footprint)
	ForcedGC         bool    `json:"forcedGC"`         // a GC ran before each RSS sample (GET /debug/pprof/heap?gc=1)
	TargetKiB        float64 `json:"targetKiB,omitempty"`
	CPUSeconds       float64 `json:"cpuSeconds"`    // user+system over the steady window
	WindowSeconds    float64 `json:"windowSeconds"` // the steady window
	CPUCores         float64 `json:"cpuCores"`      // CPUSeconds / WindowSeconds
	Threads          int     `json:"threads"`
	FDs              int     `json:"fds"`
}

// Scenario is a named, self-contained load test.
type Scenario struct {
	Name string
	Doc  string
	Run  func(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error)
}

// Scenarios lists the scenarios tickerbench can run. Each starts its own
// tickerd; -conns, -symbols, -duration, -rate and -max-hz scale it down.
var Scenarios = []Scenario{
	{Name: "footprint", Run: Footprint, Doc: "5,000 idle WebSocket sessions x 20 symbols on tickerd -feed none; server RSS per session (target <= 12 KiB)"},
	{Name: "hold", Run: Hold, Doc: "18,000 WebSocket sessions x 20 symbols at maxHz 4 on tickerd -sim-symbols 5000 -sim-rate 10000, over 2+ client processes; connect times, RSS per session, server CPU, latency p50/p99/p999"},
	{Name: "fanout", Run: Fanout, Doc: "10,000 WebSocket sessions all on the same 100 symbols at maxHz 1000 (tickerd -sim-symbols 100 -sim-rate 10000 -max-hz 1000); delivered msg/s, p99, server and client CPU"},
	{Name: "fanout-wide", Run: FanoutWide, Doc: "1,000 WebSocket sessions x 50 of 2,000 symbols at maxHz 1000 (tickerd -sim-symbols 2000 -sim-rate 20000 -max-hz 1000); delivered msg/s, latency, server CPU and RSS"},
	{Name: "mixed", Run: Mixed, Doc: "2,000 sessions x 20 symbols at maxHz 10 round-robin over ws, sse, ndjson and poll, 10% slow readers (-slow, -slow-bps); fast vs slow latency per transport"},
	{Name: "throttle", Run: Throttle, Doc: "5,000 WebSocket sessions x 50 symbols at maxHz 4 on tickerd -sim-symbols 1000 -sim-rate 50000; delivered msg/s, conflation, latency, server CPU; -slow 0.1 makes a tenth of them slow readers"},
	{Name: "hold-50k", Run: Hold50k, Doc: "hold over 3 tickerd nodes on embedded NATS (node 1: the simulator, 5,000 symbols at 10,000 updates/s): 50,000 WebSocket sessions x 20 symbols at maxHz 4 spread over the nodes; latency, RSS per session and CPU per node, convergence on each node and across nodes"},
	{Name: "churn", Run: Churn, Doc: "-rate 500 connect/snapshot/disconnect per second for -duration 60s beside -conns 5,000 steady WebSocket sessions; steady sessions see no errors, server goroutines and RSS return to baseline"},
}

// load returns a scenario's load: def holds the scenario's sizes
// (Transports, default WebSocket only; Conns, Symbols, MaxHz, Duration,
// Rate, Slow) and whether to check convergence; what sc sets overrides the
// sizes, and sc brings the seed, the slow readers' rate, progress and log.
func (sc *ScenarioConfig) load(def Config) Config {
	if def.Transports == nil {
		def.Transports = []string{"ws"}
	}
	def.Conns = or(sc.Conns, def.Conns)
	def.Symbols = or(sc.Symbols, def.Symbols)
	def.MaxHz = or(sc.MaxHz, def.MaxHz)
	def.Duration = or(sc.Duration, def.Duration)
	def.Rate = or(sc.Rate, def.Rate)
	def.Slow = or(sc.Slow, def.Slow)
	def.Seed = or(sc.Seed, 1)
	def.SlowBPS = sc.SlowBPS
	def.Progress, def.Logf = sc.Progress, sc.Logf
	return def
}

// ErrUnknownScenario is returned by FindScenario.
var ErrUnknownScenario = errors.New("bench: unknown scenario")

// FindScenario returns the scenario called name.
func FindScenario(name string) (Scenario, error) {
	i := slices.IndexFunc(Scenarios, func(s Scenario) bool { return s.Name == name })
	if i < 0 {
		names := make([]string, len(Scenarios))
		for j, s := range Scenarios {
			names[j] = s.Name
		}
		return Scenario{}, fmt.Errorf("%w %q (have %s)", ErrUnknownScenario, name, strings.Join(names, ", "))
	}
	return Scenarios[i], nil
}

func (sc *ScenarioConfig) logf(format string, args ...any) {
	if sc.Logf != nil {
		sc.Logf(format, args...)
	}
}

// tickerd returns the tickerd binary to start: sc.Tickerd, or one built
// into a temporary directory, which cleanup removes.
func (sc *ScenarioConfig) tickerd(ctx context.Context) (bin string, cleanup func(), err error) {
	if sc.Tickerd != "" {
		return sc.Tickerd, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "tickerbench-")
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	sc.logf("building tickerd")
	if bin, err = BuildTickerd(ctx, dir); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// startServer builds tickerd if needed and starts it with args. The
// returned stop function removes the build directory too.
func (sc *ScenarioConfig) startServer(ctx context.Context, args ...string) (*Server, func() error, error) {
	bin, cleanup, err := sc.tickerd(ctx)
	if err != nil {
		return nil, nil, err
	}
	srv, err := StartServer(ctx, bin, append(args, sc.ServerArgs...), 30*time.Second)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	sc.logf("tickerd pid %d at %s: %s", srv.PID(), srv.URL, strings.Join(srv.Args, " "))
	return srv, func() error {
		err := srv.Stop()
		cleanup()
		return err
	}, nil
}

// forceGC asks the server for a heap profile with gc=1, which runs a
// garbage collection first (tickerd serves /debug/pprof to loopback). It
// reports whether the server obliged.
func forceGC(ctx context.Context, srv *Server) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return false
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// settleRSS forces a garbage collection in the server if it can, then
// samples it until its RSS holds still (four samples 250 ms apart within
// 0.5% or 64 KiB), for at most limit, and returns the last sample.
func settleRSS(ctx context.Context, srv *Server, limit time.Duration) (ProcSample, bool, error) {
	gc := forceGC(ctx, srv)
	s, err := holdStill(ctx, srv, limit)
	return s, gc, err
}

func holdStill(ctx context.Context, srv *Server, limit time.Duration) (ProcSample, error) {
	deadline := time.Now().Add(limit)
	prev, err := srv.Sample()
	if err != nil {
		return prev, err
	}
	still := 0
	for still < 4 && time.Now().Before(deadline) {
		if !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			return prev, ctx.Err()
		}
		cur, err := srv.Sample()
		if err != nil {
			return prev, err
		}
		if d := abs(cur.RSS - prev.RSS); d <= max(64<<10, prev.RSS/200) {
			still++
		} else {
			still = 0
		}
		prev = cur
	}
	return prev, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// runClient runs cfg's sessions: spread over worker processes when there
// is a WorkerCommand and more than one process is wanted, here otherwise.
func (sc *ScenarioConfig) runClient(ctx context.Context, cfg Config) (*Report, error) {
	procs := sc.Procs
	if procs <= 0 {
		procs = DefaultProcs(cfg.Conns)
	}
	if procs <= 1 || sc.WorkerCommand == nil {
		return Run(ctx, cfg)
	}
	sc.logf("spreading %d sessions over %d client processes", cfg.Conns, procs)
	return Spread(ctx, cfg, procs, func(i int, universe string) *exec.Cmd {
		return sc.WorkerCommand(cfg, i, procs, universe)
	})
}

// measure runs the client of cfg against srv and fills rep.Client and
// rep.Server: the server's CPU over the steady window, and its RSS at the
// window's start: settled after a forced GC when settle is set (and then
// per session if rep.Server.RSSBaseline is set), else at the window's end.
func (sc *ScenarioConfig) measure(ctx context.Context, srv *Server, rep *ScenarioReport, cfg Config, settle bool) error {
	cfg.URLs = []string{srv.URL}
	rep.Conns = cfg.Conns
	var start, end ProcSample
	var sampleErr error
	cfg.SteadyStart = func() {
		if !settle {
			start, sampleErr = srv.Sample()
			return
		}
		var gc bool
		start, gc, sampleErr = settleRSS(ctx, srv, 15*time.Second)
		rep.Server.ForcedGC = gc && (rep.Server.RSSBaseline == 0 || rep.Server.ForcedGC)
	}
	cfg.SteadyEnd = func() {
		if sampleErr == nil {
			end, sampleErr = srv.Sample()
		}
	}
	if ok, err := sc.runSampled(ctx, cfg, rep, &sampleErr); !ok {
		return err
	}
	if start.At.IsZero() {
		return nil // interrupted before the steady window
	}
	rep.Server.fill(start, end)
	rep.Server.RSSLoaded = end.RSS
	if settle {
		rep.Server.RSSLoaded = start.RSS
	}
	if settle && rep.Server.RSSBaseline > 0 && rep.Client.Connected > 0 {
		rep.Server.RSSPerSessionKiB = float64(rep.Server.RSSLoaded-rep.Server.RSSBaseline) / float64(rep.Client.Connected) / 1024
	}
	return nil
}

// runSampled runs the client of cfg and records it in rep; the steady
// window's callbacks set *sampleErr. It reports false, with the error if
// any, when the window's samples are not to be used.
func (sc *ScenarioConfig) runSampled(ctx context.Context, cfg Config, rep *ScenarioReport, sampleErr *error) (bool, error) {
	client, err := sc.runClient(ctx, cfg)
	if client == nil {
		return false, err
	}
	rep.Client = client
	if err != nil {
		return false, err
	}
	if *sampleErr != nil {
		return false, *sampleErr
	}
	return true, nil
}

// baseline settles the server's RSS before any session and records it.
func (sc *ScenarioConfig) baseline(ctx context.Context, srv *Server, rep *ScenarioReport) error {
	base, gc, err := settleRSS(ctx, srv, 10*time.Second)
	if err != nil {
		return err
	}
	rep.Server.ForcedGC = gc
	rep.Server.RSSBaseline = base.RSS
	sc.logf("baseline RSS %s", byteSize(base.RSS))
	return nil
}

// fill sets the CPU figures over the window between two samples.
func (s *ServerStats) fill(start, end ProcSample) {
	s.WindowSeconds = end.At.Sub(start.At).Seconds()
	s.CPUSeconds = (end.CPU - start.CPU).Seconds()
	if s.WindowSeconds > 0 {
		s.CPUCores = s.CPUSeconds / s.WindowSeconds
	}
	s.Threads, s.FDs = end.Threads, end.FDs
}

// finish stops the server and gathers the problems of the run.
func (r *ScenarioReport) finish(srv *Server, stop func() error, runErr error) (*ScenarioReport, error) {
	exitedEarly := srv.Exited()
	stopErr := stop()
	if exitedEarly {
		r.Problems = append(r.Problems, "tickerd exited during the run:\n"+srv.Log())
	} else if stopErr != nil {
		r.Problems = append(r.Problems, stopErr.Error())
	}
	if runErr != nil {
		return r, runErr
	}
	if r.Client != nil {
		r.Problems = append(r.Client.Problems(), r.Problems...)
	}
	return r, nil
}

// WriteText writes the scenario's figures, then the client's report.
func (r *ScenarioReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s  (%d sessions)\n", r.Name, r.Conns)
	fmt.Fprintf(tw, "server\ttickerd %s\n", strings.Join(r.ServerArgs, " "))
	if len(r.Nodes) > 1 {
		fmt.Fprintf(tw, "cluster\t%d nodes (the first's flags above); server rss and cpu are their totals, rss per session over all sessions\n", len(r.Nodes))
	}
	s := r.Server
	if s.RSSBaseline > 0 {
		gc := "settled without a forced GC"
		if s.ForcedGC {
			gc = "after a forced GC"
		}
		fmt.Fprintf(tw, "server rss\tbaseline %s, with sessions %s (%s): %.2f KiB per session", byteSize(s.RSSBaseline), byteSize(s.RSSLoaded), gc, s.RSSPerSessionKiB)
		if s.TargetKiB > 0 {
			fmt.Fprintf(tw, " (target <= %.0f KiB)", s.TargetKiB)
		}
		fmt.Fprintln(tw)
	} else {
		fmt.Fprintf(tw, "server rss\t%s at the end of the window\n", byteSize(s.RSSLoaded))
	}
	fmt.Fprintf(tw, "server cpu\t%.2f cores (%.1fs over %.1fs)  threads %d  fds %d\n", s.CPUCores, s.CPUSeconds, s.WindowSeconds, s.Threads, s.FDs)
	r.writeNodes(tw)
	if c := r.Churn; c != nil {
		c.writeText(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Client != nil {
		if err := r.Client.WriteText(w); err != nil {
			return err
		}
	}
	if len(r.Problems) > 0 {
		_, err := fmt.Fprintf(w, "scenario FAILED:\n  %s\n", strings.Join(r.Problems, "\n  "))
		return err
	}
	_, err := fmt.Fprintln(w, "scenario ok")
	return err
}

// writeText adds the churn's rows to a scenario's table.
func (c *ChurnStats) writeText(tw io.Writer) {
	failed, connect := int64(0), "n=0"
	if c.Sessions != nil {
		failed, connect = c.Sessions.Failed, histLine(c.Sessions.Connect)
		if len(c.Sessions.Failures) > 0 {
			connect += "  failures " + counts(c.Sessions.Failures)
		}
	}
	fmt.Fprintf(tw, "churn\t%d sessions started at %.0f/s over %.1fs: %d completed (connect, snapshots, leave), %d failed\n",
		c.Started, c.Rate, c.Seconds, c.Completed, failed)
	fmt.Fprintf(tw, "churn connect\t%s\n", connect)
	fmt.Fprintf(tw, "goroutines\tbaseline %d, peak %d, after %d (%.1fs after the churn; tolerance +%d; outside the drive pool)\n",
		c.GoroutinesBaseline, c.GoroutinesPeak, c.GoroutinesAfter, c.RecoverySeconds, c.GoroutineSlack)
	fmt.Fprintf(tw, "drive pool\tbaseline %d, peak %d, after %d goroutines\n", c.DrivePoolBaseline, c.DrivePoolPeak, c.DrivePoolAfter)
	fmt.Fprintf(tw, "churn rss\tbaseline %s, peak %s, after %s (settled after a forced GC; tolerance +%s)\n",
		byteSize(c.RSSBaseline), byteSize(c.RSSPeak), byteSize(c.RSSAfter), byteSize(c.RSSSlack))
}

// or returns v, or def when v is not positive.
func or[T int | uint64 | float64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
