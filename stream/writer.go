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
	// it returns the bytes put on the wire.
	writeBatch(msgs [][]byte, deadline time.Time) (int, error)
	writeHeartbeat(ts int64, deadline time.Time) error
	// writeClose sends the close message with code and text and ends the
	// stream on the transport's terms.
	writeClose(code, text string, deadline time.Time) error
}

// closeGrace bounds the final close write, which a stuck client must not
// hold up.
const closeGrace = 2 * time.Second

// run is the session's writer loop: it sleeps until woken by a change, a
// throttle deadline, the heartbeat interval or the connection's age limit,
// then sends what is due in one batch. It returns when peerGone is closed,
// a write fails, or the session is stopped, with the close code it ended
// with ("" when the peer left or the connection broke).
func (s *Session) run(w wire, peerGone <-chan struct{}) string {
	cfg := &s.srv.cfg
	maxAge := s.created.Add(cfg.MaxConnAge)
	lastWrite := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.wake:
		case <-t.C:
		case <-peerGone:
			return ""
		case <-s.stop:
			_ = w.writeClose(s.stopCode, s.stopMsg, time.Now().Add(closeGrace))
			return s.stopCode
		}
		now := time.Now()
		if !now.Before(maxAge) {
			s.stopWith(CloseMaxAge, "connection reached its maximum age; reconnect to resume")
			continue
		}
		next := s.collect(now)
		switch {
		case len(s.out) > 0:
			n, err := w.writeBatch(s.out, now.Add(cfg.StallTimeout))
			if err != nil {
				return s.writeFailed(w, err)
			}
			lastWrite = now
			s.events += uint64(len(s.out))
			s.srv.m.delivered(s, len(s.out), n, s.outTS, now)
			clear(s.out)
		case now.Sub(lastWrite) >= cfg.Heartbeat:
			if err := w.writeHeartbeat(now.UnixMicro(), now.Add(cfg.StallTimeout)); err != nil {
				return s.writeFailed(w, err)
			}
			lastWrite = now
		}
		due := lastWrite.Add(cfg.Heartbeat)
		if maxAge.Before(due) {
			due = maxAge
		}
		if !next.IsZero() && next.Before(due) {
			due = next
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
