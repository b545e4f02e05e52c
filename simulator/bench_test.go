package simulator

import (
	"fmt"
	"testing"
	"time"

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
