package stream_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"tickerd/stream"
)

// countingConn counts the bytes read off the wire.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// A client that offers permessage-deflate gets it (up to the server's
// session limit): its ops may come compressed, the server's batches come
// compressed and decode to the same messages, and fewer bytes cross the
// wire than the messages hold. A client past the limit gets plain frames.
func TestWebSocketDeflate(t *testing.T) {
	ts := newTestServer(t, stream.Config{WSDeflateMaxSessions: 1})
	syms := symbols("DF", 60)
	for _, s := range syms {
		ts.put(t, s, "bid", "101.25", "ask", "101.5", "bidSize", "300", "askSize", "200", "last", "101.3", "status", "trading")
	}
	dial := func() (*websocket.Conn, *atomic.Int64, string) {
		var wire atomic.Int64
		d := websocket.Dialer{
			EnableCompression: true,
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countingConn{c, &wire}, nil
			},
		}
		c, resp, err := d.Dial("ws"+strings.TrimPrefix(ts.base, "http")+"/v1/ws?maxHz=1000", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, &wire, resp.Header.Get("Sec-WebSocket-Extensions")
	}
	read := func(c *websocket.Conn, want int) int {
		t.Helper()
		got, payload := 0, 0
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for got < want {
			_, b, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("after %d of %d snapshots: %v", got, want, err)
			}
			payload += len(b)
			got += strings.Count(string(b), `"type":"snapshot"`)
		}
		return payload
	}
	sub := fmt.Sprintf(`{"op":"subscribe","id":1,"symbols":["%s"]}`, strings.Join(syms, `","`))

	a, wireA, extA := dial()
	if !strings.Contains(extA, "permessage-deflate") {
		t.Fatalf("first client: extensions %q, want permessage-deflate", extA)
	}
	a.EnableWriteCompression(true) // the op (over 128 bytes) goes compressed too
	if err := a.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	payload := read(a, len(syms))
	t.Logf("compressed session: %d bytes of messages in %d bytes on the wire", payload, wireA.Load())
	if wireA.Load() >= int64(payload) {
		t.Errorf("%d bytes on the wire for %d bytes of messages: not compressed", wireA.Load(), payload)
	}

	b, wireB, extB := dial()
	if strings.Contains(extB, "permessage-deflate") {
		t.Fatalf("second client past the limit of 1: extensions %q", extB)
	}
	if err := b.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	payloadB := read(b, len(syms))
	if wireB.Load() < int64(payloadB) {
		t.Errorf("plain session: %d bytes on the wire for %d bytes of messages", wireB.Load(), payloadB)
	}

	// Updates keep coming compressed and decode.
	ts.put(t, syms[0], "bid", "101.75")
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, m, err := a.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m), `"bid":"101.75"`) {
			break
		}
	}

	// A compressed op that inflates past the 64 KiB limit (a few hundred
	// bytes on the wire) is refused with 1009, like a plain one.
	bomb := `{"op":"ping","id":1,"pad":"` + strings.Repeat(" ", 200<<10) + `"}`
	if err := a.WriteMessage(websocket.TextMessage, []byte(bomb)); err != nil {
		t.Fatal(err)
	}
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := a.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("after a compressed op that inflates to 200 KiB: %v, want close 1009", err)
		}
		break
	}
}
