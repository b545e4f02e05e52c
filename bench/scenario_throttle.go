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
	cfg := Config{
		Transports: []string{"ws"},
		Conns:      or(sc.Conns, 5000),
		Symbols:    or(sc.Symbols, 50),
		MaxHz:      or(sc.MaxHz, 4),
		Duration:   or(sc.Duration, 20*time.Second),
		Rate:       or(sc.Rate, 1000),
		Seed:       or(sc.Seed, 1),
		Slow:       sc.Slow,
		SlowBPS:    sc.SlowBPS,
		Check:      true,
		Progress:   sc.Progress,
		Logf:       sc.Logf,
	}
	return sc.simRun(ctx, "throttle", cfg, "-sim-symbols", "1000", "-sim-rate", "50000", "-sim-seed", "1")
}
