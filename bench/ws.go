package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// newDialer returns a WebSocket dialer shared by a run's sessions: small
// read buffers (2 KiB: a typical batch frame of tickerd fits in one read),
// write buffers only while writing, no compression. With slowBPS > 0 its
// connections are those of slow readers (slowDialer).
func newDialer(timeout time.Duration, slowBPS int) *websocket.Dialer {
	netDial := (&net.Dialer{Timeout: timeout}).DialContext
	if slowBPS > 0 {
		netDial = slowDialer(timeout, slowBPS)
	}
	return &websocket.Dialer{
		NetDialContext:   netDial,
		HandshakeTimeout: timeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  256,
		WriteBufferPool:  &sync.Pool{},
		Proxy:            nil, // load tests target tickerd directly
	}
}

// dialWS runs a WebSocket session: GET /v1/ws with the subscription in the
// query, one goroutine reading frames.
func dialWS(ctx context.Context, s *session) error {
	u, err := streamURL(s.url, "/v1/ws", s.symbols, s.run.cfg.MaxHz)
	if err != nil {
		return &connectError{err: err}
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	dialer := s.run.dialer
	if s.slow {
		dialer = s.run.slowDialer
	}
	start := time.Now()
	c, resp, err := dialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return &connectError{status: resp.StatusCode, err: err}
		}
		return &connectError{err: err}
	}
	s.connectedAfter(time.Since(start))
	defer s.disconnected()
	stop := context.AfterFunc(ctx, func() {
		// A polite close frame, then the socket; the read below returns.
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = c.Close()
	})
	defer func() {
		if stop() {
			_ = c.Close()
		}
	}()
	for {
		_, r, err := c.NextReader()
		if err != nil {
			return s.wsEnd(ctx, err)
		}
		s.buf, err = readAll(s.buf[:0], r)
		if err != nil {
			return s.wsEnd(ctx, err)
		}
		s.frame(s.buf, time.Now().UnixMicro())
		if cap(s.buf) > maxKeptBuf {
			s.buf = nil // a rare huge frame: do not hold its buffer
		}
	}
}

// maxKeptBuf is the largest frame buffer a session keeps between frames.
const maxKeptBuf = 64 << 10

// wsEnd classifies how a WebSocket stream ended.
func (s *session) wsEnd(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case s.closeCode != "":
		return &closedError{code: s.closeCode}
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		// A close frame without a close message first.
		s.violation("close_frame_without_message")
		return &readError{err: err}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errEOF
	}
	return &readError{err: err}
}

// readAll appends everything r yields to buf, growing it as needed.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, 512)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
