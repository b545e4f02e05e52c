package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// State is a Client's connection state.
type State int32

// The states, in the order a Client goes through them.
const (
	Connecting   State = iota // Dial is making the first connection
	Connected                 // a connection is up and subscribed
	Reconnecting              // the connection ended; backing off and retrying
	Closed                    // stopped for good: Close, or a final error
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Client is a connection to a tickerd server that keeps subscribed
// symbols' records up to date, reconnecting as needed. Its methods are
// safe for concurrent use. It owns two goroutines (the reader, which also
// reconnects, and the Changes pump) until it stops.
type Client struct {
	cfg     config
	base    *url.URL
	hc      *http.Client
	ownHC   bool
	log     *slog.Logger
	book    *book
	life    context.Context // ends when the Client stops
	stop    context.CancelFunc
	wg      sync.WaitGroup
	done    chan struct{}
	changes chan Change

	mu      sync.Mutex
	state   State
	err     error
	subs    subscriptions
	offline map[string]bool // symbols whose subscription changed while no connection was ready
	conn    conn            // the ready connection; nil between connections
	session string          // server session id ("" on WebSocket)
	token   string          // its resume token
	eventID string          // SSE: the last event id of session
	// count is the messages of the session processed so far (heartbeats
	// aside, the session message included): resume=TOKEN.N tells the
	// server exactly what this client has.
	count    uint64
	nextID   int64
	waiters  map[int64]chan []Message // WebSocket ops awaiting their replies
	chainAt  int                      // where in the fallback chain to start
	current  Transport
	attempts int // failed connection attempts since the last one that lasted
}

// newClient checks the base URL and options; the Client is not connected.
func newClient(baseURL string, opts []Option) (*Client, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("client: bad base URL %q: want http://host:port", baseURL)
	}
	base.RawQuery, base.Fragment = "", ""
	for i := range cfg.initial {
		if err := cfg.initial[i].check(); err != nil {
			return nil, err
		}
	}
	c := &Client{
		cfg: cfg, base: base, hc: cfg.httpClient, log: cfg.log, book: newBook(),
		done: make(chan struct{}), changes: make(chan Change),
		offline: make(map[string]bool), waiters: make(map[int64]chan []Message),
		current: cfg.transport,
	}
	if c.hc == nil {
		c.hc, c.ownHC = newHTTPClient(), true
	}
	c.life, c.stop = context.WithCancel(context.Background())
	return c, nil
}

func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// Dial connects to the tickerd server at baseURL ("http://127.0.0.1:8080")
// and makes the subscriptions of WithSubscription. It returns once the
// first connection is up (state Connected), or an error if no transport
// could connect: Dial does not retry; the Client reconnects only after a
// first success. ctx bounds the dial only, not the Client's life: the
// Client runs until Close or a final error (see Err).
func Dial(ctx context.Context, baseURL string, opts ...Option) (*Client, error) {
	c, err := newClient(baseURL, opts)
	if err != nil {
		return nil, err
	}
	for _, r := range c.cfg.initial {
		c.subs.add(r.symbols, r.spec)
	}
	c.setState(Connecting, nil)
	cn, hello, rest, tg, err := c.connect(ctx)
	if err == nil {
		if err = c.establish(ctx, cn, hello, tg); err != nil {
			cn.close()
		}
	}
	if err != nil {
		c.stop()
		c.closeIdle()
		return nil, err
	}
	c.setState(Connected, nil)
	c.wg.Add(2)
	go c.run(cn, rest)
	go c.pump()
	go func() { // ends with the two above; Close waits for it
		c.wg.Wait()
		close(c.changes)
		close(c.done)
	}()
	return c, nil
}

// Close stops the Client: it ends the connection and every goroutine of
// the Client, and returns once they are gone. Safe to call more than once;
// it must not be called from a callback.
func (c *Client) Close() error {
	c.stop()
	<-c.done
	return nil
}

// Done returns a channel closed once the Client has stopped (Close, or a
// final error such as a revoked credential) and its goroutines are gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the Client stopped: nil while it runs, ErrClosed after
// Close, else the final error (a *CloseError with code revoked or
// unauthorized, an *HTTPError 401 on reconnecting, or with
// WithoutReconnect whatever ended the connection).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// State returns the connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Transport returns the transport of the current (or last) connection.
func (c *Client) Transport() Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Snapshot returns a copy of the local record of sym, if it has one.
func (c *Client) Snapshot(sym string) (Quote, bool) { return c.book.get(sym) }

// Symbols returns the symbols that have a local record, sorted.
func (c *Client) Symbols() []string { return c.book.symbols() }

// Subscribed returns the symbols subscribed (asked for and not refused),
// sorted; some may have no data yet.
func (c *Client) Subscribed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, c.subs.len())
	for sym := range c.subs.bySym {
		out = append(out, sym)
	}
	slices.Sort(out)
	return out
}

// Latency summarizes the delivery latency of recent updates.
func (c *Client) Latency() Latency { return c.book.latency() }

// Changes returns a channel of changes to the local records. It never
// holds up reading: while its reader is slow, changes conflate per symbol
// (a symbol's pending change absorbs the next ones, so Fields holds each
// changed field's latest value), so at most one change per symbol waits.
// It is closed when the Client stops. A Client that nobody reads Changes
// from keeps at most one pending change per symbol.
func (c *Client) Changes() <-chan Change { return c.changes }

// Subscribe subscribes symbols, each with the options' fields and rate (a
// symbol already subscribed takes the new ones and gets a fresh
// snapshot). The subscription is remembered and made again on every new
// connection. With a connection up, Subscribe waits for the server's
// reply and returns the refused symbols as *ServerError values (joined);
// they are not subscribed. Between connections it returns nil at once and
// the subscription is made when the next connection is up. If ctx ends
// first it returns ctx.Err(), and the subscription is made at the latest
// on the next connection.
func (c *Client) Subscribe(ctx context.Context, symbols []string, opts ...SubOption) error {
	r := newSubRequest(symbols, opts)
	if err := r.check(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.subs.add(r.symbols, r.spec)
	c.mu.Unlock()
	return c.send(ctx, opMsg{Op: "subscribe", Symbols: r.symbols, Fields: r.spec.fields, MaxHz: r.spec.maxHz})
}

// Unsubscribe ends the subscription of symbols and drops their local
// records at once; nothing more is reported for them. Like Subscribe it
// waits for the server's reply when a connection is up.
func (c *Client) Unsubscribe(ctx context.Context, symbols ...string) error {
	if len(symbols) == 0 {
		return errors.New("client: no symbols")
	}
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.subs.remove(symbols)
	c.book.drop(symbols)
	c.mu.Unlock()
	return c.send(ctx, opMsg{Op: "unsubscribe", Symbols: symbols})
}

// opMsg is a client op.
type opMsg struct {
	Op      string   `json:"op"`
	ID      int64    `json:"id"`
	Symbols []string `json:"symbols,omitempty"`
	Fields  []string `json:"fields,omitempty"`
	MaxHz   float64  `json:"maxHz,omitempty"`
	Token   string   `json:"token,omitempty"`
}

// send carries out a caller's op on the ready connection, retrying on a
// newer one if the connection fails under it, or leaves it for the next
// connection.
func (c *Client) send(ctx context.Context, op opMsg) error {
	for {
		c.mu.Lock()
		cn := c.conn
		if cn == nil {
			c.markOfflineLocked(op.Symbols)
			c.mu.Unlock()
			return nil
		}
		op.ID = c.nextID
		c.nextID++
		var wait chan []Message
		if cn.transport() == WebSocket {
			wait = make(chan []Message, 1)
			c.waiters[op.ID] = wait
		}
		c.mu.Unlock()

		body, _ := json.Marshal(op)
		replies, err := cn.op(ctx, body)
		if err == nil && wait != nil {
			select {
			case r, ok := <-wait:
				replies = r
				if !ok {
					err = ErrStreamEnded
				}
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		c.mu.Lock()
		delete(c.waiters, op.ID)
		switch {
		case err == nil:
			c.mu.Unlock()
			return c.opResult(replies)
		case ctx.Err() != nil:
			c.markOfflineLocked(op.Symbols)
			c.mu.Unlock()
			return ctx.Err()
		case c.conn != nil && c.conn != cn:
			c.mu.Unlock()
			continue // a new connection came up meanwhile: use it
		}
		c.markOfflineLocked(op.Symbols)
		c.mu.Unlock()
		c.log.Debug("op left for the next connection", "op", op.Op, "err", err)
		return nil
	}
}

func (c *Client) markOfflineLocked(syms []string) {
	for _, s := range syms {
		c.offline[s] = true
	}
}

// opResult turns the replies to a caller's op into its error: one
// *ServerError per refused symbol or for the whole op.
func (c *Client) opResult(replies []Message) error {
	var errs []error
	for i := range replies {
		if m := &replies[i]; m.Type == TypeError {
			errs = append(errs, c.refuse(m))
		}
	}
	return errors.Join(errs...)
}

// refuse handles an error message: a symbol it names is dropped from the
// subscriptions and the local records.
func (c *Client) refuse(m *Message) *ServerError {
	if m.Symbol != "" {
		c.mu.Lock()
		c.subs.remove([]string{m.Symbol})
		c.book.drop([]string{m.Symbol})
		c.mu.Unlock()
	}
	return &ServerError{Code: m.Code, Symbol: m.Symbol, Message: m.Text}
}

// reportError hands an error nobody waits for to OnError, or the log.
func (c *Client) reportError(err *ServerError) {
	if c.cfg.onError != nil {
		c.cfg.onError(err)
		return
	}
	c.log.Warn("server error", "code", err.Code, "symbol", err.Symbol, "message", err.Message)
}

func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
	if c.cfg.onState != nil {
		c.cfg.onState(s, err)
	}
}

func (c *Client) setEventID(session, id string) {
	c.mu.Lock()
	if c.session == session {
		c.eventID = id
	}
	c.mu.Unlock()
}

func (c *Client) closeIdle() {
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
}

// pump feeds the Changes channel from the book's conflated pending set.
func (c *Client) pump() {
	defer c.wg.Done()
	for {
		select {
		case <-c.book.wake:
		case <-c.life.Done():
			return
		}
		for {
			ch, ok := c.book.next()
			if !ok {
				break
			}
			select {
			case c.changes <- ch:
			case <-c.life.Done():
				return
			}
		}
	}
}

// backoff returns the wait before retry attempt n (0 first): exponential
// from backoffMin up to backoffMax, jittered to between half and all of it.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.backoffMin
	for i := 0; i < n && d < c.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.backoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until the Client stops; it reports whether it slept.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.life.Done():
		return false
	}
}
