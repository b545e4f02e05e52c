package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// upstream is a loopback WebSocket server standing in for an exchange: it
// refuses the first refuse handshakes with 503, records what each client
// connection sends, and plays script on each connection it accepts.
type upstream struct {
	t      *testing.T
	srv    *httptest.Server
	refuse int
	script func(n int, c *upstreamConn) // n counts accepted connections from 1

	mu      sync.Mutex
	dials   []time.Time
	conns   []*upstreamConn
	handles sync.WaitGroup
}

// upstreamConn is one accepted connection, seen from the server.
type upstreamConn struct {
	*websocket.Conn
	mu        sync.Mutex
	got       []string // text messages from the client
	gotOne    chan struct{}
	closeCode int           // of the client's close frame, if any
	done      chan struct{} // closed when the client's side is gone
}

func newUpstream(t *testing.T, refuse int, script func(n int, c *upstreamConn)) *upstream {
	u := &upstream{t: t, refuse: refuse, script: script}
	up := websocket.Upgrader{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.dials = append(u.dials, time.Now())
		refused := len(u.dials) <= u.refuse
		u.mu.Unlock()
		if refused {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &upstreamConn{Conn: ws, gotOne: make(chan struct{}, 100), done: make(chan struct{})}
		u.mu.Lock()
		u.conns = append(u.conns, c)
		n := len(u.conns)
		u.handles.Add(2) // the reader and this handler: hijacked, so srv.Close does not wait
		u.mu.Unlock()
		defer u.handles.Done()
		go func() { // reads (and so answers pings) unless the script stops it
			defer u.handles.Done()
			c.read()
		}()
		u.script(n, c)
	}))
	t.Cleanup(func() {
		u.srv.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.handles.Wait()
	})
	return u
}

func (u *upstream) url() string { return "ws" + strings.TrimPrefix(u.srv.URL, "http") + "/ws" }

func (u *upstream) connections() []*upstreamConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*upstreamConn(nil), u.conns...)
}

func (c *upstreamConn) read() {
	defer close(c.done)
	c.SetCloseHandler(func(code int, _ string) error {
		c.mu.Lock()
		c.closeCode = code
		c.mu.Unlock()
		return nil
	})
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.got = append(c.got, string(b))
		c.mu.Unlock()
		c.gotOne <- struct{}{}
	}
}

func (c *upstreamConn) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

// waitSubscribe waits for the client's first message.
func (c *upstreamConn) waitSubscribe(t *testing.T) {
	select {
	case <-c.gotOne:
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Error("no subscribe message")
	}
}

// waitFor polls fn until it returns nil, or fails t after timeout.
func waitFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runUpstream runs a into rec until the test ends, and checks Run returns
// nil promptly when its context ends.
func runUpstream(t *testing.T, a *WSUpstream) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	end := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(end) })
	return func() { once.Do(end) }
}

func wsAdapter(t *testing.T, url, mapping string, subscribe ...string) (*WSUpstream, *recorder, *Metrics) {
	t.Helper()
	m, err := LoadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	metrics := NewMetrics(prometheus.NewRegistry())
	a := &WSUpstream{
		URL: url, Mapping: m, Sink: rec, Counter: metrics.Counter("ws", ReasonFrame),
		Log:        slog.New(slog.NewTextHandler(t.Output(), nil)),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	for _, s := range subscribe {
		a.Subscribe = append(a.Subscribe, []byte(s))
	}
	return a, rec, metrics
}

// The recorded Binance samples, a malformed (truncated JSON) message among
// them, then a frame cut off by a dying connection: the adapter applies
// exactly the good records, counts the rest by reason, dials again with
// backoff, subscribes again and carries on.
func TestWSUpstreamReplayAndReconnect(t *testing.T) {
	frames := readFrames(t, "testdata/ws/binance.frames")
	const sub = `{"method":"SUBSCRIBE","params":["btcusdt@ticker","ethbtc@ticker","!ticker@arr"],"id":1}`
	u := newUpstream(t, 0, func(n int, c *upstreamConn) {
		c.waitSubscribe(t)
		switch n {
		case 1:
			for _, f := range frames[:10] {
				if err := c.WriteMessage(websocket.TextMessage, f); err != nil {
					t.Error(err)
				}
			}
			// A text frame announcing 100 bytes, of which 10 arrive.
			c.NetConn().Write(append([]byte{0x81, 100}, `{"e":"24hr`...))
			c.NetConn().Close()
		case 2:
			c.WriteMessage(websocket.TextMessage, frames[10])
		}
	})
	a, rec, m := wsAdapter(t, u.url(), "binance", sub)
	stop := runUpstream(t, a)

	want := []string{
		"BTC-USDT bid=93837.65 bidSize=3.21455 ask=93837.66 askSize=0.51209 last=93837.66 lastSize=0.0015 volume=18234.55012 open=94350 high=95012 low=93500.01 change=-512.34 changePct=-0.543 time=2026-01-01T00:00:00.123000Z",
		"ETH-BTC bid=0.03489 bidSize=12.3456 ask=0.0349 askSize=7 last=0.0349 lastSize=0.1234 volume=23456.789 open=0.03478 high=0.03512 low=0.03461 change=0.00012 changePct=0.345 time=2026-01-01T00:00:00.456000Z",
		"BNB-USDT bid=704.1 bidSize=45.12 ask=704.2 askSize=3 last=704.2 lastSize=0.51 volume=123456.12 open=701.1 high=706 low=699.5 change=3.1 changePct=0.442 time=2026-01-01T00:00:01.000000Z",
		"SOL-USDC bid=137.16 bidSize=88.1 ask=137.17 askSize=5.2 last=137.17 lastSize=12.5 volume=987654.3 open=138.4 high=140 low=136.02 change=-1.23 changePct=-0.889 time=2026-01-01T00:00:01.001000Z",
		"PEPE-USDT bid=0.00001172 bidSize=812345678 ask=0.00001173 askSize=9876543 last=0.00001173 lastSize=5000000 volume=9876543210123 open=0.00001161 high=0.0000119 low=0.0000115 change=0.00000012 changePct=1.034 time=2026-01-01T00:00:01.002000Z",
		"BTC-USDT bid=93849.99 bidSize=1 ask=93850 askSize=2.5 last=93850 lastSize=0.01 volume=18240 open=94350 high=95012 low=93500.01 change=-500 changePct=-0.53 time=2026-01-01T00:00:03.000000Z",
	}
	waitFor(t, 10*time.Second, func() error {
		if n := rec.count(); n < len(want) {
			return fmt.Errorf("%d updates", n)
		}
		return nil
	})
	conns := u.connections()
	if len(conns) != 2 {
		t.Fatalf("%d connections, want 2", len(conns))
	}
	for i, c := range conns {
		if got := c.messages(); len(got) != 1 || got[0] != sub {
			t.Errorf("connection %d: client sent %q, want the subscribe message", i+1, got)
		}
	}
	rec.mu.Lock()
	for i, u := range rec.updates {
		if i >= len(want) || wire(u) != want[i] || u.TS != 0 {
			t.Errorf("update %d:\n got %s (ts %d)\nwant %s", i, wire(u), u.TS, want[min(i, len(want)-1)])
		}
	}
	rec.mu.Unlock()
	if got := rejected(m, "ws"); !sameCounts(got, map[string]int{ReasonJSON: 1, ReasonSymbol: 2, ReasonValue: 1}) {
		t.Errorf("rejected by reason %v", got)
	}
	if got := testutil.ToFloat64(m.Accepted.WithLabelValues("ws")); got != 6 {
		t.Errorf("accepted %v, want 6", got)
	}
	// The subscribe ack, the kline event and the empty array.
	if got := testutil.ToFloat64(m.Ignored.WithLabelValues("ws")); got != 3 {
		t.Errorf("ignored %v, want 3", got)
	}

	// Shutdown: the upstream is told, with 1001 going away.
	stop()
	select {
	case <-conns[1].done:
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after Run returned")
	}
	conns[1].mu.Lock()
	defer conns[1].mu.Unlock()
	if conns[1].closeCode != websocket.CloseGoingAway {
		t.Errorf("close code %d, want %d", conns[1].closeCode, websocket.CloseGoingAway)
	}
}

// Refused handshakes are retried after growing waits; the first accepted
// connection gets the subscribe messages, all of them, in order.
func TestWSUpstreamBackoff(t *testing.T) {
	u := newUpstream(t, 4, func(n int, c *upstreamConn) {
		c.waitSubscribe(t)
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ticker","product_id":"ETH-USD","price":"3401.5"}`))
	})
	a, rec, _ := wsAdapter(t, u.url(), "coinbase", `{"type":"subscribe","product_ids":["ETH-USD"],"channels":["ticker"]}`, `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["heartbeat"]}`)
	a.MinBackoff, a.MaxBackoff = 40*time.Millisecond, 160*time.Millisecond
	runUpstream(t, a)
	waitFor(t, 10*time.Second, func() error {
		if rec.count() == 0 {
			return errors.New("no update")
		}
		return nil
	})
	u.mu.Lock()
	dials := append([]time.Time(nil), u.dials...)
	u.mu.Unlock()
	// Waits are drawn from [d/2, d] with d = 40, 80, 160, 160 ms.
	for i, least := range []time.Duration{20, 40, 80, 80} {
		if gap := dials[i+1].Sub(dials[i]); gap < least*time.Millisecond {
			t.Errorf("dial %d came %v after dial %d, want at least %v ms", i+2, gap, i+1, least)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		if got := u.connections()[0].messages(); len(got) != 2 || !strings.Contains(got[1], "heartbeat") {
			return fmt.Errorf("client sent %q", got)
		}
		return nil
	})
	if wire(rec.updates[0]) != "ETH-USD last=3401.5" {
		t.Errorf("update %s", wire(rec.updates[0]))
	}
}

func TestBackoffBounds(t *testing.T) {
	b := backoff{min: 250 * time.Millisecond, max: 30 * time.Second}
	d := b.min
	for i := range 1000 {
		if i == 500 {
			b.reset()
			d = b.min
		}
		got := b.next()
		if got < d/2 || got > d {
			t.Fatalf("wait %d = %v, want within [%v, %v]", i, got, d/2, d)
		}
		d = min(2*d, b.max)
	}
}

// An upstream that goes silent and stops answering pings is dropped after
// ReadTimeout and dialled again; one that answers pings is kept.
func TestWSUpstreamDeadUpstream(t *testing.T) {
	for _, answers := range []bool{false, true} {
		t.Run(fmt.Sprintf("answers pings %v", answers), func(t *testing.T) {
			u := newUpstream(t, 0, func(n int, c *upstreamConn) {
				c.waitSubscribe(t)
				if !answers {
					// End the server's reading, so pings go unanswered;
					// the connection stays open.
					c.SetReadDeadline(time.Now())
				}
			})
			a, _, _ := wsAdapter(t, u.url(), "binance", `{"method":"SUBSCRIBE","params":["btcusdt@ticker"],"id":1}`)
			a.PingInterval, a.ReadTimeout = 50*time.Millisecond, 300*time.Millisecond
			start := time.Now()
			runUpstream(t, a)
			if !answers {
				waitFor(t, 10*time.Second, func() error {
					if n := len(u.connections()); n < 2 {
						return fmt.Errorf("%d connections", n)
					}
					return nil
				})
				if gap := time.Since(start); gap < 300*time.Millisecond {
					t.Errorf("dropped after %v, before the read timeout", gap)
				}
				if got := u.connections()[1].messages(); len(got) != 1 {
					t.Errorf("second connection: client sent %q, want the subscribe again", got)
				}
				return
			}
			// Five read timeouts' worth of silence, kept alive by pongs.
			time.Sleep(1500 * time.Millisecond)
			if n := len(u.connections()); n != 1 {
				t.Fatalf("%d connections, want 1: pongs must keep it", n)
			}
		})
	}
}

// A frame over MaxFrame is counted and ends the connection; the next one
// carries on.
func TestWSUpstreamReadLimit(t *testing.T) {
	big := `{"e":"24hrTicker","s":"BTCUSDT","c":"1","pad":"` + strings.Repeat("x", 2000) + `"}`
	u := newUpstream(t, 0, func(n int, c *upstreamConn) {
		c.waitSubscribe(t)
		if n == 1 {
			c.WriteMessage(websocket.TextMessage, []byte(big))
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte(`{"e":"24hrTicker","s":"BTCUSDT","c":"2"}`))
	})
	a, rec, m := wsAdapter(t, u.url(), "binance", `{"method":"SUBSCRIBE","params":["btcusdt@ticker"],"id":1}`)
	a.MaxFrame = 1024
	runUpstream(t, a)
	waitFor(t, 10*time.Second, func() error {
		if rec.count() == 0 {
			return errors.New("no update")
		}
		return nil
	})
	if got := rejected(m, "ws"); !sameCounts(got, map[string]int{ReasonFrame: 1}) {
		t.Errorf("rejected %v, want one frame", got)
	}
	if wire(rec.updates[0]) != "BTC-USDT last=2" {
		t.Errorf("update %s", wire(rec.updates[0]))
	}
}

func TestWSUpstreamBadConfig(t *testing.T) {
	m, _ := LoadMapping("binance")
	for _, a := range []*WSUpstream{
		{URL: "http://example.com/ws", Mapping: m, Sink: &recorder{}},
		{URL: "wss://", Mapping: m, Sink: &recorder{}},
		{URL: "wss://example.com/ws", Sink: &recorder{}},
	} {
		if err := a.Run(context.Background()); err == nil {
			t.Errorf("Run(%+v) = nil", a)
		}
	}
}

// BenchmarkWSUpstream: Binance 24hr tickers over loopback WebSocket, one
// ticker per frame, mapped into a sink that only counts. The server writing
// the frames runs on the same cores.
func BenchmarkWSUpstream(b *testing.B) {
	frame := readFrames(b, "testdata/ws/binance.frames")[1]
	sink := &countSink{want: int64(b.N), done: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, frame)
		for range b.N {
			if err := c.WritePreparedMessage(pm); err != nil {
				return
			}
		}
		<-sink.done
	}))
	defer srv.Close()
	m, _ := LoadMapping("binance")
	a := &WSUpstream{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Mapping: m, Sink: sink, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	go func() { done <- a.Run(ctx) }()
	<-sink.done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	cancel()
	<-done
}
