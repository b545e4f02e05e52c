package stream

import (
	"time"

	"tickerd/internal/sockstat"
)

// Adaptive rate. After every data write a session looks at its socket's
// send queue (bytes the client has not taken yet). While the queue stays
// under drainTarget the client keeps up and the session sends as soon as
// its subscriptions allow. When the queue grows past it, the client (or
// its link) is slower than the feed: the session estimates how fast the
// client drains, from how much left the queue between two writes, and
// widens the least gap between its data writes so that each write is
// drained before the next, and the queue back under the target. News held
// back meanwhile is conflated, so the client gets fewer, fresher messages;
// nothing is queued beyond the socket's buffer. Once a write finds the
// queue empty the gap is gone; while it stays under the target the gap
// halves on every write.
//
// Where the send queue cannot be read (not a TCP socket, not Linux) a
// write that took longer than drainSlowWrite, i.e. that found the socket
// buffer full, counts as a queue over the target.
const (
	// maxUnsent bounds the bytes the kernel holds unsent for a stream
	// (TCP_NOTSENT_LOWAT): beyond it a write waits for the client, and
	// a client that takes nothing is closed after the stall timeout.
	maxUnsent      = 256 << 10
	drainTarget    = 16 << 10
	drainMaxGap    = 5 * time.Second
	drainMinGap    = 5 * time.Millisecond // a narrower gap is dropped
	drainSlowWrite = 20 * time.Millisecond
)

// drain is a session's view of its client's read speed. Only the writer
// touches it.
type drain struct {
	q      *sockstat.Queue // nil: judge by write time
	queued int             // send queue after the last data write
	at     time.Time       // of the last data write
	rate   float64         // bytes/s the client was seen to drain (smoothed); 0 = not measured
	gap    time.Duration   // least time between data writes the client needs
	// stalled is when the queue was last seen not draining at all while
	// holding data; zero while the client makes progress.
	stalled time.Time
	// behind is the last time a write found bytes waiting unsent.
	behind time.Time
}

// wrote updates the estimate after a data write of n bytes at now that
// took took, and returns the gap the client needs before the next one.
func (d *drain) wrote(now time.Time, n int, took time.Duration) time.Duration {
	queued := -1
	if d.q != nil {
		if v, err := d.q.Unsent(); err == nil {
			queued = v
		} else {
			d.q = nil // not measurable after all
		}
	}
	if queued < 0 {
		// By write time only: a write that blocked found the buffer full.
		if took > drainSlowWrite {
			d.behind = now
			d.gap = min(max(2*d.gap, 4*took), drainMaxGap)
		} else {
			d.gap = d.narrowed()
		}
		d.at = now
		return d.gap
	}
	if !d.at.IsZero() {
		if dt := now.Sub(d.at).Seconds(); dt > 0 {
			// What left the queue since the last write: it held d.queued
			// then, n was added, queued remain.
			drained := float64(d.queued + n - queued)
			if drained > 0 {
				d.stalled = time.Time{}
			} else if d.queued > 0 && d.stalled.IsZero() {
				d.stalled = d.at
			}
			// Only an interval that began with a backlog measures how
			// fast the client can take data, not how fast it was sent.
			if d.queued > 0 {
				r := max(drained, 0) / dt
				if d.rate == 0 {
					d.rate = r
				} else {
					d.rate += (r - d.rate) / 4
				}
			}
		}
	}
	d.queued, d.at = queued, now
	switch {
	case queued == 0:
		d.gap = 0 // it took everything: it keeps up again
		return 0
	case queued <= drainTarget:
		d.behind = now
		d.gap = d.narrowed()
		return d.gap
	}
	d.behind = now
	// Time for the client to take this write's bytes and the excess over
	// half the target, at the rate it was seen to drain.
	need := drainMaxGap
	if d.rate > 0 {
		need = time.Duration(float64(n+queued-drainTarget/2) / d.rate * float64(time.Second))
	}
	d.gap = min(max(need, drainMinGap, d.gap/2), drainMaxGap)
	return d.gap
}

func (d *drain) narrowed() time.Duration {
	if g := d.gap / 2; g >= drainMinGap {
		return g
	}
	return 0
}
