package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"tickerd/conflate"
	"tickerd/entitlements"
	"tickerd/internal/streamtest"
	"tickerd/stream"
)

const authSecret = "test-secret-0123456789abcdef"

// authFile is the entitlements of these tests: alice sees AAPL and US.*
// realtime; bob sees MSFT; carol may hold 2 connections.
const authFile = `groups:
  alice-rt: {realtime: ["AAPL", "US.*"]}
  bob-rt:   {realtime: ["MSFT"]}
  edge:     {realtime: ["AAP?", "X.*.Y"]}
users:
  - name: alice
    keys: ["key-alice"]
    groups: [alice-rt]
  - name: bob
    keys: ["key-bob-1"]
    groups: [bob-rt]
  - name: carol
    keys: ["key-carol"]
    groups: [alice-rt]
    limits: {connections: 2}
  - name: edgar
    keys: ["key-edgar"]
    groups: [edge]
jwt:
  hs256Secret: "` + authSecret + `"
  audience: tickerd
  groupsClaim: groups
`

// authServer is a test server whose entitlements come from a file the
// test may rewrite and reload.
type authServer struct {
	*testServer
	path  string
	reg   *prometheus.Registry
	logs  *streamtest.SyncBuffer
	delay *conflate.DelayLine // the delayed tier's, if any
}

func newAuthServer(t *testing.T, cfg stream.Config, file string) *authServer {
	t.Helper()
	return newAuthServerWith(t, cfg, file, nil)
}

// newAuthServerWith is newAuthServer with a hook that may wire more onto
// the cache and the config (a delayed tier) before the server starts.
func newAuthServerWith(t *testing.T, cfg stream.Config, file string, hook func(*conflate.Cache, *stream.Config)) *authServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := entitlements.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	as := &authServer{path: path, reg: prometheus.NewRegistry(), logs: &streamtest.SyncBuffer{}}
	cfg.Auth = st
	cfg.Registerer = as.reg
	cfg.Log = slog.New(slog.NewJSONHandler(as.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cache := conflate.New()
	if hook != nil {
		hook(cache, &cfg)
	}
	as.testServer = newTestServerOn(t, cache, cfg)
	return as
}

// rewrite replaces the file and reloads it.
func (as *authServer) rewrite(t *testing.T, file string) error {
	t.Helper()
	if err := os.WriteFile(as.path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	return as.srv.Reload()
}

func token(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func aliceClaims(exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "aud": "tickerd", "exp": exp.Unix(), "groups": []string{"alice-rt"}}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// get does a GET with optional headers and returns status and body.
func get(t *testing.T, u string, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// dialAuth opens a session with credentials in a header, keeping its
// data messages (for noDataFor).
func dialAuth(t *testing.T, ts *authServer, transport, tok string, q url.Values) *streamtest.Conn {
	t.Helper()
	c, err := streamtest.DialOptions(context.Background(), ts.base, transport, q, streamtest.Options{Header: bearer(tok), Log: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// noDataFor fails if c ever received data for sym.
func noDataFor(t *testing.T, c *streamtest.Conn, sym string) {
	t.Helper()
	for _, m := range c.Data() {
		if m.Symbol == sym {
			t.Fatalf("leak: %s message for %s: %+v", m.Type, sym, m)
		}
	}
	if _, ok := c.View()[sym]; ok {
		t.Fatalf("leak: %s in the client's view", sym)
	}
}

// A table of credentials that must name nobody: each gets 401 on every
// transport and REST endpoint, and the server stays healthy.
func TestAuthRefusesBadCredentials(t *testing.T) {
	ts := newAuthServer(t, stream.Config{}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	now := time.Now()
	key := []byte(authSecret)
	none := token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, aliceClaims(now.Add(time.Hour)))
	cases := []struct {
		name string
		tok  string
		why  string // the 401's message
	}{
		{"unknown API key", "key-mallory", "invalid credential"},
		{"expired token", token(t, jwt.SigningMethodHS256, key, aliceClaims(now.Add(-time.Hour))), "token expired"},
		{"forged token", token(t, jwt.SigningMethodHS256, []byte("another-secret-of-some-length"), aliceClaims(now.Add(time.Hour))), "invalid credential"},
		{"wrong audience", token(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "aud": "other", "exp": now.Add(time.Hour).Unix()}), "invalid credential"},
		{"alg none", none, "invalid credential"},
		{"no exp", token(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "aud": "tickerd"}), "invalid credential"},
		{"not yet valid", token(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "alice", "aud": "tickerd",
			"exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}), "invalid credential"},
		{"garbage", "not.a.token", "invalid credential"},
	}
	paths := []string{"/v1/sse?symbols=AAPL", "/v1/stream?symbols=AAPL", "/v1/poll?symbols=AAPL", "/v1/snapshot", "/v1/symbols", "/v1/ws"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range paths {
				h := http.Header{}
				if p == "/v1/ws" {
					h.Set("Connection", "Upgrade")
					h.Set("Upgrade", "websocket")
					h.Set("Sec-WebSocket-Version", "13")
					h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
				}
				hq := h.Clone()
				h.Set("Authorization", "Bearer "+tc.tok)
				code, body := get(t, ts.base+p, h)
				if code != http.StatusUnauthorized || !strings.Contains(body, tc.why) || strings.Contains(body, "bid") {
					t.Errorf("GET %s: %d %q, want 401 %q", p, code, body, tc.why)
				}
				// The same credential as ?token=.
				sep := "?"
				if strings.Contains(p, "?") {
					sep = "&"
				}
				if code, _ := get(t, ts.base+p+sep+"token="+url.QueryEscape(tc.tok), hq); code != http.StatusUnauthorized {
					t.Errorf("GET %s?token=: %d, want 401", p, code)
				}
			}
		})
	}
	// Missing credentials: 401 on every HTTP transport and REST endpoint.
	for _, p := range paths[:5] {
		if code, _ := get(t, ts.base+p, nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credential: %d, want 401", p, code)
		}
	}
	// A good one still works, by header and by ?token=.
	c := dialAuth(t, ts, streamtest.SSE, "key-alice", url.Values{"symbols": {"AAPL"}})
	streamtest.WaitFor(t, 5*time.Second, "AAPL for alice", func() error {
		if c.View()["AAPL"].Seq == 0 {
			return fmt.Errorf("no AAPL yet")
		}
		return nil
	})
	if code, body := get(t, ts.base+"/v1/symbols?token="+url.QueryEscape(token(t, jwt.SigningMethodHS256, key, aliceClaims(now.Add(time.Hour)))), nil); code != 200 || !strings.Contains(body, "AAPL") {
		t.Fatalf("symbols with a good token: %d %s", code, body)
	}
	if n := counterValue(t, ts.reg, "tickerd_auth_failures_total"); n < float64(len(cases)*len(paths)*2) {
		t.Errorf("tickerd_auth_failures_total = %g, want ≥ %d", n, len(cases)*len(paths)*2)
	}
}

// Tokens and keys never reach logs or metric labels.
func TestAuthCredentialsNeverLogged(t *testing.T) {
	ts := newAuthServer(t, stream.Config{}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	secretTok := token(t, jwt.SigningMethodHS256, []byte(authSecret), aliceClaims(time.Now().Add(time.Hour)))
	for _, tr := range streamtest.Transports {
		c, err := streamtest.Dial(context.Background(), ts.base, tr, url.Values{"symbols": {"AAPL"}, "token": {secretTok}})
		if err != nil {
			t.Fatal(err)
		}
		streamtest.WaitFor(t, 5*time.Second, "data", func() error {
			if c.View()["AAPL"].Seq == 0 {
				return fmt.Errorf("none yet")
			}
			return nil
		})
		c.Close()
	}
	get(t, ts.base+"/v1/snapshot?token=key-mallory-secret", nil)
	if err := ts.rewrite(t, authFile+"\n# reload\n"); err != nil {
		t.Fatal(err)
	}
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := fmt.Sprint(mfs)
	for _, secret := range []string{secretTok, "key-alice", "key-mallory-secret", authSecret} {
		if strings.Contains(ts.logs.String(), secret) {
			t.Errorf("the logs hold a credential: %q", secret)
		}
		if strings.Contains(labels, secret) {
			t.Errorf("the metrics hold a credential: %q", secret)
		}
	}
	if !strings.Contains(ts.logs.String(), "session opened") {
		t.Fatal("no debug logs were written: the check above proves nothing")
	}
}

// A user subscribing to another user's symbols gets not_entitled for
// each, never a field of data, on every transport; REST answers the same.
func TestAuthNotEntitledNeverLeaks(t *testing.T) {
	ts := newAuthServer(t, stream.Config{}, authFile)
	for _, sym := range []string{"AAPL", "MSFT", "US.IBM", "AAPL.X", "AAPX", "X.A.Y", "X.Y"} {
		ts.put(t, sym, "bid", "1", "ask", "2")
	}
	for _, tr := range streamtest.Transports {
		t.Run(tr, func(t *testing.T) {
			c := dialAuth(t, ts, tr, "key-bob-1", url.Values{"symbols": {"MSFT"}})
			if tr != streamtest.WS {
				streamtest.WaitFor(t, 5*time.Second, "session", func() error {
					if c.Session() == "" {
						return fmt.Errorf("none")
					}
					return nil
				})
			}
			if err := c.SendRaw(context.Background(), []byte(`{"op":"subscribe","id":7,"symbols":["AAPL","US.IBM","MSFT"]}`)); err != nil {
				t.Fatal(err)
			}
			for _, sym := range []string{"AAPL", "US.IBM"} {
				waitControl(t, c, "not_entitled "+sym, func(m streamtest.Msg) bool {
					return m.Type == "error" && m.Code == "not_entitled" && m.Symbol == sym && idIs(m, 7)
				})
			}
			ack := waitControl(t, c, "ack", func(m streamtest.Msg) bool { return m.Type == "subscribed" && idIs(m, 7) })
			if strings.Join(ack.Symbols, ",") != "MSFT" {
				t.Fatalf("ack lists %v, want only MSFT", ack.Symbols)
			}
			for i := 0; i < 5; i++ { // updates keep coming for everyone's symbols
				ts.put(t, "AAPL", "bid", fmt.Sprint(10+i))
				ts.put(t, "US.IBM", "bid", fmt.Sprint(10+i))
				ts.put(t, "MSFT", "bid", fmt.Sprint(10+i))
			}
			streamtest.WaitFor(t, 5*time.Second, "MSFT updates", func() error {
				if got := c.View()["MSFT"].Fields["bid"]; got != "14" {
					return fmt.Errorf("MSFT bid %q", got)
				}
				return nil
			})
			noDataFor(t, c, "AAPL")
			noDataFor(t, c, "US.IBM")
		})
	}
	// REST: listing and snapshots hold only entitled symbols.
	code, body := get(t, ts.base+"/v1/symbols", bearer("key-bob-1"))
	if code != 200 || strings.TrimSpace(body) != `{"symbols":["MSFT"]}` {
		t.Fatalf("bob's symbols: %d %s", code, body)
	}
	code, body = get(t, ts.base+"/v1/snapshot?symbols=AAPL,MSFT", bearer("key-bob-1"))
	if code != 200 || strings.Contains(body, `"symbol":"AAPL","seq"`) || !strings.Contains(body, `{"symbol":"AAPL","code":"not_entitled"}`) {
		t.Fatalf("bob's snapshot of AAPL: %d %s", code, body)
	}
	code, body = get(t, ts.base+"/v1/snapshot", bearer("key-bob-1"))
	if code != 200 || strings.Contains(body, "AAPL") || !strings.Contains(body, "MSFT") {
		t.Fatalf("bob's full snapshot: %d %s", code, body)
	}
	// Pattern edges: AAP? is AAPL or AAPX, never AAPL.X; X.*.Y needs
	// something between its dots.
	code, body = get(t, ts.base+"/v1/symbols", bearer("key-edgar"))
	if code != 200 || strings.TrimSpace(body) != `{"symbols":["AAPL","AAPX","X.A.Y"]}` {
		t.Fatalf("edgar's symbols: %d %s", code, body)
	}
}

// A WebSocket client without a credential may send an auth op; until it
// does, ops are refused (unauthorized) and no data flows; one that never
// does is closed with unauthorized; a bad one is closed at once.
func TestAuthWebSocketAuthOp(t *testing.T) {
	ts := newAuthServer(t, stream.Config{AuthTimeout: 700 * time.Millisecond}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	ctx := context.Background()

	// Authenticates late: the query's subscription waits for it.
	c, err := streamtest.Dial(ctx, ts.base, streamtest.WS, url.Values{"symbols": {"AAPL"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendRaw(ctx, []byte(`{"op":"subscribe","id":1,"symbols":["AAPL"]}`)); err != nil {
		t.Fatal(err)
	}
	waitControl(t, c, "unauthorized", func(m streamtest.Msg) bool { return m.Code == "unauthorized" && idIs(m, 1) })
	noDataFor(t, c, "AAPL")
	if err := c.SendRaw(ctx, []byte(`{"op":"auth","id":2,"token":"key-alice"}`)); err != nil {
		t.Fatal(err)
	}
	waitControl(t, c, "authenticated", func(m streamtest.Msg) bool { return m.Type == "authenticated" && idIs(m, 2) })
	streamtest.WaitFor(t, 5*time.Second, "AAPL after auth", func() error {
		if c.View()["AAPL"].Seq == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	time.Sleep(time.Second) // past the auth timeout: it must not fire now
	if cl := c.Closed(); cl != nil {
		t.Fatalf("closed after authenticating: %+v", cl)
	}

	// Never authenticates.
	idle, err := streamtest.Dial(ctx, ts.base, streamtest.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitClosed(t, idle, "unauthorized")

	// A bad credential in the auth op.
	bad, err := streamtest.Dial(ctx, ts.base, streamtest.WS, url.Values{"symbols": {"AAPL"}})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	start := time.Now()
	if err := bad.SendRaw(ctx, []byte(`{"op":"auth","id":3,"token":"key-mallory"}`)); err != nil {
		t.Fatal(err)
	}
	waitControl(t, bad, "unauthorized error", func(m streamtest.Msg) bool { return m.Code == "unauthorized" && idIs(m, 3) })
	waitClosed(t, bad, "unauthorized")
	if time.Since(start) > 600*time.Millisecond {
		t.Errorf("bad auth op closed after %v: want at once, not at the timeout", time.Since(start))
	}
	noDataFor(t, bad, "AAPL")

	// Another user's token on an authenticated session is refused.
	if err := c.SendRaw(ctx, []byte(`{"op":"auth","id":4,"token":"key-bob-1"}`)); err != nil {
		t.Fatal(err)
	}
	waitControl(t, c, "other user refused", func(m streamtest.Msg) bool { return m.Code == "unauthorized" && idIs(m, 4) })
}

// Cross-origin pages are refused in auth mode unless allowed.
func TestAuthOrigins(t *testing.T) {
	ts := newAuthServer(t, stream.Config{}, authFile)
	h := bearer("key-alice")
	h.Set("Origin", "https://evil.example")
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	wsURL := "ws" + strings.TrimPrefix(ts.base, "http") + "/v1/ws?token=key-alice"
	if _, resp, err := dialer.Dial(wsURL, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin WebSocket: err %v, resp %v; want 403", err, resp)
	}
	if code, _ := get(t, ts.base+"/v1/sse", h); code != http.StatusForbidden {
		t.Fatalf("cross-origin SSE: %d, want 403", code)
	}
	u, _ := url.Parse(ts.base)
	conn, _, err := dialer.Dial(wsURL, http.Header{"Origin": {"http://" + u.Host}})
	if err != nil {
		t.Fatalf("same-origin WebSocket refused: %v", err)
	}
	conn.Close()

	allowed := newAuthServer(t, stream.Config{AllowedOrigins: []string{"https://desk.example"}}, authFile)
	if code, _ := get(t, allowed.base+"/v1/symbols", http.Header{"Origin": {"https://desk.example"}, "Authorization": {"Bearer key-alice"}}); code != 200 {
		t.Fatalf("allowed origin: %d", code)
	}
}

// Subscribe storms get limit_exceeded, ops naming too many symbols are
// refused whole, oversized messages are refused, and another session's
// data keeps flowing meanwhile.
func TestAuthStormAndOversize(t *testing.T) {
	ts := newAuthServer(t, stream.Config{MaxOpRate: 10, MaxOpSymbols: 50, MaxMessageBytes: 4096}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	ctx := context.Background()
	watcher := dialAuth(t, ts, streamtest.WS, "key-alice", url.Values{"symbols": {"AAPL"}})
	storm := dialAuth(t, ts, streamtest.WS, "key-alice", nil)
	for i := 1; i <= 200; i++ {
		if err := storm.SendRaw(ctx, fmt.Appendf(nil, `{"op":"subscribe","id":%d,"symbols":["AAPL"]}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitControl(t, storm, "limit_exceeded", func(m streamtest.Msg) bool { return m.Code == "limit_exceeded" })
	ts.put(t, "AAPL", "bid", "2")
	streamtest.WaitFor(t, 5*time.Second, "the watcher's update", func() error {
		if got := watcher.View()["AAPL"].Fields["bid"]; got != "2" {
			return fmt.Errorf("bid %q", got)
		}
		return nil
	})
	acks, limited := 0, 0
	for _, m := range storm.Control() {
		switch {
		case m.Type == "subscribed":
			acks++
		case m.Code == "limit_exceeded":
			limited++
		}
	}
	if acks > 40 || limited < 150 {
		t.Fatalf("storm of 200 ops at 10/s: %d acked, %d limited", acks, limited)
	}

	// Too many symbols in one op: refused whole.
	many := make([]string, 51)
	for i := range many {
		many[i] = fmt.Sprintf("US.S%d", i)
	}
	time.Sleep(time.Second) // let the op budget refill
	if err := watcher.Send(ctx, map[string]any{"op": "subscribe", "id": 900, "symbols": many}); err != nil {
		t.Fatal(err)
	}
	waitControl(t, watcher, "too many symbols", func(m streamtest.Msg) bool { return m.Code == "limit_exceeded" && idIs(m, 900) })

	// Oversized: a WebSocket message over the limit closes with 1009.
	big := fmt.Sprintf(`{"op":"ping","id":1,"pad":"%s"}`, strings.Repeat("x", 5000))
	_ = storm.SendRaw(ctx, []byte(big))
	streamtest.WaitFor(t, 5*time.Second, "1009", func() error {
		var ce *websocket.CloseError
		if err := storm.Err(); err != nil && asCloseError(err, &ce) && ce.Code == websocket.CloseMessageTooBig {
			return nil
		}
		return fmt.Errorf("err %v", storm.Err())
	})
	// And a session op body over it gets an error.
	sse := dialAuth(t, ts, streamtest.SSE, "key-alice", nil)
	streamtest.WaitFor(t, 5*time.Second, "session", func() error {
		if sse.Session() == "" {
			return fmt.Errorf("none")
		}
		return nil
	})
	resp, err := http.Post(ts.base+"/v1/sessions/"+sse.Session(), "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "over 4096 bytes") {
		t.Fatalf("oversized session op: %s", b)
	}
	if code, _ := get(t, ts.base+"/v1/symbols", bearer("key-alice")); code != 200 {
		t.Fatal("server unhealthy after the attacks")
	}
}

// A user at its connection limit gets 429 on the HTTP transports and at
// the WebSocket handshake; a slot frees when a session ends.
func TestAuthConnectionLimit(t *testing.T) {
	ts := newAuthServer(t, stream.Config{}, authFile)
	a := dialAuth(t, ts, streamtest.SSE, "key-carol", nil)
	dialAuth(t, ts, streamtest.WS, "key-carol", nil)
	streamtest.WaitFor(t, 5*time.Second, "two sessions", func() error {
		if n := ts.srv.Sessions(); n != 2 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	for _, p := range []string{"/v1/sse", "/v1/stream", "/v1/poll"} {
		if code, body := get(t, ts.base+p, bearer("key-carol")); code != http.StatusTooManyRequests || !strings.Contains(body, "limit_exceeded") {
			t.Errorf("GET %s over the limit: %d %s", p, code, body)
		}
	}
	wsURL := "ws" + strings.TrimPrefix(ts.base, "http") + "/v1/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, bearer("key-carol")); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("WebSocket over the limit: %v %v", err, resp)
	}
	// Another user is not affected.
	dialAuth(t, ts, streamtest.SSE, "key-alice", nil)
	a.Close()
	streamtest.WaitFor(t, 5*time.Second, "a free slot", func() error {
		code, _ := get(t, ts.base+"/v1/poll", bearer("key-carol"))
		if code != 200 {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
}

// Revocation during a burst of updates: after the reload that withdraws
// a symbol, the client gets not_entitled and no update of it once 1 s has
// passed; a user removed altogether is closed with revoked; a bad file
// changes nothing.
func TestAuthRevocationDuringBurst(t *testing.T) {
	ts := newAuthServer(t, stream.Config{MaxHz: 1000}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	ts.put(t, "US.IBM", "bid", "1")
	alice := map[string]*streamtest.Conn{}
	for _, tr := range streamtest.Transports {
		c, err := streamtest.DialOptions(context.Background(), ts.base, tr, url.Values{"symbols": {"AAPL,US.IBM"}},
			streamtest.Options{Header: bearer("key-alice"), Log: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		alice[tr] = c
	}
	bob := dialAuth(t, ts, streamtest.WS, "key-bob-1", url.Values{"symbols": {"MSFT"}})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the burst
		defer wg.Done()
		for i := 2; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ts.put(t, "AAPL", "bid", fmt.Sprint(i))
			ts.put(t, "US.IBM", "bid", fmt.Sprint(i))
			time.Sleep(200 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	streamtest.WaitFor(t, 5*time.Second, "updates flowing", func() error {
		for tr, c := range alice {
			if c.View()["AAPL"].Seq < 3 {
				return fmt.Errorf("%s: not yet", tr)
			}
		}
		return nil
	})

	// A bad file first: nothing changes.
	if err := ts.rewrite(t, "groups:\n  alice-rt: {realtime: [\"bad sym!\"]}\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad reload: %v, want an error naming line 2", err)
	}
	// AAPL withdrawn from alice; bob removed altogether.
	revoked := strings.Replace(authFile, `realtime: ["AAPL", "US.*"]`, `realtime: ["US.*"]`, 1)
	revoked = strings.Replace(revoked, "  - name: bob\n    keys: [\"key-bob-1\"]\n    groups: [bob-rt]\n", "", 1)
	at := time.Now()
	if err := ts.rewrite(t, revoked); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, bob, "revoked")
	time.Sleep(time.Second + 500*time.Millisecond)
	cutoff := at.Add(time.Second).UnixMicro()
	for tr, c := range alice {
		waitControl(t, c, tr+" not_entitled AAPL", func(m streamtest.Msg) bool { return m.Code == "not_entitled" && m.Symbol == "AAPL" })
		var late, ibm int
		for _, m := range c.Data() {
			switch {
			case m.Symbol == "AAPL" && m.TS > cutoff:
				late++
			case m.Symbol == "US.IBM" && m.TS > cutoff:
				ibm++
			}
		}
		if late > 0 {
			t.Errorf("%s: %d AAPL messages with data ingested more than 1 s after the revocation", tr, late)
		}
		if ibm == 0 {
			t.Errorf("%s: US.IBM stopped too: the revocation took more than the one symbol", tr)
		}
	}
	if n := counterValue(t, ts.reg, "tickerd_revocations_total"); n < 5 {
		t.Errorf("tickerd_revocations_total = %g, want ≥ 5 (4 symbols, 1 session)", n)
	}
}

// A resume token is only good for the user whose session it was.
func TestAuthResumeIsPerUser(t *testing.T) {
	ts := newAuthServer(t, stream.Config{}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	ts.put(t, "MSFT", "bid", "1")
	a := dialAuth(t, ts, streamtest.SSE, "key-alice", url.Values{"symbols": {"AAPL"}})
	streamtest.WaitFor(t, 5*time.Second, "AAPL", func() error {
		if a.View()["AAPL"].Seq == 0 {
			return fmt.Errorf("none")
		}
		return nil
	})
	tok, _ := a.Resume()
	a.Close()
	// Bob presents alice's resume token: he gets a fresh session, and no AAPL.
	b := dialAuth(t, ts, streamtest.SSE, "key-bob-1", url.Values{"resume": {tok}, "symbols": {"MSFT"}})
	streamtest.WaitFor(t, 5*time.Second, "MSFT", func() error {
		if b.View()["MSFT"].Seq == 0 {
			return fmt.Errorf("none")
		}
		return nil
	})
	ts.put(t, "AAPL", "bid", "2")
	time.Sleep(200 * time.Millisecond)
	noDataFor(t, b, "AAPL")
	if b.Session() == a.Session() {
		t.Fatal("bob took over alice's session")
	}
	// Alice herself resumes it.
	a2 := dialAuth(t, ts, streamtest.SSE, "key-alice", url.Values{"resume": {tok}})
	streamtest.WaitFor(t, 5*time.Second, "resumed AAPL", func() error {
		if a2.View()["AAPL"].Fields["bid"] != "2" {
			return fmt.Errorf("view %v", a2.View())
		}
		return nil
	})
}

// POST /v1/admin/reload applies a new file, refuses a bad one (keeping
// the old) and is loopback or admin-key only.
func TestAuthAdminReload(t *testing.T) {
	ts := newAuthServer(t, stream.Config{AdminKey: "adm"}, authFile)
	post := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.base+"/v1/admin/reload", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post(""); code != http.StatusUnauthorized {
		t.Fatalf("reload without the admin key: %d", code)
	}
	if code, _ := post("key-alice"); code != http.StatusUnauthorized {
		t.Fatalf("reload with a user's key: %d", code)
	}
	if err := os.WriteFile(ts.path, []byte("users:\n  - name: x\n    keys: [1, [2]]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := post("adm")
	var reply map[string]any
	_ = json.Unmarshal([]byte(body), &reply)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "line 3") {
		t.Fatalf("bad reload: %d %s", code, body)
	}
	if code, _ := get(t, ts.base+"/v1/symbols", bearer("key-alice")); code != 200 {
		t.Fatal("the previous entitlements were lost with the bad file")
	}
	if err := os.WriteFile(ts.path, []byte(strings.Replace(authFile, "key-alice", "key-alice-2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := post("adm"); code != 200 {
		t.Fatalf("good reload: %d %s", code, body)
	}
	if code, _ := get(t, ts.base+"/v1/symbols", bearer("key-alice")); code != http.StatusUnauthorized {
		t.Fatal("the old key still works after the reload")
	}
	if code, _ := get(t, ts.base+"/v1/symbols", bearer("key-alice-2")); code != 200 {
		t.Fatal("the new key does not work")
	}
}

// A token that expires ends its sessions (unauthorized) unless the client
// sends a fresher one first.
func TestAuthTokenExpiry(t *testing.T) {
	ts := newAuthServer(t, stream.Config{Retention: 4 * time.Second}, authFile)
	ts.put(t, "AAPL", "bid", "1")
	key := []byte(authSecret)
	// exp is checked with 30 s of leeway: a token 29 s past its exp is
	// still valid for one more second.
	short := token(t, jwt.SigningMethodHS256, key, aliceClaims(time.Now().Add(-29*time.Second)))
	ending := dialAuth(t, ts, streamtest.WS, short, url.Values{"symbols": {"AAPL"}})
	refreshed := dialAuth(t, ts, streamtest.WS, short, url.Values{"symbols": {"AAPL"}})
	fresh := token(t, jwt.SigningMethodHS256, key, aliceClaims(time.Now().Add(time.Hour)))
	if err := refreshed.SendRaw(context.Background(), []byte(`{"op":"auth","id":1,"token":"`+fresh+`"}`)); err != nil {
		t.Fatal(err)
	}
	waitControl(t, refreshed, "authenticated", func(m streamtest.Msg) bool { return m.Type == "authenticated" })
	waitClosed(t, ending, "unauthorized")
	time.Sleep(1500 * time.Millisecond)
	if cl := refreshed.Closed(); cl != nil {
		t.Fatalf("the refreshed session closed: %+v", cl)
	}
}

// A user's own limits apply on top of the server's: symbols per session,
// maxHz, bytes per second.
func TestAuthUserLimits(t *testing.T) {
	file := strings.Replace(authFile, "    groups: [alice-rt]\n", "    groups: [alice-rt]\n    limits: {symbols: 3, maxHz: 4}\n", 1)
	file = strings.Replace(file, "    groups: [edge]\n", "    groups: [edge]\n    limits: {bytesPerSec: 1024}\n", 1)
	ts := newAuthServer(t, stream.Config{MaxHz: 1000}, file)
	syms := []string{"US.A", "US.B", "US.C", "US.D"}
	wide := []string{"X.1.Y", "X.2.Y", "X.3.Y"}
	for _, s := range append(syms, wide...) {
		ts.put(t, s, "bid", "1")
	}
	alice := dialAuth(t, ts, streamtest.WS, "key-alice", nil)
	if err := alice.Send(context.Background(), map[string]any{"op": "subscribe", "id": 1, "symbols": syms, "maxHz": 100}); err != nil {
		t.Fatal(err)
	}
	waitControl(t, alice, "the fourth symbol refused", func(m streamtest.Msg) bool {
		return m.Code == "limit_exceeded" && m.Symbol == "US.D"
	})
	edgar := dialAuth(t, ts, streamtest.WS, "key-edgar", url.Values{"symbols": {strings.Join(wide, ",")}, "maxHz": {"500"}})
	stop := feedBurst(t, ts, "US.A", "US.B", "US.C", "X.1.Y", "X.2.Y", "X.3.Y")
	time.Sleep(500 * time.Millisecond)
	start, before := time.Now(), edgar.Bytes()
	n0 := len(alice.Data())
	time.Sleep(2 * time.Second)
	elapsed, bytes := time.Since(start).Seconds(), edgar.Bytes()-before
	msgs := len(alice.Data()) - n0
	stop()
	if rate := float64(msgs) / elapsed / 3; rate > 4*1.5 || msgs == 0 {
		t.Errorf("alice: %.1f messages per symbol per second, want up to her maxHz 4 (and some)", rate)
	}
	if bps := float64(bytes) / elapsed; bps > 1024*1.5 || bytes == 0 {
		t.Errorf("edgar: %.0f bytes/s, want up to his 1024 (and some)", bps)
	}
}
