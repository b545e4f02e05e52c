package stream

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Small I/O buffers and a shared write-buffer pool keep an idle WebSocket
// session at a few KiB (see shared/LIBRARIES.md).
var upgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{},
	// Origins are checked before the upgrade.
	CheckOrigin: func(*http.Request) bool { return true },
}

// serveWS upgrades the connection and returns at once, so that net/http's
// per-request buffers are freed: an idle WebSocket session is one parked
// reader goroutine, a timer and its subscriptions. Its writer runs only
// when there is something to write (see wsDriver).
func (srv *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "WebSocket upgrade required", http.StatusUpgradeRequired)
		return
	}
	if !srv.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	conn.SetReadLimit(MaxOpBytes)
	d := &wsDriver{srv: srv, conn: conn, wire: wsWire{conn: conn}, quit: make(chan struct{}), readerDone: make(chan struct{})}
	d.s = srv.newSession(TransportWS)
	d.s.kick = d.kick
	d.timer = time.AfterFunc(time.Hour, d.timerFired)
	if err := srv.begin(r, d.s, r.URL.Query().Get("resume"), false); err != nil {
		d.timer.Stop()
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, CloseShutdown), time.Now().Add(closeGrace))
		conn.Close()
		return
	}
	go d.read()
	d.kick()
}

// wsDriver runs a WebSocket session's writer on demand: a change, a stop
// or the timer (throttle, heartbeat, age) kicks it; it writes what is due
// and parks by re-arming the timer and returning. At most one drive runs
// at a time, so only it touches the socket's write side.
type wsDriver struct {
	srv   *Server
	s     *Session
	conn  *websocket.Conn
	wire  wsWire
	timer *time.Timer

	running    atomic.Bool // a drive is in progress
	ended      atomic.Bool
	gone       atomic.Bool   // the reader saw the connection end
	quit       chan struct{} // closed when the session ends
	readerDone chan struct{}
}

// kick starts a drive unless one is running. It never blocks: it is
// called from the cache's fan-out.
func (d *wsDriver) kick() {
	if !d.ended.Load() && d.running.CompareAndSwap(false, true) {
		go d.drive()
	}
}

// timerFired drives on the timer's own goroutine.
func (d *wsDriver) timerFired() {
	if !d.ended.Load() && d.running.CompareAndSwap(false, true) {
		d.drive()
	}
}

func (d *wsDriver) drive() {
	s := d.s
	for {
		select {
		case <-s.wake: // consume: this round covers it
		default:
		}
		if d.gone.Load() {
			d.end("")
			return
		}
		due, code, ended := s.step(&d.wire, time.Now())
		if ended {
			d.end(code)
			return
		}
		d.timer.Reset(time.Until(due))
		d.running.Store(false)
		// A kick that came while this drive ran found it running and left;
		// its wake token is still there.
		if len(s.wake) == 0 && !d.gone.Load() {
			return
		}
		if !d.running.CompareAndSwap(false, true) {
			return // a newer drive took over
		}
	}
}

// end closes the connection (after letting the client answer a close
// frame), waits for the reader and releases the session.
func (d *wsDriver) end(code string) {
	d.ended.Store(true)
	d.timer.Stop()
	close(d.quit)
	if code != "" {
		_ = d.conn.SetReadDeadline(time.Now().Add(closeGrace))
		select {
		case <-d.readerDone:
		case <-time.After(closeGrace):
		}
	}
	d.conn.Close()
	<-d.readerDone
	d.srv.finish(d.s, code)
}

// read reads client ops until the connection ends. It stops reading while
// the session's control queue is full, so a client that sends ops without
// reading replies cannot grow server memory.
func (d *wsDriver) read() {
	defer close(d.readerDone)
	defer func() {
		d.gone.Store(true)
		d.s.signal()
	}()
	s, srv := d.s, d.srv
	for {
		for s.ctrlFull() {
			select {
			case <-s.ctrlSpace:
			case <-d.quit:
				return
			}
		}
		typ, data, err := d.conn.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.TextMessage {
			s.enqueue(srv.errorReply(nil, CodeBadRequest, "", "binary frames are not accepted; send JSON text"))
			continue
		}
		op, err := ParseOp(data)
		if err != nil {
			s.enqueue(srv.opErrorReply(err))
			continue
		}
		s.enqueue(s.apply(op)...)
	}
}

// wsWire frames a batch as one text frame: the message itself, or a JSON
// array of messages.
type wsWire struct {
	conn *websocket.Conn
}

func (w *wsWire) writeBatch(msgs [][]byte, _ uint64, deadline time.Time) (int, error) {
	_ = w.conn.SetWriteDeadline(deadline)
	if len(msgs) == 1 {
		return len(msgs[0]), w.conn.WriteMessage(websocket.TextMessage, msgs[0])
	}
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], '[')
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	b = append(b, ']')
	*buf = b
	return len(b), w.conn.WriteMessage(websocket.TextMessage, b)
}

func (w *wsWire) writeHeartbeat(ts int64, deadline time.Time) error {
	_ = w.conn.SetWriteDeadline(deadline)
	return w.conn.WriteMessage(websocket.TextMessage, encodeHeartbeat(ts))
}

func (w *wsWire) writeClose(code, text string, deadline time.Time) error {
	_ = w.conn.SetWriteDeadline(deadline)
	if err := w.conn.WriteMessage(websocket.TextMessage, encodeClose(code, text)); err != nil {
		return err
	}
	status := websocket.ClosePolicyViolation // slow_consumer, revoked, unauthorized
	if code == CloseShutdown || code == CloseMaxAge || code == CloseReplaced {
		status = websocket.CloseGoingAway
	}
	return w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(status, code), deadline)
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
