package client

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"tickerd/feed"
)

// Transport names one of the server's streaming transports.
type Transport int

// The transports, in the order of automatic fallback (NDJSON falls back to
// long-poll).
const (
	WebSocket Transport = iota // GET /v1/ws; ops are frames; no resume
	SSE                        // GET /v1/sse, ops by POST; resumes with Last-Event-ID
	NDJSON                     // GET /v1/stream, ops by POST; resumes with resume=TOKEN
	LongPoll                   // GET /v1/poll, ops by POST; resumes with resume=TOKEN
)

func (t Transport) String() string {
	switch t {
	case WebSocket:
		return "ws"
	case SSE:
		return "sse"
	case NDJSON:
		return "ndjson"
	case LongPoll:
		return "poll"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// chain returns the transports to try, t first, when fallback is on.
func (t Transport) chain(fallback bool) []Transport {
	if !fallback {
		return []Transport{t}
	}
	switch t {
	case WebSocket:
		return []Transport{WebSocket, SSE, LongPoll}
	case SSE, NDJSON:
		return []Transport{t, LongPoll}
	}
	return []Transport{t}
}

// config is what the options set. The zero value is not usable; see
// defaults.
type config struct {
	transport    Transport
	fallback     bool
	token        string
	tokenInQuery bool
	authOp       bool
	httpClient   *http.Client
	log          *slog.Logger
	backoffMin   time.Duration
	backoffMax   time.Duration
	idleTimeout  time.Duration
	pollWait     time.Duration
	maxMessage   int
	reconnect    bool
	initial      []subRequest
	onChange     func(Change)
	onMessage    func(Message)
	onState      func(State, error)
	onError      func(error)
}

func defaults() config {
	return config{
		transport:   WebSocket,
		backoffMin:  250 * time.Millisecond,
		backoffMax:  15 * time.Second,
		idleTimeout: 45 * time.Second,
		pollWait:    25 * time.Second,
		maxMessage:  64 << 20,
		reconnect:   true,
		log:         slog.New(slog.DiscardHandler),
	}
}

// An Option configures Dial.
type Option func(*config)

// WithTransport picks the transport. Default WebSocket.
func WithTransport(t Transport) Option { return func(c *config) { c.transport = t } }

// WithFallback turns on automatic fallback: when the transport cannot
// connect or the server refuses it, the next one is tried at once
// (WebSocket → SSE → long-poll; NDJSON → long-poll). A transport that
// worked is kept for reconnects until it fails too. Default off.
func WithFallback() Option { return func(c *config) { c.fallback = true } }

// WithToken sets the credential: sent as "Authorization: Bearer TOKEN" on
// every request and WebSocket handshake. Default none. The token is never
// logged.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithTokenInQuery sends the WithToken credential as ?token= on the
// streaming GETs instead of the header (for intermediaries that strip
// Authorization). Ops sent by POST keep the header. Default off.
func WithTokenInQuery() Option { return func(c *config) { c.tokenInQuery = true } }

// WithAuthOp presents the WithToken credential on WebSocket connections
// with an auth op, first thing after the handshake, instead of the header;
// the subscriptions then follow as ops. Other transports are unaffected.
// Default off.
func WithAuthOp() Option { return func(c *config) { c.authOp = true } }

// WithHTTPClient sets the client for the HTTP transports, ops and REST
// calls. It must not time out whole requests (streams last minutes); the
// client bounds each long-poll itself. Default: a keep-alive client of the
// Client's own, whose idle connections Close ends.
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithLogger sets the logger for connection events and server errors.
// Default: none (nothing is logged).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithBackoff bounds the wait between reconnect attempts: the first waits
// about min, each further one twice as long, up to max, each with random
// jitter (between half and all of it). Defaults 250ms and 15s.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) {
		if min > 0 {
			c.backoffMin = min
		}
		if max >= c.backoffMin {
			c.backoffMax = max
		}
	}
}

// WithIdleTimeout sets how long a stream may stay silent (no message, no
// heartbeat) before it is taken for dead and replaced. It should exceed
// the server's heartbeat interval (-heartbeat, 15s). Default 45s.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.idleTimeout = d
		}
	}
}

// WithPollWait sets the wait parameter of long-polls: how long the server
// holds a poll when there is no news (at most 60s). Default 25s.
func WithPollWait(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.pollWait = min(d, 60*time.Second)
		}
	}
}

// WithMaxMessageSize bounds one frame, line or event read from the server;
// a larger one ends the connection. Default 64 MiB.
func WithMaxMessageSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxMessage = n
		}
	}
}

// WithoutReconnect makes the Client stop (state Closed, Err set) when its
// first connection ends, for whatever reason, instead of reconnecting.
func WithoutReconnect() Option { return func(c *config) { c.reconnect = false } }

// WithSubscription subscribes symbols as part of connecting, with the
// given fields and rate; it may be repeated. On the HTTP transports the
// first such group (up to 500 symbols) rides in the stream's URL, saving a
// round trip; the rest follow as ops. Equivalent to Subscribe after Dial
// otherwise.
func WithSubscription(symbols []string, opts ...SubOption) Option {
	return func(c *config) {
		c.initial = append(c.initial, newSubRequest(symbols, opts))
	}
}

// OnChange sets a callback for every change to a local record, called on
// the goroutine that reads the connection, in the order changes arrive.
// It must be quick and must not call Close, Subscribe or Unsubscribe (on
// WebSocket their replies are read by the goroutine running the callback;
// call them from another goroutine): while it runs nothing is read,
// the server conflates meanwhile, and a callback that blocks for the
// server's stall timeout (30s) gets the connection closed (then resumed).
func OnChange(fn func(Change)) Option { return func(c *config) { c.onChange = fn } }

// OnMessage sets a callback for every message read from the stream, before
// the Client acts on it: data, acks that come on the stream, errors,
// heartbeats, session and close messages. Replies to ops sent by POST do
// not pass through it. It runs on the reading goroutine, with OnChange's
// restrictions. A message's Fields map must not be modified.
func OnMessage(fn func(Message)) Option { return func(c *config) { c.onMessage = fn } }

// OnState sets a callback for connection state changes; err is why the
// previous connection ended (Reconnecting) or why the Client stopped
// (Closed; nil after Close). Called from the Client's connecting goroutine
// (from Dial's for the first connection); it must not call Close.
func OnState(fn func(State, error)) Option { return func(c *config) { c.onState = fn } }

// OnError sets a callback for server error messages that no call is
// waiting for (*ServerError): refused symbols of WithSubscription or of a
// re-subscription, a symbol whose entitlement was revoked. Each such
// symbol is dropped from the subscriptions. Default: they are only logged.
// It runs on the Client's goroutines, one call at a time, with OnChange's
// restrictions.
func OnError(fn func(error)) Option { return func(c *config) { c.onError = fn } }

// SubOption tunes one Subscribe call.
type SubOption func(*subRequest)

// Fields limits a subscription to these field names (bid, ask, last, ...).
// Default: all fields.
func Fields(names ...string) SubOption {
	return func(r *subRequest) { r.spec.fields = names }
}

// MaxHz caps the messages per second for each symbol of a subscription
// (fractions allowed: 0.5 is one message every 2 s). Default 0: the
// server's ceiling (-max-hz, 20); higher values are clamped to it.
func MaxHz(hz float64) SubOption {
	return func(r *subRequest) { r.spec.maxHz = hz }
}

// subRequest is one subscription request: symbols and their spec.
type subRequest struct {
	symbols []string
	spec    subSpec
}

func newSubRequest(symbols []string, opts []SubOption) subRequest {
	r := subRequest{symbols: symbols}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// check validates what the server would reject for the whole op.
func (r *subRequest) check() error {
	if len(r.symbols) == 0 {
		return fmt.Errorf("client: no symbols")
	}
	for _, f := range r.spec.fields {
		if _, ok := feed.ParseField(f); !ok {
			return fmt.Errorf("client: unknown field %q", f)
		}
	}
	if hz := r.spec.maxHz; hz < 0 || math.IsNaN(hz) || math.IsInf(hz, 0) {
		return fmt.Errorf("client: maxHz %v: want a finite number ≥ 0", hz)
	}
	return nil
}
