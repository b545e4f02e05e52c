package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"tickerd/internal/streamtest"
	"tickerd/stream"
)

// Every test here runs on every streaming transport: the message set and
// its guarantees are the same whatever carries them.

func dial(t *testing.T, ts *testServer, transport string, q url.Values) *streamtest.Conn {
	t.Helper()
	// The context spans the stream's life: HTTP transports end with it.
	c, err := streamtest.Dial(context.Background(), ts.base, transport, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if transport != streamtest.WS {
		streamtest.WaitFor(t, 5*time.Second, "session message", func() error {
			if c.Session() == "" {
				return fmt.Errorf("none yet")
			}
			return nil
		})
	}
	return c
}

// waitControl waits for a control message matching pred and returns it.
func waitControl(t *testing.T, c *streamtest.Conn, what string, pred func(streamtest.Msg) bool) streamtest.Msg {
	t.Helper()
	var found streamtest.Msg
	streamtest.WaitFor(t, 5*time.Second, what, func() error {
		for _, m := range c.Control() {
			if pred(m) {
				found = m
				return nil
			}
		}
		return fmt.Errorf("control so far: %+v", c.Control())
	})
	return found
}

func idIs(m streamtest.Msg, id int) bool { return string(m.ID) == fmt.Sprint(id) }

func TestOpsAndErrors(t *testing.T) {
	for _, tr := range streamtest.Transports {
		t.Run(tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxSymbols: 5})
			ts.put(t, "AAA", "bid", "1.5", "ask", "1.6")
			c := dial(t, ts, tr, nil)
			ctx := context.Background()
			send := func(raw string) {
				t.Helper()
				if err := c.SendRaw(ctx, []byte(raw)); err != nil {
					t.Fatal(err)
				}
			}
			cases := []struct {
				name string
				op   string
				want func(streamtest.Msg) bool
			}{
				{"bad symbol refused alone", `{"op":"subscribe","id":1,"symbols":["AAA","bad sym"]}`,
					func(m streamtest.Msg) bool {
						return m.Type == "error" && idIs(m, 1) && m.Code == "bad_request" && m.Symbol == "bad sym"
					}},
				{"good symbol acknowledged", `{"op":"subscribe","id":1,"symbols":["AAA","bad sym"]}`,
					func(m streamtest.Msg) bool {
						return m.Type == "subscribed" && idIs(m, 1) && len(m.Symbols) == 1 && m.Symbols[0] == "AAA"
					}},
				{"malformed JSON", `{"op":`, func(m streamtest.Msg) bool {
					return m.Type == "error" && m.Code == "bad_request" && strings.Contains(m.Message, "malformed")
				}},
				{"unknown op", `{"op":"dance","id":2}`, func(m streamtest.Msg) bool {
					return m.Type == "error" && idIs(m, 2) && m.Code == "bad_request"
				}},
				{"missing symbols", `{"op":"subscribe","id":3}`, func(m streamtest.Msg) bool {
					return m.Type == "error" && idIs(m, 3) && m.Code == "bad_request"
				}},
				{"unknown field", `{"op":"subscribe","id":4,"symbols":["AAA"],"fields":["bid","colour"]}`,
					func(m streamtest.Msg) bool {
						return m.Type == "error" && idIs(m, 4) && m.Code == "bad_request" && strings.Contains(m.Message, "colour")
					}},
				{"ping", `{"op":"ping","id":5}`, func(m streamtest.Msg) bool { return m.Type == "pong" && idIs(m, 5) }},
				{"over the symbol limit", `{"op":"subscribe","id":6,"symbols":["B1","B2","B3","B4","B5","B6"]}`,
					func(m streamtest.Msg) bool {
						return m.Type == "error" && idIs(m, 6) && m.Code == "limit_exceeded" && m.Symbol != ""
					}},
				{"unsubscribe", `{"op":"unsubscribe","id":7,"symbols":["AAA"]}`, func(m streamtest.Msg) bool {
					return m.Type == "unsubscribed" && idIs(m, 7) && len(m.Symbols) == 1
				}},
				{"still open after bad ops", `{"op":"ping","id":8}`, func(m streamtest.Msg) bool { return m.Type == "pong" && idIs(m, 8) }},
			}
			for _, tc := range cases {
				send(tc.op)
				waitControl(t, c, tc.name, tc.want)
			}
			// The symbol limit: AAA plus four of B1..B6 fit in 5.
			var limited int
			for _, m := range c.Control() {
				if m.Code == "limit_exceeded" {
					limited++
				}
			}
			if limited != 2 {
				t.Errorf("limit_exceeded errors = %d, want 2", limited)
			}
			if v := c.Violations(); len(v) > 0 {
				t.Errorf("violations: %v", v)
			}
		})
	}
}

func TestSnapshotThenUpdatesOfChangedFields(t *testing.T) {
	for _, tr := range streamtest.Transports {
		t.Run(tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxHz: 1000})
			ts.put(t, "AAA", "bid", "1.5", "ask", "1.6", "status", "trading")
			c := dial(t, ts, tr, url.Values{"symbols": {"AAA,NEW"}, "fields": {"bid,ask"}})
			streamtest.WaitFor(t, 5*time.Second, "snapshot", func() error {
				if v := c.View()["AAA"]; v.Seq != 1 || v.Fields["bid"] != "1.5" || len(v.Fields) != 2 {
					return fmt.Errorf("view %+v", v)
				}
				return nil
			})
			ts.put(t, "AAA", "bid", "1.51", "status", "halted") // status is not subscribed
			ts.put(t, "NEW", "ask", "7")                        // first data of a pending symbol
			streamtest.WaitFor(t, 5*time.Second, "update and late snapshot", func() error {
				v := c.View()
				if v["AAA"].Fields["bid"] != "1.51" || v["NEW"].Fields["ask"] != "7" {
					return fmt.Errorf("view %+v", v)
				}
				return nil
			})
			if n, _ := c.Counts(); n != 3 {
				t.Errorf("data messages = %d, want 3 (snapshot, update, snapshot)", n)
			}
			if v := c.Violations(); len(v) > 0 {
				t.Errorf("violations: %v", v)
			}
		})
	}
}

func TestMaxHzThrottles(t *testing.T) {
	for _, tr := range streamtest.Transports {
		t.Run(tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxHz: 1000})
			ts.put(t, "HOT", "bid", "0")
			c := dial(t, ts, tr, url.Values{"symbols": {"HOT"}, "maxHz": {"2"}})
			n, elapsed := hammer(t, ts, c, 1500*time.Millisecond, 3*time.Second)
			msgs, _ := c.Counts()
			// 2 per second over the run, plus the snapshot and the final catch-up.
			limit := int(elapsed.Seconds()*2) + 3
			if msgs > limit {
				t.Errorf("%d messages for %d updates in %v at maxHz 2; want ≤ %d", msgs, n, elapsed, limit)
			}
			t.Logf("%d updates → %d messages", n, msgs)
		})
	}
}

// hammer updates HOT's bid every 2 ms for d, then waits up to settle for
// c to hold the last value; it returns the updates made and how long that
// took.
func hammer(t *testing.T, ts *testServer, c *streamtest.Conn, d, settle time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		n++
		ts.put(t, "HOT", "bid", fmt.Sprint(n))
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	streamtest.WaitFor(t, settle, "converges to the last value", func() error {
		if got := c.View()["HOT"].Fields["bid"]; got != fmt.Sprint(n) {
			return fmt.Errorf("bid %s, want %d", got, n)
		}
		return nil
	})
	return n, elapsed
}

func TestHeartbeatWhenIdle(t *testing.T) {
	for _, tr := range streamtest.Transports {
		t.Run(tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{Heartbeat: 100 * time.Millisecond})
			c := dial(t, ts, tr, nil)
			streamtest.WaitFor(t, 5*time.Second, "two heartbeats", func() error {
				if _, hb := c.Counts(); hb < 2 {
					return fmt.Errorf("%d heartbeats", hb)
				}
				return nil
			})
		})
	}
}

func TestCloseReasons(t *testing.T) {
	for _, tr := range streamtest.Transports {
		t.Run(tr+"/max_age", func(t *testing.T) {
			if tr == streamtest.Poll {
				t.Skip("a long-poll session has no long-lived connection to age")
			}
			ts := newTestServer(t, stream.Config{MaxConnAge: 300 * time.Millisecond})
			c := dial(t, ts, tr, url.Values{"symbols": {"AAA"}})
			waitClosed(t, c, "max_age")
		})
		t.Run(tr+"/shutdown", func(t *testing.T) {
			ts := newTestServer(t, stream.Config{})
			c := dial(t, ts, tr, url.Values{"symbols": {"AAA"}})
			waitControl(t, c, "ack", func(m streamtest.Msg) bool { return m.Type == "subscribed" })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := ts.srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, c, "shutdown")
		})
	}
}

func waitClosed(t *testing.T, c *streamtest.Conn, code string) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("stream not ended")
	}
	m := c.Closed()
	if m == nil || m.Code != code {
		t.Fatalf("close message %+v, want code %s", m, code)
	}
	if c.Transport == streamtest.WS {
		// 1001 going away for shutdown and max_age; 1008 policy for the rest.
		want := websocket.ClosePolicyViolation
		if code == stream.CloseShutdown || code == stream.CloseMaxAge {
			want = websocket.CloseGoingAway
		}
		var ce *websocket.CloseError
		if err := c.Err(); !asCloseError(err, &ce) || ce.Code != want {
			t.Fatalf("WebSocket ended with %v, want close frame %d", err, want)
		}
	}
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	*ce = e
	return ok
}

// A client that reconnects with its resume token (SSE: Last-Event-ID)
// gets its subscriptions back and, for each symbol, only the fields that
// changed while it was away: no snapshot, nothing for a symbol that did
// not change. A client that lost its view and resumes gets nothing it
// can use; a fresh client without a token gets snapshots.
func TestResumeSendsOnlyChanges(t *testing.T) {
	type mode int
	const (
		counted   mode = iota // Last-Event-ID, resume=TOKEN.N or a later poll
		tokenOnly             // resume=TOKEN after a quiet second: TCP acknowledgements
	)
	var cases []struct {
		tr   string
		mode mode
	}
	for _, tr := range streamtest.Transports {
		cases = append(cases, struct {
			tr   string
			mode mode
		}{tr, counted})
	}
	cases = append(cases, struct {
		tr   string
		mode mode
	}{streamtest.NDJSON, tokenOnly}, struct {
		tr   string
		mode mode
	}{streamtest.WS, tokenOnly})
	for _, tc := range cases {
		tr := tc.tr
		name := tr
		if tc.mode == tokenOnly {
			name += "/token-only"
		}
		t.Run(name, func(t *testing.T) {
			// Heartbeats are writes, at which the server samples what the
			// client's TCP stack has acknowledged (token-only resumes).
			ts := newTestServer(t, stream.Config{Heartbeat: 200 * time.Millisecond})
			ts.put(t, "AAA", "bid", "1", "ask", "1.1")
			ts.put(t, "BBB", "bid", "2", "ask", "2.1")
			ts.put(t, "CCC", "bid", "3", "ask", "3.1")
			ctx := context.Background()
			// WebSocket has no session message; it resumes a token taken
			// from an SSE session of the same server.
			first := dial(t, ts, pick(tr), url.Values{"symbols": {"AAA,CCC"}, "fields": {"bid,ask"}})
			if err := first.Send(ctx, map[string]any{"op": "subscribe", "id": 1, "symbols": []string{"BBB"}, "fields": []string{"bid"}}); err != nil {
				t.Fatal(err)
			}
			streamtest.WaitFor(t, 5*time.Second, "three snapshots", func() error {
				if len(first.View()) != 3 {
					return fmt.Errorf("view %v", first.View())
				}
				return nil
			})
			if tc.mode == tokenOnly {
				time.Sleep(1500 * time.Millisecond) // the client has surely read it all
			}
			if tr == streamtest.Poll {
				// A poll confirms the reply before it; until the client
				// polls again, the snapshots may be resent (allowed, but
				// not what this test checks). A pong comes in a later
				// poll's reply, so that poll confirmed the snapshots.
				if err := first.Send(ctx, map[string]any{"op": "ping", "id": 2}); err != nil {
					t.Fatal(err)
				}
				waitControl(t, first, "pong", func(m streamtest.Msg) bool { return m.Type == "pong" && idIs(m, 2) })
			}
			token, lastEvent := first.Resume()
			if tc.mode == counted && tr != streamtest.Poll {
				token = first.ResumeAt()
			}
			id := first.Session()
			had := first.View()
			first.Close()
			// While it is away: AAA's bid and CCC's ask change, BBB only
			// in a field it did not subscribe.
			ts.put(t, "AAA", "bid", "1.5")
			ts.put(t, "CCC", "ask", "3.7")
			ts.put(t, "BBB", "ask", "2.9")

			q := url.Values{"resume": {token}}
			h := http.Header{}
			if tr == streamtest.SSE {
				q = nil
				h.Set("Last-Event-ID", lastEvent)
			}
			var again *streamtest.Conn
			streamtest.WaitFor(t, 5*time.Second, "resumed session", func() error {
				c, err := streamtest.DialOptions(ctx, ts.base, tr, q, streamtest.Options{Header: h, Seed: had, Log: true})
				if err != nil {
					return err
				}
				again = c
				return nil
			})
			t.Cleanup(again.Close)
			want := map[string]map[string]string{
				"AAA": {"bid": "1.5", "ask": "1.1"},
				"BBB": {"bid": "2"},
				"CCC": {"bid": "3", "ask": "3.7"},
			}
			streamtest.WaitFor(t, 5*time.Second, "resumed view", func() error {
				v := again.View()
				for sym, fields := range want {
					if !maps.Equal(v[sym].Fields, fields) {
						return fmt.Errorf("%s: %v, want %v", sym, v[sym].Fields, fields)
					}
				}
				return nil
			})
			time.Sleep(200 * time.Millisecond) // anything else would come now
			got := map[string][]string{}
			for _, m := range again.Data() {
				if m.Type != "update" {
					t.Errorf("resume sent a %s for %s, want only updates", m.Type, m.Symbol)
				}
				got[m.Symbol] = append(got[m.Symbol], slices.Sorted(maps.Keys(m.Fields))...)
			}
			if !maps.EqualFunc(got, map[string][]string{"AAA": {"bid"}, "CCC": {"ask"}}, slices.Equal) {
				t.Errorf("fields resent per symbol %v; want AAA [bid] and CCC [ask] only", got)
			}
			if v := again.Violations(); len(v) > 0 {
				t.Errorf("violations: %v", v)
			}
			if tr != streamtest.WS && again.Session() != id {
				t.Errorf("resumed session id %q, want %q", again.Session(), id)
			}
		})
	}
}

// After the retention window a token resumes nothing: the client starts
// a new session and subscribes again.
func TestResumeAfterRetentionStartsAfresh(t *testing.T) {
	ts := newTestServer(t, stream.Config{Retention: 300 * time.Millisecond})
	ts.put(t, "AAA", "bid", "1")
	first := dial(t, ts, streamtest.NDJSON, url.Values{"symbols": {"AAA"}})
	streamtest.WaitFor(t, 5*time.Second, "snapshot", func() error {
		if len(first.View()) != 1 {
			return fmt.Errorf("view %v", first.View())
		}
		return nil
	})
	token, _ := first.Resume()
	id := first.Session()
	first.Close()
	streamtest.WaitFor(t, 5*time.Second, "session closed", func() error {
		if n := ts.srv.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	time.Sleep(time.Second) // past retention (the janitor runs every Retention/4)
	again, err := streamtest.DialOptions(context.Background(), ts.base, streamtest.NDJSON,
		url.Values{"resume": {token}, "symbols": {"AAA"}}, streamtest.Options{Log: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close)
	streamtest.WaitFor(t, 5*time.Second, "fresh snapshot", func() error {
		for _, m := range again.Data() {
			if m.Type == "snapshot" && m.Symbol == "AAA" {
				return nil
			}
		}
		return fmt.Errorf("data %v", again.Data())
	})
	if again.Session() == id {
		t.Errorf("an expired token resumed session %s", id)
	}
}

// pick returns the transport that opens the first session of a resume test.
func pick(tr string) string {
	if tr == streamtest.WS {
		return streamtest.SSE
	}
	return tr
}

func TestRESTSnapshotAndSymbols(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	ts.put(t, "BBB", "bid", "2.50", "time", "2026-01-02T03:04:05.123Z")
	ts.put(t, "AAA", "bid", "1")
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(ts.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var syms struct{ Symbols []string }
	get("/v1/symbols", &syms)
	if strings.Join(syms.Symbols, ",") != "AAA,BBB" {
		t.Fatalf("symbols %v", syms.Symbols)
	}
	var snap struct {
		Snapshots []streamtest.Msg
		Errors    []struct{ Symbol, Code string }
	}
	get("/v1/snapshot?symbols=BBB,zz,CCC", &snap)
	if len(snap.Snapshots) != 1 || snap.Snapshots[0].Type != "snapshot" || snap.Snapshots[0].Fields["bid"] != "2.5" ||
		snap.Snapshots[0].Fields["time"] != "2026-01-02T03:04:05.123000Z" || snap.Snapshots[0].Seq != 1 || snap.Snapshots[0].TS == 0 {
		t.Fatalf("snapshots %+v", snap.Snapshots)
	}
	if len(snap.Errors) != 2 || snap.Errors[0].Code != "bad_request" || snap.Errors[1].Code != "not_found" {
		t.Fatalf("errors %+v", snap.Errors)
	}
	get("/v1/snapshot", &snap)
	if len(snap.Snapshots) != 2 || len(snap.Errors) != 0 {
		t.Fatalf("all snapshots %+v", snap)
	}
}

func TestNoNewStreamsWhileShuttingDown(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tr := range streamtest.Transports {
		if _, err := streamtest.Dial(ctx, ts.base, tr, nil); err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("%s: dial during shutdown: %v, want HTTP 503", tr, err)
		}
	}
}

// Data in flight when a connection dies counts as not received: a slow
// reader whose stream backs up is cut off mid-stream, the feed goes on,
// and it resumes from the view it had reached. It must converge to the
// server's records: a resume may resend, never miss. With its count
// (TOKEN.N, SSE Last-Event-ID) or with the bare token.
func TestResumeNeverMissesInFlight(t *testing.T) {
	for _, tc := range []struct {
		tr      string
		counted bool
	}{
		{streamtest.NDJSON, false}, {streamtest.WS, false}, {streamtest.NDJSON, true},
		{streamtest.SSE, true}, {streamtest.WS, true},
	} {
		name := tc.tr
		if tc.counted {
			name += "/counted"
		}
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxHz: 1000, Heartbeat: 200 * time.Millisecond})
			syms := symbols("IF", 40)
			for _, s := range syms {
				ts.put(t, s, "bid", "0", "ask", "1")
			}
			ctx := context.Background()
			first := pick(tc.tr)
			q := url.Values{"symbols": {strings.Join(syms, ",")}, "maxHz": {"1000"}}
			c, err := streamtest.DialOptions(ctx, ts.base, first, q, streamtest.Options{ReadBPS: 20 << 10})
			if err != nil {
				t.Fatal(err)
			}
			streamtest.WaitFor(t, 10*time.Second, "snapshots", func() error {
				if n := len(c.View()); n != len(syms) {
					return fmt.Errorf("%d snapshots", n)
				}
				return nil
			})
			f := startFeeder(t, ts, syms, 2*time.Millisecond)
			time.Sleep(1500 * time.Millisecond)
			token, lastEvent := c.Resume()
			if tc.counted && first != streamtest.SSE {
				token = c.ResumeAt()
			}
			c.Close() // whatever is in flight is lost
			had := c.View()
			time.Sleep(300 * time.Millisecond)
			f.halt()

			q = url.Values{"resume": {token}}
			h := http.Header{}
			if tc.tr == streamtest.SSE {
				q = nil
				h.Set("Last-Event-ID", lastEvent)
			}
			again, err := streamtest.DialOptions(ctx, ts.base, tc.tr, q, streamtest.Options{Header: h, Seed: had, Log: true})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			want, err := streamtest.Snapshot(ctx, ts.base, syms...)
			if err != nil {
				t.Fatal(err)
			}
			streamtest.WaitFor(t, 10*time.Second, "resumed view converged", func() error {
				return streamtest.Converged(again.View(), want, streamtest.All(syms...))
			})
			if v := again.Violations(); len(v) > 0 {
				t.Fatalf("violations: %v", v)
			}
			snaps := 0
			for _, m := range again.Data() {
				if m.Type == "snapshot" {
					snaps++
				}
			}
			t.Logf("resume sent %d messages, %d of them snapshots; %s seq %d when cut, %d at the end", len(again.Data()), snaps, syms[0], had[syms[0]].Seq, want[syms[0]].Seq)
		})
	}
}

// Browser pages on other origins may use every HTTP transport: answers
// carry Access-Control-Allow-Origin and preflights are answered, for the
// allowed origins only; a session op from a refused origin is refused.
func TestCrossOrigin(t *testing.T) {
	ts := newTestServer(t, stream.Config{AllowedOrigins: []string{"https://app.example"}})
	ts.put(t, "AAA", "bid", "1")
	c := dial(t, ts, streamtest.NDJSON, url.Values{"symbols": {"AAA"}})
	do := func(method, path, origin string, h map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.base+path, strings.NewReader(`{"op":"ping","id":1}`))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do("GET", "/v1/snapshot?symbols=AAA", "https://app.example", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("snapshot from an allowed origin: %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	pre := do("OPTIONS", "/v1/sessions/"+c.Session(), "https://app.example",
		map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, authorization"})
	if pre.StatusCode != http.StatusNoContent || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	if r := do("POST", "/v1/sessions/"+c.Session(), "https://app.example", nil); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("session op from an allowed origin: %d %v", r.StatusCode, r.Header)
	}
	for _, path := range []string{"/v1/sessions/" + c.Session(), "/v1/snapshot"} {
		method := "POST"
		if path == "/v1/snapshot" {
			method = "GET"
		}
		if r := do(method, path, "https://evil.example", nil); r.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s from a refused origin: %d, want 403", method, path, r.StatusCode)
		}
	}
	if r := do("OPTIONS", "/v1/sse", "https://evil.example", map[string]string{"Access-Control-Request-Method": "GET"}); r.StatusCode != http.StatusForbidden {
		t.Errorf("preflight from a refused origin: %d, want 403", r.StatusCode)
	}
	if r := do("GET", "/v1/snapshot", "", nil); r.StatusCode != 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a request without Origin: %d, ACAO %q", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"))
	}
}
