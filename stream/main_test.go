package stream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a real tickerd data path on a loopback port: cache, stream
// server and ingest endpoint, with no feed of its own.
type testServer struct {
	cache *conflate.Cache
	srv   *stream.Server
	http  *httptest.Server
	base  string
}

func newTestServer(t testing.TB, cfg stream.Config) *testServer {
	t.Helper()
	return newTestServerOn(t, conflate.New(), cfg)
}

// newTestServerOn is newTestServer reading cache.
func newTestServerOn(t testing.TB, cache *conflate.Cache, cfg stream.Config) *testServer {
	t.Helper()
	ts := &testServer{cache: cache}
	ts.srv = stream.NewServer(ts.cache, cfg)
	mux := http.NewServeMux()
	ts.srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: ts.cache})
	ts.http = httptest.NewUnstartedServer(mux)
	ts.http.Config.ConnContext = stream.ConnContext
	ts.http.Start()
	ts.base = ts.http.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.http.Close()
	})
	return ts
}

// put applies one update of string values straight to the cache.
func (ts *testServer) put(t testing.TB, sym string, kv ...string) {
	t.Helper()
	var u feed.Update
	u.Symbol = sym
	for i := 0; i < len(kv); i += 2 {
		f, ok := feed.ParseField(kv[i])
		if !ok {
			t.Fatalf("unknown field %q", kv[i])
		}
		v, err := feed.ParseValue(f, []byte(`"`+kv[i+1]+`"`))
		if err != nil {
			t.Fatal(err)
		}
		u.Put(f, v)
	}
	ts.cache.Apply(&u)
}
