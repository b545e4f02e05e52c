package conflate

import (
	"fmt"
	"testing"

	"tickerd/feed"
)

// BenchmarkApply folds a 4-field update (bid, ask, bidSize, askSize, each
// changing) into a cache of 10,000 symbols. Target: ≥ 3 M updates/s on one
// core, 0 allocs/op.
func BenchmarkApply(b *testing.B) {
	const nsym = 10_000
	c := New()
	syms := make([]string, nsym)
	for i := range syms {
		syms[i] = fmt.Sprintf("SYM%05d", i)
	}
	// Two alternating value sets so every apply changes all four fields.
	var ups [2][nsym]feed.Update
	for v := range 2 {
		for i, s := range syms {
			u := &ups[v][i]
			u.Symbol, u.TS = s, 1
			u.Put(feed.Bid, dec(fmt.Sprintf("%d.%02d", 100+i%50, v)))
			u.Put(feed.Ask, dec(fmt.Sprintf("%d.%02d", 101+i%50, v)))
			u.Put(feed.BidSize, dec(fmt.Sprint(100+v)))
			u.Put(feed.AskSize, dec(fmt.Sprint(200+v)))
			c.Apply(u)
		}
	}
	var w countWatcher
	watches := make([]Watch, 100)
	for i, s := range syms[:100] {
		c.Watch(&watches[i], s, &w)
		defer watches[i].Stop()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Apply(&ups[(i/nsym)&1][i%nsym])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
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
