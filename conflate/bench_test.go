package conflate

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tickerd/feed"
)

// quoteUpdates returns, for nsym symbols, two sets of 4-field quotes (bid,
// ask, bidSize, askSize) that differ in every field, so that applying them
// alternately changes all four fields every time. ts stamps them all.
func quoteUpdates(nsym int, ts int64) [2][]feed.Update {
	var ups [2][]feed.Update
	for v := range 2 {
		ups[v] = make([]feed.Update, nsym)
		for i := range nsym {
			u := &ups[v][i]
			u.Symbol, u.TS = fmt.Sprintf("SYM%05d", i), ts
			u.Put(feed.Bid, dec(fmt.Sprintf("%d.%02d", 100+i%50, v)))
			u.Put(feed.Ask, dec(fmt.Sprintf("%d.%02d", 101+i%50, v)))
			u.Put(feed.BidSize, dec(fmt.Sprint(100+v)))
			u.Put(feed.AskSize, dec(fmt.Sprint(200+v)))
		}
	}
	return ups
}

// benchApply applies ups to c alternately, b.N times, with 100 of the
// symbols watched.
func benchApply(b *testing.B, c *Cache, ups [2][]feed.Update) {
	nsym := len(ups[0])
	var w countWatcher
	watches := make([]Watch, 100)
	for i := range watches {
		c.Watch(&watches[i], ups[0][i].Symbol, &w)
		defer watches[i].Stop()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Apply(&ups[(i/nsym)&1][i%nsym])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkApply folds a 4-field update (bid, ask, bidSize, askSize, each
// changing) into a cache of 10,000 symbols. Target: ≥ 3 M updates/s on one
// core, 0 allocs/op.
func BenchmarkApply(b *testing.B) {
	c := New()
	ups := quoteUpdates(10_000, 1)
	for _, u := range ups[1] {
		c.Apply(&u)
	}
	benchApply(b, c, ups)
}

// BenchmarkApplyTapped is BenchmarkApply with updates stamped by the cache
// (as the ingest adapters leave them), without and with a delay line
// tapping the cache, run by Run: with a 100 ms delay, nearly every change
// makes a new record and Run applies them to the mirror as they come due;
// with 15 minutes and 16 MiB, the buffer is compacted and changes mostly
// merge into records it holds, as in the delayed tier under load.
func BenchmarkApplyTapped(b *testing.B) {
	cases := []struct {
		name string
		cfg  *DelayConfig
	}{
		{"tap=off", nil},
		{"delay=100ms", &DelayConfig{Delay: 100 * time.Millisecond}},
		{"delay=15m,max=16MiB", &DelayConfig{Delay: 15 * time.Minute, MaxBytes: 16 << 20, Granularity: 10 * time.Millisecond}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			c := New()
			ups := quoteUpdates(10_000, 0)
			for _, u := range ups[1] {
				c.Apply(&u)
			}
			if tc.cfg != nil {
				d := NewDelayLine(c, *tc.cfg)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Go(func() { d.Run(ctx) })
				defer wg.Wait()
				defer cancel()
				defer func() {
					st := d.Stats()
					b.ReportMetric(float64(st.Records), "records")
					b.ReportMetric(float64(st.Compactions), "compactions")
				}()
			}
			benchApply(b, c, ups)
		})
	}
}

func BenchmarkApplyParallel(b *testing.B) {
	c := New()
	var ups [2][1000]feed.Update
	for v := range 2 {
		for i := range 1000 {
			u := &ups[v][i]
			u.Symbol, u.TS = fmt.Sprintf("P%04d", i), 1
			u.Put(feed.Bid, dec(fmt.Sprintf("%d.%02d", 100+i%50, v)))
			u.Put(feed.Ask, dec(fmt.Sprintf("%d.%02d", 101+i%50, v)))
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Apply(&ups[(i/1000)&1][i%1000])
			i++
		}
	})
}
