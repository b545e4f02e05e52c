package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// streamConn is an SSE or NDJSON stream: a long GET whose body carries the
// messages, with ops sent by POST to the session.
type streamConn struct {
	c       *Client
	t       Transport
	session string
	cancel  context.CancelFunc
	body    io.ReadCloser
	br      *bufio.Reader
	idle    time.Duration
	dog     *time.Timer // cancels the request after idle without a line
	idled   atomic.Bool
	once    sync.Once

	// SSE only, owned by the reader.
	data    []byte // the event being read
	eventID string // its id
}

// dialStream opens an SSE or NDJSON stream and reads its session message.
// ctx bounds the opening only; the stream lives until close or Close.
func (c *Client) dialStream(ctx context.Context, t Transport, tg target) (*streamConn, *Message, []Message, error) {
	life, cancel := context.WithCancel(c.life)
	stop := context.AfterFunc(ctx, cancel)
	path, h := "/v1/stream", http.Header{"Accept": {"application/x-ndjson"}}
	if t == SSE {
		path, h = "/v1/sse", http.Header{"Accept": {"text/event-stream"}}
		if tg.lastEventID != "" {
			h.Set("Last-Event-ID", tg.lastEventID)
		}
	}
	resp, err := c.get(life, c.streamURL(path, tg, nil), h)
	if err != nil {
		stop()
		cancel()
		return nil, nil, nil, err
	}
	sc := &streamConn{c: c, t: t, cancel: cancel, body: resp.Body, br: bufio.NewReaderSize(resp.Body, 64<<10), idle: c.cfg.idleTimeout}
	sc.dog = time.AfterFunc(sc.idle, func() { sc.idled.Store(true); cancel() })
	var msgs []Message
	for len(msgs) == 0 && err == nil {
		msgs, err = sc.read()
	}
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil && msgs[0].Type != TypeSession {
		err = fmt.Errorf("client: %s stream began with a %q message, not session", t, msgs[0].Type)
	}
	if err != nil {
		sc.close()
		return nil, nil, nil, err
	}
	sc.session = msgs[0].Session
	return sc, &msgs[0], msgs[1:], nil
}

func (sc *streamConn) transport() Transport { return sc.t }

func (sc *streamConn) read() ([]Message, error) {
	for {
		line, err := readLine(sc.br, sc.c.cfg.maxMessage)
		if err != nil {
			switch {
			case sc.idled.Load():
				return nil, ErrIdle
			case errors.Is(err, io.EOF):
				return nil, ErrStreamEnded
			}
			return nil, fmt.Errorf("client: reading %s stream: %w", sc.t, err)
		}
		sc.dog.Reset(sc.idle)
		var frame []byte
		if sc.t == SSE {
			if frame = sc.sseLine(line); frame == nil {
				continue
			}
		} else if frame = bytes.TrimSpace(line); len(frame) == 0 {
			continue
		}
		msgs, err := decodeFrame(frame)
		if err != nil {
			sc.c.log.Warn("unreadable message skipped", "transport", sc.t.String(), "err", err)
			continue
		}
		return msgs, nil
	}
}

// sseLine takes one line of an event stream and returns the data of the
// event it completes, if any. Comments (heartbeats), retry and named
// events' extra lines are ignored; the id of a completed event becomes
// the client's resume point.
func (sc *streamConn) sseLine(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		if len(sc.data) == 0 {
			return nil
		}
		d := sc.data
		sc.data = sc.data[:0]
		if sc.eventID != "" {
			sc.c.setEventID(sc.session, sc.eventID)
		}
		return d
	}
	if line[0] == ':' {
		return nil
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(name) {
	case "data":
		if len(sc.data) > 0 {
			sc.data = append(sc.data, '\n')
		}
		sc.data = append(sc.data, value...)
	case "id":
		sc.eventID = string(value)
	}
	return nil
}

func (sc *streamConn) op(ctx context.Context, body []byte) ([]Message, error) {
	return sc.c.postOp(ctx, sc.session, body)
}

func (sc *streamConn) close() {
	sc.once.Do(func() {
		sc.dog.Stop()
		sc.cancel()
		_ = sc.body.Close()
	})
}
