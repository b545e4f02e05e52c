package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ScenarioConfig tunes a scenario. Zero fields take the scenario's
// defaults, so a quick run sets only Conns and Duration.
type ScenarioConfig struct {
	Tickerd   string        // tickerd binary; "" = build ./cmd/tickerd into a temp dir
	Conns     int           // sessions; 0 = the scenario's default
	Symbols   int           // symbols per session; 0 = default
	Duration  time.Duration // steady window; 0 = default
	Rate      float64       // new sessions per second; 0 = default
	MaxHz     int           // maxHz asked per session; 0 = default
	Seed      uint64        // symbol choice; 0 = 1
	TargetKiB float64       // footprint only: fail above this RSS per session; 0 = report only

	Progress func(Progress)                   // as in Config
	Logf     func(format string, args ...any) // as in Config; also the scenario's steps
}

// ScenarioReport is what a scenario measured: the server process from
// /proc and the client's Report.
type ScenarioReport struct {
	Name       string      `json:"name"`
	ServerArgs []string    `json:"serverArgs"`
	Server     ServerStats `json:"server"`
	Client     *Report     `json:"client"`
	Problems   []string    `json:"problems,omitempty"` // empty for a clean run
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

// Scenarios lists the scenarios tickerbench can run.
var Scenarios = []Scenario{
	{Name: "footprint", Run: Footprint, Doc: "5,000 idle WebSocket sessions x 20 symbols on tickerd -feed none; server RSS per session (target <= 12 KiB)"},
	{Name: "fanout", Run: Fanout, Doc: "tickerd -sim-symbols 2000 -sim-rate 20000 -max-hz 1000; 1,000 WebSocket sessions x 50 symbols; delivered msg/s, latency, server CPU and RSS"},
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

// startServer builds tickerd if needed and starts it with args. The
// returned stop function removes the build directory too.
func (sc *ScenarioConfig) startServer(ctx context.Context, args ...string) (*Server, func() error, error) {
	bin := sc.Tickerd
	cleanup := func() {}
	if bin == "" {
		dir, err := os.MkdirTemp("", "tickerbench-")
		if err != nil {
			return nil, nil, fmt.Errorf("bench: %w", err)
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
		sc.logf("building tickerd")
		if bin, err = BuildTickerd(ctx, dir); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	srv, err := StartServer(ctx, bin, args, 30*time.Second)
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

// footprintUniverse is how many symbols footprint creates by ingest.
const footprintUniverse = 200

// Footprint measures the server's memory per idle WebSocket session:
// tickerd runs with -feed none, gets one update for each of 200 symbols
// by POST /v1/ingest, and its settled RSS is the baseline; then the
// sessions connect (20 symbols each), receive their snapshots and idle,
// and the settled RSS with every session open gives the RSS per session.
// The views are checked against /v1/snapshot at the end.
func Footprint(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	conns := or(sc.Conns, 5000)
	cfg := Config{
		Transports: []string{"ws"},
		Conns:      conns,
		Symbols:    or(sc.Symbols, 20),
		MaxHz:      sc.MaxHz,
		Duration:   or(sc.Duration, 5*time.Second),
		Rate:       or(sc.Rate, 2000),
		Seed:       or(sc.Seed, 1),
		Check:      true,
		Progress:   sc.Progress,
		Logf:       sc.Logf,
	}
	srv, stop, err := sc.startServer(ctx, "-feed", "none")
	if err != nil {
		return nil, err
	}
	rep := &ScenarioReport{Name: "footprint", ServerArgs: srv.Args}
	rep.Server.TargetKiB = sc.TargetKiB
	runErr := func() error {
		universe := make([]string, footprintUniverse)
		var body strings.Builder
		for i := range universe {
			universe[i] = fmt.Sprintf("FP%04d", i)
			fmt.Fprintf(&body, `{"symbol":%q,"fields":{"bid":"%d.25","ask":"%d.5","last":"%d.3","bidSize":100,"askSize":200,"status":"trading"}}`+"\n",
				universe[i], 10+i, 10+i, 10+i)
		}
		if err := postIngest(ctx, srv.URL, body.String()); err != nil {
			return err
		}
		base, gc, err := settleRSS(ctx, srv, 10*time.Second)
		if err != nil {
			return err
		}
		rep.Server.ForcedGC = gc
		rep.Server.RSSBaseline = base.RSS
		sc.logf("baseline RSS %s", byteSize(base.RSS))
		cfg.URLs, cfg.Universe = []string{srv.URL}, universe
		var loaded, end ProcSample
		var sampleErr error
		cfg.SteadyStart = func() {
			var gc bool
			loaded, gc, sampleErr = settleRSS(ctx, srv, 15*time.Second)
			rep.Server.ForcedGC = rep.Server.ForcedGC && gc
		}
		cfg.SteadyEnd = func() {
			if sampleErr == nil {
				end, sampleErr = srv.Sample()
			}
		}
		client, err := Run(ctx, cfg)
		if err != nil {
			return err
		}
		rep.Client = client
		if sampleErr != nil {
			return sampleErr
		}
		rep.Server.fill(loaded, end)
		rep.Server.RSSLoaded = loaded.RSS
		if client.Connected > 0 {
			rep.Server.RSSPerSessionKiB = float64(loaded.RSS-base.RSS) / float64(client.Connected) / 1024
		}
		if sc.TargetKiB > 0 && rep.Server.RSSPerSessionKiB > sc.TargetKiB {
			rep.Problems = append(rep.Problems, fmt.Sprintf("RSS per session %.1f KiB is over the %.1f KiB target",
				rep.Server.RSSPerSessionKiB, sc.TargetKiB))
		}
		return nil
	}()
	return rep.finish(srv, stop, runErr)
}

// Fanout measures delivery under a busy feed: tickerd's simulator makes
// 20,000 updates/s over 2,000 symbols with -max-hz 1000, and WebSocket
// sessions subscribe to 50 symbols each at maxHz 1000.
func Fanout(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	maxHz := or(sc.MaxHz, 1000)
	cfg := Config{
		Transports: []string{"ws"},
		Conns:      or(sc.Conns, 1000),
		Symbols:    or(sc.Symbols, 50),
		MaxHz:      maxHz,
		Duration:   or(sc.Duration, 20*time.Second),
		Rate:       or(sc.Rate, 1000),
		Seed:       or(sc.Seed, 1),
		Progress:   sc.Progress,
		Logf:       sc.Logf,
	}
	srv, stop, err := sc.startServer(ctx, "-sim-symbols", "2000", "-sim-rate", "20000", "-max-hz", "1000", "-sim-seed", "1")
	if err != nil {
		return nil, err
	}
	rep := &ScenarioReport{Name: "fanout", ServerArgs: srv.Args}
	runErr := func() error {
		cfg.URLs = []string{srv.URL}
		var start, end ProcSample
		var sampleErr error
		cfg.SteadyStart = func() { start, sampleErr = srv.Sample() }
		cfg.SteadyEnd = func() {
			if sampleErr == nil {
				end, sampleErr = srv.Sample()
			}
		}
		client, err := Run(ctx, cfg)
		if err != nil {
			return err
		}
		rep.Client = client
		if sampleErr != nil {
			return sampleErr
		}
		rep.Server.fill(start, end)
		rep.Server.RSSLoaded = end.RSS
		return nil
	}()
	return rep.finish(srv, stop, runErr)
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
	fmt.Fprintf(tw, "scenario\t%s\n", r.Name)
	fmt.Fprintf(tw, "server\ttickerd %s\n", strings.Join(r.ServerArgs, " "))
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

// or returns v, or def when v is not positive.
func or[T int | uint64 | float64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
