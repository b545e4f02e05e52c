package stream

import (
	"bytes"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/simulator"
)

// simBatches builds n batches as a session subscribed to every symbol of
// the simulator's feed would be sent them: per batch, perBatch simulated
// updates, then one update message per symbol that changed (only its
// changed fields).
func simBatches(tb testing.TB, symbols, n, perBatch int) [][][]byte {
	tb.Helper()
	sim, err := simulator.New(simulator.Config{Symbols: symbols, Rate: 10000, Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	cache := conflate.New()
	now := time.Unix(1767225600, 0)
	var u feed.Update
	for i := range sim.Symbols() {
		sim.Initial(i, &u, now)
		u.TS = now.UnixMicro()
		cache.Apply(&u)
	}
	sent := map[string]uint64{}
	for _, s := range sim.Symbols() {
		sent[s] = cache.Get(s).Read().Seq
	}
	batches := make([][][]byte, 0, n)
	for range n {
		touched := map[string]bool{}
		for range perBatch {
			now = now.Add(100 * time.Microsecond)
			sim.Next(&u, now)
			u.TS = now.UnixMicro()
			if cache.Apply(&u) {
				touched[u.Symbol] = true
			}
		}
		var batch [][]byte
		for sym := range touched {
			e := cache.Get(sym)
			v := e.Read()
			if mask := v.ChangedSince(sent[sym]); mask != 0 {
				batch = append(batch, encodeData(e, kindUpdate, v, mask, false))
			}
			sent[sym] = v.Seq
		}
		if len(batch) > 0 {
			batches = append(batches, batch)
		}
	}
	return batches
}

// BenchmarkCompression measures the two compressions of the wire on the
// simulator's feed: gzip on an HTTP stream (each batch deflated on its own,
// as NDJSON lines) and WebSocket permessage-deflate (each batch, a JSON
// array, deflated on its own). It reports the bytes on the wire per byte
// of messages and the time per batch; "plain" is the copy alone.
//
//	go test -run '^$' -bench Compression -benchmem ./stream
func BenchmarkCompression(b *testing.B) {
	for _, perBatch := range []int{5, 50} {
		batches := simBatches(b, 200, 400, perBatch)
		var plain int
		for _, batch := range batches {
			for _, m := range batch {
				plain += len(m) + 1
			}
		}
		msgs := 0
		for _, batch := range batches {
			msgs += len(batch)
		}
		name := map[int]string{5: "small-batches", 50: "large-batches"}[perBatch]
		b.Run(name+"/gzip-stream", func(b *testing.B) {
			var out bytes.Buffer
			gz, _ := gzip.NewWriterLevel(&out, gzip.StatelessCompression)
			var line []byte
			wire := 0
			b.ResetTimer()
			for i := range b.N {
				batch := batches[i%len(batches)]
				line = line[:0]
				for _, m := range batch {
					line = append(line, m...)
					line = append(line, '\n')
				}
				out.Reset()
				_, _ = gz.Write(line)
				wire += out.Len()
			}
			b.ReportMetric(float64(wire)/float64(b.N)/(float64(plain)/float64(len(batches))), "wire/plain")
			b.ReportMetric(float64(msgs)/float64(len(batches)), "msgs/batch")
		})
		b.Run(name+"/ws-deflate", func(b *testing.B) {
			var buf []byte
			wire := 0
			b.ResetTimer()
			for i := range b.N {
				batch := batches[i%len(batches)]
				parts := make([][]byte, 0, 2*len(batch)+1)
				parts = append(parts, []byte{'['})
				for j, m := range batch {
					if j > 0 {
						parts = append(parts, []byte{','})
					}
					parts = append(parts, m)
				}
				parts = append(parts, []byte{']'})
				buf = deflateMessage(buf[:0], parts)
				wire += len(buf)
			}
			b.ReportMetric(float64(wire)/float64(b.N)/(float64(plain)/float64(len(batches))), "wire/plain")
			b.ReportMetric(float64(msgs)/float64(len(batches)), "msgs/batch")
		})
	}
}

// TestCompressionShrinksSimulatorBatches keeps the benchmark honest: both
// compressions decode back to the batch and make it smaller.
func TestCompressionShrinksSimulatorBatches(t *testing.T) {
	batches := simBatches(t, 200, 20, 50)
	for _, batch := range batches {
		var plain []byte
		for j, m := range batch {
			if j > 0 {
				plain = append(plain, ',')
			}
			plain = append(plain, m...)
		}
		wire := deflateMessage(nil, [][]byte{plain})
		back, err := inflateMessage(wire, 1<<20)
		if err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("deflate round trip: %v", err)
		}
		if len(wire) >= len(plain) {
			t.Errorf("a %d-message batch of %d bytes deflates to %d", len(batch), len(plain), len(wire))
		}
	}
}
