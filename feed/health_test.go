package feed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tickerd/conflate"
	"tickerd/feed"
)

func status(c *conflate.Cache, sym string) string {
	e := c.Get(sym)
	if e == nil {
		return ""
	}
	return e.Read().Text(feed.Status)
}

func waitStatus(t *testing.T, c *conflate.Cache, sym, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for status(c, sym) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s status %q, want %q", sym, status(c, sym), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quote(sym, bid string) *feed.Update {
	var u feed.Update
	u.Symbol = sym
	v, err := feed.ParseValue(feed.Bid, []byte(`"`+bid+`"`))
	if err != nil {
		panic(err)
	}
	u.Put(feed.Bid, v)
	return &u
}

// A feed that goes silent has its symbols marked stale, after StaleAfter
// and not before; another feed's symbols are left alone; data coming back
// restores the status each symbol had (halted stays halted).
func TestHealthStaleAndBack(t *testing.T) {
	cache := conflate.New()
	const after = 400 * time.Millisecond
	h := feed.NewHealth(cache, after)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx, func(s string) string { return status(cache, s) }) }()
	defer func() { cancel(); <-done }()

	quiet, busy := h.Sink("tcp"), h.Sink("sim")
	quiet.Apply(quote("AAA", "1"))
	halted := quote("HHH", "1")
	halted.Put(feed.Status, feed.StatusValue(feed.StatusHalted))
	quiet.Apply(halted)
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				busy.Apply(quote("BBB", fmt.Sprint(i)))
			}
		}
	}()
	defer close(stop)
	start := time.Now()
	waitStatus(t, cache, "AAA", "stale", 3*time.Second)
	if since := time.Since(start); since < after {
		t.Fatalf("stale after %v, before StaleAfter %v", since, after)
	}
	waitStatus(t, cache, "HHH", "stale", time.Second)
	if got := status(cache, "BBB"); got != "" {
		t.Fatalf("the busy feed's symbol has status %q", got)
	}
	r := h.Report()
	if r.Healthy || r.StaleSymbols != 2 || len(r.Feeds) != 2 || !r.Feeds[1].Stale || r.Feeds[0].Stale {
		t.Fatalf("report %+v", r)
	}
	seq := cache.Get("AAA").Seq()
	time.Sleep(after) // still silent: marked once, not again
	if cache.Get("AAA").Seq() != seq {
		t.Fatal("a stale symbol was marked again")
	}

	quiet.Apply(quote("AAA", "2"))
	quiet.Apply(quote("HHH", "2"))
	if got := status(cache, "AAA"); got != "trading" {
		t.Fatalf("AAA after data: %q, want trading", got)
	}
	if got := status(cache, "HHH"); got != "halted" {
		t.Fatalf("HHH after data: %q, want halted again", got)
	}
	time.Sleep(200 * time.Millisecond)
	if r := h.Report(); !r.Healthy || r.StaleSymbols != 0 {
		t.Fatalf("report after data: %+v", r)
	}
}

// StaleAfter 0: nothing is ever marked, feeds are still reported.
func TestHealthOff(t *testing.T) {
	cache := conflate.New()
	h := feed.NewHealth(cache, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx, nil) }()
	h.Sink("http").Apply(quote("AAA", "1"))
	h.Connected("tcp", 1)
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	if got := status(cache, "AAA"); got != "" {
		t.Fatalf("status %q with stale detection off", got)
	}
	r := h.Report()
	if !r.Healthy || len(r.Feeds) != 2 || r.Feeds[1].Connections != 1 || r.Feeds[0].LastMessage == nil {
		t.Fatalf("report %+v", r)
	}
}
