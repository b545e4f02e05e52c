package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"tickerd/feed"
	"tickerd/simulator"
)

// bin is the tickersim binary built for these tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tickersim-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "tickersim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building tickersim: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

// tickersim runs the binary to completion.
func tickersim(t testing.TB, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("tickersim %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// recordSink keeps what the ingest handler applies.
type recordSink struct {
	mu      sync.Mutex
	updates []feed.Update
}

func (s *recordSink) Apply(u *feed.Update) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates = append(s.updates, *u)
	return true
}

func (s *recordSink) take() []feed.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.updates
	s.updates = nil
	return out
}

func (s *recordSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.updates)
}

// ingestServer runs the real ingest handler at /v1/ingest.
func ingestServer(t testing.TB, key string) (*httptest.Server, *recordSink) {
	t.Helper()
	sink := &recordSink{}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: sink, Key: key})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, sink
}

func readCapture(t testing.TB, path string) []feed.Update {
	t.Helper()
	r, err := simulator.OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []feed.Update
	for {
		var u feed.Update
		err := r.Next(&u)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
}

// sameUpdates reports the first difference between what was sent and what
// arrived, ignoring ts (ingest stamps its own).
func sameUpdates(got, want []feed.Update) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d updates, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		if g.Symbol != w.Symbol || g.Set != w.Set {
			return fmt.Errorf("update %d: %s %b, want %s %b", i, g.Symbol, g.Set, w.Symbol, w.Set)
		}
		for f := range feed.NumFields {
			if !g.Values[f].Equal(w.Values[f]) {
				return fmt.Errorf("update %d (%s): %s = %q, want %q", i, g.Symbol, f, g.Values[f], w.Values[f])
			}
		}
	}
	return nil
}

func TestHelp(t *testing.T) {
	tests := [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"gen", "-h"}, {"record", "-h"}, {"replay", "-h"},
		{"replay", "cap.zst", "-h"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := tickersim(t, args...)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage") {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage"},
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"unknown flag", []string{"gen", "-nope"}, "flag provided but not defined: -nope"},
		{"bad rate", []string{"gen", "-rate", "fast", "-o", "x"}, `invalid value "fast" for flag -rate`},
		{"zero symbols", []string{"gen", "-symbols", "0", "-o", "x"}, "-symbols 0"},
		{"too many symbols", []string{"gen", "-symbols", "100001", "-o", "x"}, "symbols 100001 out of range"},
		{"rate too high", []string{"gen", "-rate", "1e9", "-o", "x"}, "out of range"},
		{"no destination", []string{"gen"}, "exactly one of -o"},
		{"two destinations", []string{"gen", "-o", "x", "-to", "http://127.0.0.1:1"}, "exactly one of -o"},
		{"zero duration to file", []string{"gen", "-duration", "0", "-o", "x"}, "positive duration"},
		{"bad url", []string{"gen", "-to", "localhost:8080"}, "bad tickerd URL"},
		{"gen positional", []string{"gen", "extra", "-o", "x"}, `unexpected argument "extra"`},
		{"replay without capture", []string{"replay", "-to", "http://127.0.0.1:1"}, "exactly one CAPTURE"},
		{"replay two captures", []string{"replay", "a", "b", "-to", "http://127.0.0.1:1"}, "exactly one CAPTURE"},
		{"replay without url", []string{"replay", "cap.zst"}, "-to URL is required"},
		{"bad speed", []string{"replay", "cap.zst", "-speed", "fast", "-to", "http://x"}, "bad speed"},
		{"record without url", []string{"record", "-o", "x"}, "-from URL is required"},
		{"record without file", []string{"record", "-from", "http://x"}, "-o CAPTURE is required"},
		{"record bad symbol", []string{"record", "-from", "http://x", "-o", "x", "-symbols", "AAPL,bad!"}, `bad symbol "bad!"`},
		{"unknown scenario", []string{"gen", "-scenario", "meteor", "-o", "x"}, `unknown scenario "meteor"`},
		{"halt of one symbol", []string{"gen", "-scenario", "halt", "-symbols", "1", "-o", "x"}, "at least 2 symbols"},
		{"bad gen start", []string{"gen", "-start", "yesterday", "-o", "x"}, `-start "yesterday"`},
		{"gen start live", []string{"gen", "-start", "2026-11-23T14:30:00Z", "-to", "http://127.0.0.1:1"}, "-start goes with -o"},
		{"bad replay start", []string{"replay", "cap.zst", "-start", "noon", "-to", "http://x"}, "-start: simulator: bad replay time"},
		{"bad replay end", []string{"replay", "cap.zst", "-end", "+later", "-to", "http://x"}, "-end: simulator: bad replay time"},
		{"end before start", []string{"replay", "cap.zst", "-start", "2026-11-23T14:30:00Z", "-end", "2026-11-23T14:00:00Z", "-to", "http://x"}, "-end is before -start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tickersim(t, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, tt.want)
			}
			if tt.name != "no command" && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("stderr is not one line: %q", r.stderr)
			}
		})
	}
}

func TestGenThenReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.zst")
	r := tickersim(t, "gen", "-symbols", "20", "-rate", "1000", "-duration", "2s", "-seed", "3", "-o", path)
	if r.code != 0 {
		t.Fatalf("gen: exit %d: %s", r.code, r.stderr)
	}
	want := readCapture(t, path)
	if len(want) != 20+2000 {
		t.Fatalf("capture holds %d updates, want %d", len(want), 20+2000)
	}
	span := time.Duration(want[len(want)-1].TS-want[0].TS) * time.Microsecond
	if span != 2*time.Second {
		t.Errorf("capture spans %v of simulated time, want 2s", span)
	}

	srv, sink := ingestServer(t, "k-ingest")
	tests := []struct {
		name string
		args []string
	}{
		{"flags first", []string{"replay", "-speed", "max", "-key", "k-ingest", path, "-to", srv.URL}},
		{"flags after", []string{"replay", path, "-speed", "max", "-to", srv.URL, "-key", "k-ingest"}},
		{"after --", []string{"replay", "-speed", "max", "-to", srv.URL, "-key", "k-ingest", "--", path}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tickersim(t, tt.args...)
			if r.code != 0 {
				t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
			}
			if err := sameUpdates(sink.take(), want); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.stderr, "2020 updates sent") || !strings.Contains(r.stderr, "accepted=2020") {
				t.Errorf("stderr lacks the progress and counts:\n%s", r.stderr)
			}
		})
	}

	t.Run("wrong key", func(t *testing.T) {
		r := tickersim(t, "replay", path, "-speed", "max", "-to", srv.URL, "-key", "wrong")
		if r.code != 1 || !strings.Contains(r.stderr, "401") {
			t.Errorf("exit %d, stderr %s; want exit 1 naming the 401", r.code, r.stderr)
		}
	})
	t.Run("real time", func(t *testing.T) {
		start := time.Now()
		r := tickersim(t, "replay", path, "-speed", "4x", "-to", srv.URL, "-key", "k-ingest")
		took := time.Since(start)
		if r.code != 0 {
			t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
		}
		if took < 450*time.Millisecond {
			t.Errorf("2 s of capture at 4x took %v, want about 500 ms", took)
		}
		if err := sameUpdates(sink.take(), want); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("corrupt capture", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.zst")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bad, data[:len(data)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		r := tickersim(t, "replay", bad, "-to", srv.URL)
		if r.code != 1 || !strings.Contains(r.stderr, "capture line") {
			t.Errorf("exit %d, stderr %s; want exit 1 naming the capture line", r.code, r.stderr)
		}
	})
}

func TestGenLive(t *testing.T) {
	srv, sink := ingestServer(t, "")
	r := tickersim(t, "gen", "-symbols", "5", "-rate", "300", "-duration", "1s", "-to", srv.URL)
	if r.code != 0 {
		t.Fatalf("gen -to: exit %d: %s", r.code, r.stderr)
	}
	got := sink.take()
	if len(got) < 5+150 || len(got) > 5+450 {
		t.Errorf("server got %d updates in 1 s at 300/s plus 5 initial records", len(got))
	}
	for i := range 5 {
		if got[i].Set != feed.AllFields {
			t.Errorf("update %d (%s) is not a full initial record", i, got[i].Symbol)
		}
	}
}

// streamServer serves /v1/symbols and a /v1/stream that sends lines, then
// holds the stream open until the client goes away if hold is set.
func streamServer(t testing.TB, lines []string, hold bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/symbols", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"symbols":["AAPL","MSFT"]}`)
	})
	mux.HandleFunc("GET /v1/stream", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("symbols") != "AAPL,MSFT" {
			http.Error(w, "want symbols AAPL,MSFT", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, `{"type":"session","session":"S","resume":"R"}`)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestRecord(t *testing.T) {
	srv := streamServer(t, []string{
		`[{"type":"snapshot","symbol":"AAPL","seq":1,"ts":1700000000000000,"fields":{"bid":"189.12"}},{"type":"snapshot","symbol":"MSFT","seq":1,"ts":1700000000000001,"fields":{"ask":"415.5"}}]`,
		`{"type":"update","symbol":"AAPL","seq":2,"ts":1700000000000002,"fields":{"bid":"189.13"}}`,
		`{"type":"close","code":"shutdown","message":"bye"}`,
	}, false)
	path := filepath.Join(t.TempDir(), "rec.zst")
	r := tickersim(t, "record", "-from", srv.URL, "-o", path)
	if r.code != 0 {
		t.Fatalf("record: exit %d: %s", r.code, r.stderr)
	}
	got := readCapture(t, path)
	if len(got) != 3 || got[2].Values[feed.Bid].String() != "189.13" || got[2].TS != 1700000000000002 {
		t.Errorf("recorded %+v", got)
	}
}

func TestInterrupt(t *testing.T) {
	t.Run("gen -to", func(t *testing.T) {
		srv, sink := ingestServer(t, "")
		cmd := exec.Command(bin, "gen", "-to", srv.URL, "-duration", "0", "-rate", "500")
		interruptAfter(t, cmd, func() bool { return sink.len() > 250 })
	})
	t.Run("record", func(t *testing.T) {
		srv := streamServer(t, []string{`{"type":"update","symbol":"AAPL","seq":1,"ts":5,"fields":{"bid":"1.25"}}`}, true)
		path := filepath.Join(t.TempDir(), "rec.zst")
		cmd := exec.Command(bin, "record", "-o", path, "-from", srv.URL)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		interruptAfter(t, cmd, func() bool { return strings.Contains(stderr.String(), "recorded 0 snapshots, 1 updates") })
		got := readCapture(t, path)
		if len(got) != 1 || got[0].Values[feed.Bid].String() != "1.25" {
			t.Errorf("capture after SIGINT holds %+v", got)
		}
		if idx, err := simulator.ReadIndexFile(path, -1); err != nil || len(idx) != 1 || idx[0].Updates != 1 {
			t.Errorf("index after SIGINT: %+v, %v; want its one frame", idx, err)
		}
	})
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// interruptAfter starts cmd, sends it SIGINT once ready holds, and
// expects it to exit 0 promptly.
func interruptAfter(t *testing.T, cmd *exec.Cmd, ready func() bool) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, 10*time.Second, "the command to get going", ready)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("no exit within 10 s of SIGINT")
	}
}
