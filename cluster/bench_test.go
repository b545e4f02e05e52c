package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tickerd/feed"
)

// BenchmarkClusterThroughput publishes b.N updates (200 symbols) through
// one node of an embedded single-server cluster and waits until a second
// node has applied them all: end-to-end updates per second through NATS
// JetStream on this machine.
func BenchmarkClusterThroughput(b *testing.B) {
	ns := startNATS(b, "127.0.0.1:0", b.TempDir())
	pub := startNode(b, "pub", ns.ClientURL(), false)
	sub := startNode(b, "sub", ns.ClientURL(), false)
	syms := make([]string, 200)
	for i := range syms {
		syms[i] = fmt.Sprintf("S%03d", i)
	}
	var u feed.Update
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	base := sub.cl.Status().Applied
	for i := 0; i < b.N; i++ {
		u.Reset()
		u.Symbol = syms[i%len(syms)]
		v, _ := feed.ParseText(feed.Bid, fmt.Sprintf("%d.%02d", 100+i/len(syms)%1000, i%100))
		u.Put(feed.Bid, v)
		for !pub.cl.Apply(&u) {
			time.Sleep(time.Millisecond) // reconnect buffer full
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_ = pub.cl.Flush(ctx)
	for sub.cl.Status().Applied < base+uint64(b.N) {
		if ctx.Err() != nil {
			b.Fatalf("applied %d of %d", sub.cl.Status().Applied-base, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "updates/s")
}
