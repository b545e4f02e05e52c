package simulator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tickerd/conflate"
	"tickerd/feed"
)

func BenchmarkNext(b *testing.B) {
	for _, n := range []int{200, 10_000} {
		b.Run(fmt.Sprintf("symbols=%d", n), func(b *testing.B) {
			s, err := New(Config{Symbols: n})
			if err != nil {
				b.Fatal(err)
			}
			var u feed.Update
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				s.Next(&u, now)
			}
		})
	}
}

// BenchmarkReplayMax replays a capture of 100,200 updates (200 symbols, 50
// s at 2000/s) from its file at max speed, into nothing (decompression,
// parsing and the Replayer's bookkeeping) and into a conflate.Cache (what
// tickerd -feed replay:PATH?speed=max costs before fan-out). One op is one
// whole replay; updates/s is the figure to compare.
func BenchmarkReplayMax(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.zst")
	w, err := CreateCapture(path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := newSim(b, Config{}).Generate(context.Background(), w, time.Unix(1_700_000_000, 0), 50*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, into := range []string{"discard", "cache"} {
		b.Run("into="+into, func(b *testing.B) {
			deliver := func(*feed.Update) error { return nil }
			if into == "cache" {
				cache := conflate.New()
				deliver = func(u *feed.Update) error {
					u.TS = 0
					cache.Apply(u)
					return nil
				}
			}
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for b.Loop() {
				if err := ReplayFile(path, MaxSpeed, false).Run(context.Background(), deliver); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}
