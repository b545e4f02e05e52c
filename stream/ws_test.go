package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"tickerd/internal/streamtest"
	"tickerd/stream"
)

// WebSocket framing seen from a raw client: frames are written by hand,
// masked, split and batched as a client may.

type rawWS struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw opens a WebSocket on ts with query (e.g. "?symbols=A") and sends
// after the handshake request, in the same write, the bytes of after.
func dialRaw(t testing.TB, ts *testServer, query string, after ...[]byte) *rawWS {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /v1/ws" + query + " HTTP/1.1\r\nHost: tickerd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), bytes.Join(after, nil)...)); err != nil {
		t.Fatal(err)
	}
	c := &rawWS{t: t, conn: conn, br: bufio.NewReader(conn)}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: HTTP %d", resp.StatusCode)
	}
	return c
}

// frame returns a masked client frame.
func frame(op ws.OpCode, fin bool, payload string) []byte {
	f := ws.MaskFrame(ws.NewFrame(op, fin, []byte(payload)))
	return ws.MustCompileFrame(f)
}

func textFrame(payload string) []byte { return frame(ws.OpText, true, payload) }

func (c *rawWS) write(b ...[]byte) {
	c.t.Helper()
	if _, err := c.conn.Write(bytes.Join(b, nil)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one server frame; the server never masks.
func (c *rawWS) next() (ws.Header, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return h, nil, err
	}
	if h.Masked {
		return h, nil, errors.New("server frame is masked")
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(c.br, p)
	return h, p, err
}

// until reads frames until pred accepts one; text frames are passed with
// their messages decoded.
func (c *rawWS) until(what string, pred func(h ws.Header, p []byte, msgs []streamtest.Msg) bool) {
	c.t.Helper()
	for {
		h, p, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		var msgs []streamtest.Msg
		if h.OpCode == ws.OpText {
			if msgs, err = streamtest.Decode(p); err != nil {
				c.t.Fatalf("frame %q: %v", p, err)
			}
		}
		if pred(h, p, msgs) {
			return
		}
	}
}

// pongs reads until it has seen a pong message for each id.
func (c *rawWS) pongs(ids ...int) {
	c.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[fmt.Sprint(id)] = true
	}
	c.until(fmt.Sprintf("pongs %v", ids), func(_ ws.Header, _ []byte, msgs []streamtest.Msg) bool {
		for _, m := range msgs {
			if m.Type == "pong" {
				delete(want, string(m.ID))
			}
		}
		return len(want) == 0
	})
}

// closed reads until a close frame and returns its status.
func (c *rawWS) closed() ws.StatusCode {
	c.t.Helper()
	var code ws.StatusCode
	c.until("close frame", func(h ws.Header, p []byte, _ []streamtest.Msg) bool {
		if h.OpCode != ws.OpClose {
			return false
		}
		code, _ = ws.ParseCloseFrameData(p)
		return true
	})
	return code
}

// eof waits for the server to close the connection.
func (c *rawWS) eof() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		c.t.Fatalf("connection not closed by the server: %v", err)
	}
}

func pingOp(id int) string { return fmt.Sprintf(`{"op":"ping","id":%d}`, id) }

func TestWSFragmentedOp(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	c := dialRaw(t, ts, "")
	op := pingOp(1)
	c.write(frame(ws.OpText, false, op[:5]))
	c.write(frame(ws.OpPing, true, "between"), frame(ws.OpContinuation, false, op[5:9]))
	c.write(frame(ws.OpContinuation, true, op[9:]))
	var pong bool
	c.until("pong frame and pong message", func(h ws.Header, p []byte, msgs []streamtest.Msg) bool {
		if h.OpCode == ws.OpPong {
			if string(p) != "between" {
				t.Fatalf("pong frame payload %q", p)
			}
			pong = true
		}
		for _, m := range msgs {
			if m.Type == "pong" && string(m.ID) == "1" && pong {
				return true
			}
		}
		return false
	})
}

func TestWSPingFrame(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	c := dialRaw(t, ts, "")
	c.write(frame(ws.OpPing, true, "hello"))
	c.until("pong frame", func(h ws.Header, p []byte, _ []streamtest.Msg) bool {
		return h.OpCode == ws.OpPong && string(p) == "hello"
	})
	c.write(textFrame(pingOp(2))) // still open
	c.pongs(2)
}

func TestWSSeveralOpsInOneWrite(t *testing.T) {
	ts := newTestServer(t, stream.Config{MaxOpRate: 1e6}) // the op rate limit is not under test here
	ts.put(t, "AAA", "bid", "1")
	c := dialRaw(t, ts, "")
	var ops [][]byte
	// More than one read round handles, and more replies than the
	// session's control queue holds: reading waits for the writer.
	const pings = 150
	for id := 1; id <= pings; id++ {
		ops = append(ops, textFrame(pingOp(id)))
	}
	ops = append(ops, textFrame(`{"op":"subscribe","id":0,"symbols":["AAA"]}`))
	c.write(ops...)
	pongs, snapshot := map[string]bool{}, false
	c.until("pongs and a snapshot", func(_ ws.Header, _ []byte, msgs []streamtest.Msg) bool {
		for _, m := range msgs {
			switch m.Type {
			case "pong":
				pongs[string(m.ID)] = true
			case "snapshot":
				if !snapshot && len(pongs) != pings {
					t.Fatalf("snapshot after %d pongs: ops applied out of order", len(pongs))
				}
				snapshot = m.Symbol == "AAA" && m.Fields["bid"] == "1"
			}
		}
		return snapshot
	})
}

// A client may send frames right behind its handshake, before the 101:
// they must not be lost in the HTTP server's read buffer.
func TestWSFramesBehindHandshake(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	c := dialRaw(t, ts, "", textFrame(pingOp(1)), frame(ws.OpText, false, pingOp(2)[:4]))
	c.write(frame(ws.OpContinuation, true, pingOp(2)[4:]))
	c.pongs(1, 2)
}

func TestWSBinaryRefused(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	c := dialRaw(t, ts, "")
	c.write(frame(ws.OpBinary, false, "\x00\x01"), frame(ws.OpContinuation, true, "\x02"), textFrame(pingOp(1)))
	var refused bool
	c.until("error, then pong", func(_ ws.Header, _ []byte, msgs []streamtest.Msg) bool {
		for _, m := range msgs {
			refused = refused || (m.Type == "error" && m.Code == stream.CodeBadRequest && strings.Contains(m.Message, "binary"))
			if m.Type == "pong" {
				if !refused {
					t.Fatal("pong before the binary frame's error")
				}
				return true
			}
		}
		return false
	})
}

func TestWSCloseRefusedFrames(t *testing.T) {
	big := strings.Repeat("x", stream.MaxOpBytes+1)
	half := strings.Repeat("x", stream.MaxOpBytes/2+1)
	cases := []struct {
		name   string
		frames [][]byte
		want   ws.StatusCode
	}{
		{"oversized message", [][]byte{textFrame(big)}, ws.StatusMessageTooBig},
		{"oversized in fragments", [][]byte{frame(ws.OpText, false, half), frame(ws.OpContinuation, true, half)}, ws.StatusMessageTooBig},
		{"unmasked frame", [][]byte{ws.MustCompileFrame(ws.NewTextFrame([]byte(pingOp(1))))}, ws.StatusProtocolError},
		{"continuation out of the blue", [][]byte{frame(ws.OpContinuation, true, "x")}, ws.StatusProtocolError},
		{"fragmented control frame", [][]byte{frame(ws.OpPing, false, "x")}, ws.StatusProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{})
			c := dialRaw(t, ts, "")
			c.write(tc.frames...)
			if got := c.closed(); got != tc.want {
				t.Fatalf("close status %d, want %d", got, tc.want)
			}
			c.write(frame(ws.OpClose, true, ""))
			c.eof()
		})
	}
}

func TestWSClientClose(t *testing.T) {
	cases := []struct {
		name string
		body string
		want ws.StatusCode // 0: an empty close frame
	}{
		{"normal", string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")), ws.StatusNormalClosure},
		{"going away", string(ws.NewCloseFrameBody(ws.StatusGoingAway, "")), ws.StatusGoingAway},
		{"no status", "", 0},
		{"one byte", "\x03", ws.StatusProtocolError},
		{"reserved status 1005", string(ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, "")), ws.StatusProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, stream.Config{})
			c := dialRaw(t, ts, "?symbols=AAA")
			c.write(frame(ws.OpClose, true, tc.body))
			if got := c.closed(); got != tc.want {
				t.Fatalf("close answered with %d, want %d", got, tc.want)
			}
			c.eof()
			streamtest.WaitFor(t, 5*time.Second, "session ended", func() error {
				if n := ts.srv.Sessions(); n != 0 {
					return fmt.Errorf("%d sessions", n)
				}
				return nil
			})
		})
	}
}

// A client that never answers the close frame is given closeGrace, then
// cut off: shutdown does not wait for it longer.
func TestWSShutdownWithSilentClient(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	c := dialRaw(t, ts, "?symbols=AAA")
	c.until("ack", func(_ ws.Header, _ []byte, msgs []streamtest.Msg) bool {
		return len(msgs) > 0 && msgs[0].Type == "subscribed"
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	var msg bool
	c.until("close message and frame", func(h ws.Header, p []byte, msgs []streamtest.Msg) bool {
		for _, m := range msgs {
			msg = msg || (m.Type == "close" && m.Code == stream.CloseShutdown)
		}
		if h.OpCode != ws.OpClose {
			return false
		}
		if code, _ := ws.ParseCloseFrameData(p); !msg || code != ws.StatusGoingAway {
			t.Fatalf("close frame %d after close message %v", code, msg)
		}
		return true
	})
	c.eof()
}

// A client that sends half a frame and stalls holds one goroutine for at
// most the frame timeout; other sessions go on meanwhile.
func TestWSStalledFrame(t *testing.T) {
	stream.SetFrameTimeout(t, 500*time.Millisecond)
	ts := newTestServer(t, stream.Config{})
	stalled := dialRaw(t, ts, "")
	full := textFrame(pingOp(1))
	stalled.write(full[:len(full)/2])
	header := dialRaw(t, ts, "")
	header.write(full[:1])

	others := make([]*rawWS, 5)
	for i := range others {
		others[i] = dialRaw(t, ts, "")
	}
	start := time.Now()
	for i, c := range others {
		c.write(textFrame(pingOp(i)))
	}
	for i, c := range others {
		c.pongs(i)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("other sessions answered in %v, with stalled frames around", d)
	}
	for _, c := range []*rawWS{stalled, header} {
		if got := c.closed(); got != ws.StatusPolicyViolation {
			t.Fatalf("stalled client closed with %d, want %d", got, ws.StatusPolicyViolation)
		}
		// The frame boundary is lost: the server waits for the client
		// to go before closing.
		_ = c.conn.(*net.TCPConn).CloseWrite()
		c.eof()
	}
}

// An idle WebSocket session holds no goroutine: not for reading, not for
// writing.
func TestWSIdleSessionsHoldNoGoroutine(t *testing.T) {
	ts := newTestServer(t, stream.Config{})
	ts.put(t, "AAA", "bid", "1")
	before := runtime.NumGoroutine()
	const n = 50
	for range n {
		c := dialRaw(t, ts, "?symbols=AAA")
		c.until("snapshot", func(_ ws.Header, _ []byte, msgs []streamtest.Msg) bool {
			return len(msgs) > 0 && msgs[len(msgs)-1].Type == "snapshot"
		})
	}
	streamtest.WaitFor(t, 5*time.Second, "idle goroutines", func() error {
		// The poller's goroutine, and a little room for the runtime's.
		if extra := runtime.NumGoroutine() - before; extra > 4 {
			return fmt.Errorf("%d goroutines for %d idle sessions", extra, n)
		}
		return nil
	})
}

// Frames of every length encoding (7-bit, 16-bit, 64-bit) reach the
// client whole.
func TestWSLargeBatches(t *testing.T) {
	ts := newTestServer(t, stream.Config{MaxHz: 1000, MaxSymbols: 3000})
	var syms []string
	for i := range 3000 {
		sym := fmt.Sprintf("S%04d", i)
		syms = append(syms, sym)
		ts.put(t, sym, "bid", "1")
	}
	c := dialRaw(t, ts, "")
	for i := 0; i < len(syms); i += 100 {
		op := fmt.Sprintf(`{"op":"subscribe","id":%d,"symbols":["%s"]}`, i, strings.Join(syms[i:i+100], `","`))
		c.write(textFrame(op))
	}
	seen := map[string]bool{}
	longest := 0
	c.until("every snapshot", func(_ ws.Header, p []byte, msgs []streamtest.Msg) bool {
		longest = max(longest, len(p))
		for _, m := range msgs {
			if m.Type == "snapshot" {
				seen[m.Symbol] = true
			}
		}
		return len(seen) == len(syms)
	})
	t.Logf("longest frame: %d bytes", longest)
	c.write(frame(ws.OpPing, true, ""))
	c.until("empty pong", func(h ws.Header, p []byte, _ []streamtest.Msg) bool {
		return h.OpCode == ws.OpPong && len(p) == 0
	})
}

// Where there is no poller, each connection has a reading goroutine that
// must behave the same.
func TestWSWithoutPoller(t *testing.T) {
	stream.DisablePoller(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"fragmented op", TestWSFragmentedOp},
		{"ping frame", TestWSPingFrame},
		{"several ops in one write", TestWSSeveralOpsInOneWrite},
		{"frames behind handshake", TestWSFramesBehindHandshake},
		{"binary refused", TestWSBinaryRefused},
		{"refused frames", TestWSCloseRefusedFrames},
		{"client close", TestWSClientClose},
		{"shutdown with a silent client", TestWSShutdownWithSilentClient},
		{"stalled frame", TestWSStalledFrame},
		{"large batches", TestWSLargeBatches},
	} {
		t.Run(tc.name, tc.test)
	}
}
