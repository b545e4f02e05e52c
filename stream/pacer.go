package stream

import (
	"sync/atomic"
	"time"
)

// Pacing under load. Every write costs the server (and, on loopback, the
// client) a system call and a trip through the TCP stack whatever its size,
// so when the writers cannot keep up, the way to deliver more messages is
// to put more of them in each write. The pacer watches how long a woken
// writer waits for a CPU (the scheduling lag of WebSocket drives) and sets
// the least gap between two data writes of a session to a multiple of that
// lag (smoothed over pacerPeriods): a message that already waits L for a
// CPU loses little by waiting a few L for company, and fewer writes
// shorten L in turn. An idle server has a lag of microseconds and a gap
// of zero. A session that writes more often than the gap holds its news
// back until the gap has passed, so its next write carries everything that
// changed meanwhile; a session that writes rarely is never held. Control
// messages (acks, pongs, close) are never held.
//
// The controller adjusts at most once per pacerPeriod, inside observe: an
// idle server runs no goroutine for it.
const (
	pacerPeriod = 20 * time.Millisecond
	pacerGain   = 4 // gap = pacerGain × smoothed lag
	pacerSmooth = 4 // the smoothed lag moves 1/pacerSmooth of the way per period
	// DefaultPacingMaxGap is Config.PacingMaxGap's default: pacing never
	// adds more than this between two writes.
	DefaultPacingMaxGap = 50 * time.Millisecond
	pacerMinGap         = 250 * time.Microsecond // below this the gap is zero
)

// pacer holds the server-wide gap. Its methods are safe for concurrent use.
type pacer struct {
	maxGap  time.Duration // 0: pacing is off
	epoch   time.Time     // monotonic origin of the nanosecond stamps
	lagSum  atomic.Int64  // nanoseconds of lag observed this period
	lagN    atomic.Int64  // observations this period
	lastAdj atomic.Int64  // stamp of the last adjustment
	lag     atomic.Int64  // smoothed lag, nanoseconds
	gap     atomic.Int64  // current gap, nanoseconds
}

func newPacer(maxGap time.Duration) *pacer { return &pacer{maxGap: maxGap, epoch: time.Now()} }

// stamp is a monotonic clock reading in nanoseconds.
func (p *pacer) stamp() int64 { return int64(time.Since(p.epoch)) }

// Gap returns the least time between two data writes of a session.
func (p *pacer) Gap() time.Duration { return time.Duration(p.gap.Load()) }

// observe records that a writer woken at kicked (a stamp) started at now
// (a stamp), and adjusts the gap once per period.
func (p *pacer) observe(kicked, now int64) {
	p.lagSum.Add(now - kicked)
	p.lagN.Add(1)
	last := p.lastAdj.Load()
	if now-last < int64(pacerPeriod) || !p.lastAdj.CompareAndSwap(last, now) {
		return
	}
	n, sum := p.lagN.Swap(0), p.lagSum.Swap(0)
	var lag int64
	if n > 0 {
		lag = sum / n
	}
	// Periods without any observation (no writer woke) count as no lag.
	idle := int(min((now-last)/int64(pacerPeriod)-1, 64))
	smoothed := smooth(time.Duration(p.lag.Load()), time.Duration(lag), idle)
	p.lag.Store(int64(smoothed))
	p.gap.Store(int64(gapFor(smoothed, p.maxGap)))
}

// smooth moves the smoothed lag towards the lag of the period just ended,
// after idle periods of no lag.
func smooth(smoothed, lag time.Duration, idle int) time.Duration {
	for range idle {
		smoothed -= smoothed / pacerSmooth
	}
	return smoothed + (lag-smoothed)/pacerSmooth
}

// gapFor is the gap for a smoothed lag, at most maxGap.
func gapFor(lag, maxGap time.Duration) time.Duration {
	gap := min(pacerGain*lag, maxGap)
	if gap < pacerMinGap {
		return 0
	}
	return gap
}
