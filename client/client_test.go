package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"tickerd/client"
	"tickerd/stream"
)

var transports = []client.Transport{client.WebSocket, client.SSE, client.NDJSON, client.LongPoll}

func symbols(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("S%02d", i)
	}
	return out
}

// TestConverges: over each transport, the local records end equal to the
// server's snapshot once the feed goes quiet, for a subscription made in
// Dial and for one made later with a field list and a fractional rate.
func TestConverges(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, stream.Config{}, nil)
			syms := symbols(12)
			feedBurst(t, srv.base, syms, 24, 0)
			rec := &recorder{}
			c := dial(t, srv.base, append(rec.options(), client.WithTransport(tr), client.WithPollWait(2*time.Second),
				client.WithSubscription(syms[:8]))...)
			if c.Transport() != tr || c.State() != client.Connected {
				t.Fatalf("transport %v, state %v", c.Transport(), c.State())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Subscribe(ctx, syms[8:], client.Fields("bid", "ask"), client.MaxHz(2.5)); err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			feedBurst(t, srv.base, syms, 600, 1)
			waitFor(t, 10*time.Second, "convergence", func() bool {
				return converged(t, c, srv.base, syms[:8]) && converged(t, c, srv.base, syms[8:], "bid", "ask")
			})
			if got := c.Subscribed(); !slices.Equal(got, syms) {
				t.Errorf("Subscribed() = %v", got)
			}
			if got := c.Symbols(); !slices.Equal(got, syms) {
				t.Errorf("Symbols() = %v", got)
			}
			if l := c.Latency(); l.N == 0 || l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
				t.Errorf("Latency() = %+v", l)
			}

			// A refused symbol comes back as an error and is not kept.
			err := c.Subscribe(ctx, []string{"GOOD", "bad!"})
			var se *client.ServerError
			if !errors.As(err, &se) || se.Code != client.CodeBadRequest || se.Symbol != "bad!" {
				t.Errorf("Subscribe(bad!) = %v, want a bad_request error for bad!", err)
			}
			if got := c.Subscribed(); slices.Contains(got, "bad!") || !slices.Contains(got, "GOOD") {
				t.Errorf("after a refused symbol Subscribed() = %v", got)
			}
			// Unsubscribed symbols leave the local records at once.
			if err := c.Unsubscribe(ctx, syms[0], syms[9]); err != nil {
				t.Fatalf("Unsubscribe: %v", err)
			}
			feedBurst(t, srv.base, syms, 48, 2)
			waitFor(t, 10*time.Second, "convergence after unsubscribe", func() bool {
				return converged(t, c, srv.base, syms[1:8]) && converged(t, c, srv.base, []string{syms[8]}, "bid", "ask")
			})
			for _, sym := range []string{syms[0], syms[9]} {
				if q, ok := c.Snapshot(sym); ok {
					t.Errorf("unsubscribed %s still has a record: %+v", sym, q)
				}
			}
		})
	}
}

// TestServerRestart: the server goes away and a new one (with an empty
// cache) comes up on the same port; the client reconnects, subscribes
// again (the new server knows no session) and converges to the new data.
func TestServerRestart(t *testing.T) {
	for _, tr := range []client.Transport{client.WebSocket, client.SSE, client.LongPoll} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, stream.Config{}, nil)
			syms := symbols(6)
			feedBurst(t, srv.base, syms, 60, 0)
			rec := &recorder{}
			c := dial(t, srv.base, append(rec.options(), client.WithTransport(tr), client.WithPollWait(time.Second),
				client.WithSubscription(syms, client.Fields("bid", "ask", "bidSize")))...)
			waitFor(t, 10*time.Second, "convergence", func() bool { return converged(t, c, srv.base, syms, "bid", "ask", "bidSize") })

			srv.restart()
			feedBurst(t, srv.base, syms, 30, 5)
			waitFor(t, 15*time.Second, "convergence after the restart", func() bool {
				return converged(t, c, srv.base, syms, "bid", "ask", "bidSize")
			})
			states := rec.stateList()
			if !slices.Equal(states[:2], []client.State{client.Connecting, client.Connected}) ||
				!slices.Contains(states[2:], client.Reconnecting) || states[len(states)-1] != client.Connected {
				t.Errorf("states %v", states)
			}
			if got := c.Subscribed(); !slices.Equal(got, syms) {
				t.Errorf("Subscribed() after restart = %v", got)
			}
		})
	}
}

// TestResumeChangesOnly drops the connection (a proxy cuts it and refuses
// new ones for a moment), changes one field of one symbol meanwhile, and
// checks that the client resumes its session: it does not subscribe
// again, and only that field of that symbol is reported changed.
func TestResumeChangesOnly(t *testing.T) {
	for _, tr := range []client.Transport{client.SSE, client.NDJSON, client.LongPoll} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, stream.Config{}, nil)
			px := startProxy(t, srv.addr)
			syms := []string{"AAA", "BBB", "CCC"}
			ingest(t, srv.base,
				`{"symbol":"AAA","fields":{"bid":"10.1","ask":"10.2"}}`,
				`{"symbol":"BBB","fields":{"bid":"20.1","ask":"20.2"}}`,
				`{"symbol":"CCC","fields":{"bid":"30.1","ask":"30.2"}}`)
			rec := &recorder{}
			c := dial(t, px.base(), append(rec.options(), client.WithTransport(tr), client.WithPollWait(time.Second),
				client.WithSubscription(syms))...)
			waitFor(t, 10*time.Second, "convergence", func() bool { return converged(t, c, srv.base, syms) })
			first, _ := rec.since(0, 0)
			session := first[0].Session

			px.cut()
			waitFor(t, 5*time.Second, "the client to notice", func() bool { return c.State() == client.Reconnecting })
			fromMsg, fromChange := rec.mark()
			ingest(t, srv.base, `{"symbol":"AAA","fields":{"bid":"10.15","ask":"10.2"}}`)
			px.up()
			waitFor(t, 10*time.Second, "convergence after resume", func() bool {
				return c.State() == client.Connected && converged(t, c, srv.base, syms)
			})
			msgs, changes := rec.since(fromMsg, fromChange)

			if len(msgs) == 0 || msgs[0].Type != client.TypeSession || msgs[0].Session != session {
				t.Fatalf("after the reconnect: %+v, want the session message of %s first", msgs, session)
			}
			if len(changes) != 1 || changes[0].Symbol != "AAA" || len(changes[0].Fields) != 1 || changes[0].Fields["bid"] != "10.15" {
				t.Errorf("changes reported after resume: %+v, want AAA bid=10.15 only", changes)
			}
			var data []string
			for _, m := range msgs {
				switch m.Type {
				case client.TypeSubscribed:
					t.Errorf("subscribed again after resume: %+v", m)
				case client.TypeSnapshot, client.TypeUpdate:
					data = append(data, fmt.Sprintf("%s %s %v", m.Type, m.Symbol, m.Fields))
				}
			}
			// The contract: within the retention window only what changed is
			// resent (the client tells the server what it has: TOKEN.N, or
			// Last-Event-ID on SSE).
			if len(data) != 1 || !strings.HasPrefix(data[0], "update AAA map[bid:10.15]") {
				t.Errorf("on the wire after resume: %q, want only the update of AAA's bid", data)
			}
		})
	}
}

// TestFallback: with WebSocket refused, and then SSE too, a client with
// fallback ends up on the next transport and converges there.
func TestFallback(t *testing.T) {
	tests := []struct {
		name    string
		blocked []string
		want    client.Transport
	}{
		{"ws blocked", []string{"/v1/ws"}, client.SSE},
		{"ws and sse blocked", []string{"/v1/ws", "/v1/sse"}, client.LongPoll},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			block := func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if slices.Contains(tt.blocked, r.URL.Path) {
						http.Error(w, "blocked by a proxy", http.StatusForbidden)
						return
					}
					h.ServeHTTP(w, r)
				})
			}
			srv := startServer(t, stream.Config{}, block)
			syms := symbols(4)
			feedBurst(t, srv.base, syms, 20, 0)
			c := dial(t, srv.base, client.WithFallback(), client.WithPollWait(time.Second), client.WithSubscription(syms))
			if c.Transport() != tt.want {
				t.Errorf("transport %v, want %v", c.Transport(), tt.want)
			}
			feedBurst(t, srv.base, syms, 40, 1)
			waitFor(t, 10*time.Second, "convergence", func() bool { return converged(t, c, srv.base, syms) })

			_, err := client.Dial(context.Background(), srv.base, client.WithLogger(quiet))
			var he *client.HTTPError
			if !errors.As(err, &he) || he.Status != http.StatusForbidden {
				t.Errorf("Dial without fallback: %v, want HTTP 403", err)
			}
		})
	}
}

// TestMaxAgeRotation: the server ends every stream after a short age;
// the client resumes at once and stays current, never subscribing again.
func TestMaxAgeRotation(t *testing.T) {
	srv := startServer(t, stream.Config{MaxConnAge: 300 * time.Millisecond}, nil)
	syms := symbols(5)
	feedBurst(t, srv.base, syms, 20, 0)
	rec := &recorder{}
	c := dial(t, srv.base, append(rec.options(), client.WithTransport(client.NDJSON), client.WithSubscription(syms))...)
	for i := range 8 {
		feedBurst(t, srv.base, syms, 25, i+1)
		time.Sleep(100 * time.Millisecond) // the feed's pace, not synchronization
	}
	waitFor(t, 10*time.Second, "convergence", func() bool { return converged(t, c, srv.base, syms) })
	if n := rec.count(client.TypeClose); n < 2 {
		t.Errorf("%d close messages in 1 s at a max age of 300ms", n)
	}
	if n := rec.count(client.TypeSubscribed); n != 1 {
		t.Errorf("%d subscribed acks, want the first only", n)
	}
}

// TestAuthHeader: the token goes in the Authorization header (or ?token=
// when asked), on streams and ops alike.
func TestAuthHeader(t *testing.T) {
	seen := make(chan string, 100)
	spy := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case seen <- r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization") + " " + r.URL.Query().Get("token"):
			default:
			}
			h.ServeHTTP(w, r)
		})
	}
	srv := startServer(t, stream.Config{}, spy)
	c := dial(t, srv.base, client.WithTransport(client.SSE), client.WithToken("k1"))
	if err := c.Subscribe(context.Background(), []string{"AAA"}); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, srv.base, client.WithTransport(client.NDJSON), client.WithToken("k2"), client.WithTokenInQuery())
	if err := c2.Subscribe(context.Background(), []string{"AAA"}); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, srv.base, client.WithToken("k3"), client.WithAuthOp(), client.WithSubscription([]string{"AAA"}))
	_ = c3
	want := []string{"GET /v1/sse Bearer k1 ", "POST /v1/sessions/", "GET /v1/stream  k2", "GET /v1/ws  "}
	var got []string
	for range 5 {
		got = append(got, <-seen)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no request like %q in %q", w, got)
		}
	}
	for _, g := range got {
		if strings.HasPrefix(g, "POST") && !strings.HasSuffix(g, "Bearer k1 ") && !strings.HasSuffix(g, "Bearer k2 ") {
			t.Errorf("op without the header: %q", g)
		}
	}
}
