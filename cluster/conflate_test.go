package cluster

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"tickerd/conflate"
	"tickerd/feed"
)

// countingSink counts the changes that reach the cache through the sink.
type countingSink struct {
	*conflate.Cache
	n int
}

func (s *countingSink) Apply(u *feed.Update) bool { s.n++; return s.Cache.Apply(u) }

func price(t *testing.T, sym string, kv ...string) *feed.Update {
	t.Helper()
	u := &feed.Update{Symbol: sym}
	for i := 0; i < len(kv); i += 2 {
		f, ok := feed.ParseField(kv[i])
		if !ok {
			t.Fatalf("field %q", kv[i])
		}
		v, err := feed.ParseText(f, kv[i+1])
		if err != nil {
			t.Fatal(err)
		}
		u.Put(f, v)
	}
	return u
}

// A batch of stream messages reaches the cache once per symbol: a node
// that is behind serves the newest values at the newest seq (the union of
// the changed fields, tapped as one change), while a batch of one change
// still goes through the sink with the next seq.
func TestBatchConflatesPerSymbol(t *testing.T) {
	cache := conflate.New()
	type tapped struct {
		seq     uint64
		changed feed.FieldSet
	}
	var taps []tapped
	cache.SetTap(func(sym string, seq uint64, _ int64, changed feed.FieldSet, _ *[feed.NumFields]feed.Value) {
		if sym == "AAPL" {
			taps = append(taps, tapped{seq, changed})
		}
	})
	sink := &countingSink{Cache: cache}
	n := &Node{log: slog.New(slog.DiscardHandler)}
	n.m = newMetrics(nil, n)
	a := &applier{n: n, cache: cache, sink: sink, state: map[string]*symState{}, overlays: map[string]*symState{}}
	fold := func(stream uint64, u *feed.Update) {
		st := a.state[u.Symbol]
		if st == nil {
			st = &symState{}
			a.state[u.Symbol] = st
		}
		a.fold(u.Symbol, st, u, stream)
	}

	// Keeping up: one message, one change through the sink.
	fold(1, price(t, "AAPL", "bid", "1", "ask", "2"))
	a.flush()
	if sink.n != 1 || cache.Get("AAPL").Seq() != 1 {
		t.Fatalf("batch of one: %d sink applies, seq %d; want 1, 1", sink.n, cache.Get("AAPL").Seq())
	}

	// Behind: five messages of AAPL (one a no-op) and one of MSFT.
	fold(2, price(t, "AAPL", "bid", "1.5"))
	fold(3, price(t, "MSFT", "last", "300"))
	fold(4, price(t, "AAPL", "bid", "1.5")) // changes nothing: no seq
	fold(5, price(t, "AAPL", "ask", "2.5"))
	fold(6, price(t, "AAPL", "bid", "1.25", "last", "1.3"))
	if got := cache.Get("AAPL").Seq(); got != 1 {
		t.Fatalf("the cache moved before the batch ended: seq %d", got)
	}
	a.flush()
	v := cache.Get("AAPL").Read()
	if v.Seq != 4 {
		t.Errorf("AAPL seq %d after the batch, want 4 (three changes after 1)", v.Seq)
	}
	for f, want := range map[feed.Field]string{feed.Bid: "1.25", feed.Ask: "2.5", feed.Last: "1.3"} {
		if got := v.Values[f].String(); got != want {
			t.Errorf("AAPL %v = %s, want %s", f, got, want)
		}
	}
	if got := cache.Get("MSFT").Seq(); got != 1 {
		t.Errorf("MSFT seq %d, want 1", got)
	}
	if sink.n != 2 { // AAPL's first change and MSFT's single one
		t.Errorf("%d changes through the sink, want 2", sink.n)
	}
	all := feed.FieldSet(0).With(feed.Bid).With(feed.Ask).With(feed.Last)
	if len(taps) != 2 || taps[1].seq != 4 || taps[1].changed != all {
		t.Errorf("taps %+v, want the batch as one change at seq 4 of bid, ask, last", taps)
	}
	if got := testutil.ToFloat64(n.m.conflated); got != 2 {
		t.Errorf("conflated counted %v, want 2 (seqs 2 and 3 folded into 4)", got)
	}
	if a.state["AAPL"].seq != 4 || a.state["AAPL"].stream != 6 {
		t.Errorf("shadow: seq %d stream %d, want 4 and 6", a.state["AAPL"].seq, a.state["AAPL"].stream)
	}
}
