package stream

import (
	"time"

	"tickerd/internal/sockstat"
)

// Adaptive rate. After every write a session looks at its socket's send
// queue: the bytes the kernel holds unsent because the client (or its
// link) has not made room for them. While the queue stays under
// drainTarget the client keeps up, and the session sends as soon as its
// subscriptions allow. When a write leaves more than that, the client is
// slower than the feed: the session holds its news back and looks at the
// queue again after drainPollMin, then at doubling intervals up to
// drainPollMax, and writes again as soon as the queue is back under the
// target. News held back meanwhile is conflated, so a slow client gets
// fewer, fresher messages, at the pace it reads them, and nothing waits
// for it but one write's worth in its socket (at most maxUnsent, see
// TCP_NOTSENT_LOWAT). A client whose queue has not moved for the stall
// timeout is closed as a slow consumer.
//
// Where the send queue cannot be read (not a TCP socket, not Linux) a
// write that took longer than drainSlowWrite, i.e. that found the socket
// buffer full, makes the session wait twice that long before the next.
const (
	// maxUnsent bounds the bytes the kernel holds unsent for a stream
	// (TCP_NOTSENT_LOWAT): beyond it a write waits for the client.
	maxUnsent      = 256 << 10
	drainTarget    = 16 << 10
	drainPollMin   = 10 * time.Millisecond
	drainLookEvery = 5 * time.Millisecond // least time between looks while the client keeps up
	drainPollMax   = 250 * time.Millisecond
	drainMaxGap    = 2 * time.Second // without a readable queue
	drainSlowWrite = 20 * time.Millisecond
)

// drain is a session's view of its client's read speed. Only the writer
// touches it.
type drain struct {
	q      *sockstat.Queue // nil: judge by write time
	queued int             // unsent bytes at the last look
	at     time.Time       // of the last look
	rate   float64         // bytes/s the client was seen to take while behind (smoothed); 0 = not measured
	// poll is how long to wait before looking at the queue again while
	// behind; 0 while the client keeps up.
	poll time.Duration
	// gap is the wait after a slow write when the queue cannot be read.
	gap time.Duration
	// progress is the last time the client was seen taking data, or
	// keeping up; a stall counts from it.
	progress time.Time
	// behind is the last time a look found the queue over the target.
	behind time.Time
	// unlooked counts the bytes of writes since the last look.
	unlooked int
}

// look reads the queue at now and updates progress, the drain rate and the
// poll interval; it returns the wait before data may be written (0: now).
// It returns ok false when the queue cannot be read.
func (d *drain) look(now time.Time, added int) (wait time.Duration, ok bool) {
	if d.q == nil {
		return 0, false
	}
	queued, err := d.q.Unsent()
	if err != nil {
		d.q = nil // not measurable after all
		return 0, false
	}
	if !d.at.IsZero() {
		// What left the queue since the last look: it held d.queued then,
		// added was written since, queued remain.
		taken := d.queued + added - queued
		if taken > 0 || queued == 0 {
			d.progress = now
		}
		if dt := now.Sub(d.at).Seconds(); dt > 0 && d.queued > 0 {
			r := float64(max(taken, 0)) / dt
			if d.rate == 0 {
				d.rate = r
			} else {
				d.rate += (r - d.rate) / 4
			}
		}
	} else {
		d.progress = now
	}
	d.queued, d.at = queued, now
	if queued <= drainTarget {
		d.poll = 0
		return 0, true
	}
	d.behind = now
	d.poll = min(max(2*d.poll, drainPollMin), drainPollMax)
	return d.poll, true
}

// wrote accounts a write of n bytes at now that took took, and returns the
// wait the client needs before the next data write.
func (d *drain) wrote(now time.Time, n int, took time.Duration) time.Duration {
	d.poll = 0 // a write restarts the polling at its shortest
	if d.q != nil && d.queued == 0 && !d.at.IsZero() && now.Sub(d.at) < drainLookEvery {
		// It kept up at the last look, moments ago: a busy session writes
		// far more often than a backlog can build up worth looking at.
		d.unlooked += n
		return 0
	}
	n, d.unlooked = n+d.unlooked, 0
	if wait, ok := d.look(now, n); ok {
		return wait
	}
	// By write time only: a write that blocked found the buffer full.
	if took > drainSlowWrite {
		d.behind = now
		d.gap = min(max(2*d.gap, 2*took), drainMaxGap)
	} else {
		d.gap = 0
	}
	return d.gap
}

// stalled reports whether the client has taken nothing for timeout while
// bytes waited for it.
func (d *drain) stalled(now time.Time, timeout time.Duration) bool {
	return d.queued > 0 && !d.progress.IsZero() && now.Sub(d.progress) >= timeout
}
