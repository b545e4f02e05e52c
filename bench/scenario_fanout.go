package bench

import (
	"context"
	"time"
)

// Fanout measures delivery of a few hot symbols to many sessions: tickerd's
// simulator makes 10,000 updates/s over 100 symbols with -max-hz 1000, and
// 10,000 WebSocket sessions each subscribe to all 100 at maxHz 1000, so
// that every update is news for every session: delivered messages/s, p99,
// server CPU and RSS, and the client's own CPU.
func Fanout(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	cfg := sc.load(Config{Conns: 10000, Symbols: 100, MaxHz: 1000, Duration: 20 * time.Second, Rate: 2000, Check: true})
	return sc.simRun(ctx, "fanout", cfg, "-sim-symbols", "100", "-sim-rate", "10000", "-max-hz", "1000", "-sim-seed", "1")
}

// FanoutWide measures delivery under a busy feed over a wide universe:
// tickerd's simulator makes 20,000 updates/s over 2,000 symbols with
// -max-hz 1000, and WebSocket sessions subscribe to 50 symbols each at
// maxHz 1000.
func FanoutWide(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	cfg := sc.load(Config{Conns: 1000, Symbols: 50, MaxHz: 1000, Duration: 20 * time.Second, Rate: 1000})
	return sc.simRun(ctx, "fanout-wide", cfg, "-sim-symbols", "2000", "-sim-rate", "20000", "-max-hz", "1000", "-sim-seed", "1")
}

// simRun starts tickerd with its simulated feed and args, runs cfg against
// it and reports the server's CPU and RSS over the steady window.
func (sc *ScenarioConfig) simRun(ctx context.Context, name string, cfg Config, args ...string) (*ScenarioReport, error) {
	srv, stop, err := sc.startServer(ctx, args...)
	if err != nil {
		return nil, err
	}
	rep := &ScenarioReport{Name: name, ServerArgs: srv.Args}
	return rep.finish(srv, stop, sc.measure(ctx, srv, rep, cfg, false))
}
