package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tickerd/conflate"
	"tickerd/feed"
)

// discard is a wire that accepts every batch.
type discard struct{ bytes int }

func (d *discard) writeBatch(msgs [][]byte, _ uint64, _ time.Time) (int, error) {
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	d.bytes += n
	return n, nil
}
func (d *discard) writeHeartbeat(int64, time.Time) (int, error) { return 0, nil }
func (d *discard) writeClose(string, string, time.Time) error   { return nil }

// BenchmarkDeliver measures the server's work per delivered message, wire
// excluded: fan-out notification, collecting the dirty symbols, reading
// versions, computing the changed fields and sharing encodings, for N
// sessions all subscribed to the same 50 symbols, each update changing two
// of four fields.
func BenchmarkDeliver(b *testing.B) {
	for _, sessions := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			cache := conflate.New()
			srv := NewServer(cache, Config{MaxHz: 1e6})
			defer srv.Shutdown(b.Context())
			syms := make([]string, 50)
			for i := range syms {
				syms[i] = fmt.Sprintf("S%02d", i)
			}
			var u feed.Update
			put := func(sym string, n int) {
				u.Reset()
				u.Symbol = sym
				u.Put(feed.Bid, feed.DecimalValue(decimal.New(int64(10000+n), -2)))
				u.Put(feed.BidSize, feed.DecimalValue(decimal.New(int64(100*(n%7+1)), 0)))
				cache.Apply(&u)
			}
			for _, s := range syms {
				put(s, 0)
			}
			ss := make([]*Session, sessions)
			w := &discard{}
			for i := range ss {
				s := srv.newSession(TransportWS)
				if _, err := srv.admit(s, ""); err != nil {
					b.Fatal(err)
				}
				s.apply(&Op{Op: OpSubscribe, Symbols: syms, Fields: feed.AllFields})
				s.step(w, time.Now()) // ack and snapshots
				ss[i] = s
			}
			b.ReportAllocs()
			b.ResetTimer()
			msgs := 0
			for n := 1; n <= b.N; n++ {
				put(syms[n%len(syms)], n)
				if n%len(syms) == 0 || n == b.N {
					now := time.Now()
					for _, s := range ss {
						before := s.events
						s.step(w, now)
						msgs += int(s.events - before)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(msgs), "ns/msg")
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
			for _, s := range ss {
				srv.finish(s, "")
			}
		})
	}
}
