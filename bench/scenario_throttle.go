package bench

import (
	"context"
	"time"
)

// Throttle measures throttling and conflation under a feed far faster than
// the sessions may receive (issue 4's benchmark): tickerd's simulator makes
// 50,000 updates/s over 1,000 symbols (50 per symbol per second), and 5,000
// WebSocket sessions subscribe to 50 symbols each at maxHz 4, so at most
// 4 of every 50 updates of a symbol reach a session. It reports delivered
// messages/s, the conflation ratio, latency and server CPU. With -slow 0.1
// a tenth of the sessions read at -slow-bps (10 KiB/s): comparing the fast
// sessions' p99 with an all-fast run shows whether slow readers cost the
// others anything.
func Throttle(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	cfg := sc.load(Config{Conns: 5000, Symbols: 50, MaxHz: 4, Duration: 20 * time.Second, Rate: 1000, Check: true})
	return sc.simRun(ctx, "throttle", cfg, "-sim-symbols", "1000", "-sim-rate", "50000", "-sim-seed", "1")
}
