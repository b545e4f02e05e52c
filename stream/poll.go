package stream

import (
	"net/http"
	"strconv"
	"time"
)

// Long-poll (the Comet hanging GET). GET /v1/poll?symbols=... creates a
// session and answers at once with its first messages; then each
// GET /v1/poll?session=ID&wait=25 is held until there is news or wait
// seconds pass, and returns everything conflated since the previous poll.
// Between polls nothing is queued: news stays marked on the subscriptions.
// A newer poll ends the older one with no messages; a session not polled
// for the retention window (Config.Retention, 60 s) is ended (404
// afterwards; its token can still resume it for as long again).
const (
	pollDefaultWait = 25 * time.Second
	pollMaxWait     = 60 * time.Second
)

// pollState is what a long-poll session keeps between requests. Guarded
// by the session's mu.
type pollState struct {
	cancel   chan struct{} // closed to end the poll in progress; nil if none
	lastPoll time.Time
	done     bool // the session has been finished
	// replied is the message count at the end of the latest reply; a
	// newer poll confirms it (the client read that reply), and a resume
	// starts from it.
	replied uint64
}

type pollReply struct {
	Session  string    `json:"session"`
	Messages []rawJSON `json:"messages"`
}

// rawJSON is a message's shared bytes, written as they are.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func (srv *Server) servePoll(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("session"); id != "" {
		srv.pollSession(w, r, id)
		return
	}
	if !srv.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	s := srv.newSession(TransportPoll)
	s.poll = &pollState{lastPoll: time.Now()}
	if !srv.beginAuthorized(w, r, s, q.Get("resume")) {
		return
	}
	bw := &bufferWire{}
	if _, code, ended := s.step(bw, time.Now()); ended {
		srv.endPoll(s, code)
	}
	srv.reply(w, r, s, bw.msgs)
}

// pollSession holds one poll of an existing session.
func (srv *Server) pollSession(w http.ResponseWriter, r *http.Request, id string) {
	wait := pollDefaultWait
	if v := r.URL.Query().Get("wait"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 {
			writeJSONError(w, http.StatusBadRequest, "wait must be a number of seconds, 0 to 60")
			return
		}
		wait = min(time.Duration(secs*float64(time.Second)), pollMaxWait)
	}
	s := srv.session(id)
	if s == nil || s.poll == nil {
		writeJSONError(w, http.StatusNotFound, "unknown or expired session")
		return
	}
	cancel := make(chan struct{})
	s.mu.Lock()
	if s.poll.done {
		s.mu.Unlock()
		writeJSONError(w, http.StatusNotFound, "unknown or expired session")
		return
	}
	if s.poll.cancel != nil {
		close(s.poll.cancel) // a newer poll ends the older one
	}
	s.confirmed = max(s.confirmed, s.poll.replied)
	s.poll.cancel = cancel
	s.mu.Unlock()

	bw := &bufferWire{}
	deadline := time.Now().Add(wait)
	t := time.NewTimer(0)
	defer t.Stop()
	for len(bw.msgs) == 0 {
		select {
		case <-s.wake:
		case <-t.C:
		case <-s.stop:
		case <-cancel:
			srv.reply(w, r, s, nil)
			return
		case <-r.Context().Done():
			srv.pollDone(s, cancel)
			// A resume that replaced the session while this poll was
			// held left its ending to this poll (reapPoll skips a
			// session with a poll in progress): end it now, or the
			// resume waits in vain and starts afresh without the old
			// subscriptions.
			select {
			case <-s.stop:
				srv.reapPoll(s, time.Now(), true)
			default:
			}
			return
		}
		now := time.Now()
		due, code, ended := s.step(bw, now)
		if ended {
			srv.endPoll(s, code)
			break
		}
		if !now.Before(deadline) {
			break
		}
		if deadline.Before(due) {
			due = deadline
		}
		t.Reset(time.Until(due))
	}
	srv.pollDone(s, cancel)
	srv.reply(w, r, s, bw.msgs)
}

// pollDone records the end of a poll, unless a newer one took over.
func (srv *Server) pollDone(s *Session, cancel chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poll.cancel == cancel {
		s.poll.cancel = nil
		s.poll.lastPoll = time.Now()
	}
}

// endPoll finishes a poll session once.
func (srv *Server) endPoll(s *Session, code string) {
	s.mu.Lock()
	done := s.poll.done
	s.poll.done = true
	s.mu.Unlock()
	if !done {
		srv.finish(s, code)
	}
}

// reapPoll finishes a poll session that has no poll in progress and, unless
// force is set, has not been polled for the retention window. It reports whether it
// did. A poll in progress ends the session itself when it sees stop.
func (srv *Server) reapPoll(s *Session, now time.Time, force bool) bool {
	s.mu.Lock()
	idle := !s.poll.done && s.poll.cancel == nil && (force || now.Sub(s.poll.lastPoll) > srv.cfg.Retention)
	if idle {
		s.poll.done = true
	}
	s.mu.Unlock()
	if idle {
		srv.finish(s, "")
	}
	return idle
}

// reply writes a poll's messages. If the write fails, what it carried
// counts as not received: every subscription gets a fresh snapshot on the
// next poll, so the client misses no value.
func (srv *Server) reply(w http.ResponseWriter, r *http.Request, s *Session, msgs [][]byte) {
	reply := pollReply{Session: s.id, Messages: make([]rawJSON, len(msgs))}
	for i, m := range msgs {
		reply.Messages[i] = m
	}
	b := append(mustJSON(reply), '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.Header().Add("Vary", "Accept-Encoding")
	if len(b) >= gzipMinReply && !srv.cfg.NoCompression && acceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		b = gzipBody(b)
	}
	if _, err := w.Write(b); err != nil && len(msgs) > 0 {
		s.resync()
		return
	}
	s.mu.Lock()
	s.poll.replied = s.events
	s.mu.Unlock()
}

// bufferWire collects what a step would write, for a poll reply.
type bufferWire struct{ msgs [][]byte }

func (b *bufferWire) writeBatch(msgs [][]byte, _ uint64, _ time.Time) (int, error) {
	n := 0
	for _, m := range msgs {
		b.msgs = append(b.msgs, m)
		n += len(m)
	}
	return n, nil
}

func (b *bufferWire) writeHeartbeat(ts int64, _ time.Time) (int, error) {
	m := encodeHeartbeat(ts)
	b.msgs = append(b.msgs, m)
	return len(m), nil
}

func (b *bufferWire) writeClose(code, text string, _ time.Time) error {
	b.msgs = append(b.msgs, encodeClose(code, text))
	return nil
}
