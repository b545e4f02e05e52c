package stream

import (
	"errors"
	"net"
	"os"
	"time"
)

// Close codes of the close message (contract).
const (
	CloseShutdown     = "shutdown"
	CloseSlowConsumer = "slow_consumer"
	CloseMaxAge       = "max_age"
	CloseRevoked      = "revoked"
	CloseUnauthorized = "unauthorized"
	// CloseReplaced ends a connection whose session was resumed by a newer
	// one (an extension of the contract's codes).
	CloseReplaced = "replaced"
)

// wire is one transport's framing of messages onto its connection. Only the
// session's writer goroutine calls it. Each call must finish by deadline.
type wire interface {
	// writeBatch sends msgs (shared bytes, never modified) and flushes;
	// it returns the bytes put on the wire. seq counts the messages the
	// session wrote before this batch.
	writeBatch(msgs [][]byte, seq uint64, deadline time.Time) (int, error)
	writeHeartbeat(ts int64, deadline time.Time) (int, error)
	// writeClose sends the close message with code and text and ends the
	// stream on the transport's terms.
	writeClose(code, text string, deadline time.Time) error
}

// closeGrace bounds the final close write, which a stuck client must not
// hold up.
const closeGrace = 2 * time.Second

// step does one round of writing: it sends what is due in one batch, or a
// heartbeat if the connection has been idle for the heartbeat interval, or
// the close message if the session was stopped or reached its maximum age.
// It returns when the next round is due, or ended with the close code the
// stream ended with ("" when the connection broke).
func (s *Session) step(w wire, now time.Time) (due time.Time, code string, ended bool) {
	cfg := &s.srv.cfg
	maxAge := s.created.Add(cfg.MaxConnAge)
	aging := s.poll == nil // a long-poll session has no long-lived connection
	if aging && !now.Before(maxAge) {
		s.stopWith(CloseMaxAge, "connection reached its maximum age; reconnect to resume")
	}
	select {
	case <-s.stop:
		if msgs := s.takeCtrl(); len(msgs) > 0 && s.stopCode != CloseSlowConsumer {
			// Replies queued before the stop (the error that explains
			// it) go out ahead of the close message.
			if _, err := w.writeBatch(msgs, s.events, now.Add(closeGrace)); err == nil {
				s.events += uint64(len(msgs))
			}
		}
		_ = w.writeClose(s.stopCode, s.stopMsg, now.Add(closeGrace))
		return time.Time{}, s.stopCode, true
	default:
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.out)
		clear(sc.later)
		sc.out, sc.outTS, sc.later, sc.data = sc.out[:0], sc.outTS[:0], sc.later[:0], 0
		scratchPool.Put(sc)
	}()
	holding, stalled := s.holdData(now)
	if stalled {
		s.closeSlow(w)
		return time.Time{}, CloseSlowConsumer, true
	}
	next := s.collect(now, sc, !holding)
	if holding && s.dirty.Load() != nil {
		s.held.Store(true)
		next = s.notBefore
	}
	switch {
	case len(sc.out) > 0:
		n, err := w.writeBatch(sc.out, s.events, now.Add(cfg.StallTimeout))
		if err != nil {
			return time.Time{}, s.writeFailed(w, err), true
		}
		s.events += uint64(len(sc.out))
		s.tm.delivered(len(sc.out), n, sc.outTS, now)
		if s.wrote(w, now, n, sc.data > 0) {
			return time.Time{}, CloseSlowConsumer, true
		}
	case now.Sub(s.lastWrite) >= cfg.Heartbeat:
		n, err := w.writeHeartbeat(now.UnixMicro(), now.Add(cfg.StallTimeout))
		if err != nil {
			return time.Time{}, s.writeFailed(w, err), true
		}
		if s.wrote(w, now, n, false) {
			return time.Time{}, CloseSlowConsumer, true
		}
	}
	due = s.lastWrite.Add(cfg.Heartbeat)
	if aging && maxAge.Before(due) {
		due = maxAge
	}
	if !next.IsZero() && next.Before(due) {
		due = next
	}
	return due, "", false
}

// holdData reports whether data must wait now, only control messages
// going out: within the gap after a data write (pacing, bandwidth cap,
// drain.go), or while a client that was behind has not yet taken enough.
// It reports stalled for a client that has taken nothing for the stall
// timeout.
func (s *Session) holdData(now time.Time) (hold, stalled bool) {
	s.held.Store(false)
	if s.poll != nil {
		return false, false // a poll's reply is its own batch
	}
	if now.Before(s.notBefore) {
		return true, false
	}
	if s.drain.poll > 0 && s.dirty.Load() != nil {
		if wait, ok := s.drain.look(now, 0); ok && wait > 0 {
			if s.drain.stalled(now, s.srv.cfg.StallTimeout) {
				return false, true
			}
			s.notBefore = now.Add(wait)
			s.stats.queued.Store(int64(s.drain.queued))
			return true, false
		}
	}
	return false, false
}

// run is the writer loop of the HTTP streaming transports, whose handler
// goroutine must stay to own the response: it sleeps until woken by a
// change, a stop, a throttle deadline, the heartbeat interval or the age
// limit, then steps. It returns the close code the stream ended with.
func (s *Session) run(w wire, peerGone <-chan struct{}) string {
	s.lastWrite = time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.wake:
		case <-t.C:
		case <-s.stop:
		case <-peerGone:
			return ""
		}
		due, code, ended := s.step(w, time.Now())
		if ended {
			return code
		}
		t.Reset(time.Until(due))
	}
}

// wrote accounts a write of n bytes started at now: it updates the
// client's drain estimate and, after data, sets when data may next be
// written (the widest of the pacer's gap, the client's and the bandwidth
// cap's). It closes the session and reports true when the client has
// taken nothing for the stall timeout while bytes waited for it.
func (s *Session) wrote(w wire, now time.Time, n int, data bool) (closed bool) {
	cfg := &s.srv.cfg
	s.lastWrite = now
	need := s.drain.wrote(now, n, time.Since(now))
	s.confirmWrite(now, n, s.events)
	if s.drain.stalled(now, cfg.StallTimeout) {
		s.closeSlow(w)
		return true
	}
	s.stats.bytes.Add(int64(n))
	s.stats.messages.Store(int64(s.events))
	s.stats.queued.Store(int64(s.drain.queued))
	s.stats.drainBPS.Store(int64(s.drain.rate))
	if !data {
		return false
	}
	gap, limit := time.Duration(0), int32(limitNone)
	if g := s.srv.pace.Gap(); g > gap {
		gap, limit = g, limitPacing
	}
	if need > gap {
		gap, limit = need, limitClient
	}
	if bps := s.bpsCap(); bps > 0 {
		if g := time.Duration(float64(n) / float64(bps) * float64(time.Second)); g > gap {
			gap, limit = g, limitBandwidth
		}
	}
	s.notBefore = now.Add(gap)
	s.stats.gap.Store(int64(gap))
	s.stats.limit.Store(limit)
	return false
}

// writeFailed ends a session whose write failed: a missed deadline means
// the client stopped reading.
func (s *Session) writeFailed(w wire, err error) string {
	if isTimeout(err) {
		s.closeSlow(w)
		return CloseSlowConsumer
	}
	return ""
}

// closeSlow counts and logs a slow consumer and sends it the close
// message, which it may never read: the write is bounded by closeGrace.
func (s *Session) closeSlow(w wire) {
	s.srv.m.slowConsumers.Inc()
	s.srv.log.Info("closing slow consumer", "session", s.id, "transport", s.transport,
		"stall_timeout", s.srv.cfg.StallTimeout, "unsent_bytes", s.drain.queued)
	_ = w.writeClose(CloseSlowConsumer, "client made no read progress", time.Now().Add(closeGrace))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// writeDeadline keeps a connection's write deadline without moving it on
// every write: it is moved when the wanted deadline is earlier than the one
// set, or more than a second later. A stall is still caught within a second
// of its timeout, and a busy session does not pay for a deadline update on
// every write. Not safe for concurrent use: its writer owns it.
type writeDeadline struct{ set time.Time }

// apply calls setter with deadline when the deadline must move.
func (w *writeDeadline) apply(deadline time.Time, setter func(time.Time) error) {
	if deadline.Before(w.set) || deadline.Sub(w.set) > time.Second {
		_ = setter(deadline)
		w.set = deadline
	}
}
