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
	writeHeartbeat(ts int64, deadline time.Time) error
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
		_ = w.writeClose(s.stopCode, s.stopMsg, now.Add(closeGrace))
		return time.Time{}, s.stopCode, true
	default:
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		clear(sc.out)
		clear(sc.later)
		sc.out, sc.outTS, sc.later = sc.out[:0], sc.outTS[:0], sc.later[:0]
		scratchPool.Put(sc)
	}()
	next := s.collect(now, sc)
	switch {
	case len(sc.out) > 0:
		n, err := w.writeBatch(sc.out, s.events, now.Add(cfg.StallTimeout))
		if err != nil {
			return time.Time{}, s.writeFailed(w, err), true
		}
		s.lastWrite = now
		s.events += uint64(len(sc.out))
		s.tm.delivered(len(sc.out), n, sc.outTS, now)
	case now.Sub(s.lastWrite) >= cfg.Heartbeat:
		if err := w.writeHeartbeat(now.UnixMicro(), now.Add(cfg.StallTimeout)); err != nil {
			return time.Time{}, s.writeFailed(w, err), true
		}
		s.lastWrite = now
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

// writeFailed ends a session whose write failed: a missed deadline means
// the client stopped reading.
func (s *Session) writeFailed(w wire, err error) string {
	if isTimeout(err) {
		s.srv.m.slowConsumers.Inc()
		s.srv.log.Info("closing slow consumer", "session", s.id, "transport", s.transport,
			"stall_timeout", s.srv.cfg.StallTimeout)
		_ = w.writeClose(CloseSlowConsumer, "client made no read progress", time.Now().Add(closeGrace))
		return CloseSlowConsumer
	}
	return ""
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
