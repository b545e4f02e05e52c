package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"tickerd/client"
	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/stream"
)

// Example follows one symbol over SSE: the first change is the snapshot,
// and the local record answers at any time.
func Example() {
	base, stop := exampleServer() // a tickerd on a loopback port, where AAPL has a quote
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, base,
		client.WithTransport(client.SSE),
		client.WithSubscription([]string{"AAPL"}, client.Fields("bid", "ask")),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ch := <-c.Changes()
	fmt.Println(ch.Symbol, "snapshot:", ch.Snapshot, "bid:", ch.Fields["bid"], "ask:", ch.Fields["ask"])
	q, _ := c.Snapshot("AAPL")
	fmt.Println(q.Symbol, q.Seq, q.Fields)
	// Output:
	// AAPL snapshot: true bid: 189.12 ask: 189.14
	// AAPL 1 map[ask:189.14 bid:189.12]
}

// ExampleDial shows the options of a long-running integration: fallback
// from WebSocket, a token, callbacks for changes and connection state.
func ExampleDial() {
	c, err := client.Dial(context.Background(), "http://127.0.0.1:8080",
		client.WithFallback(), // WebSocket, else SSE, else long-poll
		client.WithToken("k-alice-1"),
		client.WithSubscription([]string{"AAPL", "MSFT"}, client.Fields("bid", "ask", "last"), client.MaxHz(4)),
		client.OnChange(func(ch client.Change) { fmt.Println(ch.Symbol, ch.Seq, ch.Fields) }),
		client.OnState(func(s client.State, err error) { log.Println("tickerd:", s, err) }),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(context.Background(), []string{"SPY"}, client.MaxHz(0.5)); err != nil {
		log.Println(err) // the refused symbols, as *client.ServerError
	}
	time.Sleep(time.Minute)
	l := c.Latency()
	fmt.Println("latency p50", l.P50, "p99", l.P99)
}

// exampleServer starts the real data path on a loopback port with one
// quote, and returns its URL and a function that stops it.
func exampleServer() (string, func()) {
	cache := conflate.New()
	srv := stream.NewServer(cache, stream.Config{Log: quiet})
	mux := http.NewServeMux()
	srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: cache, Log: quiet})
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.ConnContext = stream.ConnContext
	hs.Start()
	resp, err := ingestClient.Post(hs.URL+"/v1/ingest", "application/x-ndjson",
		strings.NewReader(`{"symbol":"AAPL","fields":{"bid":"189.12","ask":"189.14","last":"189.13"}}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	return hs.URL, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	}
}
