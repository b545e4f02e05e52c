package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tickerd/internal/streamtest"
)

// A TCP feed that goes silent: its symbols are pushed status stale after
// -stale-after, /readyz?strict=1 turns 503 (plain /readyz stays 200), and
// data coming back brings trading back.
func TestStaleFeed(t *testing.T) {
	addr, feedAddr := freeAddr(t), freeAddr(t)
	base := "http://" + addr
	startLogged(t, "-addr", addr, "-feed", "tcp:"+feedAddr, "-stale-after", "600ms")
	waitReady(t, base)
	conn, err := net.Dial("tcp", feedAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(bid string) {
		t.Helper()
		if _, err := fmt.Fprintf(conn, `{"symbol":"FEED.A","fields":{"bid":"%s","ask":"9"}}`+"\n", bid); err != nil {
			t.Fatal(err)
		}
	}
	send("1")
	c, err := streamtest.Dial(context.Background(), base, streamtest.SSE, url.Values{"symbols": {"FEED.A"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ready := func(strict bool) (int, map[string]any) {
		u := base + "/readyz"
		if strict {
			u += "?strict=1"
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	streamtest.WaitFor(t, 5*time.Second, "stale pushed", func() error {
		if s := c.View()["FEED.A"].Fields["status"]; s != "stale" {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	if code, body := ready(true); code != 503 || body["healthy"] != false {
		t.Fatalf("strict readyz with a stale feed: %d %v", code, body)
	}
	if code, body := ready(false); code != 200 || body["status"] != "ready" {
		t.Fatalf("readyz: %d %v", code, body)
	}
	send("2")
	streamtest.WaitFor(t, 5*time.Second, "trading again", func() error {
		v := c.View()["FEED.A"]
		if v.Fields["status"] != "trading" || v.Fields["bid"] != "2" {
			return fmt.Errorf("view %v", v.Fields)
		}
		return nil
	})
	streamtest.WaitFor(t, 5*time.Second, "healthy again", func() error {
		if code, _ := ready(true); code != 200 {
			return fmt.Errorf("strict readyz %d", code)
		}
		return nil
	})
	metrics := get(t, base+"/metrics")
	for _, want := range []string{`tickerd_feed_connections{feed="tcp"} 1`, `tickerd_feed_last_message_timestamp_seconds{feed="tcp"}`, "tickerd_stale_symbols 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
