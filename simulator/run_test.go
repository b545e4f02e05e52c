package simulator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tickerd/feed"
)

// countSink counts updates; hold, while set, blocks Apply until closed.
type countSink struct {
	n     atomic.Int64
	first sync.Map // symbol → its first update's field set
	hold  atomic.Pointer[chan struct{}]
}

func (s *countSink) Apply(u *feed.Update) bool {
	if h := s.hold.Load(); h != nil {
		<-*h
	}
	s.first.LoadOrStore(u.Symbol, u.Set)
	s.n.Add(1)
	return true
}

// startRun runs sim.Run in a goroutine stopped and waited for at cleanup.
func startRun(t *testing.T, s *Sim, sink feed.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func TestRunSendsInitialRecordsFirst(t *testing.T) {
	s := newSim(t, Config{Symbols: 300, Rate: 100})
	sink := &countSink{}
	startRun(t, s, sink)
	waitFor(t, 5*time.Second, "initial records", func() bool { return sink.n.Load() >= 300 })
	for _, name := range newSim(t, Config{Symbols: 300}).Symbols() {
		set, ok := sink.first.Load(name)
		if !ok || set.(feed.FieldSet) != feed.AllFields {
			t.Fatalf("%s: first update has fields %v, want every field", name, set)
		}
	}
}

func TestRunPaces(t *testing.T) {
	tests := []struct {
		name string
		rate float64
	}{
		{"slow", 200},
		{"default", 2000},
		{"fast", 50_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, Config{Symbols: 100, Rate: tt.rate})
			sink := &countSink{}
			startRun(t, s, sink)
			waitFor(t, 5*time.Second, "initial records", func() bool { return sink.n.Load() >= 100 })
			const window = 700 * time.Millisecond
			n0, t0 := sink.n.Load(), time.Now()
			<-time.After(window)
			got := float64(sink.n.Load()-n0) / time.Since(t0).Seconds()
			if got < 0.7*tt.rate || got > 1.3*tt.rate {
				t.Errorf("rate %.0f updates/s, want %.0f ± 30%%", got, tt.rate)
			}
		})
	}
}

func TestRunDropsBacklogAfterStall(t *testing.T) {
	const rate = 5000
	s := newSim(t, Config{Symbols: 10, Rate: rate})
	sink := &countSink{}
	startRun(t, s, sink)
	waitFor(t, 5*time.Second, "initial records", func() bool { return sink.n.Load() >= 10 })
	// Stall the sink for 1.5 s: 7,500 ticks fall due meanwhile.
	hold := make(chan struct{})
	sink.hold.Store(&hold)
	stalled := time.Now()
	<-time.After(1500 * time.Millisecond)
	n0 := sink.n.Load()
	close(hold)
	<-time.After(200 * time.Millisecond)
	got := sink.n.Load() - n0
	elapsed := time.Since(stalled).Seconds()
	if limit := int64(rate * 0.6); got > limit {
		t.Errorf("%d updates in the 200 ms after a %.1f s stall: a burst (want at most %d)", got, elapsed-0.2, limit)
	}
	if got == 0 {
		t.Error("no update after the stall")
	}
}

func TestRunStopsAtOnce(t *testing.T) {
	s := newSim(t, Config{Symbols: 50_000, Rate: MaxRate})
	ctx, cancel := context.WithCancel(context.Background())
	sink := &countSink{}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	waitFor(t, 10*time.Second, "some ticks", func() bool { return sink.n.Load() > 60_000 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2 s of cancel at 10M updates/s")
	}
}
