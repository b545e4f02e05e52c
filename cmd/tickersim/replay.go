package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"tickerd/feed"
	"tickerd/simulator"
)

var replayCommand = command{
	usage: "tickersim replay CAPTURE -to URL [-speed 1x|10x|max] [-loop] [-start T] [-end T] [-key K]",
	setup: func(fs *flag.FlagSet) func(context.Context, env, []string) int {
		to := fs.String("to", "", "tickerd base URL to post to (POST /v1/ingest)")
		speed := simulator.Speed(1)
		fs.Var(&speed, "speed", "replay pace, `Nx` or max: 1x as recorded, 10x ten times faster, max as fast as the server takes")
		loop := fs.Bool("loop", false, "replay the capture (or the window) again and again until interrupted")
		start := fs.String("start", "", "replay from this `time`: RFC 3339 (2026-11-22T04:00:00Z) or +DURATION after the capture's start (+10m); empty = the start")
		end := fs.String("end", "", "replay up to this `time`, as -start; empty = the end")
		key := fs.String("key", "", "bearer key for -to (tickerd's -ingest-key)")
		return func(ctx context.Context, e env, args []string) int {
			switch {
			case len(args) != 1:
				return usageError(e.stderr, "replay", fmt.Errorf("want exactly one CAPTURE argument, got %d", len(args)))
			case *to == "":
				return usageError(e.stderr, "replay", errors.New("-to URL is required"))
			}
			path := args[0]
			rp := simulator.ReplayFile(path, speed, *loop)
			first := func() (int64, error) { return simulator.FirstTS(path) }
			var err error
			if *start != "" {
				if rp.Start, err = simulator.ReplayTime(*start, first); err != nil {
					return usageError(e.stderr, "replay", fmt.Errorf("-start: %w", err))
				}
			}
			if *end != "" {
				if rp.End, err = simulator.ReplayTime(*end, first); err != nil {
					return usageError(e.stderr, "replay", fmt.Errorf("-end: %w", err))
				}
			}
			if rp.End > 0 && rp.End < rp.Start {
				return usageError(e.stderr, "replay", errors.New("-end is before -start"))
			}
			sum, err := simulator.SummarizeFile(path)
			if err != nil {
				e.log.Error("replay failed", "err", fmt.Errorf("%s: %w", path, err))
				return exitFail
			}
			poster, err := simulator.NewPoster(simulator.PosterConfig{URL: *to, Key: *key, Log: e.log})
			if err != nil {
				return usageError(e.stderr, "replay", err)
			}
			window := sum.Window(rp.Start, rp.End)
			e.log.Info("replaying", "file", path, "updates", window.Updates, "span", window.Span(), "speed", speed, "loop", *loop)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			every := time.Second // a redraw on a terminal
			if !e.stderrTTY {
				every = plainProgressEvery
			}
			wg.Go(func() { showProgress(e.stderr, e.stderrTTY, every, rp, window, stop) })
			err = rp.Run(ctx, func(u *feed.Update) error {
				if poster.Apply(u) {
					return nil
				}
				if err := poster.Err(); err != nil {
					return err
				}
				return errors.New("ingest stopped")
			})
			close(stop)
			wg.Wait()
			code := closePoster(e, poster)
			if err != nil && ctx.Err() == nil {
				e.log.Error("replay failed", "err", err)
				return exitFail
			}
			return code
		}
	},
}

// plainProgressEvery is how often progress is written when stderr is not
// a terminal (a log file, a CI job): a line every 10 s rather than a
// redraw every second.
const plainProgressEvery = 10 * time.Second

// showProgress writes the replay's progress every so often until stop is
// closed, then a last time: on a terminal it redraws one line, elsewhere
// it writes a line each time.
func showProgress(w io.Writer, tty bool, every time.Duration, rp *simulator.Replayer, sum simulator.Summary, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			p := rp.Progress()
			showLine(w, tty, p.Format(sum, p.Speed), true)
			return
		case <-t.C:
			if p := rp.Progress(); !p.Done { // the last line comes with stop
				showLine(w, tty, p.Format(sum, p.Speed), false)
			}
		}
	}
}

// showLine writes a progress line: on a terminal it redraws the current
// line (ending it when last), elsewhere it writes a plain line.
func showLine(w io.Writer, tty bool, line string, last bool) {
	switch {
	case !tty:
		fmt.Fprintln(w, line)
	case last:
		fmt.Fprintf(w, "\r%s\x1b[K\n", line)
	default:
		fmt.Fprintf(w, "\r%s\x1b[K", line)
	}
}
