package bench

import (
	"context"
	"time"
)

// Hold measures how many subscribed, mostly idle WebSocket sessions one
// tickerd holds and what each costs: tickerd's simulator makes 10,000
// updates/s over 5,000 symbols, and its settled RSS before any session is
// the baseline; then 18,000 sessions connect (20 symbols each at maxHz 4,
// spread over client processes since one process may hold at most 20,000
// files), and the settled RSS with every session open gives the RSS per
// session. It reports connect times, server CPU over the steady window,
// latency percentiles, and checks convergence. Conns is meant to be swept
// (make loadtest) to plot latency against connection count.
func Hold(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	cfg := sc.load(Config{Conns: 18000, Symbols: 20, MaxHz: 4, Duration: 20 * time.Second, Rate: 2000, Check: true})
	srv, stop, err := sc.startServer(ctx, "-sim-symbols", "5000", "-sim-rate", "10000", "-sim-seed", "1")
	if err != nil {
		return nil, err
	}
	rep := &ScenarioReport{Name: "hold", ServerArgs: srv.Args}
	runErr := func() error {
		if err := sc.baseline(ctx, srv, rep); err != nil {
			return err
		}
		return sc.measure(ctx, srv, rep, cfg, true)
	}()
	return rep.finish(srv, stop, runErr)
}
