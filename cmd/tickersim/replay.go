package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"tickerd/feed"
	"tickerd/simulator"
)

var replayCommand = command{
	usage: "tickersim replay CAPTURE -to URL [-speed 1x|10x|max] [-loop] [-key K]",
	setup: func(fs *flag.FlagSet) func(context.Context, env, []string) int {
		to := fs.String("to", "", "tickerd base URL to post to (POST /v1/ingest)")
		speed := simulator.Speed(1)
		fs.Var(&speed, "speed", "replay pace, `Nx` or max: 1x as recorded, 10x ten times faster, max as fast as the server takes")
		loop := fs.Bool("loop", false, "replay the capture again and again until interrupted")
		key := fs.String("key", "", "bearer key for -to (tickerd's -ingest-key)")
		return func(ctx context.Context, e env, args []string) int {
			switch {
			case len(args) != 1:
				return usageError(e.stderr, "replay", fmt.Errorf("want exactly one CAPTURE argument, got %d", len(args)))
			case *to == "":
				return usageError(e.stderr, "replay", errors.New("-to URL is required"))
			}
			path := args[0]
			sum, err := summarize(path)
			if err != nil {
				e.log.Error("replay failed", "err", err)
				return exitFail
			}
			poster, err := simulator.NewPoster(simulator.PosterConfig{URL: *to, Key: *key, Log: e.log})
			if err != nil {
				return usageError(e.stderr, "replay", err)
			}
			e.log.Info("replaying", "file", path, "updates", sum.Updates, "span", sum.Span(), "speed", speed, "loop", *loop)
			rp := simulator.ReplayFile(path, speed, *loop)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { showProgress(e.stderr, e.stderrTTY, rp, sum, speed, stop) })
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

// summarize reads the capture at path through for its span and size.
func summarize(path string) (simulator.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return simulator.Summary{}, err
	}
	defer f.Close()
	sum, err := simulator.Summarize(f)
	if err != nil {
		return sum, fmt.Errorf("%s: %w", path, err)
	}
	return sum, nil
}

// showProgress writes the replay's progress about once a second until stop
// is closed, then a last time: one redrawn line on a terminal, plain lines
// otherwise.
func showProgress(w io.Writer, tty bool, rp *simulator.Replayer, sum simulator.Summary, speed simulator.Speed, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			showLine(w, tty, rp.Progress().Format(sum, speed), true)
			return
		case <-t.C:
			if p := rp.Progress(); !p.Done { // the last line comes with stop
				showLine(w, tty, p.Format(sum, speed), false)
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
