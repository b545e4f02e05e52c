package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/stream"
)

// fakeStream is a tickerd stand-in serving /v1/symbols, /v1/stream (NDJSON)
// and /v1/sessions/ID as the contract describes.
type fakeStream struct {
	symbols []string
	key     string
	lines   []string // sent after the session message, one per line
	hold    bool     // keep the stream open after lines

	mu         sync.Mutex
	subscribed []string // from the URL and POSTed subscribe ops
	auths      []string
}

func (f *fakeStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
		http.Error(w, `{"error":"bad key"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == "/v1/symbols":
		_ = json.NewEncoder(w).Encode(map[string]any{"symbols": f.symbols})
	case r.URL.Path == "/v1/stream":
		f.mu.Lock()
		f.subscribed = append(f.subscribed, strings.Split(r.URL.Query().Get("symbols"), ",")...)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"type":"session","session":"S1","resume":"R"}`)
		for _, l := range f.lines {
			fmt.Fprintln(w, l)
		}
		w.(http.Flusher).Flush()
		if f.hold {
			<-r.Context().Done()
		}
	case r.URL.Path == "/v1/sessions/S1" && r.Method == http.MethodPost:
		var op struct {
			Op      string   `json:"op"`
			Symbols []string `json:"symbols"`
		}
		if err := json.NewDecoder(r.Body).Decode(&op); err != nil || op.Op != "subscribe" {
			http.Error(w, `{"error":"bad op"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.subscribed = append(f.subscribed, op.Symbols...)
		f.mu.Unlock()
		fmt.Fprintln(w, `[{"type":"subscribed","symbols":[]}]`)
	default:
		http.NotFound(w, r)
	}
}

var quietLog = slog.New(slog.DiscardHandler)

func record(t *testing.T, ctx context.Context, cfg RecordConfig) (RecordStats, []feed.Update, error) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewCaptureWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = quietLog
	st, rerr := Record(ctx, cfg, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readCapture(t, buf.Bytes())
	if err != nil {
		t.Fatalf("reading the recorded capture: %v", err)
	}
	return st, got, rerr
}

func TestRecord(t *testing.T) {
	f := &fakeStream{
		symbols: []string{"AAPL", "MSFT"},
		key:     "k1",
		lines: []string{
			`{"type":"subscribed","id":0,"symbols":["AAPL","MSFT"]}`,
			`[{"type":"snapshot","symbol":"AAPL","seq":3,"ts":1700000000000001,"fields":{"bid":"189.12","ask":"189.14","status":"trading"}},` +
				`{"type":"snapshot","symbol":"MSFT","seq":1,"ts":1700000000000002,"fields":{"last":"415.5","time":"2024-01-02T15:04:05.123456Z"}}]`,
			`{"type":"heartbeat","ts":1700000000000003}`,
			``,
			`{"type":"update","symbol":"AAPL","seq":4,"ts":1700000000000004,"fields":{"bid":"189.13"},"delayed":true}`,
			`{"type":"error","id":1,"code":"not_entitled","symbol":"IBM","message":"no"}`,
			`{"type":"update","symbol":"MSFT","seq":2,"ts":1700000000000005,"fields":{"volume":12345,"nope":"1","ask":"x"}}`,
			`{"type":"close","code":"shutdown","message":"bye"}`,
			`{"type":"update","symbol":"AAPL","seq":5,"ts":1700000000000006,"fields":{"bid":"1"}}`,
		},
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	var seen []RecordStats
	progress := func(st RecordStats) { seen = append(seen, st) }
	st, got, err := record(t, context.Background(), RecordConfig{URL: srv.URL, Key: "k1", Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 || seen[3] != (RecordStats{Snapshots: 2, Updates: 2}) {
		t.Errorf("progress calls %+v", seen)
	}
	if st != (RecordStats{Snapshots: 2, Updates: 2, Closed: "shutdown"}) {
		t.Errorf("stats %+v", st)
	}
	want := []string{
		`{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14","status":"trading"},"ts":1700000000000001}`,
		`{"symbol":"MSFT","fields":{"last":"415.5","time":"2024-01-02T15:04:05.123456Z"},"ts":1700000000000002}`,
		`{"symbol":"AAPL","fields":{"bid":"189.13"},"ts":1700000000000004}`,
		`{"symbol":"MSFT","fields":{"volume":"12345"},"ts":1700000000000005}`,
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %d updates, want %d", len(got), len(want))
	}
	for i := range got {
		line, err := appendLine(nil, &got[i], true)
		if err != nil || strings.TrimSpace(string(line)) != want[i] {
			t.Errorf("update %d: %s, want %s (%v)", i, line, want[i], err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.subscribed, []string{"AAPL", "MSFT"}) {
		t.Errorf("subscribed %v", f.subscribed)
	}
	for _, a := range f.auths {
		if a != "Bearer k1" {
			t.Errorf("request with Authorization %q", a)
		}
	}
}

func TestRecordManySymbols(t *testing.T) {
	names := newSim(t, Config{Symbols: 1234}).Symbols()
	f := &fakeStream{lines: []string{`{"type":"close","code":"max_age"}`}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	if _, _, err := record(t, context.Background(), RecordConfig{URL: srv.URL, Symbols: names}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Equal(f.subscribed, names) {
		t.Errorf("subscribed %d symbols, want all %d in order", len(f.subscribed), len(names))
	}
}

func TestRecordStopsWithContext(t *testing.T) {
	f := &fakeStream{
		symbols: []string{"AAPL"},
		lines:   []string{`{"type":"update","symbol":"AAPL","seq":1,"ts":5,"fields":{"bid":"1"}}`},
		hold:    true,
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	st, got, err := record(t, ctx, RecordConfig{URL: srv.URL})
	if err != nil || st.Updates != 1 || len(got) != 1 {
		t.Errorf("Record: %v, stats %+v, %d updates", err, st, len(got))
	}
}

func TestRecordErrors(t *testing.T) {
	srv := httptest.NewServer(&fakeStream{key: "right"})
	defer srv.Close()
	empty := httptest.NewServer(&fakeStream{})
	defer empty.Close()
	tests := []struct {
		name string
		cfg  RecordConfig
		want string
	}{
		{"bad url", RecordConfig{URL: "nope"}, "bad tickerd URL"},
		{"bad key", RecordConfig{URL: srv.URL, Key: "wrong"}, "401"},
		{"no symbols", RecordConfig{URL: empty.URL}, "no symbols"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := record(t, context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Record: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestRecordFromTickerd records from a real data path (cache, stream
// server, ingest) until the server shuts down.
func TestRecordFromTickerd(t *testing.T) {
	cache := conflate.New()
	srv := stream.NewServer(cache, stream.Config{Log: quietLog})
	mux := http.NewServeMux()
	srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: cache, Log: quietLog})
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.ConnContext = stream.ConnContext
	hs.Start()
	defer hs.Close()
	post := func(body string) {
		t.Helper()
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Post(hs.URL+"/v1/ingest", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	post(`{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14"}}`)

	var buf bytes.Buffer
	w, err := NewCaptureWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	type result struct {
		st  RecordStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := Record(context.Background(), RecordConfig{URL: hs.URL, Log: quietLog,
			Progress: func(st RecordStats) { written.Store(st.Snapshots + st.Updates) }}, w)
		done <- result{st, err}
	}()
	waitFor(t, 10*time.Second, "the snapshot", func() bool { return written.Load() == 1 })
	post(`{"symbol":"AAPL","fields":{"bid":"189.13"}}`)
	waitFor(t, 10*time.Second, "the update", func() bool { return written.Load() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.st != (RecordStats{Snapshots: 1, Updates: 1, Closed: "shutdown"}) {
		t.Fatalf("Record: %v, stats %+v", r.err, r.st)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readCapture(t, buf.Bytes())
	if err != nil || len(got) != 2 || got[1].Values[feed.Bid].String() != "189.13" || got[1].Set.Len() != 1 {
		t.Errorf("capture %+v (%v)", got, err)
	}
}
