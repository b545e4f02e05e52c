package simulator

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tickerd/feed"
)

// recordSink keeps a copy of every update applied, as the server side of
// ingest tests.
type recordSink struct {
	mu      sync.Mutex
	updates []feed.Update
}

func (s *recordSink) Apply(u *feed.Update) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, *u)
	return true
}

func (s *recordSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.updates)
}

func (s *recordSink) all() []feed.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]feed.Update(nil), s.updates...)
}

// ingestServer serves the real feed.IngestHandler at /v1/ingest.
func ingestServer(t testing.TB, key string) (*httptest.Server, *recordSink) {
	t.Helper()
	sink := &recordSink{}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: sink, Key: key})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, sink
}

func newPoster(t testing.TB, cfg PosterConfig) *Poster {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p, err := NewPoster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func TestPosterDeliversEverything(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		maxBatch int
	}{
		{"default batches", "", 0},
		{"tiny batches", "", 600}, // Apply blocks on a full batch
		{"with key", "k-secret", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, sink := ingestServer(t, tt.key)
			p := newPoster(t, PosterConfig{URL: srv.URL + "/", Key: tt.key, MaxBatch: tt.maxBatch})
			updates := simUpdates(t, Config{Symbols: 30}, 3000)
			for i := range updates {
				if !p.Apply(&updates[i]) {
					t.Fatalf("Apply %d refused", i)
				}
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := sink.all()
			if len(got) != len(updates) {
				t.Fatalf("server got %d updates, want %d", len(got), len(updates))
			}
			for i := range got {
				got[i].TS = updates[i].TS // ingest stamps its own time
				if !sameUpdate(&got[i], &updates[i]) {
					t.Fatalf("update %d: got %+v, want %+v", i, got[i], updates[i])
				}
			}
			st := p.Stats()
			if st.Accepted != int64(len(updates)) || st.Rejected != 0 || st.Dropped != 0 || st.Requests == 0 {
				t.Errorf("stats %+v", st)
			}
			if p.Apply(&updates[0]) {
				t.Error("Apply after Close was accepted")
			}
		})
	}
}

func TestPosterFlushesOnInterval(t *testing.T) {
	srv, sink := ingestServer(t, "")
	p := newPoster(t, PosterConfig{URL: srv.URL})
	updates := simUpdates(t, Config{Symbols: 3}, 3)
	for i := range updates {
		p.Apply(&updates[i])
	}
	waitFor(t, 5*time.Second, "a timed flush", func() bool { return sink.len() == 3 })
}

func TestPosterBadKeyIsFatal(t *testing.T) {
	srv, sink := ingestServer(t, "right")
	p := newPoster(t, PosterConfig{URL: srv.URL, Key: "wrong"})
	updates := simUpdates(t, Config{Symbols: 3}, 3)
	p.Apply(&updates[0])
	select {
	case <-p.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("a 401 did not fail the poster")
	}
	if p.Apply(&updates[1]) {
		t.Error("Apply after a fatal error was accepted")
	}
	err := p.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Close: %v, want the 401", err)
	}
	if sink.len() != 0 {
		t.Error("server applied updates with a wrong key")
	}
}

func TestPosterRetriesServerErrors(t *testing.T) {
	sink := &recordSink{}
	var calls atomic.Int32
	ingest := &feed.IngestHandler{Sink: sink}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		ingest.ServeHTTP(w, r)
	}))
	defer srv.Close()
	p := newPoster(t, PosterConfig{URL: srv.URL})
	updates := simUpdates(t, Config{Symbols: 5}, 5)
	for i := range updates {
		p.Apply(&updates[i])
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.len() != 5 || calls.Load() != 2 {
		t.Errorf("server got %d updates in %d calls, want 5 in 2", sink.len(), calls.Load())
	}
}

func TestPosterCountsRejections(t *testing.T) {
	srv, _ := ingestServer(t, "")
	p := newPoster(t, PosterConfig{URL: srv.URL})
	bad := feed.Update{Symbol: "AAPL"}
	bad.Put(feed.Status, feed.StatusValue("sleeping")) // not a status ingest accepts
	good := simUpdates(t, Config{Symbols: 1}, 1)[0]
	p.Apply(&bad)
	p.Apply(&good)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Accepted != 1 || st.Rejected != 1 {
		t.Errorf("stats %+v, want 1 accepted and 1 rejected", st)
	}
}

func TestPosterUnreachableDrops(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	p := newPoster(t, PosterConfig{URL: url})
	updates := simUpdates(t, Config{Symbols: 2}, 2)
	p.Apply(&updates[0])
	p.Apply(&updates[1])
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Dropped != 2 {
		t.Errorf("stats %+v, want 2 dropped", st)
	}
}

func TestPosterCloseGivesUp(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	p := newPoster(t, PosterConfig{URL: srv.URL})
	u := simUpdates(t, Config{Symbols: 1}, 1)[0]
	p.Apply(&u)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want DeadlineExceeded", err)
	}
}

func TestNewPosterRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := NewPoster(PosterConfig{URL: u}); err == nil {
			t.Errorf("NewPoster(%q): no error", u)
		}
	}
}
