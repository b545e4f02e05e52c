package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tickerd/client"
	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// server is a real tickerd data path on a loopback port (cache, stream
// server, ingest endpoint, no feed of its own) that can be restarted on
// the same port with an empty cache, as a restarted tickerd would be.
type server struct {
	t    testing.TB
	cfg  stream.Config
	wrap func(http.Handler) http.Handler // optional, around the mux
	addr string
	base string

	srv  *stream.Server
	http *http.Server
	done chan struct{}
}

func startServer(t testing.TB, cfg stream.Config, wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cfg: cfg, wrap: wrap, addr: ln.Addr().String()}
	s.base = "http://" + s.addr
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *server) serve(ln net.Listener) {
	cache := conflate.New()
	s.srv = stream.NewServer(cache, s.cfg)
	mux := http.NewServeMux()
	s.srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: cache, Log: quiet})
	var h http.Handler = mux
	if s.wrap != nil {
		h = s.wrap(mux)
	}
	s.http = &http.Server{Handler: h, ConnContext: stream.ConnContext, ErrorLog: nil}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		_ = s.http.Serve(ln)
	}()
}

// stop shuts the server down as tickerd does on SIGTERM: every stream
// gets close/shutdown, then the listener and connections go. Safe to call
// twice.
func (s *server) stop() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.t.Errorf("shutdown: %v", err)
	}
	_ = s.http.Close()
	<-s.done
	s.srv = nil
}

// restart stops the server and starts a new one, with an empty cache, on
// the same port.
func (s *server) restart() {
	s.t.Helper()
	s.stop()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", s.addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listening again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// ingestClient keeps no idle connection, so none outlives a test.
var ingestClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// ingest posts NDJSON lines to POST /v1/ingest.
func ingest(t testing.TB, base string, lines ...string) {
	t.Helper()
	resp, err := ingestClient.Post(base+"/v1/ingest", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"rejected":0`) {
		t.Fatalf("ingest: %s: %s", resp.Status, body)
	}
}

// feedBurst ingests n updates spread over syms, in a few posts; salt makes
// the values differ from one burst to the next.
func feedBurst(t testing.TB, base string, syms []string, n, salt int) {
	t.Helper()
	var lines []string
	for i := range n {
		sym := syms[i%len(syms)]
		bid := 100 + (i*7+salt*13)%997
		lines = append(lines, fmt.Sprintf(`{"symbol":%q,"fields":{"bid":"%d.%02d","ask":"%d.%02d","bidSize":%d,"last":"%d.5"}}`,
			sym, bid, i%100, bid+1, (i+salt)%100, 100+i%50, bid))
		if len(lines) == 50 {
			ingest(t, base, lines...)
			lines = lines[:0]
		}
	}
	if len(lines) > 0 {
		ingest(t, base, lines...)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converged reports whether c's records of syms equal the server's
// snapshot (restricted to fields, if any).
func converged(t testing.TB, c *client.Client, base string, syms []string, fields ...string) bool {
	t.Helper()
	want, err := client.FetchSnapshot(context.Background(), base, syms, client.WithHTTPClient(ingestClient))
	if err != nil {
		t.Fatal(err)
	}
	for _, sym := range syms {
		w, ok := want[sym]
		if !ok {
			return false
		}
		if len(fields) > 0 {
			maps.DeleteFunc(w.Fields, func(f, _ string) bool { return !contains(fields, f) })
		}
		got, ok := c.Snapshot(sym)
		if !ok || got.Seq != w.Seq || !maps.Equal(got.Fields, w.Fields) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// recorder keeps what a Client reports through its callbacks.
type recorder struct {
	mu      sync.Mutex
	msgs    []client.Message
	changes []client.Change
	states  []client.State
	errs    []error
}

func (r *recorder) options() []client.Option {
	return []client.Option{
		client.OnMessage(func(m client.Message) { r.mu.Lock(); r.msgs = append(r.msgs, m); r.mu.Unlock() }),
		client.OnChange(func(ch client.Change) { r.mu.Lock(); r.changes = append(r.changes, ch); r.mu.Unlock() }),
		client.OnState(func(s client.State, _ error) { r.mu.Lock(); r.states = append(r.states, s); r.mu.Unlock() }),
		client.OnError(func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }),
	}
}

// mark returns positions to take what comes later from.
func (r *recorder) mark() (msgs, changes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs), len(r.changes)
}

func (r *recorder) since(msgs, changes int) ([]client.Message, []client.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Message(nil), r.msgs[msgs:]...), append([]client.Change(nil), r.changes[changes:]...)
}

func (r *recorder) count(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m.Type == typ {
			n++
		}
	}
	return n
}

func (r *recorder) stateList() []client.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.State(nil), r.states...)
}

// dial connects a Client for a test and closes it at cleanup.
func dial(t testing.TB, base string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]client.Option{client.WithLogger(quiet), client.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}, opts...)
	c, err := client.Dial(ctx, base, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// proxy forwards TCP connections to a server and can cut them all and
// refuse new ones for a while: a network failure, seen by both ends.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]bool)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) base() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c] = true
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	defer p.wg.Done()
	b, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.down { // cut while dialing
		p.mu.Unlock()
		_ = b.Close()
		_ = c.Close()
		return
	}
	p.conns[b] = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(b, c)
		_ = b.Close()
		close(done)
	}()
	_, _ = io.Copy(c, b)
	_ = c.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, b)
	p.mu.Unlock()
}

// cut closes every connection and refuses new ones until up.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *proxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
