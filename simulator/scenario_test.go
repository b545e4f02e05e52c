package simulator

import (
	"bytes"
	"context"
	"testing"
	"time"

	"tickerd/feed"
)

// genScenario generates d of a scenario and returns the capture and its
// updates.
func genScenario(t testing.TB, cfg Config, d time.Duration) ([]byte, []feed.Update) {
	t.Helper()
	s := newSim(t, cfg)
	var buf bytes.Buffer
	w, err := NewCaptureWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Generate(context.Background(), w, scenarioStart, d); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readCapture(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), got
}

var scenarioStart = time.Date(2026, 11, 23, 14, 30, 0, 0, time.UTC)

// since returns how far into the scenario u is.
func since(u *feed.Update) time.Duration {
	return time.Duration(u.TS-scenarioStart.UnixMicro()) * time.Microsecond
}

// quoteBook keeps each symbol's bid and ask as track sees its updates.
type quoteBook map[string][2]float64

func (q quoteBook) track(u *feed.Update) {
	b := q[u.Symbol]
	if u.Set.Has(feed.Bid) {
		b[0] = u.Values[feed.Bid].Decimal().InexactFloat64()
	}
	if u.Set.Has(feed.Ask) {
		b[1] = u.Values[feed.Ask].Decimal().InexactFloat64()
	}
	q[u.Symbol] = b
}

func (q quoteBook) mid(sym string) float64 { return (q[sym][0] + q[sym][1]) / 2 }

func TestScenarioOpen(t *testing.T) {
	_, updates := genScenario(t, Config{Symbols: 10, Rate: 50, Scenario: ScenarioOpen}, 2*time.Minute)
	var burst, after int
	for _, u := range updates[10:] { // after the initial records
		if since(&u) < OpenBurst {
			burst++
		} else {
			after++
		}
	}
	ratio := float64(burst) / float64(after)
	t.Logf("first minute %d updates, second %d: %.2fx", burst, after, ratio)
	if ratio < 9.5 || ratio > 10.5 || after < 2900 {
		t.Errorf("first minute %d updates, second %d (%.2fx); want 10x the rate of 50/s first", burst, after, ratio)
	}
}

func TestScenarioFlashCrash(t *testing.T) {
	_, updates := genScenario(t, Config{Symbols: 10, Rate: 200, Scenario: ScenarioFlashCrash}, 2*time.Minute)
	q := quoteBook{}
	var before, bottom, end, otherBefore, otherWorst float64
	bottom, otherWorst = 1e18, 0
	for i := range updates {
		u := &updates[i]
		q.track(u)
		e := since(u)
		switch {
		case e < EventAt:
			before, otherBefore = q.mid("AAPL"), q.mid("MSFT")
		case e < EventAt+CrashFall+time.Second:
			bottom = min(bottom, q.mid("AAPL"))
		}
		if e >= EventAt {
			otherWorst = max(otherWorst, abs(q.mid("MSFT")/otherBefore-1))
		}
		end = q.mid("AAPL")
	}
	t.Logf("AAPL %.2f before, %.2f at the bottom (%.1f%%), %.2f after recovering; MSFT moved at most %.2f%%",
		before, bottom, 100*(bottom/before-1), end, 100*otherWorst)
	if bottom/before > 1-CrashDepth+0.015 {
		t.Errorf("AAPL fell from %.2f to %.2f only, want about %.0f%%", before, bottom, 100*CrashDepth)
	}
	if abs(end/before-1) > 0.02 {
		t.Errorf("AAPL ended at %.2f, want it back near %.2f", end, before)
	}
	if otherWorst > 0.03 {
		t.Errorf("MSFT moved %.1f%%: the crash is AAPL's alone", 100*otherWorst)
	}
}

func abs(x float64) float64 { return max(x, -x) }

func TestScenarioHalt(t *testing.T) {
	_, updates := genScenario(t, Config{Symbols: 10, Rate: 200, Scenario: ScenarioHalt}, 2*time.Minute)
	q := quoteBook{}
	var halted, reopened *feed.Update
	var lastMid float64
	others := 0
	for i := range updates {
		u := &updates[i]
		if u.Symbol != "AAPL" {
			if halted != nil && reopened == nil {
				others++
			}
			continue
		}
		status := u.Values[feed.Status].String()
		switch {
		case halted == nil && status == feed.StatusHalted:
			halted, lastMid = u, q.mid("AAPL")
		case halted != nil && reopened == nil:
			if status != feed.StatusTrading {
				t.Fatalf("AAPL update while halted at %v: %+v", since(u), u.Set)
			}
			reopened = u
		case status == feed.StatusHalted:
			t.Fatalf("a second halt at %v", since(u))
		}
		q.track(u)
	}
	if halted == nil || reopened == nil {
		t.Fatalf("halted %v, reopened %v", halted != nil, reopened != nil)
	}
	q2 := quoteBook{}
	q2.track(reopened)
	gap := q2.mid("AAPL")/lastMid - 1
	t.Logf("halted at %v, reopened at %v %.1f%% away, %d updates of others meanwhile", since(halted), since(reopened), 100*gap, others)
	if h := since(halted); h < EventAt || h > EventAt+100*time.Millisecond {
		t.Errorf("halted at %v, want at %v", h, EventAt)
	}
	if r := since(reopened); r < EventAt+HaltFor || r > EventAt+HaltFor+100*time.Millisecond {
		t.Errorf("reopened at %v, want at %v", r, EventAt+HaltFor)
	}
	if abs(gap) < 0.03 {
		t.Errorf("reopened %.1f%% from the last quote, want a gap of about %.0f%%", 100*gap, 100*HaltGap)
	}
	if others < 5000 {
		t.Errorf("only %d updates of other symbols during the halt", others)
	}
	for _, f := range []feed.Field{feed.Bid, feed.Ask, feed.Last, feed.Volume} {
		if !reopened.Set.Has(f) {
			t.Errorf("the reopening lacks %s", f)
		}
	}
}

func TestScenarioGap(t *testing.T) {
	_, updates := genScenario(t, Config{Symbols: 10, Rate: 200, Scenario: ScenarioGap}, time.Minute)
	var lastBefore, firstAfter time.Duration = -1, -1
	for i := range updates {
		e := since(&updates[i])
		switch {
		case e > EventAt && e < EventAt+GapFor:
			t.Fatalf("an update %v into the feed, inside the gap", e)
		case e <= EventAt:
			lastBefore = e
		case firstAfter < 0:
			firstAfter = e
		}
	}
	t.Logf("last update before the gap at %v, first after at %v", lastBefore, firstAfter)
	if lastBefore < EventAt-10*time.Millisecond || firstAfter < 0 || firstAfter > EventAt+GapFor+10*time.Millisecond {
		t.Errorf("silence from %v to %v, want from %v to %v", lastBefore, firstAfter, EventAt, EventAt+GapFor)
	}
}

// Each scenario is a pure function of its Config: the same seed gives the
// same capture, byte for byte; another seed another one.
func TestScenarioDeterminism(t *testing.T) {
	for _, name := range Scenarios {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Symbols: 20, Rate: 100, Seed: 42, Scenario: name}
			a, _ := genScenario(t, cfg, 70*time.Second)
			b, _ := genScenario(t, cfg, 70*time.Second)
			if !bytes.Equal(a, b) {
				t.Error("two captures of the same seed differ")
			}
			cfg.Seed = 43
			if c, _ := genScenario(t, cfg, 70*time.Second); bytes.Equal(a, c) {
				t.Error("captures of seeds 42 and 43 are the same")
			}
		})
	}
}

// The steady scenario is the walk as it always was.
func TestScenarioSteadyIsDefault(t *testing.T) {
	a, _ := genScenario(t, Config{Symbols: 20, Rate: 300}, 5*time.Second)
	b, _ := genScenario(t, Config{Symbols: 20, Rate: 300, Scenario: ScenarioSteady}, 5*time.Second)
	if !bytes.Equal(a, b) {
		t.Error(`Scenario "" and "steady" differ`)
	}
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		name  string
		sched schedule
	}{
		{"steady", schedule{{0, 2000}}},
		{"open", schedule{{0, 500}, {OpenBurst, 50}}},
		{"gap", schedule{{0, 200}, {EventAt, 0}, {EventAt + GapFor, 200}}},
		{"odd rate", schedule{{0, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := int64(tt.sched.due(90 * time.Second))
			prev := int64(0)
			for k := int64(1); k <= n; k++ {
				at := tt.sched.at(k)
				if at <= prev && k > 1 {
					t.Fatalf("tick %d at %d µs, not after tick %d at %d", k, at, k-1, prev)
				}
				if due := tt.sched.due(time.Duration(at) * time.Microsecond); due < float64(k)-1e-6*tt.sched.maxRate()-1e-9 {
					t.Fatalf("tick %d at %d µs, but only %.6f are due then", k, at, due)
				}
				prev = at
			}
		})
	}
}

// Run paces a scenario in real time as Generate does in simulated time:
// the opening burst runs at ten times the rate.
func TestScenarioLive(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		min, max int64
	}{
		{ScenarioSteady, 20, 100}, // 100/s for 0.5 s: 50
		{ScenarioOpen, 300, 1000}, // 1000/s: 500
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			s := newSim(t, Config{Symbols: 5, Rate: 100, Scenario: tc.scenario})
			sink := &countSink{}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_ = s.Run(ctx, sink)
			if ticks := sink.n.Load() - 5; ticks < tc.min || ticks > tc.max {
				t.Errorf("%d ticks in 0.5 s, want %d..%d", ticks, tc.min, tc.max)
			}
		})
	}
}
