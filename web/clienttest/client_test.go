package clienttest

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tickerd/stream"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	removeTickerdBin()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// view is what the test page reports of its client.
type view struct {
	State struct {
		State, Transport, Reason string
	}
	Session string
	Errors  []struct{ Code, Symbol, Message string }
	Opens   []string // the transport of each connection that opened, in order
	Records map[string]map[string]string
}

func (p *page) view() view {
	p.t.Helper()
	var v view
	p.eval(`window.view ? window.view() : {state: {state: 'loading'}}`, &v)
	return v
}

// waitFor polls cond until it returns "" (done) or timeout passes; then it
// fails with cond's last word.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitOpen waits until the page's client is open on transport, with at
// least opens connections made so far.
func waitOpen(t testing.TB, p *page, transport string, opens int) view {
	t.Helper()
	var v view
	waitFor(t, 20*time.Second, "open on "+transport, func() string {
		v = p.view()
		if v.State.State != "open" || v.State.Transport != transport || len(v.Opens) < opens {
			return fmt.Sprintf("state %+v, opens %v", v.State, v.Opens)
		}
		return ""
	})
	return v
}

// converge waits until the page's records are exactly the server's
// snapshot of want (symbol → the fields subscribed, nil for all).
func converge(t testing.TB, p *page, s *server, want map[string][]string) {
	t.Helper()
	waitFor(t, 15*time.Second, "convergence to /v1/snapshot", func() string {
		v := p.view()
		for _, sym := range slices.Sorted(maps.Keys(want)) {
			server := s.snapshot([]string{sym}, want[sym]...)[sym]
			if !maps.Equal(v.Records[sym], server) {
				return fmt.Sprintf("%s: page %v, server %v (state %+v, errors %v)", sym, v.Records[sym], server, v.State, v.Errors)
			}
		}
		for sym := range v.Records {
			if _, ok := want[sym]; !ok {
				return fmt.Sprintf("page still holds %s", sym)
			}
		}
		return ""
	})
}

func pageURL(s *server, transports string, symbols ...string) string {
	u := s.base + "/test.html?symbols=" + strings.Join(symbols, ",")
	if transports != "" {
		u += "&transports=" + transports
	}
	return u
}

// Each transport, forced, converges to the server's snapshot, follows new
// data, and carries subscription changes made on the open connection.
func TestConvergesOnEachTransport(t *testing.T) {
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			s := newServer(t, stream.Config{})
			s.ingest(1, "AAA", "BBB", "CCC")
			p := newPage(t, pageURL(s, transport, "AAA", "BBB"))
			waitOpen(t, p, transport, 1)
			converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})

			for round := 2; round <= 4; round++ {
				s.ingest(round, "AAA", "BBB", "CCC")
			}
			converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})

			p.eval(`client.subscribe(['CCC', 'DDD'], {fields: ['bid', 'ask'], maxHz: 5}), client.unsubscribe('BBB'), true`, nil)
			s.ingest(5, "AAA", "BBB", "CCC", "DDD")
			converge(t, p, s, map[string][]string{"AAA": nil, "CCC": {"bid", "ask"}, "DDD": {"bid", "ask"}})
			if v := p.view(); len(v.Opens) != 1 || len(v.Errors) != 0 {
				t.Errorf("want one connection and no errors, got opens %v, errors %v", v.Opens, v.Errors)
			}
		})
	}
}

// With WebSocket refused the client settles on SSE; with SSE refused too,
// on long-poll, both for a new page and for a page whose server comes
// back behind the stricter proxy.
func TestFallsBack(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.refusePaths("/v1/ws")
	s.ingest(1, "AAA", "BBB")
	p := newPage(t, pageURL(s, "", "AAA", "BBB"))
	v := waitOpen(t, p, "sse", 1)
	if !slices.Equal(v.Opens, []string{"sse"}) {
		t.Errorf("opens %v, want [sse]", v.Opens)
	}
	converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})

	s.refusePaths("/v1/ws", "/v1/sse")
	p2 := newPage(t, pageURL(s, "", "AAA", "BBB"))
	v = waitOpen(t, p2, "poll", 1)
	if !slices.Equal(v.Opens, []string{"poll"}) {
		t.Errorf("opens %v, want [poll]", v.Opens)
	}
	converge(t, p2, s, map[string][]string{"AAA": nil, "BBB": nil})

	// The first page's SSE stream is still up; a restart behind the
	// stricter proxy moves it to long-poll.
	s.stop()
	s.start(stream.Config{})
	s.ingest(2, "AAA", "BBB")
	waitOpen(t, p, "poll", 2)
	converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})
}

// After a server restart on the same port (empty cache, seqs from 1 again)
// the client reconnects on its transport and converges to the new data.
func TestReconnectsAfterRestart(t *testing.T) {
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			s := newServer(t, stream.Config{})
			for round := 1; round <= 3; round++ {
				s.ingest(round, "AAA", "BBB")
			}
			p := newPage(t, pageURL(s, transport, "AAA", "BBB"))
			waitOpen(t, p, transport, 1)
			converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})

			s.stop()
			waitFor(t, 10*time.Second, "client sees the server go", func() string {
				if v := p.view(); v.State.State == "open" {
					return fmt.Sprintf("state %+v", v.State)
				}
				return ""
			})
			s.start(stream.Config{})
			s.ingest(7, "AAA", "BBB")
			waitOpen(t, p, transport, 2)
			converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})
		})
	}
}

// A server that ends SSE streams at a short max age sees the client come
// straight back and resume the same session, with no divergence.
func TestResumesAfterMaxAge(t *testing.T) {
	s := newServer(t, stream.Config{MaxConnAge: 1500 * time.Millisecond})
	s.ingest(1, "AAA", "BBB")
	p := newPage(t, pageURL(s, "sse", "AAA", "BBB"))
	first := waitOpen(t, p, "sse", 1)
	for round := 2; round <= 4; round++ {
		waitOpen(t, p, "sse", round)
		s.ingest(round, "AAA", "BBB")
	}
	converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})
	if v := p.view(); v.Session != first.Session {
		t.Errorf("session %q after max_age, want the resumed %q", v.Session, first.Session)
	}
}

// The dashboard at / streams through client.js too: its table shows the
// server's values and its badge the transport.
func TestDashboard(t *testing.T) {
	s := newServer(t, stream.Config{})
	s.ingest(1, "AAA", "BBB")
	p := newPage(t, s.base+"/?symbols=AAA,BBB")
	var last [2]string
	waitFor(t, 15*time.Second, "dashboard shows the quotes", func() string {
		want := [2]string{s.snapshot([]string{"BBB"})["BBB"]["bid"], "live · WebSocket"}
		p.eval(`[document.querySelector('#grid tbody tr:nth-child(2) td[data-field=bid]')?.textContent,
			document.querySelector('#conn b').textContent]`, &last)
		if last != want {
			return fmt.Sprintf("BBB bid and badge %q, want %q", last, want)
		}
		return ""
	})
}

// When the network cuts the connection (no close message), the client
// reconnects on its transport and converges to what changed meanwhile;
// SSE (by EventSource's own retry with Last-Event-ID) and long-poll (by
// its resume token) get their session back.
func TestResumesAfterNetworkDrop(t *testing.T) {
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			s := newServer(t, stream.Config{})
			s.ingest(1, "AAA", "BBB")
			p := newPage(t, pageURL(s, transport, "AAA", "BBB"))
			first := waitOpen(t, p, transport, 1)
			converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})

			s.dropConns()
			s.ingest(2, "AAA", "BBB")
			opens := 2
			if transport == "poll" {
				// Chromium may retry a GET cut on a reused connection
				// by itself: the client then sees no failure at all.
				opens = 1
			}
			v := waitOpen(t, p, transport, opens)
			converge(t, p, s, map[string][]string{"AAA": nil, "BBB": nil})
			if transport != "ws" && v.Session != first.Session {
				t.Errorf("session %q after the drop, want the resumed %q", v.Session, first.Session)
			}
		})
	}
}
