package bench

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// footprintUniverse is how many symbols footprint creates by ingest.
const footprintUniverse = 200

// Footprint measures the server's memory per idle WebSocket session:
// tickerd runs with -feed none, gets one update for each of 200 symbols
// by POST /v1/ingest, and its settled RSS is the baseline; then the
// sessions connect (20 symbols each), receive their snapshots and idle,
// and the settled RSS with every session open gives the RSS per session.
// The views are checked against /v1/snapshot at the end.
func Footprint(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	cfg := sc.load(Config{Conns: 5000, Symbols: 20, Duration: 5 * time.Second, Rate: 2000, Check: true})
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
		if err := sc.baseline(ctx, srv, rep); err != nil {
			return err
		}
		cfg.Universe = universe
		if err := sc.measure(ctx, srv, rep, cfg, true); err != nil {
			return err
		}
		if sc.TargetKiB > 0 && rep.Server.RSSPerSessionKiB > sc.TargetKiB {
			rep.Problems = append(rep.Problems, fmt.Sprintf("RSS per session %.1f KiB is over the %.1f KiB target",
				rep.Server.RSSPerSessionKiB, sc.TargetKiB))
		}
		return nil
	}()
	return rep.finish(srv, stop, runErr)
}
