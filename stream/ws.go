package stream

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"tickerd/internal/netpoll"
	"tickerd/internal/sockstat"
)

// upgrader answers the WebSocket handshake (no compression, no
// subprotocol). Its timeout bounds writing the 101 response.
var upgrader = ws.HTTPUpgrader{Timeout: 10 * time.Second}

// serveWS upgrades the connection and returns at once, so that net/http's
// per-request goroutine and buffers are freed. An idle WebSocket session is
// then its Session, a wsDriver, a timer and a poller registration: no
// goroutine. A goroutine exists only while the client's frames are read
// (ws_read.go) or while something is written (drive).
func (srv *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		http.Error(w, "WebSocket upgrade required", http.StatusUpgradeRequired)
		return
	}
	if !srv.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if srv.isClosing() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	// A bad credential gets 401 before the upgrade; none at all leaves the
	// client its auth op (awaitAuth).
	p, cred, ok := srv.authRequest(w, r, true)
	if !ok {
		return
	}
	if srv.atUserLimit(p) {
		srv.refuseUserLimit(w)
		return
	}
	// permessage-deflate, if the client offers it and there is room.
	u := upgrader
	ext := wsflate.Extension{Parameters: wsDeflateParams}
	if srv.cfg.WSDeflateMaxSessions > 0 && srv.deflating.Load() < int64(srv.cfg.WSDeflateMaxSessions) {
		u.Negotiate = ext.Negotiate
	}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		if conn != nil {
			conn.Close() // the upgrader has answered on it
		}
		return
	}
	// Frames a client sent right behind its handshake may already sit in
	// net/http's reader: keep those bytes, let the buffers go.
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	d := &wsDriver{srv: srv, conn: conn}
	if _, ok := ext.Accepted(); ok {
		d.deflate = true
		srv.deflating.Add(1)
	}
	d.s = srv.newSession(TransportWS)
	d.s.kick = d.kick
	d.s.kickUrgent = d.kickUrgent
	d.s.drain.q = sockstat.For(conn)
	d.timer = time.AfterFunc(time.Hour, d.timerFired)
	d.s.setIdentity(p, cred)
	if err := srv.begin(r, d.s, r.URL.Query().Get("resume"), false); err != nil {
		d.timer.Stop()
		body := ws.NewCloseFrameBody(ws.StatusGoingAway, CloseShutdown)
		if errors.Is(err, errUserLimit) { // lost a race with another connection of the user
			srv.m.refused.WithLabelValues("user_limit").Inc()
			body = ws.NewCloseFrameBody(ws.StatusPolicyViolation, CloseLimitExceeded)
		}
		_ = d.writeCloseFrame(body, time.Now().Add(closeGrace))
		conn.Close()
		if d.deflate {
			srv.deflating.Add(-1)
		}
		return
	}
	if srv.cfg.Auth != nil && p == nil {
		d.s.awaitAuth()
	}
	d.startReading(early)
	d.kick()
}

// headerHasToken reports whether a comma-separated header lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsDriver runs a WebSocket session on demand. Its writer is a drive: a
// change, a stop or the timer (throttle, heartbeat, age) kicks it; it
// writes what is due and parks by re-arming the timer and returning. At
// most one drive runs at a time. Its reader is a read round started by the
// poller when the client has sent something (ws_read.go).
type wsDriver struct {
	srv   *Server
	s     *Session
	conn  net.Conn
	timer *time.Timer
	armed time.Time // when timer fires; only the drive touches it
	// kicked stamps (pacer.stamp) the kick that started the running
	// drive; written by that kick, read by the drive.
	kicked int64

	running   atomic.Bool   // a drive is in progress
	ended     atomic.Bool   // end has begun: client ops no longer apply
	gone      atomic.Bool   // the client closed, broke the connection or broke the protocol
	closeSent bool          // our close frame is out; nothing follows it (guarded by wmu)
	wdeadline writeDeadline // the socket's (guarded by wmu)
	deflate   bool          // permessage-deflate was negotiated (set before any drive or read)

	// wmu is the socket's write side: a drive's frame, or the reader's
	// pong or close reply, never two interleaved.
	wmu sync.Mutex

	// The read side. rmu is held by whatever is reading: a poller
	// callback for one round, or the fallback reader for its life; end
	// takes it to wait for them.
	rmu        sync.Mutex
	rclosed    bool            // end has taken over: no more reading (guarded by rmu)
	readStop   atomic.Bool     // end wants reading cut short; read deadlines are in the past
	h          *netpoll.Handle // the poller registration; nil when read by a goroutine of its own
	readerDone chan struct{}   // closed when the fallback reader returns; nil when polled
	frag       *wsFragments    // a fragmented message being received (guarded by rmu)
}

// kick starts a drive unless one is running. It never blocks: it is
// called from the cache's fan-out and from the session's timer.
func (d *wsDriver) kick() { d.start(false) }

// kickUrgent is kick for a reply to the client (pong, ack): when every
// drive goroutine is busy, the session goes to the head of the run queue.
func (d *wsDriver) kickUrgent() { d.start(true) }

func (d *wsDriver) start(urgent bool) {
	if !d.ended.Load() && d.running.CompareAndSwap(false, true) {
		d.kicked = d.srv.pace.stamp()
		d.srv.drivers.run(d, urgent)
	}
}

// timerFired kicks the drive when its timer fires. It marks the session
// pending first: a timer that fires while a drive is finishing (after its
// step, before it lets go) must make that drive go round again, or the
// wake-up is lost; a session holding news for its pacing gap (held) has no
// other.
func (d *wsDriver) timerFired() {
	d.s.pending.Store(true)
	d.kick()
}

func (d *wsDriver) drive() {
	s := d.s
	now := d.srv.pace.stamp()
	d.srv.m.writerLag.Observe(time.Duration(now - d.kicked).Seconds())
	d.srv.pace.observe(d.kicked, now)
	for {
		s.pending.Store(false) // this round covers every wake-up so far
		if d.gone.Load() {
			d.end("")
			return
		}
		due, code, ended := s.step(wsWire{d}, time.Now())
		if ended {
			d.end(code)
			return
		}
		d.arm(due)
		d.running.Store(false)
		// A kick that came while this drive ran found it running and left
		// its pending mark.
		if !s.pending.Load() && !d.gone.Load() {
			return
		}
		if !d.running.CompareAndSwap(false, true) {
			return // a newer drive took over
		}
	}
}

// arm sets the session's timer to fire by due. A timer already set to fire
// earlier, and still in the future, is left alone: a busy session would
// otherwise move it on every frame (the heartbeat deadline moves with each
// write), and an early firing costs only a round that finds nothing due.
// Only the drive calls it.
func (d *wsDriver) arm(due time.Time) {
	now := time.Now()
	if d.armed.After(now) && !d.armed.After(due) {
		return
	}
	d.timer.Reset(due.Sub(now))
	d.armed = due
}

// end finishes the session: after a close frame it gives the client
// closeGrace to answer, then stops the read side (waiting only for a
// reader that is actually running), closes the connection and releases
// the session.
func (d *wsDriver) end(code string) {
	d.ended.Store(true)
	d.timer.Stop()
	d.wakeReader()
	if code != "" && code != CloseSlowConsumer {
		d.awaitPeerClose() // a client that stopped reading will not answer
	}
	d.stopReading()
	d.conn.Close()
	if d.deflate {
		d.srv.deflating.Add(-1)
	}
	d.srv.finish(d.s, code)
}

// awaitPeerClose waits until the reader has seen the client go (its close
// frame answering ours, or the end of the stream), at most closeGrace, so
// that the client reads the close message before the connection goes.
func (d *wsDriver) awaitPeerClose() {
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	for !d.gone.Load() {
		select {
		case <-d.s.wake: // peerGone: the client has gone
		case <-t.C:
			return
		}
	}
}

// Batch buffers are pooled: an idle session holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 256 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}
