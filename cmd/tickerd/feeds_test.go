package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
