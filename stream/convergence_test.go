package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"tickerd/feed"
	"tickerd/internal/streamtest"
	"tickerd/stream"
)

// TestConvergence is the property test of the data path: a random stream
// of updates over many symbols, hundreds of concurrent sessions on every
// transport with random subscriptions, fields, rates and mid-stream
// subscription changes. While it runs, every message is checked (seq never
// goes backwards, no update before its snapshot, no update carries a value
// the session already has, nothing after an unsubscribe ack on WebSocket).
// Once the feed stops, every session's view must equal /v1/snapshot.
func TestConvergence(t *testing.T) {
	const (
		symbols     = 200
		perTrans    = 80
		updates     = 20_000
		batch       = 60
		serverMaxHz = 50
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	ts := newTestServer(t, stream.Config{MaxHz: serverMaxHz})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	syms := make([]string, symbols)
	for i := range syms {
		syms[i] = fmt.Sprintf("S%03d", i)
	}
	// Half the symbols have data before anyone subscribes; the rest get
	// their first update while sessions watch them.
	var u feed.Update
	feedOne := func(r *rand.Rand, sym string) {
		u.Reset()
		u.Symbol = sym
		// Few distinct values, so a field often returns to a value a
		// session already has (A→B→A between two messages).
		for f := range feed.Field(feed.Time) {
			if r.IntN(3) == 0 {
				u.Put(f, feed.DecimalValue(decimal.New(int64(100+r.IntN(4)), -2)))
			}
		}
		if r.IntN(10) == 0 {
			u.Put(feed.Status, feed.StatusValue([]string{feed.StatusTrading, feed.StatusHalted}[r.IntN(2)]))
		}
		if u.Set == 0 {
			u.Put(feed.Bid, feed.DecimalValue(decimal.New(int64(r.IntN(4)), 0)))
		}
		ts.cache.Apply(&u)
	}
	for _, s := range syms[:symbols/2] {
		feedOne(rng, s)
	}

	type client struct {
		conn   *streamtest.Conn
		want   map[string][]string // subscribed symbol → fields (nil = all)
		fields []string
	}
	allFields := []string{"bid", "bidSize", "ask", "askSize", "last", "lastSize", "volume", "open",
		"high", "low", "prevClose", "change", "changePct", "time", "status"}
	var clients []*client
	for i := range perTrans * len(streamtest.Transports) {
		tr := streamtest.Transports[i%len(streamtest.Transports)]
		c := &client{want: map[string][]string{}}
		if rng.IntN(2) == 0 {
			perm := rng.Perm(len(allFields))
			for _, p := range perm[:3+rng.IntN(6)] {
				c.fields = append(c.fields, allFields[p])
			}
		}
		q := url.Values{}
		var picked []string
		for _, p := range rng.Perm(symbols)[:5+rng.IntN(36)] {
			picked = append(picked, syms[p])
			c.want[syms[p]] = c.fields
		}
		q.Set("symbols", strings.Join(picked, ","))
		if c.fields != nil {
			q.Set("fields", strings.Join(c.fields, ","))
		}
		if hz := []string{"", "2", "10", "1000"}[rng.IntN(4)]; hz != "" {
			q.Set("maxHz", hz)
		}
		conn, err := streamtest.Dial(ctx, ts.base, tr, q)
		if err != nil {
			t.Fatal(err)
		}
		c.conn = conn
		clients = append(clients, c)
	}
	t.Cleanup(func() {
		for _, c := range clients {
			c.conn.Close()
		}
	})
	streamtest.WaitFor(t, 30*time.Second, "every session acknowledged", func() error {
		for _, c := range clients {
			if !hasType(c.conn.Control(), "subscribed") {
				return fmt.Errorf("%s session has no subscribed ack yet", c.conn.Transport)
			}
		}
		return nil
	})

	// The feed, and subscription changes by a third of the sessions
	// halfway through it.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 8))
		for n := 0; n < updates; n += batch {
			for range batch {
				feedOne(r, syms[r.IntN(symbols)])
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	for i, c := range clients {
		if i%3 != 0 {
			continue
		}
		var drop, add []string
		for s := range c.want {
			if len(drop) < 3 {
				drop = append(drop, s)
			}
		}
		for _, p := range rng.Perm(symbols)[:4] {
			if _, had := c.want[syms[p]]; !had && !contains(drop, syms[p]) {
				add = append(add, syms[p])
			}
		}
		op := map[string]any{"op": "unsubscribe", "id": 100 + i, "symbols": drop}
		if err := c.conn.Send(ctx, op); err != nil {
			t.Fatalf("%s unsubscribe: %v", c.conn.Transport, err)
		}
		for _, s := range drop {
			delete(c.want, s)
		}
		if len(add) > 0 {
			op = map[string]any{"op": "subscribe", "id": 200 + i, "symbols": add}
			if c.fields != nil {
				op["fields"] = c.fields
			}
			if err := c.conn.Send(ctx, op); err != nil {
				t.Fatalf("%s subscribe: %v", c.conn.Transport, err)
			}
			for _, s := range add {
				c.want[s] = c.fields
			}
		}
	}
	wg.Wait()

	server, err := streamtest.Snapshot(ctx, ts.base)
	if err != nil {
		t.Fatal(err)
	}
	// Within one throttle interval (≤ 0.5 s at 2 Hz) plus 1 s; the race
	// detector and 240 sessions on 2 cores earn the margin.
	for _, c := range clients {
		c := c
		streamtest.WaitFor(t, 15*time.Second, c.conn.Transport+" session converges", func() error {
			return streamtest.Converged(c.conn.View(), server, c.want)
		})
	}
	var msgs int
	for _, c := range clients {
		if v := c.conn.Violations(); len(v) > 0 {
			t.Errorf("%s session: %d violations, first: %s", c.conn.Transport, len(v), v[0])
		}
		if err := c.conn.Err(); err != nil {
			t.Errorf("%s session ended early: %v", c.conn.Transport, err)
		}
		n, _ := c.conn.Counts()
		msgs += n
	}
	t.Logf("%d sessions, %d data messages", len(clients), msgs)
}

func hasType(ms []streamtest.Msg, typ string) bool {
	for _, m := range ms {
		if m.Type == typ {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
