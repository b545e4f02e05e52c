package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// opWriteTimeout bounds writing one op when the caller's context has no
// deadline.
const opWriteTimeout = 10 * time.Second

// wsConn is a WebSocket connection. Ops are written under wmu, so callers
// on any goroutine may send while the reader reads.
type wsConn struct {
	ws   *websocket.Conn
	idle time.Duration
	wmu  sync.Mutex
	once sync.Once
}

func (c *Client) dialWS(ctx context.Context, tg target) (*wsConn, error) {
	raw := c.streamURL("/v1/ws", target{symbols: tg.symbols, spec: tg.spec}, nil)
	raw = "ws" + strings.TrimPrefix(raw, "http") // http→ws, https→wss
	h := http.Header{}
	if !c.cfg.authOp {
		c.authorize(h, true)
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 10 * time.Second,
		NetDialContext:   (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	ws, resp, err := d.DialContext(ctx, raw, h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			return nil, httpError(c.endpoint("/v1/ws"), resp)
		}
		return nil, fmt.Errorf("client: WebSocket %s: %w", c.endpoint("/v1/ws"), err)
	}
	ws.SetReadLimit(int64(c.cfg.maxMessage))
	return &wsConn{ws: ws, idle: c.cfg.idleTimeout}, nil
}

func (w *wsConn) transport() Transport { return WebSocket }

func (w *wsConn) read() ([]Message, error) {
	_ = w.ws.SetReadDeadline(time.Now().Add(w.idle))
	typ, b, err := w.ws.ReadMessage()
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil, ErrIdle
		case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
			return nil, ErrStreamEnded
		}
		return nil, fmt.Errorf("client: WebSocket read: %w", err)
	}
	if typ != websocket.TextMessage {
		return nil, nil
	}
	return decodeFrame(b)
}

func (w *wsConn) op(ctx context.Context, body []byte) ([]Message, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(opWriteTimeout)
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_ = w.ws.SetWriteDeadline(deadline)
	if err := w.ws.WriteMessage(websocket.TextMessage, body); err != nil {
		return nil, fmt.Errorf("client: WebSocket write: %w", err)
	}
	return nil, nil
}

// close says goodbye with a close frame (best effort, bounded) and closes
// the socket, which ends a read in progress.
func (w *wsConn) close() {
	w.once.Do(func() {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = w.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = w.ws.Close()
	})
}
