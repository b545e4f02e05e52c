package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"tickerd/cluster"
	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/internal/streamtest"
	"tickerd/stream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats.go and nats-server keep a few process-wide goroutines.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).doReconnect"),
	)
}

// testLog is quiet unless TICKERD_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("TICKERD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startNATS starts an embedded NATS server on addr (127.0.0.1:0 for any
// port) with its store in dir, stopped at cleanup.
func startNATS(t testing.TB, addr, dir string) *cluster.Embedded {
	t.Helper()
	e, err := cluster.StartEmbedded(cluster.EmbeddedConfig{Listen: addr, StoreDir: dir, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// node is one tickerd node: a cache, a cluster membership and a stream
// server on a real loopback port.
type node struct {
	name  string
	cache *conflate.Cache
	cl    *cluster.Node
	srv   *stream.Server
	http  *httptest.Server
	base  string
}

func startNode(t testing.TB, name, natsURL string, interest bool) *node {
	t.Helper()
	return startNodeWith(t, name, cluster.Config{URL: natsURL, Interest: interest})
}

// startNodeWith starts a node with cfg plus the tests' name, cache, quick
// timings and logger.
func startNodeWith(t testing.TB, name string, cfg cluster.Config) *node {
	t.Helper()
	n := &node{name: name, cache: conflate.New()}
	interest := cfg.Interest
	cfg.Cache, cfg.Name = n.cache, name
	cfg.StaleAfter, cfg.SnapshotEvery = 300*time.Millisecond, 200*time.Millisecond
	cfg.Registerer, cfg.Log = prometheus.NewRegistry(), testLog().With("test_node", name)
	cl, err := cluster.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.cl = cl
	var src stream.Source = n.cache
	if interest {
		src = cl.Source()
	}
	n.srv = stream.NewServer(src, stream.Config{MaxHz: 1000, Log: testLog()})
	mux := http.NewServeMux()
	n.srv.Register(mux)
	n.http = httptest.NewServer(mux)
	n.base = n.http.URL
	t.Cleanup(n.stop)
	return n
}

// stop ends the node as a killed process would look to its clients and
// to the cluster: sessions cut, NATS connection closed.
func (n *node) stop() {
	if n.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	n.http.CloseClientConnections()
	n.http.Close()
	n.cl.Close()
	n.http = nil
}

func quote(sym string, bid, ask string) *feed.Update {
	u := &feed.Update{Symbol: sym}
	b, _ := feed.ParseText(feed.Bid, bid)
	a, _ := feed.ParseText(feed.Ask, ask)
	u.Put(feed.Bid, b)
	u.Put(feed.Ask, a)
	return u
}

// publish sends rounds of updates of syms through n (as its feed would),
// each round changing every symbol.
func publish(t testing.TB, n *cluster.Node, syms []string, from, rounds int) {
	t.Helper()
	for r := from; r < from+rounds; r++ {
		for i, s := range syms {
			if !n.Apply(quote(s, fmt.Sprintf("%d.%02d", 100+i, r%100), fmt.Sprintf("%d.%02d", 101+i, r%100))) {
				t.Fatalf("publish %s round %d failed", s, r)
			}
		}
	}
	// Updates from different nodes are ordered by arrival: make the next
	// publisher's come after these.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

var symbols = []string{"AAPL", "MSFT", "BRK.A", "EUR:USD", "X-1"}

// sameEverywhere waits until every node's snapshot holds the same record
// and seq for each symbol, with the seqs in seqs, and returns it.
func sameEverywhere(t testing.TB, timeout time.Duration, seqs map[string]uint64, nodes ...*node) map[string]streamtest.Symbol {
	t.Helper()
	var first map[string]streamtest.Symbol
	streamtest.WaitFor(t, timeout, "every node holds the same records and seqs", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if first, err = streamtest.Snapshot(ctx, nodes[0].base, symbols...); err != nil {
			return err
		}
		if len(first) != len(symbols) {
			return fmt.Errorf("%s has %d symbols", nodes[0].name, len(first))
		}
		for s, seq := range seqs {
			if first[s].Seq != seq {
				return fmt.Errorf("%s: seq %d on %s, want %d", s, first[s].Seq, nodes[0].name, seq)
			}
		}
		for _, n := range nodes[1:] {
			other, err := streamtest.Snapshot(ctx, n.base, symbols...)
			if err != nil {
				return err
			}
			if err := streamtest.Converged(other, first, streamtest.All(symbols...)); err != nil {
				return fmt.Errorf("%s vs %s: %w", n.name, nodes[0].name, err)
			}
			for s, v := range first {
				if other[s].Seq != v.Seq {
					return fmt.Errorf("%s: seq %d on %s, %d on %s", s, other[s].Seq, n.name, v.Seq, nodes[0].name)
				}
			}
		}
		return nil
	})
	return first
}

// dialAll opens a session on each node for every symbol, over transport.
func dialAll(t testing.TB, transport string, nodes ...*node) []*streamtest.Conn {
	t.Helper()
	var out []*streamtest.Conn
	for _, n := range nodes {
		ctx, cancel := context.WithCancel(context.Background()) // the session's lifetime
		t.Cleanup(cancel)
		c, err := streamtest.Dial(ctx, n.base, transport, url.Values{"symbols": {joinSyms()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		out = append(out, c)
	}
	return out
}

func joinSyms() string {
	s := ""
	for i, x := range symbols {
		if i > 0 {
			s += ","
		}
		s += x
	}
	return s
}

// clientsConverge waits until each client's view equals want.
func clientsConverge(t testing.TB, timeout time.Duration, want map[string]streamtest.Symbol, conns ...*streamtest.Conn) {
	t.Helper()
	for _, c := range conns {
		streamtest.WaitFor(t, timeout, "client converges", func() error {
			if v := c.Violations(); len(v) > 0 {
				return fmt.Errorf("protocol violations: %v", v)
			}
			view := c.View()
			if err := streamtest.Converged(view, want, streamtest.All(symbols...)); err != nil {
				return err
			}
			for s, w := range want {
				if view[s].Seq != w.Seq {
					return fmt.Errorf("%s: client seq %d, want %d", s, view[s].Seq, w.Seq)
				}
			}
			return nil
		})
	}
}

func TestThreeNodesConverge(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	a := startNode(t, "a", ns.ClientURL(), false)
	b := startNode(t, "b", ns.ClientURL(), false)
	c := startNode(t, "c", ns.ClientURL(), false)
	conns := append(dialAll(t, streamtest.WS, a, b, c), dialAll(t, streamtest.SSE, a, b, c)...)

	publish(t, b.cl, symbols, 0, 50) // any node ingests
	publish(t, a.cl, symbols[:2], 50, 10)
	// One seq per changing update, from 1: 60 changes of AAPL.
	want := sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 60, "MSFT": 60, "X-1": 50}, a, b, c)
	clientsConverge(t, 10*time.Second, want, conns...)

	// An update that changes nothing gets no seq anywhere.
	publish(t, c.cl, symbols[:1], 59, 1)
	publish(t, c.cl, symbols[1:2], 61, 1)
	want = sameEverywhere(t, 10*time.Second, map[string]uint64{"MSFT": 61}, a, b, c)
	if want["AAPL"].Seq != 60 {
		t.Errorf("after a no-op: AAPL seq %d, want 60", want["AAPL"].Seq)
	}
}

func TestLateJoinerGetsSnapshot(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	a := startNode(t, "a", ns.ClientURL(), false)
	publish(t, a.cl, symbols, 0, 30)
	b := startNode(t, "b", ns.ClientURL(), false)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 30}, a, b)
	// Wait for a snapshot to be written, then join again: the newcomer
	// loads it instead of the whole stream, and streams on.
	streamtest.WaitFor(t, 5*time.Second, "a snapshot writer", func() error {
		if !a.cl.Status().Leader && !b.cl.Status().Leader {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // a snapshot round (SnapshotEvery 200ms)
	c := startNode(t, "c", ns.ClientURL(), false)
	conns := dialAll(t, streamtest.SSE, c)
	publish(t, b.cl, symbols, 30, 5)
	want := sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 35, "X-1": 35}, a, b, c)
	clientsConverge(t, 10*time.Second, want, conns...)
}

// Three nodes ingest the same symbols at once: the stream orders them,
// and every node ends with the same records and the same seqs.
func TestConcurrentIngestSameSeqEverywhere(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	nodes := []*node{
		startNode(t, "a", ns.ClientURL(), false),
		startNode(t, "b", ns.ClientURL(), false),
		startNode(t, "c", ns.ClientURL(), false),
	}
	done := make(chan struct{})
	for i, n := range nodes {
		go func() {
			defer func() { done <- struct{}{} }()
			for r := 0; r < 200; r++ {
				for j, s := range symbols {
					// Values collide across nodes now and then; the
					// stream's order decides which updates change a value.
					n.cl.Apply(quote(s, fmt.Sprintf("%d.%d", 100+j, (r*(i+1))%7), fmt.Sprintf("%d.%d", 101+j, r%5)))
				}
			}
		}()
	}
	for range nodes {
		<-done
	}
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	// Quiet: wait until every node has consumed the whole stream.
	streamtest.WaitFor(t, 15*time.Second, "every node consumed the stream", func() error {
		for _, n := range nodes {
			st := n.cl.Status()
			if st.Applied < 3*200*uint64(len(symbols)) {
				return fmt.Errorf("%s applied %d", n.name, st.Applied)
			}
		}
		return nil
	})
	want := sameEverywhere(t, 10*time.Second, nil, nodes...)
	for s, v := range want {
		if v.Seq == 0 || v.Seq > 3*200 {
			t.Errorf("%s: seq %d, want 1..600 (one per changing update)", s, v.Seq)
		}
	}
	// A node that joins now computes nothing itself: it must agree too.
	late := startNode(t, "late", ns.ClientURL(), false)
	sameEverywhere(t, 10*time.Second, nil, append(nodes, late)...)
}
