package stream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tickerd/conflate"
	"tickerd/internal/sockstat"
)

// Source is what sessions read: the conflating cache.
type Source interface {
	Watch(h *conflate.Watch, symbol string, w conflate.Watcher)
	Get(symbol string) *conflate.Entry
	Symbols() []string
}

// Config tunes a Server. Zero fields take the defaults named.
type Config struct {
	// MaxHz is the ceiling on messages per symbol per second per session,
	// and the rate of subscriptions that name none. Default 20.
	MaxHz float64
	// Heartbeat is the idle time after which a heartbeat is sent. Default 15s.
	Heartbeat time.Duration
	// StallTimeout closes a session whose write makes no progress this
	// long. Default 30s.
	StallTimeout time.Duration
	// MaxConnAge ends streaming connections cleanly at this age. Default 10m.
	MaxConnAge time.Duration
	// MaxSymbols is the most symbols one session may subscribe. Default 1000.
	MaxSymbols int
	// Retention is how long a closed session can be resumed. Default 60s.
	Retention time.Duration
	// AllowedOrigins lists the browser Origins allowed on WebSocket and
	// SSE. Empty means any origin (open mode: no authentication yet).
	AllowedOrigins []string
	// Registerer receives the metrics. Nil means a private registry.
	Registerer prometheus.Registerer
	// MaxSessionBPS caps the bytes per second written to one session,
	// averaged over its writes (0 = no cap): a session over it waits
	// longer between writes, and its news is conflated meanwhile.
	MaxSessionBPS int64
	// PacingMaxGap bounds the gap the pacer may put between two data
	// writes of a session when the server falls behind (pacer.go).
	// 0 means DefaultPacingMaxGap; negative turns pacing off.
	PacingMaxGap time.Duration
	// StreamPadding is the size of the padding block SSE and NDJSON
	// streams open with, unless the request asks otherwise (?pad=N); 0
	// means none.
	StreamPadding int
	// WSDeflateMaxSessions bounds the WebSocket sessions that get
	// permessage-deflate when they offer it (0: none).
	WSDeflateMaxSessions int
	// NoCompression turns off gzip on the HTTP transports.
	NoCompression bool
	// Auth checks credentials and entitlements (an entitlements.Store).
	// Nil is open mode: no credential is asked for and every symbol is
	// realtime.
	Auth Entitler
	// Delayed is the delayed tier's source: the cache as it was Delay ago.
	// Nil means no delayed tier: symbols a user may only see delayed are
	// not_entitled.
	Delayed Source
	// Delay is the delayed tier's delay, for the delivery latency metric.
	Delay time.Duration
	// AuthTimeout is how long a WebSocket client without a credential has
	// to send its auth op. Default 10s.
	AuthTimeout time.Duration
	// MaxOpRate bounds a session's client ops per second (subscribe
	// storms get limit_exceeded); bursts of twice as many pass. Default 20.
	MaxOpRate float64
	// MaxOpSymbols is the most symbols one subscribe or unsubscribe op may
	// name. Default 1000.
	MaxOpSymbols int
	// MaxMessageBytes is the largest client message (WebSocket message or
	// session op body). Default MaxOpBytes (64 KiB); at most 1 MiB.
	MaxMessageBytes int
	// AdminKey is the bearer key of the /v1/admin endpoints; empty means
	// loopback peers only.
	AdminKey string
	// Log is the logger. Nil means slog.Default().
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxHz <= 0 {
		c.MaxHz = 20
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.MaxConnAge <= 0 {
		c.MaxConnAge = 10 * time.Minute
	}
	if c.MaxSymbols <= 0 {
		c.MaxSymbols = 1000
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.MaxOpRate <= 0 {
		c.MaxOpRate = 20
	}
	if c.MaxOpSymbols <= 0 {
		c.MaxOpSymbols = 1000
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = MaxOpBytes
	}
	c.MaxMessageBytes = min(c.MaxMessageBytes, maxParseBytes)
	if c.PacingMaxGap == 0 {
		c.PacingMaxGap = DefaultPacingMaxGap
	} else if c.PacingMaxGap < 0 {
		c.PacingMaxGap = 0
	}
	if c.Retention <= 0 {
		c.Retention = 60 * time.Second
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// maxRetained bounds the closed sessions kept for resume.
const maxRetained = 100_000

// Server owns every session and serves the streaming and REST endpoints.
// Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	src Source
	m   *metrics
	log *slog.Logger

	mu       sync.Mutex
	closing  bool
	sessions map[string]*Session // open, by id
	live     map[string]*Session // open, by resume token
	retained map[string]retained // closed, by resume token
	// userConns counts each user's open sessions (Limits.Connections).
	userConns map[string]int
	wg        sync.WaitGroup // one per open session, plus the janitor
	quit      chan struct{}
	drivers   *drivers
	pace      *pacer
	// deflating counts the WebSocket sessions with permessage-deflate.
	deflating atomic.Int64
}

type retained struct {
	id      string
	user    string // whose session it was: only they may resume it
	specs   []subSpec
	expires time.Time
	events  uint64 // messages the session had written
	// confirmed is how many of them the client surely has (resume.go).
	confirmed uint64
}

type connKey struct{}

// ConnContext is meant for http.Server.ConnContext: it gives the HTTP
// streaming sessions (SSE, NDJSON) their socket, whose send queue tells
// how fast the client reads (adaptive rate, drain.go). Without it they
// judge their client by how long writes take.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// NewServer returns a server reading src. Call Shutdown to end it.
func NewServer(src Source, cfg Config) *Server {
	cfg.setDefaults()
	pace := newPacer(cfg.PacingMaxGap)
	srv := &Server{
		cfg: cfg, src: src, m: newMetrics(cfg.Registerer, pace), log: cfg.Log, pace: pace,
		sessions:  make(map[string]*Session),
		live:      make(map[string]*Session),
		retained:  make(map[string]retained),
		userConns: make(map[string]int),
		quit:      make(chan struct{}),
	}
	srv.drivers = newDrivers(srv.quit)
	cfg.Registerer.MustRegister(newRateCollector(srv))
	srv.wg.Add(1)
	go srv.janitor()
	return srv
}

// Register adds the streaming and REST routes to mux.
func (srv *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/ws", srv.serveWS)
	mux.Handle("GET /v1/sse", srv.cors(srv.serveSSE))
	mux.Handle("GET /v1/stream", srv.cors(srv.serveNDJSON))
	mux.Handle("GET /v1/poll", srv.cors(srv.servePoll))
	mux.Handle("POST /v1/sessions/{id}", srv.cors(srv.serveSessionOp))
	mux.Handle("GET /v1/snapshot", srv.cors(srv.serveSnapshot))
	mux.Handle("GET /v1/symbols", srv.cors(srv.serveSymbols))
	mux.HandleFunc("OPTIONS /v1/{path...}", srv.servePreflight)
	mux.HandleFunc("GET /v1/admin/sessions", srv.serveAdminSessions)
	mux.HandleFunc("POST /v1/admin/reload", srv.serveAdminReload)
}

// cors lets browser pages of allowed origins (-allowed-origins; any when
// empty) read h's answers, and refuses other origins with 403: EventSource
// and fetch from another origin need Access-Control-Allow-Origin, and a
// session op from a page the streams would refuse must be refused too.
// Requests without Origin (programs) pass untouched.
func (srv *Server) cors(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" {
			if !srv.originAllowed(r) {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
		}
		h(w, r)
	})
}

// servePreflight answers CORS preflights (a cross-origin POST of JSON, or a
// request with an Authorization header) for allowed origins.
func (srv *Server) servePreflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !srv.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// Sessions returns the number of open sessions.
func (srv *Server) Sessions() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.sessions)
}

// Shutdown stops accepting sessions, tells every open session to close with
// "shutdown", and waits for them to finish or ctx to end. Safe to call
// more than once.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	if !srv.closing {
		srv.closing = true
		close(srv.quit)
	}
	var polls []*Session
	for _, s := range srv.sessions {
		s.stopWith(CloseShutdown, "server shutting down")
		if s.poll != nil {
			polls = append(polls, s)
		}
	}
	srv.mu.Unlock()
	done := make(chan struct{})
	go func() {
		srv.closePolls(polls)
		srv.wg.Wait()         // sessions ended: nothing kicks a drive any more
		srv.drivers.wg.Wait() // and the drive goroutines have seen quit
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errClosing = errors.New("stream: server shutting down")

// pollShutdownGrace is how long a long-poll session with no poll in
// progress is given to poll again and read its close message.
const pollShutdownGrace = 2 * time.Second

// closePolls gives idle long-poll sessions pollShutdownGrace to take their
// close message, then ends those that did not come back.
func (srv *Server) closePolls(polls []*Session) {
	deadline := time.Now().Add(pollShutdownGrace)
	for len(polls) > 0 && time.Now().Before(deadline) {
		polls = slices.DeleteFunc(polls, func(s *Session) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.poll.done
		})
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range polls {
		srv.reapPoll(s, time.Now(), true)
	}
}

func (srv *Server) isClosing() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.closing
}

// newSession returns a session that is not yet admitted: the transport
// can attach itself (kick) before any subscription can notify it.
func (srv *Server) newSession(transport string) *Session {
	now := time.Now()
	return &Session{
		transport: transport, tm: srv.m.byTransport[transport], srv: srv, created: now, lastWrite: now,
		wake:      make(chan struct{}, 1),
		ctrlSpace: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		finished:  make(chan struct{}),
	}
}

// admit registers s, reviving the retained session named by a resume
// token (its id, token and subscriptions) if it was the same user's. The
// caller must end it with finish. It fails while shutting down, and for
// a user at its connection limit (errUserLimit). It returns the errors of
// resumed symbols no longer entitled, for the caller to queue.
func (srv *Server) admit(s *Session, resumeToken string) ([][]byte, error) {
	who := s.userName()
	srv.mu.Lock()
	if srv.closing {
		srv.mu.Unlock()
		return nil, errClosing
	}
	if old := srv.live[resumeToken]; old != nil && resumeToken != "" && old.userName() == who {
		// The client came back before its old connection was seen to die
		// (or opened a second one): the newer connection takes over.
		srv.mu.Unlock()
		old.stopWith(CloseReplaced, "session resumed by a newer connection")
		if old.poll != nil {
			srv.reapPoll(old, time.Now(), true)
		}
		select {
		case <-old.finished:
		case <-time.After(2 * closeGrace):
		}
		srv.mu.Lock()
		if srv.closing {
			srv.mu.Unlock()
			return nil, errClosing
		}
	}
	if err := srv.claimLocked(s, s.who.Load()); err != nil {
		srv.mu.Unlock()
		return nil, err
	}
	var specs []subSpec
	if r, ok := srv.retained[resumeToken]; ok && resumeToken != "" && r.user == who {
		delete(srv.retained, resumeToken)
		if time.Now().Before(r.expires) && srv.sessions[r.id] == nil {
			s.id, s.resume, specs = r.id, resumeToken, r.specs
			s.disclosed = true // the client holds the token
			// Numbering goes on from the old connection's count.
			s.events, s.confirmed = r.events, r.confirmed
			if s.resumeFrom > s.confirmed && s.resumeFrom <= r.events {
				s.confirmed = s.resumeFrom
			}
		}
	}
	if s.id == "" {
		s.id, s.resume = newID(), newID()
	}
	srv.sessions[s.id] = s
	srv.live[s.resume] = s
	srv.wg.Add(1)
	srv.mu.Unlock()

	s.tm.sessions.Inc()
	s.tm.opened.Inc()
	srv.log.Debug("session opened", "session", s.id, "transport", s.transport, "user", who, "resumed", specs != nil)
	return s.restore(specs, s.confirmed), nil
}

// finish unregisters a session; unless it ended for a reason that forbids
// it (shutdown ends the process), it is kept for resume.
func (srv *Server) finish(s *Session, code string) {
	specs, confirmed := s.release()
	if s.authWait != nil {
		s.authWait.Stop()
	}
	srv.mu.Lock()
	delete(srv.sessions, s.id)
	delete(srv.live, s.resume)
	user := s.user
	srv.releaseLocked(s)
	// A session whose token the client never got (WebSocket) cannot be
	// resumed: it is not kept.
	if s.disclosed && code != CloseShutdown && code != CloseRevoked && code != CloseUnauthorized && len(srv.retained) < maxRetained {
		srv.retained[s.resume] = retained{id: s.id, user: user, specs: specs, expires: time.Now().Add(srv.cfg.Retention),
			events: s.events, confirmed: confirmed}
	}
	srv.mu.Unlock()
	s.tm.sessions.Dec()
	srv.log.Debug("session closed", "session", s.id, "transport", s.transport, "code", code,
		"age", time.Since(s.created).Round(time.Millisecond), "messages", s.events)
	close(s.finished)
	srv.wg.Done()
}

// janitor drops expired retained sessions.
func (srv *Server) janitor() {
	defer srv.wg.Done()
	tick := min(srv.cfg.Retention/4, 5*time.Second)
	if srv.cfg.Auth != nil {
		tick = min(tick, time.Second) // token expiry
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-srv.quit:
			return
		case now := <-t.C:
			var polls []*Session
			srv.mu.Lock()
			for tok, r := range srv.retained {
				if now.After(r.expires) {
					delete(srv.retained, tok)
				}
			}
			for _, s := range srv.sessions {
				if s.poll != nil {
					polls = append(polls, s)
				}
			}
			srv.mu.Unlock()
			for _, s := range polls {
				srv.reapPoll(s, now, false)
			}
			if srv.cfg.Auth != nil {
				srv.expire(now)
			}
		}
	}
}

func (srv *Server) session(id string) *Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.sessions[id]
}

// clampHz returns the effective rate of a subscription asking for hz.
func (srv *Server) clampHz(hz float64) float64 {
	if hz <= 0 || hz > srv.cfg.MaxHz {
		return srv.cfg.MaxHz
	}
	return hz
}

// errorReply encodes an error message and counts it.
func (srv *Server) errorReply(id json.RawMessage, code, symbol, msg string) []byte {
	srv.m.clientError(code)
	return encodeError(id, code, symbol, msg)
}

// opErrorReply turns a parse failure into its error message.
func (srv *Server) opErrorReply(err error) []byte {
	var oe *OpError
	if errors.As(err, &oe) {
		return srv.errorReply(oe.ID, CodeBadRequest, "", oe.Msg)
	}
	return srv.errorReply(nil, CodeBadRequest, "", err.Error())
}

// begin admits s for a GET request and queues its first messages: the
// session message (when hello is set) and the replies to the subscription
// named by the query (held until the client authenticates, for a
// WebSocket that connected without a credential). It fails while shutting
// down and for a user at its connection limit (errUserLimit).
func (srv *Server) begin(r *http.Request, s *Session, resume string, hello bool) error {
	s.remote = r.RemoteAddr
	s.disclosed = hello // the session message carries the token
	if token, n, ok := strings.Cut(resume, "."); ok {
		// TOKEN.N: the client has processed N messages of the session.
		resume = token
		if v, err := strconv.ParseUint(n, 10, 64); err == nil {
			s.resumeFrom = max(s.resumeFrom, v)
		}
	}
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok && s.drain.q == nil && s.poll == nil {
		s.drain.q = sockstat.For(c)
	}
	if s.drain.q != nil {
		_ = s.drain.q.LimitUnsent(maxUnsent)
	}
	refused, err := srv.admit(s, resume)
	if err != nil {
		return err
	}
	if hello {
		s.enqueue(encodeSession(s.id, s.resume))
	}
	s.enqueue(refused...)
	q := r.URL.Query()
	op, err := initialOp(q.Get("symbols"), q.Get("fields"), q.Get("maxHz"))
	switch {
	case err != nil:
		s.enqueue(srv.opErrorReply(err))
	case op != nil && srv.cfg.Auth != nil && s.who.Load() == nil:
		s.mu.Lock()
		s.early = op
		s.mu.Unlock()
	case op != nil:
		s.enqueue(s.apply(op)...)
	}
	return nil
}

// beginHTTP is begin for the HTTP streaming transports: it checks the
// Origin and answers the request itself when no session can start.
func (srv *Server) beginHTTP(w http.ResponseWriter, r *http.Request, transport, resume string) *Session {
	return srv.beginHTTPFrom(w, r, transport, resume, 0)
}

// beginHTTPFrom is beginHTTP for a client that says how many messages of
// the resumed session it has (SSE Last-Event-ID).
func (srv *Server) beginHTTPFrom(w http.ResponseWriter, r *http.Request, transport, resume string, lastEvent uint64) *Session {
	if !srv.originAllowed(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return nil
	}
	s := srv.newSession(transport)
	s.resumeFrom = lastEvent
	if !srv.beginAuthorized(w, r, s, resume) {
		return nil
	}
	return s
}

// beginAuthorized checks an HTTP request's credential and begins s with
// it; when s cannot start it answers the request itself (401, 429, 503).
func (srv *Server) beginAuthorized(w http.ResponseWriter, r *http.Request, s *Session, resume string) bool {
	p, cred, ok := srv.authRequest(w, r, false)
	if !ok {
		return false
	}
	s.setIdentity(p, cred)
	switch err := srv.begin(r, s, resume, true); {
	case errors.Is(err, errUserLimit):
		srv.refuseUserLimit(w)
		return false
	case err != nil:
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return false
	}
	return true
}

// originAllowed checks a browser's Origin against the allow-list; with
// no list, pages of the server's own host pass, and any page in open
// mode. Requests without Origin (non-browser clients) pass.
func (srv *Server) originAllowed(r *http.Request) bool {
	if srv.originOK(r) {
		return true
	}
	srv.m.refused.WithLabelValues("origin").Inc()
	return false
}

func (srv *Server) originOK(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(srv.cfg.AllowedOrigins) == 0 && srv.cfg.Auth == nil {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range srv.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// newID returns a random URL-safe identifier (128 bits).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
