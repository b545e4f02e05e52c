package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// ReasonFrame is the rejection reason of a WebSocket frame over the read
// limit; the connection it came on is dropped and dialled again.
const ReasonFrame = "frame"

// Defaults of WSUpstream.
const (
	DefaultMaxFrame     = 4 << 20 // Binance's !ticker@arr is about 0.5 MB
	DefaultPingInterval = 15 * time.Second
	DefaultReadTimeout  = 45 * time.Second
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second

	wsHandshakeTimeout = 10 * time.Second
	wsWriteWait        = 10 * time.Second
)

// WSUpstream connects out to an upstream feed's WebSocket, sends its
// subscribe messages and maps every message it receives into Sink with
// Mapping. Records the mapping's filter passes over are counted as
// ignored; malformed ones are rejected and counted by reason; neither ends
// the connection.
//
// When the connection fails (the dial, a read, a frame over MaxFrame, or
// ReadTimeout without a message or a pong: tickerd pings every
// PingInterval) it is dialled again after an exponential backoff with
// jitter, from MinBackoff doubling up to MaxBackoff, and the subscribe
// messages are sent again. The backoff starts over after a connection that
// delivered an update. Messages are mapped and applied one at a time on
// Run's goroutine, so a slow Sink slows the reading, never queues.
type WSUpstream struct {
	// URL is the ws:// or wss:// address to dial.
	URL string
	// Header holds extra handshake headers; nil means none.
	Header http.Header
	// Subscribe holds the messages sent, as text frames and in order,
	// after each connect; nil means none (the URL says what to stream).
	Subscribe [][]byte
	Mapping   *Mapping
	Sink      Sink
	Counter   Counter
	Log       *slog.Logger // nil means slog.Default()
	// MaxFrame is the largest message read, in bytes. Zero means
	// DefaultMaxFrame.
	MaxFrame int64
	// PingInterval is how often tickerd pings the upstream. Zero means
	// DefaultPingInterval.
	PingInterval time.Duration
	// ReadTimeout is how long a connection may go without a message or a
	// pong before it is dropped as dead. Zero means DefaultReadTimeout.
	ReadTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before dialling again. Zero
	// means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Conns, if set, is told when the upstream connection opens (1) and
	// closes (-1), as TCPAdapter.Conns.
	Conns func(delta int)
}

// Run dials, subscribes and maps until ctx ends, dialling again after every
// failure. It returns nil when ctx ends (after sending the upstream a close
// frame), and an error at once for a URL it cannot dial at all.
func (a *WSUpstream) Run(ctx context.Context) error {
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("feed: upstream URL %q: want ws://HOST/PATH or wss://HOST/PATH", a.URL)
	}
	if a.Mapping == nil || a.Sink == nil {
		return errors.New("feed: WSUpstream needs a Mapping and a Sink")
	}
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	// The query and user info may hold credentials: never logged.
	log = log.With("adapter", "ws", "upstream", u.Scheme+"://"+u.Host+u.Path, "mapping", a.Mapping.Name)
	bo := backoff{min: orDefault(a.MinBackoff, DefaultMinBackoff), max: orDefault(a.MaxBackoff, DefaultMaxBackoff)}
	s := &wsSession{a: a, log: log, mapper: a.Mapping.NewMapper()}
	for {
		accepted, err := s.run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if accepted > 0 {
			bo.reset()
		}
		wait := bo.next()
		log.Warn("upstream disconnected", "err", err, "updates", accepted, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// backoff is exponential backoff with jitter: each wait is drawn from
// [d/2, d], where d starts at min and doubles up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }

// wsSession is the state that outlives connections: the mapper and the
// read buffer are reused, and logs of rejections are rate-limited.
type wsSession struct {
	a       *WSUpstream
	log     *slog.Logger
	mapper  *Mapper
	buf     bytes.Buffer
	lastLog time.Time
}

// run dials once and reads until the connection fails or ctx ends. It
// returns the number of updates applied.
func (s *wsSession) run(ctx context.Context) (accepted int, err error) {
	a := s.a
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: wsHandshakeTimeout,
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  4 << 10,
	}
	c, resp, err := d.DialContext(ctx, a.URL, a.Header)
	if err != nil {
		if resp != nil {
			return 0, fmt.Errorf("dial: %w (HTTP %s)", err, resp.Status)
		}
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	// Shutdown: say so, then close the socket, which ends the read.
	stop := context.AfterFunc(ctx, func() {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "tickerd shutting down")
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.Close()
	})
	defer stop()

	c.SetReadLimit(orDefaultInt(a.MaxFrame, DefaultMaxFrame))
	for _, m := range a.Subscribe {
		_ = c.SetWriteDeadline(time.Now().Add(wsWriteWait))
		if err := c.WriteMessage(websocket.TextMessage, m); err != nil {
			return 0, fmt.Errorf("subscribe: %w", err)
		}
	}
	readTimeout := orDefault(a.ReadTimeout, DefaultReadTimeout)
	alive := func() { _ = c.SetReadDeadline(time.Now().Add(readTimeout)) }
	alive()
	c.SetPongHandler(func(string) error { alive(); return nil })
	c.SetPingHandler(func(data string) error {
		alive()
		err := c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wsWriteWait))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	var pinger sync.WaitGroup
	done := make(chan struct{})
	pinger.Add(1)
	go s.ping(c, done, &pinger)
	defer func() { close(done); pinger.Wait() }()
	s.log.Info("upstream connected", "subscribe_messages", len(a.Subscribe))
	if a.Conns != nil {
		a.Conns(1)
		defer a.Conns(-1)
	}

	for {
		_, r, err := c.NextReader()
		if err == nil {
			s.buf.Reset()
			_, err = s.buf.ReadFrom(r)
		}
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				a.Counter.Reject(&Error{Reason: ReasonFrame, Msg: "frame over the read limit"})
			}
			return accepted, err
		}
		alive()
		accepted += s.handle(s.buf.Bytes())
	}
}

func orDefaultInt(n, def int64) int64 {
	if n <= 0 {
		return def
	}
	return n
}

// ping pings the upstream every PingInterval until done closes.
func (s *wsSession) ping(c *websocket.Conn, done <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(orDefault(s.a.PingInterval, DefaultPingInterval))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait)); err != nil {
				return // the read fails too, soon
			}
		}
	}
}

// handle maps one message into the sink and counts it.
func (s *wsSession) handle(msg []byte) (accepted int) {
	a := s.a
	ignored := s.mapper.Map(msg,
		func(u *Update) {
			a.Sink.Apply(u)
			accepted++
		},
		func(err error) {
			a.Counter.Reject(err)
			if time.Since(s.lastLog) > time.Second {
				s.lastLog = time.Now()
				s.log.Warn("upstream record rejected", "err", err, "message", quoteShort(string(msg)))
			}
		})
	a.Counter.Accept(accepted)
	a.Counter.Ignore(ignored)
	return accepted
}
