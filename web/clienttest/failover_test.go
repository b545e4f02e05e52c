package clienttest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tickerd/cluster"
	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/stream"
	"tickerd/web"
)

// failoverPage gives client.js the list of a cluster's nodes (?urls=A,B)
// and records any seq that goes backwards.
const failoverPage = `<!doctype html>
<meta charset="utf-8">
<title>client.js failover test</title>
<script type="module">
import { TickerClient } from '/v1/client.js';
const q = new URLSearchParams(location.search);
const client = new TickerClient({
  url: q.get('urls'), transports: q.get('transports')?.split(','),
  backoffMin: 200, backoffMax: 1000, pollWait: 5, connectTimeout: 3000,
});
const states = [];
const errors = [];
const back = [];
const last = {};
client.onState((s) => states.push(s));
client.onError((e) => errors.push(e));
client.onChange((ev) => {
  if (last[ev.symbol] !== undefined && ev.seq < last[ev.symbol]) back.push(ev.symbol + ' ' + last[ev.symbol] + '→' + ev.seq);
  last[ev.symbol] = ev.seq;
});
client.subscribe(q.get('symbols').split(','));
client.start();
window.client = client;
window.view = () => ({
  state: client.state, session: client.session, errors, back, base: client.base,
  opens: states.filter((s) => s.state === 'open').map((s) => s.transport),
  records: Object.fromEntries(Object.entries(client.snapshot()).map(([k, r]) => [k, r.fields])),
});
</script>`

// clusterNode is a tickerd node of an embedded-NATS cluster on loopback.
type clusterNode struct {
	base string
	cl   *cluster.Node
	srv  *stream.Server
	hs   *http.Server
	done chan struct{}
}

func startClusterNode(t testing.TB, natsURL string) *clusterNode {
	t.Helper()
	cache := conflate.New()
	cl, err := cluster.Start(cluster.Config{URL: natsURL, Cache: cache, SnapshotEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{base: "http://" + ln.Addr().String(), cl: cl, srv: stream.NewServer(cache, stream.Config{}), done: make(chan struct{})}
	mux := http.NewServeMux()
	n.srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: cl})
	n.hs = &http.Server{Handler: mux, ConnContext: stream.ConnContext}
	go func() { defer close(n.done); _ = n.hs.Serve(ln) }()
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down as SIGTERM does: sessions get close shutdown.
func (n *clusterNode) stop() {
	if n.hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	_ = n.hs.Close()
	<-n.done
	n.cl.Close()
	n.hs = nil
}

// snapshot reads the node's records of symbols.
func (n *clusterNode) snapshot(t testing.TB, symbols []string) map[string]map[string]string {
	t.Helper()
	s := &server{t: t, base: n.base, hc: &http.Client{Timeout: 5 * time.Second}}
	defer s.hc.CloseIdleConnections()
	return s.snapshot(symbols)
}

func (n *clusterNode) ingest(t testing.TB, round int, symbols ...string) {
	t.Helper()
	s := &server{t: t, base: n.base, hc: &http.Client{Timeout: 5 * time.Second}}
	defer s.hc.CloseIdleConnections()
	s.ingest(round, symbols...)
}

type failoverView struct {
	view
	Back []string
	Base string
}

// A page given two nodes of a cluster moves to the second when the first
// shuts down, converges there, and sees no seq go backwards.
func TestFailsOverToAnotherNode(t *testing.T) {
	for _, transport := range []string{"ws", "sse", "poll"} {
		t.Run(transport, func(t *testing.T) {
			ns, err := cluster.StartEmbedded(cluster.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(ns.Shutdown)
			a := startClusterNode(t, ns.ClientURL())
			b := startClusterNode(t, ns.ClientURL())

			// The page comes from a third origin that stays up.
			static := http.NewServeMux()
			static.Handle("GET /v1/client.js", web.ClientHandler())
			static.HandleFunc("GET /test.html", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprint(w, failoverPage)
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			hs := &http.Server{Handler: static}
			done := make(chan struct{})
			go func() { defer close(done); _ = hs.Serve(ln) }()
			t.Cleanup(func() { _ = hs.Close(); <-done })

			syms := []string{"AAA", "BBB"}
			for round := 1; round <= 3; round++ {
				b.ingest(t, round, syms...)
			}
			p := newPage(t, fmt.Sprintf("http://%s/test.html?symbols=AAA,BBB&transports=%s&urls=%s,%s", ln.Addr(), transport, a.base, b.base))
			fv := func() failoverView {
				var v failoverView
				p.eval(`window.view ? window.view() : {state: {state: 'loading'}}`, &v)
				return v
			}
			convergeOn := func(n *clusterNode) {
				waitFor(t, 15*time.Second, "convergence on "+n.base, func() string {
					v := fv()
					if len(v.Back) > 0 {
						t.Fatalf("seq went backwards: %v", v.Back)
					}
					if !strings.HasPrefix(v.Base, n.base) {
						return fmt.Sprintf("client on %s (state %+v)", v.Base, v.State)
					}
					server := n.snapshot(t, syms)
					for _, s := range syms {
						if !maps.Equal(v.Records[s], server[s]) {
							return fmt.Sprintf("%s: page %v, node %v (state %+v)", s, v.Records[s], server[s], v.State)
						}
					}
					return ""
				})
			}
			convergeOn(a)

			a.stop()
			for round := 4; round <= 6; round++ {
				b.ingest(t, round, syms...)
			}
			convergeOn(b)
			if v := fv(); len(v.Errors) != 0 {
				t.Errorf("errors: %v", v.Errors)
			}
		})
	}
}
