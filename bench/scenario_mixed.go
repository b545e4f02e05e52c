package bench

import (
	"context"
	"time"
)

// mixedSlow is the share of slow readers in mixed unless asked otherwise.
const mixedSlow = 0.1

// Mixed runs every transport side by side with slow readers among them:
// tickerd's simulator makes 10,000 updates/s over 1,000 symbols, and 2,000
// sessions (20 symbols each at maxHz 10, about 20 KB/s of news each) are
// spread round-robin over WebSocket, SSE, NDJSON and long-poll; 10% of
// them, evenly over the transports, read at 10 KiB/s, so the server must
// conflate for them. It reports the latency of fast and slow sessions,
// overall and per transport, and checks that every view converges, the
// slow ones' included.
func Mixed(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	cfg := sc.load(Config{Transports: Transports, Conns: 2000, Symbols: 20, MaxHz: 10, Duration: 20 * time.Second, Rate: 1000, Slow: mixedSlow, Check: true})
	return sc.simRun(ctx, "mixed", cfg, "-sim-symbols", "1000", "-sim-rate", "10000", "-sim-seed", "1")
}
