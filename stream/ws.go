package stream

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Small I/O buffers and a shared write-buffer pool keep an idle WebSocket
// session at a few KiB (see shared/LIBRARIES.md).
var upgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{},
	// Origins are checked by startSession before the upgrade.
	CheckOrigin: func(*http.Request) bool { return true },
}

func (srv *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "WebSocket upgrade required", http.StatusUpgradeRequired)
		return
	}
	if !srv.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	s, err := srv.begin(r, TransportWS, r.URL.Query().Get("resume"), false)
	if err != nil {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		srv.finish(s, "") // the upgrader has answered
		return
	}
	conn.SetReadLimit(MaxOpBytes)

	peerGone := make(chan struct{})
	var code string
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		code = s.run(&wsWire{conn: conn}, peerGone)
		if code != "" {
			// Let the client answer the close frame before the socket goes.
			_ = conn.SetReadDeadline(time.Now().Add(closeGrace))
			select {
			case <-peerGone:
			case <-time.After(closeGrace):
			}
		}
		conn.Close()
	}()

	srv.readOps(s, conn, peerGone)
	writer.Wait()
	srv.finish(s, code)
}

// readOps reads client ops until the connection ends, then closes peerGone.
// It stops reading while the session's control queue is full, so a client
// that sends ops without reading replies cannot grow server memory.
func (srv *Server) readOps(s *Session, conn *websocket.Conn, peerGone chan struct{}) {
	defer close(peerGone)
	for {
		for s.ctrlFull() {
			select {
			case <-s.ctrlSpace:
			case <-s.stop:
				return
			}
		}
		typ, data, err := conn.ReadMessage()
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

func (w *wsWire) writeBatch(msgs [][]byte, deadline time.Time) (int, error) {
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
