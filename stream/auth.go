package stream

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"tickerd/entitlements"
	"tickerd/feed"
)

// Entitler is what the server asks about credentials (an
// entitlements.Store). Authenticate resolves a bearer credential to whom
// it names and what they may see; Reload reads the entitlements again, a
// bad file keeping the previous ones in force.
type Entitler interface {
	Authenticate(cred string, now time.Time) (*entitlements.Principal, error)
	Reload() error
}

// CloseLimitExceeded ends a WebSocket session whose auth op named a user
// already at its connection limit (an extension of the contract's codes;
// other transports get 429 before any session starts).
const CloseLimitExceeded = "limit_exceeded"

var (
	errUserLimit = errors.New("stream: user at its connection limit")
	errOpenMode  = errors.New("no -auth file: the server is in open mode")
)

// credential returns the bearer credential of r: its Authorization
// header, else its token parameter (EventSource cannot set headers).
// present is set when r carries an Authorization header at all, even one
// that is not a bearer credential.
func credential(r *http.Request) (cred string, present bool) {
	if tok, ok := feed.BearerToken(r); ok {
		return tok, true
	}
	if r.Header.Get("Authorization") != "" {
		return "", true
	}
	tok := r.URL.Query().Get("token")
	return tok, tok != ""
}

// authRequest checks the credential of a request that starts a session or
// reads data. In open mode it passes everything (nil principal). A request
// without a credential passes only if allowMissing (a WebSocket may send
// an auth op later); a bad one gets 401 at once.
func (srv *Server) authRequest(w http.ResponseWriter, r *http.Request, allowMissing bool) (p *entitlements.Principal, cred string, ok bool) {
	if srv.cfg.Auth == nil {
		return nil, "", true
	}
	cred, present := credential(r)
	if !present {
		if allowMissing {
			return nil, "", true
		}
		srv.m.authFailures.WithLabelValues("missing").Inc()
		unauthorized(w, "missing credential: send Authorization: Bearer TOKEN or ?token=")
		return nil, "", false
	}
	p, err := srv.cfg.Auth.Authenticate(cred, time.Now())
	if err != nil || cred == "" {
		msg := srv.authFailed(err)
		unauthorized(w, msg)
		return nil, "", false
	}
	return p, cred, true
}

// authFailed counts a refused credential and returns what to tell the
// client. The credential itself is never logged or echoed.
func (srv *Server) authFailed(err error) string {
	if errors.Is(err, entitlements.ErrExpired) {
		srv.m.authFailures.WithLabelValues("expired").Inc()
		return "token expired"
	}
	srv.m.authFailures.WithLabelValues("invalid").Inc()
	return "invalid credential"
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="tickerd"`)
	writeJSONError(w, http.StatusUnauthorized, msg)
}

// refuseUserLimit answers a request over its user's connection limit.
func (srv *Server) refuseUserLimit(w http.ResponseWriter) {
	srv.m.refused.WithLabelValues("user_limit").Inc()
	srv.m.clientError(CodeLimitExceeded)
	w.Header().Set("Retry-After", "5")
	writeJSONError(w, http.StatusTooManyRequests, "limit_exceeded: this user has as many connections open as it may")
}

// tierOf returns how p may see sym: realtime for everyone in open mode;
// never delayed without a delayed source.
func (srv *Server) tierOf(p *entitlements.Principal, sym string) entitlements.Tier {
	if srv.cfg.Auth == nil {
		return entitlements.Realtime
	}
	if p == nil {
		return entitlements.None
	}
	t := p.Tier(sym)
	if t == entitlements.Delayed && srv.cfg.Delayed == nil {
		return entitlements.None
	}
	return t
}

// source returns the cache a subscription of the tier reads.
func (srv *Server) source(delayed bool) Source {
	if delayed {
		return srv.cfg.Delayed
	}
	return srv.src
}

// atUserLimit reports whether p's user may open no more sessions.
func (srv *Server) atUserLimit(p *entitlements.Principal) bool {
	if p == nil || p.Limits.Connections <= 0 {
		return false
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.userConns[p.Name] >= p.Limits.Connections
}

// claimLocked counts s against its user's connection limit. srv.mu must
// be held.
func (srv *Server) claimLocked(s *Session, p *entitlements.Principal) error {
	if p == nil || s.user != "" {
		return nil
	}
	if n := p.Limits.Connections; n > 0 && srv.userConns[p.Name] >= n {
		return errUserLimit
	}
	srv.userConns[p.Name]++
	s.user = p.Name
	return nil
}

// releaseLocked gives back s's place in its user's count. srv.mu must be
// held.
func (srv *Server) releaseLocked(s *Session) {
	if s.user == "" {
		return
	}
	if srv.userConns[s.user]--; srv.userConns[s.user] <= 0 {
		delete(srv.userConns, s.user)
	}
	s.user = ""
}

// userName is the name of the session's principal; "" in open mode or
// before its auth op.
func (s *Session) userName() string {
	if p := s.who.Load(); p != nil {
		return p.Name
	}
	return ""
}

// setIdentity makes p, named by cred, the session's principal and applies
// its limits.
func (s *Session) setIdentity(p *entitlements.Principal, cred string) {
	if p == nil {
		return
	}
	s.who.Store(p)
	s.mu.Lock()
	s.cred = cred
	s.applyLimitsLocked(p)
	s.mu.Unlock()
}

// applyLimitsLocked takes p's own limits (zero: the server's). s.mu must
// be held.
func (s *Session) applyLimitsLocked(p *entitlements.Principal) {
	s.maxSyms = p.Limits.Symbols
	s.maxHz = p.Limits.MaxHz
	s.maxBPS.Store(p.Limits.BytesPerSec)
}

// maxSymbolsLocked is the most subscriptions the session may hold.
func (s *Session) maxSymbolsLocked() int {
	if m := s.maxSyms; m > 0 && m < s.srv.cfg.MaxSymbols {
		return m
	}
	return s.srv.cfg.MaxSymbols
}

// gapLocked is the least time between two messages of a subscription
// asking for hz messages per second.
func (s *Session) gapLocked(hz float64) time.Duration {
	hz = s.srv.clampHz(hz)
	if s.maxHz > 0 && hz > s.maxHz {
		hz = s.maxHz
	}
	return time.Duration(float64(time.Second) / hz)
}

// minGapLocked is the least gap the user's own rate limit allows.
func (s *Session) minGapLocked() time.Duration {
	if s.maxHz <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / s.maxHz)
}

// bpsCap is the session's bandwidth cap in bytes/s, 0 for none: the
// lower of the server's and the user's.
func (s *Session) bpsCap() int64 {
	srvCap, own := s.srv.cfg.MaxSessionBPS, s.maxBPS.Load()
	switch {
	case own <= 0:
		return srvCap
	case srvCap <= 0:
		return own
	}
	return min(srvCap, own)
}

// refuseSymbolsOp returns the error refusing a subscribe or unsubscribe
// op whole: before a WebSocket client authenticated, or naming more
// symbols than one op may; nil if the op may go on.
func (s *Session) refuseSymbolsOp(op *Op) [][]byte {
	srv := s.srv
	if srv.cfg.Auth != nil && s.who.Load() == nil {
		return [][]byte{srv.errorReply(op.ID, CodeUnauthorized, "", "authenticate first: send an auth op")}
	}
	if len(op.Symbols) > srv.cfg.MaxOpSymbols {
		return [][]byte{srv.errorReply(op.ID, CodeLimitExceeded, "",
			fmt.Sprintf("too many symbols in one op: at most %d", srv.cfg.MaxOpSymbols))}
	}
	return nil
}

// allowOp takes one token of the session's op rate limit.
func (s *Session) allowOp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		r := s.srv.cfg.MaxOpRate
		s.ops = rate.NewLimiter(rate.Limit(r), max(1, int(2*r)))
	}
	return s.ops.Allow()
}

// awaitAuth gives a WebSocket client without a credential
// Config.AuthTimeout to send its auth op, then closes it.
func (s *Session) awaitAuth() {
	s.authWait = time.AfterFunc(s.srv.cfg.AuthTimeout, func() {
		if s.who.Load() == nil {
			s.srv.m.authFailures.WithLabelValues("timeout").Inc()
			s.stopWith(CloseUnauthorized, fmt.Sprintf("no auth op within %v", s.srv.cfg.AuthTimeout))
		}
	})
}

// authOp carries out an auth op: the first one of a WebSocket session
// that connected without a credential, or a fresher token for the same
// user (before the old one expires). A bad credential ends the session;
// another user's is refused.
func (s *Session) authOp(op *Op) [][]byte {
	srv := s.srv
	if srv.cfg.Auth == nil {
		return [][]byte{encodeAuthenticated(op.ID, "")} // open mode: nothing to check
	}
	p, err := srv.cfg.Auth.Authenticate(op.Token, time.Now())
	if err != nil {
		s.enqueue(srv.errorReply(op.ID, CodeUnauthorized, "", srv.authFailed(err)))
		s.stopWith(CloseUnauthorized, "bad credential in auth op")
		return nil
	}
	prev := s.who.Load()
	if prev != nil && prev.Name != p.Name {
		return [][]byte{srv.errorReply(op.ID, CodeUnauthorized, "", "this session belongs to another user")}
	}
	if prev == nil {
		srv.mu.Lock()
		err := srv.claimLocked(s, p)
		srv.mu.Unlock()
		if err != nil {
			srv.m.refused.WithLabelValues("user_limit").Inc()
			s.enqueue(srv.errorReply(op.ID, CodeLimitExceeded, "", "this user has as many connections open as it may"))
			s.stopWith(CloseLimitExceeded, "connection limit of the user reached")
			return nil
		}
		if s.authWait != nil {
			s.authWait.Stop()
		}
	}
	s.setIdentity(p, op.Token)
	replies := [][]byte{encodeAuthenticated(op.ID, p.Name)}
	if prev != nil {
		s.retier(p) // the fresh token may name other groups
		return replies
	}
	s.mu.Lock()
	early := s.early
	s.early = nil
	s.mu.Unlock()
	if early != nil {
		replies = append(replies, s.subscribe(early)...)
	}
	return replies
}

// retier applies p, the session's principal after a reload or a fresher
// token: limits, and for each subscription its tier. A symbol no longer
// entitled gets not_entitled and stops at once; one whose tier changed
// switches source (a client moved to the delayed tier hears nothing of
// the symbol until the delayed data passes what it already has, so that
// seq never goes backwards).
func (s *Session) retier(p *entitlements.Principal) {
	srv := s.srv
	var errs [][]byte
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.applyLimitsLocked(p)
	minGap := s.minGapLocked()
	kept := s.subs[:0]
	for _, b := range s.subs {
		sym := b.symbol()
		t := srv.tierOf(p, sym)
		if t == entitlements.None {
			b.gone = true
			b.watch.Stop()
			errs = append(errs, srv.errorReply(nil, CodeNotEntitled, sym, "entitlement withdrawn"))
			srv.m.revocations.WithLabelValues("symbol").Inc()
			continue
		}
		if delayed := t == entitlements.Delayed; delayed != b.delayed {
			s.moveLocked(b, delayed)
			b.Notify()
		}
		b.gap = max(b.gap, minGap)
		kept = append(kept, b)
	}
	clear(s.subs[len(kept):])
	s.subs = kept
	s.mu.Unlock()
	s.enqueue(errs...)
}

// moveLocked switches b to the other tier's source. b.sent stays: both
// sources number a symbol's changes alike. s.mu must be held.
func (s *Session) moveLocked(b *sub, delayed bool) {
	sym := b.symbol()
	b.watch.Stop()
	s.srv.source(delayed).Watch(&b.watch, sym, b)
	b.delayed = delayed
}

// Reload reads the entitlements again (SIGHUP, POST /v1/admin/reload) and
// applies them to every open session at once: a user or key removed has
// its sessions closed with revoked, a symbol no longer entitled gets
// not_entitled and stops, a changed tier switches source. A bad file
// changes nothing and its error is returned.
func (srv *Server) Reload() error {
	if srv.cfg.Auth == nil {
		return errOpenMode
	}
	if err := srv.cfg.Auth.Reload(); err != nil {
		srv.m.reloads.WithLabelValues("error").Inc()
		srv.log.Error("entitlements reload failed; the previous ones stay in force", "err", err)
		return err
	}
	srv.m.reloads.WithLabelValues("ok").Inc()
	n := srv.reauthorize(time.Now())
	srv.log.Info("entitlements reloaded", "sessions", n)
	return nil
}

// reauthorize checks every open session's credential again and applies
// what it now grants; it returns the sessions checked. A credential
// shared by several sessions is checked once.
func (srv *Server) reauthorize(now time.Time) int {
	srv.mu.Lock()
	list := make([]*Session, 0, len(srv.sessions))
	for _, s := range srv.sessions {
		list = append(list, s)
	}
	srv.mu.Unlock()
	type verdict struct {
		p   *entitlements.Principal
		err error
	}
	seen := make(map[string]verdict)
	for _, s := range list {
		s.mu.Lock()
		cred := s.cred
		s.mu.Unlock()
		if cred == "" {
			continue // open mode, or not authenticated yet
		}
		v, ok := seen[cred]
		if !ok {
			v.p, v.err = srv.cfg.Auth.Authenticate(cred, now)
			seen[cred] = v
		}
		if v.err != nil {
			code, msg := CloseRevoked, "credential revoked"
			if errors.Is(v.err, entitlements.ErrExpired) {
				code, msg = CloseUnauthorized, "token expired"
			}
			srv.m.revocations.WithLabelValues("session").Inc()
			s.stopWith(code, msg)
			continue
		}
		s.who.Store(v.p)
		s.retier(v.p)
	}
	return len(list)
}

// expire closes the sessions whose token has expired.
func (srv *Server) expire(now time.Time) {
	srv.mu.Lock()
	var due []*Session
	for _, s := range srv.sessions {
		if p := s.who.Load(); p != nil && !p.Expires.IsZero() && now.After(p.Expires) {
			due = append(due, s)
		}
	}
	srv.mu.Unlock()
	for _, s := range due {
		srv.m.authFailures.WithLabelValues("expired").Inc()
		s.stopWith(CloseUnauthorized, "token expired; reconnect with a fresh one, or send an auth op before exp")
	}
}

// serveAdminReload answers POST /v1/admin/reload.
func (srv *Server) serveAdminReload(w http.ResponseWriter, r *http.Request) {
	if msg, code := feed.CheckKey(r, srv.cfg.AdminKey, "admin", "-admin-key"); code != 0 {
		writeAdminError(w, code, msg)
		return
	}
	err := srv.Reload()
	switch {
	case errors.Is(err, errOpenMode):
		writeAdminError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeAdminError(w, http.StatusUnprocessableEntity, "reload failed, previous entitlements kept: "+err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"reloaded":true}` + "\n"))
	}
}
