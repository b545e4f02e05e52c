package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tickerd/internal/streamtest"
)

// The binary is built once and driven from outside, as users and the
// contract's black-box tests do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tickerd-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tickerd")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build tickerd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs tickerd with args and env and waits for /readyz.
func start(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &logs
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	streamtest.WaitFor(t, 20*time.Second, "tickerd ready", func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

func TestFlagsFromEnvironmentAndGracefulShutdown(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	cmd, logs := start(t, []string{
		"TICKERD_ADDR=" + addr, "TICKERD_SIM_SYMBOLS=30", "TICKERD_SIM_RATE=300",
		"TICKERD_FEED=sim,none", "TICKERD_MAX_HZ=5", "TICKERD_LOG_FORMAT=json",
	})
	waitReady(t, base)

	// The simulator paces even its first record of each symbol (300/s).
	streamtest.WaitFor(t, 10*time.Second, "30 simulated symbols (TICKERD_SIM_SYMBOLS)", func() error {
		snap, err := streamtest.Snapshot(context.Background(), base)
		if err != nil {
			return err
		}
		if len(snap) != 30 {
			return fmt.Errorf("%d symbols", len(snap))
		}
		return nil
	})
	var conns []*streamtest.Conn
	for _, tr := range streamtest.Transports {
		c, err := streamtest.Dial(context.Background(), base, tr, url.Values{"symbols": {"AAPL,MSFT"}, "maxHz": {"50"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	streamtest.WaitFor(t, 10*time.Second, "updates flowing", func() error {
		for _, c := range conns {
			if n, _ := c.Counts(); n < 4 {
				return fmt.Errorf("%s: %d data messages", c.Transport, n)
			}
		}
		return nil
	})

	metrics := get(t, base+"/metrics")
	for _, name := range []string{
		`tickerd_sessions{transport="ws"} 1`, `tickerd_sessions{transport="sse"} 1`, `tickerd_sessions{transport="ndjson"} 1`,
		"tickerd_ingest_accepted_total", "tickerd_ingest_rejected_total", "tickerd_messages_delivered_total",
		"tickerd_bytes_delivered_total", "tickerd_updates_conflated_total", "tickerd_delivery_latency_seconds_bucket",
		"tickerd_symbols 30", "go_goroutines",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if body := get(t, base+"/healthz"); !strings.Contains(body, "ok") {
		t.Errorf("healthz: %q", body)
	}

	// SIGTERM: every stream gets close/shutdown, then exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		select {
		case <-c.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("%s stream not ended by SIGTERM", c.Transport)
		}
		if m := c.Closed(); m == nil || m.Code != "shutdown" {
			t.Errorf("%s: close message %+v, want shutdown", c.Transport, m)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), `"msg":"tickerd serving"`) {
		t.Errorf("logs are not JSON from TICKERD_LOG_FORMAT: %s", logs)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  []string
		code int
		want string // in the output
	}{
		{"help", []string{"-h"}, nil, 0, "TICKERD_MAX_HZ"},
		{"unknown flag", []string{"-bogus"}, nil, 2, "flag provided but not defined"},
		{"bad value", []string{"-max-hz", "0"}, nil, 2, "-max-hz must be > 0"},
		{"bad duration", []string{"-heartbeat", "soon"}, nil, 2, "invalid value"},
		{"bad feed", []string{"-feed", "carrier-pigeon"}, nil, 2, "unknown source"},
		{"missing capture", []string{"-feed", "replay:/nonexistent.zst"}, nil, 2, "nonexistent"},
		{"missing csv", []string{"-feed", "csv:/nonexistent.csv"}, nil, 2, "nonexistent.csv"},
		{"bad csv mapping", []string{"-feed", "csv:main.go?bidd=X"}, nil, 2, `unknown key "bidd"`},
		{"ws without mapping", []string{"-feed", "ws:wss://example.com/ws"}, nil, 2, "no mapping"},
		{"ws unknown mapping", []string{"-feed", "ws:wss://example.com/ws?mapping=kraken"}, nil, 2, "no such built-in mapping"},
		{"ws bad subscribe", []string{"-feed", "ws:wss://example.com/ws?mapping=binance&subscribe={"}, nil, 2, "not JSON"},
		{"bad env", nil, []string{"TICKERD_SIM_RATE=fast"}, 2, "TICKERD_SIM_RATE"},
		{"positional", []string{"serve"}, nil, 2, "unexpected argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
		})
	}
}

// The listen address in use is reported, and a busy one is a clear error.
func TestBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := exec.Command(binary, "-addr", ln.Addr().String(), "-feed", "none").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
}
