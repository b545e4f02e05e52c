package cluster_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"tickerd/cluster"
	"tickerd/internal/streamtest"
)

// statusOf reads sym's status on n.
func statusOf(n *node, sym string) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	snap, err := streamtest.Snapshot(ctx, n.base, sym)
	if err != nil {
		return "", 0, err
	}
	return snap[sym].Fields["status"], snap[sym].Seq, nil
}

// The NATS server goes away mid-feed: every node keeps serving, marked
// stale; it comes back on the same port and store: every node resyncs,
// stale is gone, seqs are identical and none went backwards.
func TestNATSRestartResync(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, "127.0.0.1:0", dir)
	addr := ns.Addr()
	url := ns.ClientURL()
	a := startNode(t, "a", url, false)
	b := startNode(t, "b", url, false)
	c := startNode(t, "c", url, false)
	conns := dialAll(t, streamtest.WS, a, b, c)
	publish(t, a.cl, symbols, 0, 20)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 20}, a, b, c)

	// A feed keeps publishing through the outage (buffered by nats.go).
	ctx, stopFeed := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 20; ctx.Err() == nil && r < 2000; r++ {
			for i, s := range symbols[:2] {
				a.cl.Apply(quote(s, fmt.Sprintf("%d.%02d", 200+i, r%100), fmt.Sprintf("%d.%03d", 201+i, r%1000)))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	ns.Shutdown()

	for _, n := range []*node{a, b, c} {
		streamtest.WaitFor(t, 5*time.Second, n.name+" marks its symbols stale", func() error {
			st, _, err := statusOf(n, "X-1")
			if err != nil {
				return err
			}
			if st != "stale" {
				return fmt.Errorf("X-1 status %q", st)
			}
			return nil
		})
	}
	seqBefore := map[string]uint64{}
	for _, n := range []*node{a, b, c} {
		_, seq, _ := statusOf(n, "AAPL")
		seqBefore[n.name] = seq
	}

	// Back on the same address and store.
	waitPortFree(t, addr)
	startNATS(t, addr, dir)
	for _, n := range []*node{a, b, c} {
		streamtest.WaitFor(t, 10*time.Second, n.name+" reconnects", func() error {
			if !n.cl.Status().Connected {
				return fmt.Errorf("not connected")
			}
			return nil
		})
	}
	time.Sleep(100 * time.Millisecond)
	stopFeed()
	wg.Wait()
	publish(t, b.cl, symbols[2:], 900, 1) // a change after the outage, from another node

	want := sameEverywhere(t, 20*time.Second, nil, a, b, c)
	streamtest.WaitFor(t, 10*time.Second, "stale cleared everywhere", func() error {
		want = sameEverywhere(t, 10*time.Second, nil, a, b, c)
		for s, v := range want {
			if v.Fields["status"] == "stale" {
				return fmt.Errorf("%s still stale (seq %d)", s, v.Seq)
			}
		}
		return nil
	})
	for _, n := range []*node{a, b, c} {
		if _, seq, _ := statusOf(n, "AAPL"); seq < seqBefore[n.name] {
			t.Errorf("%s: AAPL seq went back from %d to %d", n.name, seqBefore[n.name], seq)
		}
	}
	clientsConverge(t, 10*time.Second, want, conns...)
}

// waitPortFree waits until addr can be listened on again.
func waitPortFree(t testing.TB, addr string) {
	t.Helper()
	streamtest.WaitFor(t, 10*time.Second, addr+" free", func() error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return ln.Close()
	})
}

// A node dies: its clients move to another node, converge, and see no
// seq go back.
func TestNodeDiesClientsMove(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	a := startNode(t, "a", ns.ClientURL(), false)
	b := startNode(t, "b", ns.ClientURL(), false)
	conns := dialAll(t, streamtest.SSE, b)
	publish(t, a.cl, symbols, 0, 10)
	want := sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 10}, a, b)
	clientsConverge(t, 10*time.Second, want, conns...)
	before := conns[0].View()

	b.stop()
	<-conns[0].Done()
	publish(t, a.cl, symbols, 10, 5)
	moved := dialAll(t, streamtest.SSE, a)
	want = sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 15}, a)
	clientsConverge(t, 10*time.Second, want, moved...)
	for s, v := range moved[0].View() {
		if v.Seq < before[s].Seq {
			t.Errorf("%s: seq back from %d to %d", s, before[s].Seq, v.Seq)
		}
	}
}

// An Interest node stops following a symbol nobody watches any more, and
// follows it again, from its snapshot and with the cluster's seq, when a
// client comes back for it.
func TestInterestPrunes(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	full := startNode(t, "full", ns.ClientURL(), false)
	in := startNodeWith(t, "interest", cluster.Config{URL: ns.ClientURL(), Interest: true, PruneEvery: 300 * time.Millisecond})
	publish(t, full.cl, symbols, 0, 5)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 5}, full)

	conns := dialAll(t, streamtest.SSE, in)
	want := sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 5}, full, in)
	clientsConverge(t, 10*time.Second, want, conns...)
	conns[0].Close()
	<-conns[0].Done()
	time.Sleep(1500 * time.Millisecond) // pruned
	publish(t, full.cl, symbols, 5, 3)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 8}, full)
	time.Sleep(500 * time.Millisecond)
	if e := in.cache.Get("AAPL"); e == nil || e.Seq() != 5 {
		t.Errorf("AAPL followed after its last client left (entry %v)", e)
	}

	back := dialAll(t, streamtest.WS, in)
	want = sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 8}, full, in)
	clientsConverge(t, 10*time.Second, want, back...)
	publish(t, full.cl, symbols, 8, 1)
	want = sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 9}, full, in)
	clientsConverge(t, 10*time.Second, want, back...)
}

// An Interest node consumes only what its clients watch, fetching the
// snapshot on first watch, with the same seqs as a full node.
func TestInterest(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	full := startNode(t, "full", ns.ClientURL(), false)
	publish(t, full.cl, symbols, 0, 10)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 10}, full)
	time.Sleep(500 * time.Millisecond) // a snapshot round

	in := startNode(t, "interest", ns.ClientURL(), true)
	if got := in.cache.Symbols(); len(got) != 0 {
		t.Fatalf("interest node holds %v before any client", got)
	}
	conns := dialAll(t, streamtest.WS, in) // watches every symbol
	want := sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 10}, full, in)
	clientsConverge(t, 10*time.Second, want, conns...)
	publish(t, full.cl, symbols, 10, 3)
	want = sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 13}, full, in)
	clientsConverge(t, 10*time.Second, want, conns...)

	// REST on a symbol nobody watched there yet answers with its data.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	publish(t, full.cl, []string{"REST.ONLY"}, 0, 3)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 13}, full)
	streamtest.WaitFor(t, 5*time.Second, "REST.ONLY on the full node", func() error {
		if e := full.cache.Get("REST.ONLY"); e == nil || e.Seq() != 3 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // a snapshot round
	snap, err := streamtest.Snapshot(ctx, in.base, "REST.ONLY")
	if err != nil || snap["REST.ONLY"].Seq != 3 {
		t.Errorf("REST snapshot of a new symbol on the interest node: %v, %v", snap, err)
	}

	// A symbol nobody watches there is not consumed there.
	publish(t, full.cl, []string{"ONLY.FULL"}, 0, 2)
	publish(t, full.cl, symbols[:1], 13, 1)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 14}, full, in)
	if e := in.cache.Get("ONLY.FULL"); e != nil && e.Seq() > 0 {
		t.Errorf("interest node consumed ONLY.FULL, which nobody watches")
	}
}

// Three embedded NATS servers form one NATS cluster, each in its node's
// process, with the stream replicated three times: losing one node and its
// server leaves the others current, never stale (no single point of
// failure, no other software).
func TestEmbeddedNATSClusterSurvivesANode(t *testing.T) {
	var client, routes []string
	for i := 0; i < 3; i++ {
		client = append(client, freePort(t))
		routes = append(routes, freePort(t))
	}
	var routeURLs []string
	for _, r := range routes {
		routeURLs = append(routeURLs, "nats://"+r)
	}
	servers := make([]*cluster.Embedded, 3)
	errs := make(chan error, 3)
	for i := range servers {
		go func() {
			e, err := cluster.StartEmbedded(cluster.EmbeddedConfig{
				Listen: client[i], StoreDir: t.TempDir(), ClusterListen: routes[i], Routes: routeURLs, Log: testLog(),
			})
			servers[i] = e
			errs <- err
		}()
	}
	for range servers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range servers {
		t.Cleanup(e.Shutdown)
	}
	var nodes []*node
	for i, e := range servers {
		nodes = append(nodes, startNodeWith(t, fmt.Sprintf("n%d", i), cluster.Config{URL: e.ClientURL(), Replicas: 3, JetStreamWait: 30 * time.Second}))
	}
	publish(t, nodes[1].cl, symbols, 0, 10)
	sameEverywhere(t, 15*time.Second, map[string]uint64{"AAPL": 10}, nodes...)

	// Node 0 goes, with its NATS server.
	nodes[0].stop()
	servers[0].Shutdown()
	publish(t, nodes[2].cl, symbols, 10, 5)
	want := sameEverywhere(t, 15*time.Second, map[string]uint64{"AAPL": 15}, nodes[1:]...)
	for s, v := range want {
		if v.Fields["status"] == "stale" {
			t.Errorf("%s stale after losing one of three servers", s)
		}
	}
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The stream no longer holds the start of history (max age, max bytes:
// here a purge): a node joining then gets every symbol from the snapshot
// bucket alone, with the same seqs.
func TestLateJoinerAfterStreamPurge(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	a := startNode(t, "a", ns.ClientURL(), false)
	publish(t, a.cl, symbols, 0, 25)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 25}, a)
	streamtest.WaitFor(t, 10*time.Second, "a snapshot written", func() error {
		if !a.cl.Status().Leader {
			return fmt.Errorf("no writer yet")
		}
		return nil
	})
	time.Sleep(600 * time.Millisecond) // a write round after election

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, cluster.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	b := startNode(t, "b", ns.ClientURL(), false)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 25, "X-1": 25}, a, b)
	publish(t, a.cl, symbols, 25, 2)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 27, "X-1": 27}, a, b)
}

// The NATS server comes back without its store (memory storage, a lost
// disk): the nodes follow the new, empty stream from its start, keep their
// records, and stay identical.
func TestNATSLosesItsStore(t *testing.T) {
	ns := startNATS(t, "127.0.0.1:0", t.TempDir())
	addr := ns.Addr()
	a := startNodeWith(t, "a", cluster.Config{URL: ns.ClientURL(), Memory: true})
	b := startNodeWith(t, "b", cluster.Config{URL: ns.ClientURL(), Memory: true})
	publish(t, a.cl, symbols, 0, 10)
	sameEverywhere(t, 10*time.Second, map[string]uint64{"AAPL": 10}, a, b)

	ns.Shutdown()
	waitPortFree(t, addr)
	startNATS(t, addr, t.TempDir()) // a new, empty store
	for _, n := range []*node{a, b} {
		streamtest.WaitFor(t, 10*time.Second, n.name+" resynced", func() error {
			if st := n.cl.Status(); !st.Connected || !st.Synced {
				return fmt.Errorf("%+v", st)
			}
			return nil
		})
	}
	publish(t, b.cl, symbols, 10, 2)
	want := sameEverywhere(t, 15*time.Second, nil, a, b)
	streamtest.WaitFor(t, 10*time.Second, "the new updates everywhere, not stale", func() error {
		want = sameEverywhere(t, 10*time.Second, nil, a, b)
		for s, v := range want {
			if v.Seq < 12 || v.Fields["status"] == "stale" || v.Fields["bid"] != fmt.Sprintf("%d.11", 100+indexOf(s)) {
				return fmt.Errorf("%s: seq %d, %v", s, v.Seq, v.Fields)
			}
		}
		return nil
	})
}

func indexOf(sym string) int {
	for i, s := range symbols {
		if s == sym {
			return i
		}
	}
	return -1
}
