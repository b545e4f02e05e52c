package simulator

import (
	"fmt"
	"math"
	"strings"
	"time"

	"tickerd/feed"
)

// Scenario names, for Config.Scenario.
const (
	ScenarioSteady     = "steady"      // the random walk at a steady rate
	ScenarioOpen       = "open"        // opening burst: OpenFactor × the rate for OpenBurst, then the rate
	ScenarioFlashCrash = "flash-crash" // the first symbol falls CrashDepth in CrashFall, recovers over CrashRecover
	ScenarioHalt       = "halt"        // the first symbol is halted for HaltFor, then reopens HaltGap away
	ScenarioGap        = "gap"         // the whole feed is silent for GapFor
)

// Scenarios lists the scenario names, the default first.
var Scenarios = []string{ScenarioSteady, ScenarioOpen, ScenarioFlashCrash, ScenarioHalt, ScenarioGap}

// The timelines of the scenarios, counted from the feed's start (the
// initial records). Events concern the first symbol (AAPL).
const (
	OpenBurst      = time.Minute
	OpenFactor     = 10
	EventAt        = 20 * time.Second // flash-crash, halt and gap begin here
	CrashFall      = 5 * time.Second
	CrashDepth     = 0.08
	CrashRecover   = time.Minute
	HaltFor        = 30 * time.Second
	HaltGap        = 0.05
	GapFor         = 15 * time.Second
	ScenarioLength = 2 * time.Minute // long enough to see any scenario through
)

// scenario is the part of a Sim that shapes its feed beyond the steady
// random walk: when ticks come (sched) and what happens to the first
// symbol.
type scenario struct {
	name     string
	sched    schedule
	halted   bool // halt: the first symbol is halted now
	reopened bool // halt: and has reopened
}

func newScenario(name string, rate float64) (scenario, error) {
	sc := scenario{name: name, sched: schedule{{0, rate}}}
	switch name {
	case "", ScenarioSteady:
		sc.name = ScenarioSteady
	case ScenarioOpen:
		if rate*OpenFactor > MaxRate {
			return sc, fmt.Errorf("%w: rate %v: the open burst (%d×) would pass %d updates/s", ErrConfig, rate, OpenFactor, MaxRate)
		}
		sc.sched = schedule{{0, rate * OpenFactor}, {OpenBurst, rate}}
	case ScenarioGap:
		sc.sched = schedule{{0, rate}, {EventAt, 0}, {EventAt + GapFor, rate}}
	case ScenarioFlashCrash, ScenarioHalt:
	default:
		return sc, fmt.Errorf("%w: unknown scenario %q (want %s)", ErrConfig, name, strings.Join(Scenarios, ", "))
	}
	return sc, nil
}

// shift returns the log offset of symbol i's mid price e into the feed:
// non-zero only for the first symbol during a flash crash.
func (sc *scenario) shift(i int, e time.Duration) float64 {
	if sc.name != ScenarioFlashCrash || i != 0 || e < EventAt {
		return 0
	}
	depth := math.Log1p(-CrashDepth)
	switch e -= EventAt; {
	case e < CrashFall:
		return depth * float64(e) / float64(CrashFall)
	case e < CrashFall+CrashRecover:
		return depth * (1 - float64(e-CrashFall)/float64(CrashRecover))
	}
	return 0
}

// event fills u with a scheduled event due e into the feed, if one is, and
// reports whether it did: the halt and the reopening of the halt scenario.
func (sc *scenario) event(s *Sim, u *feed.Update, e time.Duration, now time.Time) bool {
	if sc.name != ScenarioHalt || sc.reopened || e < EventAt {
		return false
	}
	st := &s.syms[0]
	switch {
	case !sc.halted:
		sc.halted = true
		u.Symbol = st.name
		u.Put(feed.Status, feed.StatusValue(feed.StatusHalted))
		u.Put(feed.Time, s.timeOf(now))
		return true
	case e >= EventAt+HaltFor:
		sc.halted, sc.reopened = false, true
		s.reopen(u, st, now)
		return true
	}
	return false
}

// skips reports whether symbol i gets no ticks now.
func (sc *scenario) skips(i int) bool { return sc.halted && i == 0 }

// reopen fills u with the reopening of a halted symbol: its price moved
// HaltGap up or down, a new quote, a reopening trade, status trading.
func (s *Sim) reopen(u *feed.Update, st *symState, now time.Time) {
	sign := 1.0
	if s.rng.IntN(2) == 0 {
		sign = -1
	}
	st.logMid = max(st.logMid+math.Log1p(sign*HaltGap), floorLogMid)
	st.bid, st.ask = quote(math.Exp(st.logMid), 1+s.rng.IntN(st.maxSpread))
	st.bidSize, st.askSize = quoteSize(s.rng, st.lot), quoteSize(s.rng, st.lot)
	st.last = st.bid
	if s.rng.IntN(2) == 1 {
		st.last = st.ask
	}
	st.lastSize = tradeSize(s.rng, st.lot)
	st.volume += st.lastSize
	st.high, st.low = max(st.high, st.last), min(st.low, st.last)
	u.Symbol = st.name
	s.putQuote(u, st)
	u.Put(feed.High, s.price(st.high))
	u.Put(feed.Low, s.price(st.low))
	s.putChange(u, st)
	u.Put(feed.Status, feed.StatusValue(feed.StatusTrading))
	u.Put(feed.Time, s.timeOf(now))
}

// schedule is a tick rate that changes at given times: each segment's
// rate holds from its start until the next segment's. The first starts
// at 0; the last goes on for ever.
type schedule []segment

type segment struct {
	from time.Duration
	rate float64 // ticks per second
}

// due returns the ticks due in the first e of the feed.
func (sc schedule) due(e time.Duration) float64 {
	var n float64
	for i, seg := range sc {
		if e <= seg.from {
			break
		}
		end := e
		if i+1 < len(sc) {
			end = min(e, sc[i+1].from)
		}
		n += seg.rate * (end - seg.from).Seconds()
	}
	return n
}

// at returns when the k-th tick (from 1) is due, in microseconds from the
// feed's start.
func (sc schedule) at(k int64) int64 {
	var before float64 // ticks due before segment i
	for i, seg := range sc {
		n := math.Inf(1)
		if i+1 < len(sc) {
			n = seg.rate * (sc[i+1].from - seg.from).Seconds()
		}
		if seg.rate > 0 && float64(k) <= before+n+1e-9 {
			return seg.from.Microseconds() + int64(math.Round((float64(k)-before)*(1e6/seg.rate)))
		}
		before += n
	}
	return math.MaxInt64 // not reached: the last segment has a rate
}

// maxRate returns the highest rate of the schedule.
func (sc schedule) maxRate() float64 {
	var r float64
	for _, seg := range sc {
		r = max(r, seg.rate)
	}
	return r
}
