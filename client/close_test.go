package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"tickerd/client"
)

// TestCloseCodes: a close message the client may not come back from
// (revoked, unauthorized) stops it with that error; others reconnect. The
// server here is a script of NDJSON lines: the codes cannot be provoked
// from tickerd yet (no authentication).
func TestCloseCodes(t *testing.T) {
	tests := []struct {
		code      string
		reconnect bool
	}{
		{client.CloseRevoked, false},
		{client.CloseUnauthorized, false},
		{client.CloseShutdown, true},
		{client.CloseSlowConsumer, true},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			var streams atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := streams.Add(1)
				w.Header().Set("Content-Type", "application/x-ndjson")
				fmt.Fprintf(w, `{"type":"session","session":"S%d","resume":"R%d"}`+"\n", n, n)
				if n == 1 {
					fmt.Fprintf(w, `{"type":"close","code":%q,"message":"bye"}`+"\n", tt.code)
					return
				}
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer srv.Close()
			c, err := client.Dial(context.Background(), srv.URL, client.WithTransport(client.NDJSON), client.WithLogger(quiet),
				client.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if !tt.reconnect {
				select {
				case <-c.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the client did not stop")
				}
				var ce *client.CloseError
				if !errors.As(c.Err(), &ce) || ce.Code != tt.code || c.State() != client.Closed {
					t.Errorf("Err() = %v, state %v", c.Err(), c.State())
				}
				if err := c.Subscribe(context.Background(), []string{"A"}); !errors.Is(err, client.ErrClosed) {
					t.Errorf("Subscribe after the stop: %v", err)
				}
				return
			}
			waitFor(t, 5*time.Second, "a second stream", func() bool { return streams.Load() >= 2 && c.State() == client.Connected })
			if err := c.Close(); err != nil || !errors.Is(c.Err(), client.ErrClosed) {
				t.Errorf("Close: %v, Err() = %v", err, c.Err())
			}
			if _, open := <-c.Changes(); open {
				t.Error("Changes still open after Close")
			}
		})
	}
}
