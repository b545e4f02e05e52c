package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tickerd/conflate"
	"tickerd/feed"
	"tickerd/internal/streamtest"
	"tickerd/simulator"
	"tickerd/stream"
)

const genStart = "2026-11-23T14:30:00Z"

// gen runs tickersim gen -o with args and returns the capture's path.
func gen(t *testing.T, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gen.zst")
	r := tickersim(t, append([]string{"gen", "-o", path}, args...)...)
	if r.code != 0 {
		t.Fatalf("gen %v: exit %d: %s", args, r.code, r.stderr)
	}
	return path
}

func TestGenScenarios(t *testing.T) {
	for _, name := range simulator.Scenarios {
		t.Run(name, func(t *testing.T) {
			args := []string{"-scenario", name, "-symbols", "10", "-rate", "50", "-seed", "9", "-start", genStart}
			path := gen(t, args...)
			updates := readCapture(t, path)
			span := time.Duration(updates[len(updates)-1].TS-updates[0].TS) * time.Microsecond
			if want := simulator.ScenarioLength; name != simulator.ScenarioSteady && span != want {
				t.Errorf("the capture spans %v, want the scenario's %v by default", span, want)
			}
			if start, _ := time.Parse(time.RFC3339, genStart); updates[0].TS != start.UnixMicro() {
				t.Errorf("first ts %d, want -start %s", updates[0].TS, genStart)
			}
			if _, err := simulator.ReadIndexFile(path, -1); err != nil {
				t.Errorf("index: %v", err)
			}
			var halted bool
			for _, u := range updates {
				halted = halted || u.Values[feed.Status].String() == feed.StatusHalted
			}
			if halted != (name == simulator.ScenarioHalt) {
				t.Errorf("a halted status in the capture: %v", halted)
			}
			again := gen(t, args...)
			a, _ := os.ReadFile(path)
			b, _ := os.ReadFile(again)
			if !bytes.Equal(a, b) {
				t.Error("the same seed and -start gave two different captures")
			}
		})
	}
}

func TestReplayWindow(t *testing.T) {
	path := gen(t, "-symbols", "10", "-rate", "100", "-duration", "20s", "-start", genStart)
	all := readCapture(t, path)
	start, _ := time.Parse(time.RFC3339, genStart)
	from, to := start.Add(5*time.Second).UnixMicro(), start.Add(10*time.Second).UnixMicro()
	var want []feed.Update
	for _, u := range all {
		if u.TS >= from && u.TS <= to {
			want = append(want, u)
		}
	}
	srv, sink := ingestServer(t, "")
	for _, window := range [][]string{
		{"-start", "+5s", "-end", "+10s"},
		{"-start", "2026-11-23T14:30:05Z", "-end", "2026-11-23T15:30:10+01:00"},
	} {
		t.Run(strings.Join(window, " "), func(t *testing.T) {
			r := tickersim(t, append([]string{"replay", path, "-speed", "max", "-to", srv.URL}, window...)...)
			if r.code != 0 {
				t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
			}
			if err := sameUpdates(sink.take(), want); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.stderr, "updates=50") || !strings.Contains(r.stderr, "span=5s") { // about 500: an estimate
				t.Errorf("the log does not describe the window:\n%s", r.stderr)
			}
		})
	}
}

// tickerServer is a real data path (cache, stream server, ingest) on
// loopback.
func tickerServer(t *testing.T) string {
	t.Helper()
	cache := conflate.New()
	srv := stream.NewServer(cache, stream.Config{})
	mux := http.NewServeMux()
	srv.Register(mux)
	mux.Handle("POST /v1/ingest", &feed.IngestHandler{Sink: cache})
	hs := httptest.NewUnstartedServer(mux)
	hs.Config.ConnContext = stream.ConnContext
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return hs.URL
}

func snapshot(t *testing.T, base string) map[string]streamtest.Symbol {
	t.Helper()
	snap, err := streamtest.Snapshot(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// sameFields reports the first difference between two snapshots' fields.
func sameFields(t *testing.T, got, want map[string]streamtest.Symbol) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d symbols, want %d", len(got), len(want))
	}
	for sym, w := range want {
		g := got[sym]
		if len(g.Fields) != len(w.Fields) {
			t.Fatalf("%s: fields %v, want %v", sym, g.Fields, w.Fields)
		}
		for f, v := range w.Fields {
			if g.Fields[f] != v {
				t.Fatalf("%s.%s = %q, want %q", sym, f, g.Fields[f], v)
			}
		}
	}
}

// fold returns the record of every symbol after the updates of a capture.
func fold(updates []feed.Update) map[string]streamtest.Symbol {
	out := map[string]streamtest.Symbol{}
	for _, u := range updates {
		s := out[u.Symbol]
		if s.Fields == nil {
			s.Fields = map[string]string{}
		}
		for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
			s.Fields[f.String()] = u.Values[f].String()
		}
		out[u.Symbol] = s
	}
	return out
}

// Record a live server, replay the capture into another one: the second
// ends with the first's state, which is also the capture's.
func TestRecordThenReplay(t *testing.T) {
	from, to := tickerServer(t), tickerServer(t)
	if r := tickersim(t, "gen", "-to", from, "-symbols", "20", "-rate", "200", "-duration", "500ms", "-seed", "1"); r.code != 0 {
		t.Fatalf("gen: %s", r.stderr)
	}
	path := filepath.Join(t.TempDir(), "rec.zst")
	rec := exec.Command(bin, "record", "-from", from, "-o", path)
	logs := &syncBuffer{}
	rec.Stderr = logs
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rec.Wait() }()
	waitFor(t, 10*time.Second, "the recorder's stream", func() bool { return strings.Contains(logs.String(), "msg=recording") })
	if r := tickersim(t, "gen", "-to", from, "-symbols", "20", "-rate", "300", "-duration", "2s", "-seed", "2"); r.code != 0 {
		t.Fatalf("gen: %s", r.stderr)
	}
	// Sessions converge within a throttle interval plus 1 s of the feed
	// going quiet (the contract's guarantee 1): wait that, with margin.
	time.Sleep(3 * time.Second)
	if err := rec.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("record: %v\n%s", err, logs.String())
	}
	final := snapshot(t, from)
	recorded := readCapture(t, path)
	sameFields(t, fold(recorded), final)
	sum, err := simulator.SummarizeFile(path)
	if err != nil || sum.Updates != int64(len(recorded)) {
		t.Errorf("summary %+v, %v; want %d updates", sum, err, len(recorded))
	}
	if idx, err := simulator.ReadIndexFile(path, -1); err != nil || len(idx) < 2 {
		t.Errorf("the recording's index holds %d frames (%v), want one a second", len(idx), err)
	}

	if r := tickersim(t, "replay", path, "-to", to, "-speed", "max"); r.code != 0 {
		t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
	}
	sameFields(t, snapshot(t, to), final)
	t.Logf("%d symbols, %d updates recorded", len(final), len(recorded))
}

// The progress display redraws one line on a terminal and writes plain
// lines elsewhere, each with the rate, the position and the time left.
func TestProgressDisplay(t *testing.T) {
	path := gen(t, "-symbols", "5", "-rate", "100", "-duration", "1s", "-start", genStart)
	sum, err := simulator.SummarizeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tty := range []bool{true, false} {
		rp := simulator.ReplayFile(path, 1, false)
		var out syncBuffer
		stop := make(chan struct{})
		shown := make(chan struct{})
		go func() {
			showProgress(&out, tty, 100*time.Millisecond, rp, sum, stop)
			close(shown)
		}()
		if err := rp.Run(context.Background(), func(*feed.Update) error { return nil }); err != nil {
			t.Fatal(err)
		}
		close(stop)
		<-shown
		text := out.String()
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		redraws := strings.Count(text, "\r")
		t.Logf("tty=%v: %q", tty, lines[len(lines)-1])
		switch {
		case !strings.HasSuffix(text, ", done\n") && !strings.HasSuffix(text, ", done\x1b[K\n"):
			t.Errorf("tty=%v: the last line does not end the display with done: %q", tty, text)
		case tty && (len(lines) != 1 || redraws < 5):
			t.Errorf("tty: %d lines and %d redraws, want one line redrawn about every 100 ms: %q", len(lines), redraws, text)
		case !tty && (len(lines) < 5 || redraws != 0 || strings.Contains(text, "\x1b")):
			t.Errorf("plain: %d lines, %d carriage returns, want plain lines: %q", len(lines), redraws, text)
		}
		for _, want := range []string{"updates sent", "/s", "at 2026-11-23T14:30:0", "%"} {
			if !strings.Contains(lines[len(lines)-1], want) {
				t.Errorf("tty=%v: the last line lacks %q", tty, want)
			}
		}
		if !strings.Contains(text, "left") {
			t.Errorf("tty=%v: no time left shown: %q", tty, text)
		}
	}
}
