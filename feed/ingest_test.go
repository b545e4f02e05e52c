package feed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recorder is a Sink that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	updates []Update
}

func (r *recorder) Apply(u *Update) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, *u)
	return true
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

func ingestServer(t *testing.T, h *IngestHandler) (*httptest.Server, *recorder, *Metrics) {
	t.Helper()
	rec := &recorder{}
	m := NewMetrics(prometheus.NewRegistry())
	h.Sink, h.Counter = rec, m.Counter("http")
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, rec, m
}

func post(t *testing.T, url, key string, body io.Reader, hdr ...string) (int, IngestReply) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, body)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r IngestReply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, r
}

func TestIngestBodies(t *testing.T) {
	good := `{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14","bidSize":300}}`
	cases := []struct {
		name               string
		body               string
		accepted, rejected int
		errLines           []int
	}{
		{"good", good + "\n" + good, 2, 0, nil},
		{"no trailing newline, CRLF", good + "\r\n" + good, 2, 0, nil},
		{"empty body", "", 0, 0, nil},
		{"blank lines are counted", "\n\n" + good + "\n  \n{bad\n", 1, 1, []int{5}},
		{"mixed", good + "\n" + `{"symbol":"x","fields":{"bid":"1"}}` + "\n" + good + "\n" + `{"symbol":"A","fields":{"bid":"zz"}}`, 2, 2, []int{2, 4}},
		{"all bad", "nope\n[]\n", 0, 2, []int{1, 2}},
	}
	srv, rec, m := ingestServer(t, &IngestHandler{})
	total := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, r := post(t, srv.URL, "", strings.NewReader(tc.body))
			if code != 200 || r.Accepted != tc.accepted || r.Rejected != tc.rejected || r.Errors == nil {
				t.Fatalf("code %d reply %+v, want %d/%d", code, r, tc.accepted, tc.rejected)
			}
			for i, e := range r.Errors {
				if e.Line != tc.errLines[i] || e.Error == "" {
					t.Fatalf("error %d = %+v, want line %d", i, e, tc.errLines[i])
				}
			}
			total += tc.accepted
		})
	}
	if rec.count() != total {
		t.Fatalf("sink got %d updates, want %d", rec.count(), total)
	}
	if got := testutil.ToFloat64(m.Accepted.WithLabelValues("http")); int(got) != total {
		t.Fatalf("accepted counter %v, want %d", got, total)
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("http", ReasonSymbol)); got != 1 {
		t.Fatalf("rejected{reason=symbol} = %v, want 1", got)
	}
	for _, u := range rec.updates {
		if u.TS != 0 {
			t.Fatal("ingest must leave ts to the cache")
		}
	}
}

func TestIngestLimitsAndAuth(t *testing.T) {
	line := `{"symbol":"AAPL","fields":{"bid":"1"}}` + "\n"
	t.Run("oversized body applies nothing", func(t *testing.T) {
		srv, rec, _ := ingestServer(t, &IngestHandler{MaxBody: 1000})
		code, _ := post(t, srv.URL, "", strings.NewReader(strings.Repeat(line, 100)))
		if code != http.StatusRequestEntityTooLarge || rec.count() != 0 {
			t.Fatalf("code %d, applied %d", code, rec.count())
		}
		// Chunked, so the length is not known up front.
		code, _ = post(t, srv.URL, "", io.MultiReader(strings.NewReader(strings.Repeat(line, 100))))
		if code != http.StatusRequestEntityTooLarge || rec.count() != 0 {
			t.Fatalf("chunked: code %d, applied %d", code, rec.count())
		}
	})
	t.Run("gzip body, and a gzip bomb over the limit", func(t *testing.T) {
		srv, rec, _ := ingestServer(t, &IngestHandler{MaxBody: 4000})
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write([]byte(strings.Repeat(line, 10)))
		zw.Close()
		if code, r := post(t, srv.URL, "", &z, "Content-Encoding", "gzip"); code != 200 || r.Accepted != 10 {
			t.Fatalf("gzip: %d %+v", code, r)
		}
		z.Reset()
		zw = gzip.NewWriter(&z)
		zw.Write([]byte(strings.Repeat(line, 1000)))
		zw.Close()
		if code, _ := post(t, srv.URL, "", &z, "Content-Encoding", "gzip"); code != http.StatusRequestEntityTooLarge {
			t.Fatalf("bomb: %d", code)
		}
		if code, _ := post(t, srv.URL, "", strings.NewReader("not gzip"), "Content-Encoding", "gzip"); code != http.StatusBadRequest {
			t.Fatalf("bad gzip: %d", code)
		}
		if rec.count() != 10 {
			t.Fatalf("applied %d", rec.count())
		}
	})
	t.Run("bearer key", func(t *testing.T) {
		srv, rec, _ := ingestServer(t, &IngestHandler{Key: "s3cret"})
		for key, want := range map[string]int{"": 401, "wrong": 401, "s3cret": 200} {
			if code, _ := post(t, srv.URL, key, strings.NewReader(line)); code != want {
				t.Errorf("key %q: %d, want %d", key, code, want)
			}
		}
		if rec.count() != 1 {
			t.Fatalf("applied %d", rec.count())
		}
	})
	t.Run("no key: loopback only", func(t *testing.T) {
		h := &IngestHandler{Sink: &recorder{}}
		for addr, want := range map[string]int{"127.0.0.1:5000": 200, "[::1]:5000": 200, "10.1.2.3:5000": 403} {
			req := httptest.NewRequest(http.MethodPost, "/v1/ingest", strings.NewReader(line))
			req.RemoteAddr = addr
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != want {
				t.Errorf("%s: %d, want %d", addr, w.Code, want)
			}
		}
	})
}

func TestTCPAdapter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	m := NewMetrics(prometheus.NewRegistry())
	a := &TCPAdapter{Sink: rec, Counter: m.Counter("tcp")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Serve(ctx, ln) }()

	var conns []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		for n := range 100 {
			fmt.Fprintf(c, `{"symbol":"S%d","fields":{"volume":%d}}`+"\n", i, n)
		}
		fmt.Fprintln(c, `{"symbol":"bad","fields":{}}`)
		fmt.Fprint(c, `{"truncated":`) // a line cut off by the feed dying
	}
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.count() < 300 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec.count() != 300 {
		t.Fatalf("applied %d, want 300", rec.count())
	}
	if got := testutil.ToFloat64(m.Rejected.WithLabelValues("tcp", ReasonSymbol)) + testutil.ToFloat64(m.Rejected.WithLabelValues("tcp", ReasonJSON)); got != 6 {
		t.Fatalf("rejected %v, want 6", got)
	}
}

// countSink counts updates and closes done when it has seen want.
type countSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (s *countSink) Apply(*Update) bool {
	if s.n.Add(1) == s.want {
		close(s.done)
	}
	return true
}

// BenchmarkTCPAdapter: NDJSON quotes (4 fields, 500 symbols) over loopback
// TCP into a sink that only counts, written in 1 MB chunks by one client.
// With -cpu 1 the writer and the adapter share the one core.
func BenchmarkTCPAdapter(b *testing.B) {
	var chunk bytes.Buffer
	const perChunk = 10_000
	for i := range perChunk {
		fmt.Fprintf(&chunk, `{"symbol":"SYM%d","fields":{"bid":"189.%02d","ask":"189.14","bidSize":300,"askSize":%d}}`+"\n", i%500, i%100, 100+i%900)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	chunks := (b.N + perChunk - 1) / perChunk
	sink := &countSink{want: int64(chunks * perChunk), done: make(chan struct{})}
	a := &TCPAdapter{Sink: sink, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error)
	go func() { served <- a.Serve(ctx, ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(chunk.Len() / perChunk))
	b.ResetTimer()
	go func() {
		for range chunks {
			if _, err := c.Write(chunk.Bytes()); err != nil {
				return
			}
		}
	}()
	<-sink.done
	b.StopTimer()
	b.ReportMetric(float64(sink.n.Load())/b.Elapsed().Seconds(), "updates/s")
	c.Close()
	cancel()
	if err := <-served; err != nil {
		b.Fatal(err)
	}
}
