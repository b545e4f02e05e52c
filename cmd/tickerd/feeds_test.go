package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"tickerd/internal/streamtest"
)

// waitSnapshot waits until the server's snapshot holds exactly want (symbol →
// field → wire value) for the symbols in want, and returns the snapshot.
func waitSnapshot(t *testing.T, base string, want map[string]map[string]string) map[string]streamtest.Symbol {
	t.Helper()
	var snap map[string]streamtest.Symbol
	streamtest.WaitFor(t, 15*time.Second, "snapshot", func() error {
		var err error
		if snap, err = streamtest.Snapshot(context.Background(), base); err != nil {
			return err
		}
		for sym, fields := range want {
			got := snap[sym].Fields
			for f, v := range fields {
				if got[f] != v {
					return fmt.Errorf("%s %s = %q, want %q (have %v)", sym, f, got[f], v, got)
				}
			}
		}
		return nil
	})
	return snap
}

// stop sends SIGTERM and waits for a clean exit.
func stop(t *testing.T, cmd *exec.Cmd, logs fmt.Stringer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs)
	}
}

func TestCSVFeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quotes.csv")
	csv := "Ticker,bid,ask,Venue\n" +
		"AAPL,189.12,189.140,XNAS\n" +
		"MSFT,abc,411.52,XNAS\n" +
		"BRK.B,412.1,412.3,XNYS\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	cmd, logs := start(t, nil, "-addr", addr, "-feed", "none", "-feed", "csv:"+path+"?symbol=Ticker&ignore=Venue", "-log-format", "json")
	waitReady(t, base)
	snap := waitSnapshot(t, base, map[string]map[string]string{
		"AAPL":  {"bid": "189.12", "ask": "189.14"},
		"BRK.B": {"bid": "412.1", "ask": "412.3"},
	})
	if _, ok := snap["MSFT"]; ok || len(snap) != 2 {
		t.Fatalf("snapshot %v: MSFT's row was bad", snap)
	}
	streamtest.WaitFor(t, 5*time.Second, "counters", func() error {
		metrics := get(t, base+"/metrics")
		for _, s := range []string{
			`tickerd_ingest_accepted_total{adapter="csv"} 2`,
			`tickerd_ingest_rejected_total{adapter="csv",reason="value"} 1`,
			`tickerd_ingest_rejected_total{adapter="csv",reason="csv"} 0`,
		} {
			if !strings.Contains(metrics, s) {
				return fmt.Errorf("/metrics lacks %s", s)
			}
		}
		return nil
	})
	stop(t, cmd, logs)
	for _, s := range []string{`"msg":"csv row rejected","adapter":"csv"`, `"line":3,"column":2`, `"msg":"csv load finished"`, `"accepted":2,"rejected":1`} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("logs lack %s:\n%s", s, logs)
		}
	}
}

// A header the mapping does not fit stops tickerd before it serves.
func TestCSVFeedBadHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quotes.csv")
	if err := os.WriteFile(path, []byte("symbol,bid,venue\nAAPL,1,X\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, logs := start(t, nil, "-addr", "127.0.0.1:0", "-feed", "csv:"+path)
	err := cmd.Wait()
	if err == nil || !strings.Contains(logs.String(), `column 3 ("venue") is not symbol, ts or a field`) {
		t.Fatalf("exit %v, output:\n%s", err, logs)
	}
}

func TestParseWSSpec(t *testing.T) {
	dir := t.TempDir()
	subs := filepath.Join(dir, "subs.ndjson")
	os.WriteFile(subs, []byte("{\"a\":1}\n\n {\"b\":[1,2]} \n"), 0o644)
	badSubs := filepath.Join(dir, "bad.ndjson")
	os.WriteFile(badSubs, []byte("{\"a\":1}\nnope\n"), 0o644)
	cases := []struct {
		arg, url, subs, err string
	}{
		{arg: "wss://stream.binance.com:9443/ws?mapping=binance", url: "wss://stream.binance.com:9443/ws"},
		{
			arg: `wss://stream.binance.com:9443/stream?streams=btcusdt@ticker/ethusdt@ticker&mapping=binance&subscribe={"method":"SUBSCRIBE","params":["bnbusdt@ticker"],"id":1}`,
			url: "wss://stream.binance.com:9443/stream?streams=btcusdt@ticker/ethusdt@ticker", subs: `{"method":"SUBSCRIBE","params":["bnbusdt@ticker"],"id":1}`,
		},
		{
			arg: `ws://127.0.0.1:9/x?subscribe=%7B%22type%22%3A%22subscribe%22%2C%22id%22%3A1%7D&token=s3cret&mapping=coinbase&subscribe=@` + subs,
			url: "ws://127.0.0.1:9/x?token=s3cret", subs: `{"type":"subscribe","id":1}|{"a":1}|{"b":[1,2]}`,
		},
		{arg: "wss://example.com/ws", err: "no mapping: add ?mapping=NAME (built in: binance, coinbase)"},
		{arg: "https://example.com/ws?mapping=binance", err: "want ws:ws://HOST/PATH"},
		{arg: "wss:///ws?mapping=binance", err: "want ws:ws://HOST/PATH"},
		{arg: "wss://example.com/ws?mapping=kraken", err: "no such built-in mapping"},
		{arg: "wss://example.com/ws?mapping=/nonexistent.json", err: "nonexistent.json"},
		{arg: "wss://example.com/ws?mapping=binance&subscribe={nope", err: "not JSON"},
		{arg: "wss://example.com/ws?mapping=binance&subscribe=@" + badSubs, err: "line 2 is not JSON"},
		{arg: "wss://example.com/ws?mapping=binance&subscribe=%zz", err: "invalid URL escape"},
	}
	for _, tc := range cases {
		s, err := parseWSSpec(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.arg, err)
			continue
		}
		var got []string
		for _, m := range s.subscribe {
			got = append(got, string(m))
		}
		if s.url != tc.url || strings.Join(got, "|") != tc.subs || s.mapping == nil {
			t.Errorf("%s:\n got %s, %q\nwant %s, %q", tc.arg, s.url, got, tc.url, tc.subs)
		}
	}
}

// tickerd dials a loopback stand-in for Coinbase, subscribes, and its
// snapshot holds the exact values of the recorded ticker messages; the bad
// ones are counted, and at SIGTERM the upstream is told 1001 going away.
func TestWSFeed(t *testing.T) {
	frames, err := os.ReadFile("../../feed/testdata/ws/coinbase.frames")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	closed := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetCloseHandler(func(code int, _ string) error { closed <- code; return nil })
		if r.URL.Query().Get("token") != "s3cret" {
			t.Errorf("upstream query %q: the URL's own parameters must reach it", r.URL.RawQuery)
		}
		_, sub, err := c.ReadMessage()
		if err != nil {
			return
		}
		got <- string(sub)
		for _, f := range strings.Split(strings.TrimSpace(string(frames)), "\n") {
			c.WriteMessage(websocket.TextMessage, []byte(f))
		}
		for { // until tickerd closes
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	subs := filepath.Join(t.TempDir(), "subscribe.ndjson")
	const sub = `{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channels":["ticker"]}`
	os.WriteFile(subs, []byte(sub+"\n"), 0o644)

	addr := freeAddr(t)
	base := "http://" + addr
	spec := "ws:ws" + strings.TrimPrefix(srv.URL, "http") + "/feed?token=s3cret&mapping=coinbase&subscribe=@" + subs
	cmd, logs := start(t, nil, "-addr", addr, "-feed", "none", "-feed", spec)
	waitReady(t, base)
	select {
	case s := <-got:
		if s != sub {
			t.Fatalf("upstream got %q, want the subscribe message", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("tickerd did not subscribe\n%s", logs)
	}
	waitSnapshot(t, base, map[string]map[string]string{
		"BTC-USD": {"bid": "93812.99", "bidSize": "0.1", "ask": "93813", "askSize": "0.2", "last": "93813", "lastSize": "0.01",
			"volume": "8123.46678901", "open": "94310.01", "high": "95000", "low": "93500", "time": "2026-01-01T00:00:02.000001Z"},
		"ETH-USD": {"bid": "3401.49", "ask": "3401.5", "high": "3420", "time": "2026-01-01T00:00:00.250000Z"},
	})
	streamtest.WaitFor(t, 5*time.Second, "counters", func() error {
		metrics := get(t, base+"/metrics")
		for _, s := range []string{
			`tickerd_ingest_accepted_total{adapter="ws"} 3`,
			`tickerd_ingest_ignored_total{adapter="ws"} 3`,
			`tickerd_ingest_rejected_total{adapter="ws",reason="value"} 1`,
			`tickerd_ingest_rejected_total{adapter="ws",reason="json"} 1`,
			`tickerd_ingest_rejected_total{adapter="ws",reason="frame"} 0`,
			`tickerd_feed_connections{feed="ws"} 1`,
		} {
			if !strings.Contains(metrics, s) {
				return fmt.Errorf("/metrics lacks %s", s)
			}
		}
		return nil
	})
	stop(t, cmd, logs)
	select {
	case code := <-closed:
		if code != websocket.CloseGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	case <-time.After(5 * time.Second):
		t.Error("upstream got no close frame")
	}
	if !strings.Contains(logs.String(), "upstream connected") || strings.Contains(logs.String(), "s3cret") {
		t.Errorf("logs lack the connection, or show the URL's query:\n%s", logs)
	}
}
