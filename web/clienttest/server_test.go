package clienttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/stream"
	"tickerd/web"
)

// testPage imports the client the way an app would and exposes it to the
// test: ?transports=ws,sse picks the order, ?symbols=A,B the subscription.
const testPage = `<!doctype html>
<meta charset="utf-8">
<title>client.js test</title>
<script type="module">
import { TickerClient } from '/v1/client.js';
const q = new URLSearchParams(location.search);
const client = new TickerClient({
  transports: q.get('transports')?.split(','),
  backoffMin: 200, backoffMax: 1000, pollWait: 5,
});
const states = [];
const errors = [];
client.onState((s) => states.push(s));
client.onError((e) => errors.push(e));
let changes = 0;
client.onChange(() => changes++);
client.subscribe(q.get('symbols').split(','));
client.start();
window.client = client;
window.view = () => ({
  state: client.state, session: client.session, changes, errors,
  opens: states.filter((s) => s.state === 'open').map((s) => s.transport),
  records: Object.fromEntries(Object.entries(client.snapshot()).map(([k, r]) => [k, r.fields])),
});
</script>`

// server is a tickerd data path on a fixed loopback port that can be
// restarted, and told to refuse transports as a hostile network would.
type server struct {
	t      testing.TB
	addr   string // host:port, kept across restarts
	base   string
	hc     *http.Client
	refuse atomic.Value // set of paths answered 404, map[string]bool

	cache *conflate.Cache
	srv   *stream.Server
	hs    *http.Server
	done  chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]bool // open connections, hijacked ones included, across restarts
}

func newServer(t testing.TB, cfg stream.Config) *server {
	t.Helper()
	s := &server{t: t, addr: "127.0.0.1:0", hc: &http.Client{Timeout: 10 * time.Second}, conns: map[net.Conn]bool{}}
	s.refuse.Store(map[string]bool{})
	s.start(cfg)
	t.Cleanup(func() {
		s.stop()
		s.hc.CloseIdleConnections()
	})
	return s
}

// start serves a fresh data path (empty cache, as after a process restart).
func (s *server) start(cfg stream.Config) {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.base = "http://" + s.addr
	s.cache = conflate.New()
	s.srv = stream.NewServer(s.cache, cfg)
	mux := http.NewServeMux()
	s.srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: s.cache})
	mux.Handle("GET /", web.Handler())
	mux.Handle("GET /v1/client.js", web.ClientHandler())
	mux.HandleFunc("GET /test.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, testPage)
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.refuse.Load().(map[string]bool)[r.URL.Path] {
			http.Error(w, "blocked by the test's proxy", http.StatusNotFound)
			return
		}
		mux.ServeHTTP(w, r)
	})
	s.hs = &http.Server{Handler: h, ConnContext: stream.ConnContext, ConnState: s.track}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.hs.Serve(ln)
	}()
}

// stop shuts the data path down like SIGTERM does: sessions get close
// with shutdown, then the listener goes.
func (s *server) stop() {
	if s.hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.t.Errorf("stream shutdown: %v", err)
	}
	_ = s.hs.Close()
	<-s.done
	s.hs = nil
	s.hc.CloseIdleConnections() // they lead to the old server
}

func (s *server) track(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns[c] = true
	case http.StateClosed:
		delete(s.conns, c)
	}
}

// dropConns cuts every open connection, as a network failure would: no
// close message, and the server keeps listening.
func (s *server) dropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
		delete(s.conns, c)
	}
	s.hc.CloseIdleConnections() // the test's own were cut too
}

// refusePaths makes the server answer 404 on these paths (a proxy that
// blocks WebSocket or streaming responses).
func (s *server) refusePaths(paths ...string) {
	m := map[string]bool{}
	for _, p := range paths {
		m[p] = true
	}
	s.refuse.Store(m)
}

// ingest posts one NDJSON update per symbol through POST /v1/ingest.
func (s *server) ingest(round int, symbols ...string) {
	s.t.Helper()
	var b bytes.Buffer
	for i, sym := range symbols {
		n := 100*round + i
		fmt.Fprintf(&b, `{"symbol":%q,"fields":{"bid":"%d.%02d","ask":"%d.%02d","bidSize":%d,"last":"%d.5","volume":%d}}`+"\n",
			sym, 100+n%50, n%100, 101+n%50, n%100, 100+n, 100+n%50, 1000*round+i)
	}
	s.post(&b)
}

// post sends an NDJSON body through POST /v1/ingest; every line must be
// accepted.
func (s *server) post(body io.Reader) {
	s.t.Helper()
	resp, err := s.hc.Post(s.base+"/v1/ingest", "application/x-ndjson", body)
	if err != nil {
		s.t.Fatalf("ingest: %v", err)
	}
	defer resp.Body.Close()
	var r struct{ Accepted, Rejected int }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Rejected != 0 {
		s.t.Fatalf("ingest: status %d, %+v, %v", resp.StatusCode, r, err)
	}
}

// snapshot returns the server's records of symbols (with only fields, if
// given) from GET /v1/snapshot.
func (s *server) snapshot(symbols []string, fields ...string) map[string]map[string]string {
	s.t.Helper()
	q := ""
	if len(fields) > 0 {
		q = "&fields=" + strings.Join(fields, ",")
	}
	return getSnapshot(s.t, s.hc, s.base, q, symbols...)
}

// getSnapshot reads /v1/snapshot?symbols=... of base, plus the query
// suffix extra ("&fields=...").
func getSnapshot(t testing.TB, hc *http.Client, base, extra string, symbols ...string) map[string]map[string]string {
	t.Helper()
	resp, err := hc.Get(base + "/v1/snapshot?symbols=" + strings.Join(symbols, ",") + extra)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer resp.Body.Close()
	var r struct {
		Snapshots []struct {
			Symbol string
			Fields map[string]string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	out := map[string]map[string]string{}
	for _, sn := range r.Snapshots {
		out[sn.Symbol] = sn.Fields
	}
	return out
}
