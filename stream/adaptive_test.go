package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tickerd/internal/streamtest"
	"tickerd/stream"
)

// Adaptive throttling (issue 4), over real loopback sockets: fractional
// and default maxHz, clients that read slowly or not at all, the
// bandwidth cap, and the admin view of it all.

// feeder updates syms in a loop until stopped, as fast as the cache
// takes it with a short pause per round, and reports the last round.
type feeder struct {
	stop chan struct{}
	done chan int
}

func startFeeder(t *testing.T, ts *testServer, syms []string, pause time.Duration) *feeder {
	f := &feeder{stop: make(chan struct{}), done: make(chan int, 1)}
	go func() {
		n := 0
		defer func() { f.done <- n }()
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			n++
			for _, s := range syms {
				ts.put(t, s, "bid", fmt.Sprint(n), "ask", fmt.Sprint(n+1), "bidSize", fmt.Sprint(100+n%7))
			}
			time.Sleep(pause)
		}
	}()
	return f
}

// halt stops the feed and returns the number of its last round.
func (f *feeder) halt() int {
	close(f.stop)
	return <-f.done
}

func symbols(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return s
}

func TestFractionalAndDefaultMaxHz(t *testing.T) {
	cases := []struct {
		name, maxHz string
		perSec      float64
	}{
		{"half", "0.5", 0.5},
		{"zero-means-default", "0", 4}, // the server's MaxHz below
		{"absent-means-default", "", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxHz: 4})
			ts.put(t, "HOT", "bid", "0")
			q := url.Values{"symbols": {"HOT"}}
			if tc.maxHz != "" {
				q.Set("maxHz", tc.maxHz)
			}
			c := dial(t, ts, streamtest.WS, q)
			n, elapsed := hammer(t, ts, c, 3*time.Second, 5*time.Second)
			msgs, _ := c.Counts()
			// The snapshot, one per interval, and the final catch-up.
			limit := int(elapsed.Seconds()*tc.perSec) + 3
			if msgs > limit || msgs < 2 {
				t.Errorf("%d messages for %d updates in %v at %g/s; want 2..%d", msgs, n, elapsed, tc.perSec, limit)
			}
			if v := c.Violations(); len(v) > 0 {
				t.Fatalf("violations: %v", v)
			}
		})
	}
}

// A client reading 10 KiB/s, far less than its subscriptions carry, gets
// fewer and fresher messages, the server's admin view shows it limited by
// its client, and it converges to the exact snapshot once the feed stops.
func TestSlowReaderConverges(t *testing.T) {
	for _, tr := range []string{streamtest.WS, streamtest.NDJSON, streamtest.SSE} {
		t.Run(tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxHz: 1000, StallTimeout: 20 * time.Second})
			syms := symbols("SL", 50)
			for _, s := range syms {
				ts.put(t, s, "bid", "0", "ask", "1", "last", "0.5")
			}
			c, err := streamtest.DialOptions(context.Background(), ts.base, tr,
				url.Values{"symbols": {strings.Join(syms, ",")}, "maxHz": {"1000"}},
				streamtest.Options{ReadBPS: 10 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			f := startFeeder(t, ts, syms, 2*time.Millisecond)
			var sawClientLimit bool
			deadline := time.Now().Add(4 * time.Second)
			for time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				for _, s := range adminSessions(t, ts, "").Sessions {
					if s.LimitedBy == "client" && s.SendRateHz != nil {
						sawClientLimit = true
					}
				}
			}
			last := f.halt()
			want, err := streamtest.Snapshot(context.Background(), ts.base, syms...)
			if err != nil {
				t.Fatal(err)
			}
			streamtest.WaitFor(t, 30*time.Second, "slow reader converged", func() error {
				return streamtest.Converged(c.View(), want, streamtest.All(syms...))
			})
			msgs, _ := c.Counts()
			updates := last * len(syms)
			t.Logf("%d rounds (%d updates) → %d messages, %d bytes", last, updates, msgs, c.Bytes())
			if msgs*5 > updates {
				t.Errorf("%d messages for %d updates: a 10 KiB/s reader should be conflated far more", msgs, updates)
			}
			if !sawClientLimit {
				t.Error("the admin view never showed the session limited by its client")
			}
			if v := c.Violations(); len(v) > 0 {
				t.Fatalf("violations: %v", v)
			}
			if err := c.Err(); err != nil {
				t.Fatalf("stream ended: %v", err)
			}
		})
	}
}

// Clients that stop reading altogether: while the feed runs at full rate
// the server's memory for each stays under 256 KiB; each is closed as a
// slow consumer after the stall timeout (not before); 200 other sessions
// meanwhile keep receiving, with their latency close to what it was
// before (a generous bound measured in the same run).
func TestStoppedReadersBoundedAndClosed(t *testing.T) {
	const (
		stall    = 5 * time.Second
		nStalled = 40
		nHealthy = 200
	)
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, stream.Config{MaxHz: 1000, StallTimeout: stall, Registerer: reg})
	syms := symbols("ST", 300)
	for _, s := range syms {
		ts.put(t, s, "bid", "0", "ask", "1", "last", "0.5")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	healthy := make([]*streamtest.Conn, nHealthy)
	picks := make([][]string, nHealthy)
	for i := range healthy {
		pick := make([]string, 10)
		for j := range pick {
			pick[j] = syms[rng.IntN(len(syms))]
		}
		picks[i] = pick
		healthy[i] = dial(t, ts, []string{streamtest.WS, streamtest.NDJSON, streamtest.SSE}[i%3],
			url.Values{"symbols": {strings.Join(pick, ",")}, "maxHz": {"1000"}})
	}
	f := startFeeder(t, ts, syms, 20*time.Millisecond)
	defer func() {
		select {
		case <-f.stop:
		default:
			f.halt()
		}
	}()
	// The healthy sessions' latencies go into fixed histograms, so that
	// the test's own memory holds still while the server's is measured.
	var before, during latencyHist
	drop := func() {
		for _, c := range healthy {
			c.TakeLatencies()
		}
	}
	collect := func(h *latencyHist) {
		for _, c := range healthy {
			for _, l := range c.TakeLatencies() {
				h.add(l)
			}
		}
	}

	time.Sleep(time.Second)
	drop() // warm-up
	for range 4 {
		time.Sleep(500 * time.Millisecond)
		collect(&before)
	}
	base := heapAfterGC()

	opened := time.Now()
	stalled := make([]interface{ Close() error }, nStalled)
	for i := range stalled {
		tr := []string{"ws", "ndjson"}[i%2]
		stalled[i] = dialStalled(t, ts.base, tr, strings.Join(syms[:100], ","))
	}
	defer func() {
		for _, c := range stalled {
			_ = c.Close()
		}
	}()
	// Well inside the stall timeout, the stopped readers' backlog is as
	// large as it gets: their kernel buffers are full and the feed runs.
	for range 4 {
		time.Sleep(stall / 8)
		collect(&during)
	}
	loaded := heapAfterGC()
	if n, at := ts.srv.Sessions(), time.Since(opened); n != nHealthy+nStalled && at < stall {
		t.Fatalf("%d sessions open %v after the stalled ones opened, before the stall timeout; want %d", n, at, nHealthy+nStalled)
	}
	perStalled := (int64(loaded) - int64(base)) / nStalled
	t.Logf("heap %d KiB before, %d KiB with %d stopped readers: %d KiB each",
		base>>10, loaded>>10, nStalled, perStalled>>10)
	if perStalled > 256<<10 {
		t.Errorf("a stopped reader costs %d KiB of heap; want < 256 KiB", perStalled>>10)
	}

	streamtest.WaitFor(t, stall+15*time.Second, "stopped readers closed", func() error {
		collect(&during)
		if n := ts.srv.Sessions(); n != nHealthy {
			return fmt.Errorf("%d sessions open", n)
		}
		return nil
	})
	closedAfter := time.Since(opened)
	collect(&during)
	if closedAfter < stall {
		t.Errorf("stopped readers closed after %v, before the %v stall timeout", closedAfter, stall)
	}
	if got := counterValue(t, reg, "tickerd_slow_consumers_total"); got != nStalled {
		t.Errorf("tickerd_slow_consumers_total = %v, want %d", got, nStalled)
	}

	p99b, p99d := before.pct(0.99), during.pct(0.99)
	t.Logf("healthy sessions: p99 %v over %d updates before, %v over %d while %d readers stalled (closed after %v)",
		p99b, before.n, p99d, during.n, nStalled, closedAfter.Round(time.Millisecond))
	if during.n == 0 {
		t.Fatal("healthy sessions received nothing while the stopped readers were open")
	}
	if bound := max(3*p99b, p99b+100*time.Millisecond); p99d > bound {
		t.Errorf("healthy p99 rose from %v to %v (bound %v) while readers were stalled", p99b, p99d, bound)
	}

	last := f.halt()
	want, err := streamtest.Snapshot(context.Background(), ts.base, syms...)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range healthy {
		streamtest.WaitFor(t, 10*time.Second, fmt.Sprintf("healthy session %d converged", i), func() error {
			return streamtest.Converged(c.View(), want, streamtest.All(picks[i]...))
		})
		if v := c.Violations(); len(v) > 0 {
			t.Fatalf("healthy session %d: violations %v", i, v)
		}
		if c.Err() != nil || c.Closed() != nil {
			t.Fatalf("healthy session %d ended: %v %+v", i, c.Err(), c.Closed())
		}
	}
	t.Logf("feed ran %d rounds of %d symbols", last, len(syms))
}

// The bandwidth cap holds a session to its bytes per second on average,
// and it still converges.
func TestBandwidthCap(t *testing.T) {
	const bps = 20_000
	ts := newTestServer(t, stream.Config{MaxHz: 1000, MaxSessionBPS: bps})
	syms := symbols("BW", 50)
	for _, s := range syms {
		ts.put(t, s, "bid", "0", "ask", "1")
	}
	c := dial(t, ts, streamtest.WS, url.Values{"symbols": {strings.Join(syms, ",")}, "maxHz": {"1000"}})
	streamtest.WaitFor(t, 5*time.Second, "snapshots", func() error {
		if n, _ := c.Counts(); n < len(syms) {
			return fmt.Errorf("%d snapshots", n)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // the snapshots' own gap
	start, b0 := time.Now(), c.Bytes()
	f := startFeeder(t, ts, syms, 2*time.Millisecond)
	time.Sleep(3 * time.Second)
	got := float64(c.Bytes()-b0) / time.Since(start).Seconds()
	var limited bool
	for _, s := range adminSessions(t, ts, "ws").Sessions {
		limited = limited || s.LimitedBy == "bandwidth"
	}
	f.halt()
	t.Logf("%.0f bytes/s under a %d bytes/s cap", got, bps)
	// The frame payloads are a little less than what the cap counts.
	if got > bps*1.25 || got < bps/4 {
		t.Errorf("%.0f bytes/s under a %d bytes/s cap", got, bps)
	}
	if !limited {
		t.Error("the admin view does not show the session limited by bandwidth")
	}
	want, err := streamtest.Snapshot(context.Background(), ts.base, syms...)
	if err != nil {
		t.Fatal(err)
	}
	streamtest.WaitFor(t, 10*time.Second, "converged under the cap", func() error {
		return streamtest.Converged(c.View(), want, streamtest.All(syms...))
	})
}

func TestAdminSessions(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := newTestServer(t, stream.Config{Registerer: reg})
	ts.put(t, "AAA", "bid", "1")
	dial(t, ts, streamtest.WS, url.Values{"symbols": {"AAA"}})
	dial(t, ts, streamtest.NDJSON, url.Values{"symbols": {"AAA"}})

	all := adminSessions(t, ts, "")
	if all.Count != 2 || all.Shown != 2 || len(all.Sessions) != 2 {
		t.Fatalf("count %d shown %d sessions %d; want 2", all.Count, all.Shown, len(all.Sessions))
	}
	for _, s := range all.Sessions {
		if s.ID == "" || s.Remote == "" || s.Symbols != 1 || s.Created.IsZero() {
			t.Errorf("incomplete session entry %+v", s)
		}
	}
	if ws := adminSessions(t, ts, "ws"); ws.Count != 2 || len(ws.Sessions) != 1 || ws.Sessions[0].Transport != "ws" {
		t.Errorf("transport=ws: %+v", ws)
	}
	for q, want := range map[string]int{"?limit=1": 200, "?limit=x": 400, "?transport=carrier-pigeon": 400} {
		resp, err := http.Get(ts.base + "/v1/admin/sessions" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", q, resp.StatusCode, want)
		}
	}
	if got := histogramCount(t, reg, "tickerd_session_send_rate_hz"); got != 2 {
		t.Errorf("tickerd_session_send_rate_hz counts %d sessions, want 2", got)
	}

	keyed := newTestServer(t, stream.Config{AdminKey: "k-admin"})
	for key, want := range map[string]int{"": 401, "wrong": 401, "k-admin": 200} {
		req, _ := http.NewRequest(http.MethodGet, keyed.base+"/v1/admin/sessions", nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("admin key %q: %d, want %d", key, resp.StatusCode, want)
		}
	}
}

func adminSessions(t *testing.T, ts *testServer, transport string) stream.AdminSessions {
	t.Helper()
	u := ts.base + "/v1/admin/sessions"
	if transport != "" {
		u += "?transport=" + transport
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	var a stream.AdminSessions
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	return a
}

// heapAfterGC returns the heap found live by a full collection (not what
// was allocated since): the median of three.
func heapAfterGC() uint64 {
	var v [3]uint64
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for i := range v {
		runtime.GC()
		metrics.Read(s)
		v[i] = s[0].Value.Uint64()
	}
	slices.Sort(v[:])
	return v[1]
}

// latencyHist counts latencies in 1 ms buckets up to 10 s.
type latencyHist struct {
	n      int
	counts [10_001]int
}

func (h *latencyHist) add(d time.Duration) {
	h.n++
	h.counts[min(max(int(d/time.Millisecond), 0), len(h.counts)-1)]++
}

// pct returns the upper bound of the bucket holding the p quantile.
func (h *latencyHist) pct(p float64) time.Duration {
	want := int(float64(h.n)*p) + 1
	seen := 0
	for i, c := range h.counts {
		if seen += c; seen >= want {
			return time.Duration(i+1) * time.Millisecond
		}
	}
	return time.Duration(len(h.counts)) * time.Millisecond
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// Under heavy fan-out a client's ping is answered promptly: pongs are never
// held back by throttling or pacing, so they come back faster than the
// data's own p99 latency in the same run (plus a little).
func TestPingAnsweredUnderFanout(t *testing.T) {
	ts := newTestServer(t, stream.Config{MaxHz: 1000})
	syms := symbols("PG", 100)
	for _, s := range syms {
		ts.put(t, s, "bid", "0", "ask", "1")
	}
	q := url.Values{"symbols": {strings.Join(syms, ",")}, "maxHz": {"1000"}}
	others := make([]*streamtest.Conn, 100)
	for i := range others {
		others[i] = dial(t, ts, streamtest.WS, q)
	}
	c := dial(t, ts, streamtest.WS, q)
	f := startFeeder(t, ts, syms, time.Millisecond)
	defer f.halt()
	time.Sleep(time.Second)
	c.TakeLatencies()

	ctx := context.Background()
	var rtts []time.Duration
	for id := 1; id <= 20; id++ {
		start := time.Now()
		if err := c.Send(ctx, map[string]any{"op": "ping", "id": id}); err != nil {
			t.Fatal(err)
		}
		// The bound only catches a pong that never comes: on a loaded
		// machine the whole process may be starved for seconds. Whether
		// pongs jump the data queue is what the comparison below checks.
		streamtest.WaitFor(t, 30*time.Second, fmt.Sprintf("pong %d", id), func() error {
			for _, m := range c.Control() {
				if m.Type == "pong" && idIs(m, id) {
					return nil
				}
			}
			return errors.New("not yet")
		})
		rtts = append(rtts, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
	lat := c.TakeLatencies()
	slices.Sort(rtts)
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatal("no data arrived during the pings")
	}
	p50, dataP99 := rtts[len(rtts)/2], lat[len(lat)*99/100]
	t.Logf("pong round trip p50 %v max %v; data latency p99 %v over %d updates", p50, rtts[len(rtts)-1], dataP99, len(lat))
	if p50 > dataP99+50*time.Millisecond {
		t.Errorf("pong round trip p50 %v, slower than the data's p99 %v (+50ms)", p50, dataP99)
	}
}
