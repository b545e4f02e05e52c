package main

import (
	"context"
	"flag"
	"fmt"
	"tickerd/internal/cli"
	"time"

	"tickerd/feed"
	"tickerd/simulator"
)

var recordCommand = command{
	usage: "tickersim record -from URL [-symbols A,B] -o CAPTURE [-duration D] [-key K]",
	setup: func(fs *flag.FlagSet) func(context.Context, env, []string) int {
		from := fs.String("from", "", "tickerd base URL to record from (GET /v1/stream)")
		symbols := fs.String("symbols", "", "comma-separated symbols; empty means every symbol of GET /v1/symbols")
		out := fs.String("o", "", "capture file to write")
		duration := fs.Duration("duration", 0, "how long to record; 0 means until the server closes the stream or tickersim is interrupted")
		key := fs.String("key", "", "bearer key for the server")
		return func(ctx context.Context, e env, args []string) int {
			list := cli.SplitList(*symbols)
			for _, s := range list {
				if !feed.ValidSymbol(s) {
					return usageError(e.stderr, "record", fmt.Errorf("-symbols: bad symbol %q", s))
				}
			}
			switch {
			case len(args) > 0:
				return usageError(e.stderr, "record", fmt.Errorf("unexpected argument %q", args[0]))
			case *from == "":
				return usageError(e.stderr, "record", fmt.Errorf("-from URL is required"))
			case *out == "":
				return usageError(e.stderr, "record", fmt.Errorf("-o CAPTURE is required"))
			case *duration < 0:
				return usageError(e.stderr, "record", fmt.Errorf("-duration %v: want 0 or more", *duration))
			}
			if *duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, *duration)
				defer cancel()
			}
			w, err := simulator.CreateCapture(*out)
			if err != nil {
				e.log.Error("record failed", "err", err)
				return exitFail
			}
			began := time.Now()
			var shown time.Time
			progress := func(st simulator.RecordStats) { // the first message, then once a second
				if now := time.Now(); now.Sub(shown) >= time.Second {
					shown = now
					showLine(e.stderr, e.stderrTTY, fmt.Sprintf("recorded %d snapshots, %d updates", st.Snapshots, st.Updates), false)
				}
			}
			st, err := simulator.Record(ctx, simulator.RecordConfig{URL: *from, Symbols: list, Key: *key, Log: e.log, Progress: progress}, w)
			if !shown.IsZero() && e.stderrTTY {
				fmt.Fprintln(e.stderr)
			}
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			e.log.Info("recorded", "file", *out, "snapshots", st.Snapshots, "updates", st.Updates,
				"took", time.Since(began).Round(time.Millisecond))
			if err != nil {
				e.log.Error("record failed", "err", err)
				return exitFail
			}
			return exitOK
		}
	},
}
