package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"tickerd/simulator"
)

// closeTimeout bounds the final flush of a Poster on exit.
const closeTimeout = 10 * time.Second

var genCommand = command{
	usage: "tickersim gen -symbols N -rate R -duration D -seed S [-scenario NAME] [-start T] (-o CAPTURE | -to URL) [-key K]",
	setup: func(fs *flag.FlagSet) func(context.Context, env, []string) int {
		symbols := fs.Int("symbols", simulator.DefaultSymbols, "number of simulated symbols, 1..100000")
		rate := fs.Float64("rate", simulator.DefaultRate, "total updates per second across all symbols (the steady rate of a scenario)")
		duration := fs.Duration("duration", 10*time.Second, "how long to simulate; with -to, 0 runs until interrupted (default 2m with a -scenario other than steady)")
		seed := fs.Int64("seed", simulator.DefaultSeed, "random seed; the same seed gives the same feed")
		scenario := fs.String("scenario", simulator.ScenarioSteady, "feed `shape`: "+strings.Join(simulator.Scenarios, ", ")+" (see docs/operations.md)")
		start := fs.String("start", "", "with -o, the simulated start `time` (RFC 3339); empty = now, to the second. The same seed and start give the same capture, byte for byte")
		out := fs.String("o", "", "write a capture of simulated time to this file (and its index), as fast as possible")
		to := fs.String("to", "", "post in real time to this tickerd's /v1/ingest")
		key := fs.String("key", "", "bearer key for -to (tickerd's -ingest-key)")
		return func(ctx context.Context, e env, args []string) int {
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if !set["duration"] && *scenario != simulator.ScenarioSteady {
				*duration = simulator.ScenarioLength
			}
			simStart := time.Now().Truncate(time.Second)
			if *start != "" {
				t, err := time.Parse(time.RFC3339Nano, *start)
				if err != nil {
					return usageError(e.stderr, "gen", fmt.Errorf("-start %q: want an RFC 3339 time like 2026-11-23T14:30:00Z", *start))
				}
				simStart = t
			}
			switch {
			case len(args) > 0:
				return usageError(e.stderr, "gen", fmt.Errorf("unexpected argument %q", args[0]))
			case (*out == "") == (*to == ""):
				return usageError(e.stderr, "gen", errors.New("want exactly one of -o CAPTURE and -to URL"))
			case *symbols == 0:
				return usageError(e.stderr, "gen", fmt.Errorf("-symbols 0: want 1..%d", simulator.MaxSymbols))
			case *rate == 0:
				return usageError(e.stderr, "gen", errors.New("-rate 0: want a positive rate"))
			case *duration < 0 || (*out != "" && *duration == 0):
				return usageError(e.stderr, "gen", fmt.Errorf("-duration %v: want a positive duration", *duration))
			case *start != "" && *to != "":
				return usageError(e.stderr, "gen", errors.New("-start goes with -o (-to sends in real time, now)"))
			}
			sim, err := simulator.New(simulator.Config{Symbols: *symbols, Rate: *rate, Seed: *seed, Scenario: *scenario})
			if err != nil {
				return usageError(e.stderr, "gen", err)
			}
			if *out != "" {
				return genCapture(ctx, e, sim, *out, simStart, *duration)
			}
			poster, err := simulator.NewPoster(simulator.PosterConfig{URL: *to, Key: *key, Log: e.log})
			if err != nil {
				return usageError(e.stderr, "gen", err)
			}
			return genLive(ctx, e, sim, poster, *duration)
		}
	},
}

// genCapture writes d of simulated time from start.
func genCapture(ctx context.Context, e env, sim *simulator.Sim, path string, start time.Time, d time.Duration) int {
	w, err := simulator.CreateCapture(path)
	if err != nil {
		e.log.Error("gen failed", "err", err)
		return exitFail
	}
	began := time.Now()
	n, err := sim.Generate(ctx, w, start, d)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	switch {
	case ctx.Err() != nil:
		e.log.Warn("gen interrupted; the capture holds what was generated", "file", path, "updates", n)
	case err != nil:
		e.log.Error("gen failed", "file", path, "updates", n, "err", err)
		return exitFail
	default:
		size := int64(-1)
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		e.log.Info("capture written", "file", path, "updates", n, "bytes", size, "took", time.Since(began).Round(time.Millisecond))
	}
	return exitOK
}

// genLive posts the simulated feed in real time for d (0: until ctx ends),
// or until the server refuses the key.
func genLive(ctx context.Context, e env, sim *simulator.Sim, poster *simulator.Poster, d time.Duration) int {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-poster.Failed():
			cancel()
		case <-ctx.Done():
		}
	})
	cfg := sim.Config()
	e.log.Info("posting simulated feed", "symbols", cfg.Symbols, "rate", cfg.Rate, "seed", cfg.Seed, "scenario", cfg.Scenario, "duration", d)
	_ = sim.Run(ctx, poster) // returns ctx.Err() once the run is over
	cancel()
	wg.Wait()
	return closePoster(e, poster)
}

// closePoster flushes the Poster, logs its counts and returns the exit code.
func closePoster(e env, poster *simulator.Poster) int {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	err := poster.Close(ctx)
	st := poster.Stats()
	e.log.Info("ingest done", "requests", st.Requests, "accepted", st.Accepted, "rejected", st.Rejected, "dropped", st.Dropped)
	switch {
	case err != nil:
		e.log.Error("ingest failed", "err", err)
		return exitFail
	case st.Dropped > 0:
		e.log.Error("ingest lost updates", "dropped", st.Dropped)
		return exitFail
	}
	return exitOK
}
