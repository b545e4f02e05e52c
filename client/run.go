package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// lasting is how long a connection must live for the backoff to start
// over after it ends.
const lasting = 10 * time.Second

// run reads the connection and, when it ends, reconnects until the Client
// stops.
func (c *Client) run(cn conn, rest []Message) {
	defer c.wg.Done()
	for {
		began := time.Now()
		err := c.serve(cn, rest)
		c.drop(cn)
		if c.life.Err() != nil {
			c.finish(ErrClosed)
			return
		}
		immediate := false
		var ce *CloseError
		if errors.As(err, &ce) {
			switch {
			case ce.final():
				c.finish(err)
				return
			case ce.Code == CloseShutdown || ce.Code == CloseReplaced:
				c.forgetSession() // the server keeps nothing to resume
			case ce.Code == CloseMaxAge:
				immediate = true // a planned rotation: no reason to wait
			}
		}
		if !c.cfg.reconnect {
			c.finish(err)
			return
		}
		c.log.Info("connection ended", "transport", cn.transport().String(), "err", err)
		c.setState(Reconnecting, err)
		if time.Since(began) >= lasting {
			c.attempts = 0
		}
		if cn, rest, err = c.reconnect(immediate); err != nil {
			c.finish(err)
			return
		}
		c.setState(Connected, nil)
	}
}

// reconnect connects again, after a backoff unless immediate, until it
// succeeds, the Client stops (ErrClosed) or the server turns the
// credential down.
func (c *Client) reconnect(immediate bool) (conn, []Message, error) {
	for {
		if !immediate {
			if !c.sleep(c.backoff(c.attempts)) {
				return nil, nil, ErrClosed
			}
			c.attempts++
		}
		immediate = false
		cn, hello, rest, tg, err := c.connect(c.life)
		if err == nil {
			if err = c.establish(c.life, cn, hello, tg); err == nil {
				return cn, rest, nil
			}
			cn.close()
		}
		switch {
		case c.life.Err() != nil:
			return nil, nil, ErrClosed
		case permanent(err):
			return nil, nil, err
		}
		c.log.Info("reconnect failed", "attempt", c.attempts, "err", err)
	}
}

// finish stops the Client with err (ErrClosed after Close).
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	if errors.Is(err, ErrClosed) {
		c.setState(Closed, nil)
	} else {
		c.log.Warn("client stopped", "err", err)
		c.setState(Closed, err)
	}
	c.stop()
	c.closeIdle()
}

// forgetSession drops the resume token: the next connection starts a new
// session and subscribes again.
func (c *Client) forgetSession() {
	c.mu.Lock()
	c.session, c.token, c.eventID, c.count = "", "", "", 0
	c.mu.Unlock()
}

// drop closes cn and fails the ops waiting for replies on it.
func (c *Client) drop(cn conn) {
	cn.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == cn {
		c.conn = nil
	}
	for id, w := range c.waiters {
		close(w)
		delete(c.waiters, id)
	}
}

// connect opens a connection, trying the fallback chain from the transport
// that worked last. The next attempt after a failure of every transport
// starts from the preferred one again.
func (c *Client) connect(ctx context.Context) (conn, *Message, []Message, target, error) {
	chain := c.cfg.transport.chain(c.cfg.fallback)
	c.mu.Lock()
	start := c.chainAt
	c.mu.Unlock()
	var errs []error
	for i := range chain {
		at := (start + i) % len(chain)
		t := chain[at]
		tg := c.target(t)
		cn, hello, rest, err := c.dial(ctx, t, tg)
		if err == nil {
			c.mu.Lock()
			c.chainAt, c.current = at, t
			c.mu.Unlock()
			c.log.Debug("connected", "transport", t.String(), "resume", tg.resume != "")
			if hello != nil { // OnMessage sees it first
				rest = append([]Message{*hello}, rest...)
			}
			return cn, hello, rest, tg, nil
		}
		c.log.Debug("connect failed", "transport", t.String(), "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	c.mu.Lock()
	c.chainAt = 0
	c.mu.Unlock()
	return nil, nil, nil, target{}, errors.Join(errs...)
}

func (c *Client) dial(ctx context.Context, t Transport, tg target) (conn, *Message, []Message, error) {
	switch t {
	case WebSocket:
		cn, err := c.dialWS(ctx, tg)
		if err != nil {
			return nil, nil, nil, err
		}
		return cn, nil, nil, nil
	case LongPoll:
		cn, hello, rest, err := c.dialPoll(ctx, tg)
		if err != nil {
			return nil, nil, nil, err
		}
		return cn, hello, rest, nil
	default:
		cn, hello, rest, err := c.dialStream(ctx, t, tg)
		if err != nil {
			return nil, nil, nil, err
		}
		return cn, hello, rest, nil
	}
}

// target says what a connection over t opens with: the session to resume
// if there is one (the HTTP transports), else the first subscriptions.
func (c *Client) target(t Transport) target {
	c.mu.Lock()
	defer c.mu.Unlock()
	var tg target
	switch {
	case t != WebSocket && c.token != "":
		tg.resume = c.token
		if t == SSE && c.eventID != "" {
			tg.lastEventID = c.eventID
		} else {
			tg.resume = fmt.Sprintf("%s.%d", c.token, c.count)
		}
	case t == WebSocket && c.cfg.authOp && c.cfg.token != "":
		// subscriptions follow the auth op
	default:
		tg.symbols, tg.spec = c.subs.first()
	}
	return tg
}

// establish brings a new connection's session to the subscriptions: on a
// resumed session only what changed while disconnected, on a new one
// everything the URL did not carry. Then it makes cn the ready connection.
func (c *Client) establish(ctx context.Context, cn conn, hello *Message, tg target) error {
	c.mu.Lock()
	resumed := hello != nil && tg.resume != "" && hello.Session == c.session
	switch {
	case hello == nil:
		c.session, c.token, c.eventID, c.count = "", "", "", 0
	case hello.Session != c.session:
		c.session, c.token, c.eventID, c.count = hello.Session, hello.Resume, "", 0
	default:
		c.token = hello.Resume // the count goes on: handle counts the session message
	}
	var reqs []subRequest
	var unsub []string
	if !resumed {
		inURL := make(map[string]bool, len(tg.symbols))
		for _, s := range tg.symbols {
			inURL[s] = true
			if !c.subs.has(s) {
				unsub = append(unsub, s) // unsubscribed since the URL was made
			}
		}
		reqs = c.subs.requests(nil, inURL)
		clear(c.offline)
	}
	c.mu.Unlock()
	switch {
	case resumed:
		c.log.Info("session resumed", "transport", cn.transport().String())
	case tg.resume != "":
		c.log.Info("session not resumed: subscribing again", "transport", cn.transport().String())
	}
	if cn.transport() == WebSocket && c.cfg.authOp && c.cfg.token != "" {
		if err := c.setupOp(ctx, cn, opMsg{Op: "auth", Token: c.cfg.token}); err != nil {
			return err
		}
	}
	for {
		for _, r := range reqs {
			if err := c.setupOp(ctx, cn, opMsg{Op: "subscribe", Symbols: r.symbols, Fields: r.spec.fields, MaxHz: r.spec.maxHz}); err != nil {
				return err
			}
		}
		for len(unsub) > 0 {
			n := min(len(unsub), opChunk)
			if err := c.setupOp(ctx, cn, opMsg{Op: "unsubscribe", Symbols: unsub[:n]}); err != nil {
				return err
			}
			unsub = unsub[n:]
		}
		c.mu.Lock()
		if len(c.offline) == 0 {
			c.conn = cn
			c.mu.Unlock()
			return nil
		}
		reqs = c.subs.requests(c.offline, nil)
		for s := range c.offline {
			if !c.subs.has(s) {
				unsub = append(unsub, s)
			}
		}
		clear(c.offline)
		c.mu.Unlock()
	}
}

// setupOp sends an op of the Client's own (no caller waits for it).
// Replies that come back at once (HTTP transports) are handled here; on
// WebSocket they come on the stream.
func (c *Client) setupOp(ctx context.Context, cn conn, op opMsg) error {
	c.mu.Lock()
	op.ID = c.nextID
	c.nextID++
	c.mu.Unlock()
	body, _ := json.Marshal(op)
	replies, err := cn.op(ctx, body)
	if err != nil {
		return err
	}
	for i := range replies {
		if m := &replies[i]; m.Type == TypeError {
			c.reportError(c.refuse(m))
		}
	}
	return nil
}

// serve reads cn until it ends and returns why: a *CloseError when the
// server sent close, else the read error.
func (c *Client) serve(cn conn, rest []Message) error {
	stop := context.AfterFunc(c.life, cn.close)
	defer stop()
	if err := c.handle(rest); err != nil {
		return err
	}
	for {
		msgs, err := cn.read()
		if err != nil {
			return err
		}
		if err := c.handle(msgs); err != nil {
			return err
		}
	}
}

// handle acts on the messages of one frame; replies to waiting ops are
// delivered once the whole frame is read, so that a subscribe's errors
// that ride with its ack reach the caller too.
func (c *Client) handle(msgs []Message) error {
	var replies map[int64][]Message
	var end error
	counted := 0
	defer func() {
		c.mu.Lock()
		c.count += uint64(counted)
		c.mu.Unlock()
	}()
	for i := range msgs {
		m := &msgs[i]
		if m.Type != TypeHeartbeat {
			counted++
		}
		if c.cfg.onMessage != nil {
			c.cfg.onMessage(*m)
		}
		switch m.Type {
		case TypeSnapshot, TypeUpdate:
			c.data(m)
		case TypeSubscribed, TypeUnsubscribed, TypePong, TypeError:
			if id := m.opID(); id >= 0 && c.waiting(id) {
				if replies == nil {
					replies = make(map[int64][]Message)
				}
				replies[id] = append(replies[id], *m)
			} else if m.Type == TypeError {
				c.reportError(c.refuse(m))
			}
		case TypeClose:
			end = &CloseError{Code: m.Code, Message: m.Text}
		}
		if end != nil {
			break
		}
	}
	if replies != nil {
		c.mu.Lock()
		for id, ms := range replies {
			if w := c.waiters[id]; w != nil {
				w <- ms
				delete(c.waiters, id)
			}
		}
		c.mu.Unlock()
	}
	return end
}

func (c *Client) waiting(id int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiters[id] != nil
}

// data merges a snapshot or update into the book, unless its symbol is no
// longer subscribed, and reports the change.
func (c *Client) data(m *Message) {
	c.mu.Lock()
	var ch *Change
	if c.subs.has(m.Symbol) {
		ch = c.book.apply(m, time.Now())
	}
	c.mu.Unlock()
	if ch != nil && c.cfg.onChange != nil {
		c.cfg.onChange(*ch)
	}
}
