package stream_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"tickerd/internal/streamtest"
	"tickerd/stream"
)

// A client that stops reading is closed after the stall timeout, and a
// client that keeps reading meanwhile sees no harm (guarantee 3).
func TestStalledClientIsClosed(t *testing.T) {
	for _, tr := range []string{"ws", "ndjson"} {
		t.Run(tr, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{MaxHz: 1000, StallTimeout: time.Second})
			syms := make([]string, 200)
			for i := range syms {
				syms[i] = fmt.Sprintf("S%03d", i)
				ts.put(t, syms[i], "bid", "1")
			}
			stalled := dialStalled(t, ts.base, tr, strings.Join(syms, ","))
			defer stalled.Close()
			healthy := dial(t, ts, streamtest.NDJSON, map[string][]string{"symbols": {"S000"}})

			stop := make(chan struct{})
			fed := make(chan int)
			go func() {
				n := 0
				defer func() { fed <- n }()
				for {
					select {
					case <-stop:
						return
					default:
					}
					n++
					for _, s := range syms {
						ts.put(t, s, "bid", fmt.Sprint(n), "ask", fmt.Sprint(n+1), "time", "2026-01-01T00:00:00Z")
					}
					time.Sleep(time.Millisecond)
				}
			}()
			streamtest.WaitFor(t, 20*time.Second, "stalled session closed", func() error {
				if n := ts.srv.Sessions(); n != 1 {
					return fmt.Errorf("%d sessions open", n)
				}
				return nil
			})
			close(stop)
			last := <-fed
			streamtest.WaitFor(t, 5*time.Second, "healthy session current", func() error {
				if got := healthy.View()["S000"].Fields["bid"]; got != fmt.Sprint(last) {
					return fmt.Errorf("bid %s, want %d", got, last)
				}
				return nil
			})
			if healthy.Err() != nil || healthy.Closed() != nil {
				t.Fatalf("healthy session ended: %v %+v", healthy.Err(), healthy.Closed())
			}
		})
	}
}

// dialStalled opens a stream with a tiny receive buffer and never reads it.
func dialStalled(t *testing.T, base, transport, symbols string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	host := strings.TrimPrefix(base, "http://")
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/stream"
	extra := ""
	if transport == "ws" {
		path = "/v1/ws"
		extra = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	}
	fmt.Fprintf(c, "GET %s?maxHz=1000&symbols=%s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, symbols, host, extra)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return c
}
