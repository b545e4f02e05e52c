package stream_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tickerd/conflate"
	"tickerd/internal/streamtest"
	"tickerd/stream"
)

const delayedFile = `groups:
  rt:  {realtime: ["AAPL"]}
  dl:  {delayed: ["*"]}
  us:  {realtime: ["US.*"]}
users:
  - name: dave
    keys: ["key-dave-1"]
    groups: [rt, dl]
  - name: alice
    keys: ["key-alice"]
    groups: [us]
`

// newDelayedServer is an auth server with a delayed tier of delay.
func newDelayedServer(t *testing.T, file string, delay time.Duration) *authServer {
	t.Helper()
	var dl *conflate.DelayLine
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	as := newAuthServerWith(t, stream.Config{MaxHz: 1000, Delay: delay}, file, func(cache *conflate.Cache, cfg *stream.Config) {
		dl = conflate.NewDelayLine(cache, conflate.DelayConfig{Delay: delay})
		cfg.Delayed = dl.Cache()
		go func() { defer close(done); dl.Run(ctx) }()
	})
	t.Cleanup(func() { cancel(); <-done })
	as.delay = dl
	return as
}

// feedBurst updates syms every few milliseconds until the returned stop
// is called; stop returns how many rounds were fed.
func feedBurst(t *testing.T, ts *authServer, syms ...string) (stop func() int) {
	var wg sync.WaitGroup
	quit := make(chan struct{})
	rounds := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			for _, s := range syms {
				ts.put(t, s, "bid", fmt.Sprint(i), "ask", fmt.Sprint(i+1))
			}
			rounds = i
			time.Sleep(3 * time.Millisecond)
		}
	}()
	return func() int { close(quit); wg.Wait(); return rounds }
}

// A delayed subscriber sees each symbol as it was -delay ago, marked
// delayed, on every transport; never a value younger than the delay; and
// converges on the realtime values once the feed has been quiet for the
// delay. Realtime symbols of the same user are not delayed.
func TestDelayedTierNeverYounger(t *testing.T) {
	const delay = 1200 * time.Millisecond
	ts := newDelayedServer(t, delayedFile, delay)
	stop := feedBurst(t, ts, "IBM", "AAPL")
	conns := map[string]*streamtest.Conn{}
	for _, tr := range streamtest.Transports {
		conns[tr] = dialAuth(t, ts, tr, "key-dave-1", url.Values{"symbols": {"IBM,AAPL"}})
	}
	time.Sleep(delay + 800*time.Millisecond)
	rounds := stop()
	fedStop := time.Now()

	// Until the delay has passed since the feed stopped, the delayed view
	// must be behind the realtime one.
	for tr, c := range conns {
		if v := c.View()["IBM"]; v.Fields["bid"] == fmt.Sprint(rounds) {
			t.Errorf("%s: IBM at the realtime value %d right after the feed stopped: not delayed", tr, rounds)
		}
	}
	streamtest.WaitFor(t, delay+3*time.Second, "delayed views converge", func() error {
		for tr, c := range conns {
			if got := c.View()["IBM"].Fields["bid"]; got != fmt.Sprint(rounds) {
				return fmt.Errorf("%s: IBM bid %q, want %d", tr, got, rounds)
			}
			if got := c.View()["AAPL"].Fields["bid"]; got != fmt.Sprint(rounds) {
				return fmt.Errorf("%s: AAPL bid %q, want %d", tr, got, rounds)
			}
		}
		return nil
	})
	if since := time.Since(fedStop); since < delay {
		t.Fatalf("delayed views caught up %v after the feed stopped: sooner than the delay %v", since, delay)
	}
	for tr, c := range conns {
		if v := c.Violations(); len(v) > 0 {
			t.Errorf("%s: %v", tr, v[:min(3, len(v))])
		}
		var ibm, aapl int
		for _, m := range c.Data() {
			switch m.Symbol {
			case "IBM":
				ibm++
				if !m.Delayed {
					t.Fatalf("%s: IBM message without delayed:true: %+v", tr, m)
				}
			case "AAPL":
				aapl++
				if m.Delayed {
					t.Fatalf("%s: realtime AAPL marked delayed: %+v", tr, m)
				}
			}
		}
		if ibm < 3 || aapl < 3 {
			t.Errorf("%s: %d IBM and %d AAPL messages", tr, ibm, aapl)
		}
	}
	// Every delayed update was read at least the delay after its ingest:
	// the WebSocket session is subscribed to IBM only for this.
	only := dialAuth(t, ts, streamtest.WS, "key-dave-1", url.Values{"symbols": {"IBM"}})
	stop = feedBurst(t, ts, "IBM")
	time.Sleep(delay + time.Second)
	stop()
	lat := only.TakeLatencies()
	if len(lat) < 10 {
		t.Fatalf("only %d delayed updates", len(lat))
	}
	for _, l := range lat {
		if l < delay {
			t.Fatalf("a delayed update read %v after its ingest: younger than the delay %v", l, delay)
		}
	}
	// REST: the delayed snapshot is marked and old enough.
	code, body := get(t, ts.base+"/v1/snapshot?symbols=IBM", bearer("key-dave-1"))
	if code != 200 || !strings.Contains(body, `"delayed":true`) {
		t.Fatalf("delayed snapshot: %d %s", code, body)
	}
	if st := ts.delay.Stats(); st.Applied == 0 {
		t.Fatalf("delay line stats: %+v", st)
	}
}

// A reload that moves a symbol from realtime to delayed switches the
// subscription to the delayed source without seq going back (the client
// hears nothing until the delayed data passes what it had), and back.
func TestTierChangeSwitchesSource(t *testing.T) {
	const delay = time.Second
	ts := newDelayedServer(t, delayedFile, delay)
	stop := feedBurst(t, ts, "US.A")
	defer func() { stop() }()
	c := dialAuth(t, ts, streamtest.WS, "key-alice", url.Values{"symbols": {"US.A"}})
	streamtest.WaitFor(t, 5*time.Second, "realtime data", func() error {
		if c.View()["US.A"].Seq < 5 {
			return fmt.Errorf("seq %d", c.View()["US.A"].Seq)
		}
		return nil
	})
	if err := ts.rewrite(t, strings.Replace(delayedFile, `us:  {realtime: ["US.*"]}`, `us:  {delayed: ["US.*"]}`, 1)); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	seqAtSwitch := c.View()["US.A"].Seq
	streamtest.WaitFor(t, 5*time.Second, "delayed data", func() error {
		for _, m := range c.Data() {
			if m.Symbol == "US.A" && m.Delayed {
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	if since := time.Since(switched); since < delay-200*time.Millisecond {
		t.Errorf("delayed data %v after the switch: the delayed source was behind by a full delay", since)
	}
	for _, m := range c.Data() {
		if m.Delayed && m.Seq <= seqAtSwitch {
			t.Fatalf("delayed message at seq %d, not past the %d the client had", m.Seq, seqAtSwitch)
		}
	}
	if err := ts.rewrite(t, delayedFile); err != nil {
		t.Fatal(err)
	}
	back := len(c.Data())
	streamtest.WaitFor(t, 5*time.Second, "realtime again", func() error {
		for _, m := range c.Data()[back:] {
			if m.Symbol == "US.A" && !m.Delayed {
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	if v := c.Violations(); len(v) > 0 {
		t.Fatalf("violations across the tier switches: %v", v[:min(3, len(v))])
	}
}
