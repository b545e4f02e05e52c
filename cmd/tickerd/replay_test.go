package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"tickerd/internal/streamtest"
	"tickerd/simulator"
)

// genCapture writes d of the simulated feed of cfg from start to a capture
// file and returns its path.
func genCapture(t *testing.T, cfg simulator.Config, start time.Time, d time.Duration) string {
	t.Helper()
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gen.zst")
	w, err := simulator.CreateCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Generate(context.Background(), w, start, d); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// stopTickerd sends SIGTERM and expects a clean exit.
func stopTickerd(t *testing.T, cmd *exec.Cmd, logs fmt.Stringer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20 s of SIGTERM\n%s", logs)
	}
}

func fields(snap map[string]streamtest.Symbol) map[string]map[string]string {
	out := make(map[string]map[string]string, len(snap))
	for sym, s := range snap {
		out[sym] = s.Fields
	}
	return out
}

func sameSnapshot(t *testing.T, got, want map[string]streamtest.Symbol) {
	t.Helper()
	g, w := fields(got), fields(want)
	if len(g) != len(w) {
		t.Fatalf("%d symbols, want %d", len(g), len(w))
	}
	for sym, wf := range w {
		for f, v := range wf {
			if g[sym][f] != v {
				t.Fatalf("%s.%s = %q, want %q", sym, f, g[sym][f], v)
			}
		}
		if len(g[sym]) != len(wf) {
			t.Fatalf("%s: %v, want %v", sym, g[sym], wf)
		}
	}
}

// tickerd -record records every update that changes the cache, from any
// feed or ingest; on SIGTERM the captures are complete, and replaying the
// last one into another tickerd gives the same state.
func TestRecordInsideTickerdThenReplay(t *testing.T) {
	src := genCapture(t, simulator.Config{Symbols: 30, Rate: 2000, Seed: 4}, time.Unix(1_700_000_000, 0), 3*time.Second)
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	cmd, logs := startLogged(t, "-addr", addr, "-feed", "replay:"+src+"?speed=max", "-record", filepath.Join(dir, "ticks.zst"))
	waitReady(t, base)
	streamtest.WaitFor(t, 20*time.Second, "the replay to finish", func() error {
		if !strings.Contains(logs.String(), "replay finished") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	resp, err := http.Post(base+"/v1/ingest", "application/x-ndjson",
		strings.NewReader(`{"symbol":"AAPL","fields":{"status":"halted"}}`+"\n"+`{"symbol":"NEWCO","fields":{"bid":"1.5"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	final, err := streamtest.Snapshot(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if final["AAPL"].Fields["status"] != "halted" || final["NEWCO"].Fields["bid"] != "1.5" {
		t.Fatalf("ingest did not apply: %v %v", final["AAPL"], final["NEWCO"])
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{"tickerd_record_dropped_total 0", "tickerd_record_written_total", "tickerd_record_files_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	stopTickerd(t, cmd, logs)

	files, _ := filepath.Glob(filepath.Join(dir, "ticks-*.zst"))
	slices.Sort(files)
	if len(files) == 0 || len(files) > 2 { // two when the test straddles an hour
		t.Fatalf("captures %v, want one per hour", files)
	}
	var recorded int64
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), "ticks-"+time.Now().UTC().Format("20060102T")) &&
			!strings.HasPrefix(filepath.Base(f), "ticks-"+time.Now().Add(-time.Hour).UTC().Format("20060102T")) {
			t.Errorf("capture %s is not named after its hour", f)
		}
		sum, err := simulator.SummarizeFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		scanned, err := simulator.Summarize(data)
		data.Close()
		if err != nil || scanned != sum {
			t.Errorf("%s: summary by index %+v, by scan %+v (%v): the index does not cover the capture", f, sum, scanned, err)
		}
		recorded += sum.Updates
	}
	if want := fmt.Sprintf("written=%d dropped=0", recorded); !strings.Contains(logs.String(), want) {
		t.Errorf("tickerd's last words lack %q:\n%s", want, logs.String())
	}

	// The last hour's capture opens with every symbol's state when it is
	// not the first, so it alone rebuilds the final state.
	addr2 := freeAddr(t)
	base2 := "http://" + addr2
	cmd2, logs2 := startLogged(t, "-addr", addr2, "-feed", "replay:"+files[len(files)-1]+"?speed=max")
	waitReady(t, base2)
	streamtest.WaitFor(t, 20*time.Second, "the second replay to finish", func() error {
		if !strings.Contains(logs2.String(), "replay finished") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	got, err := streamtest.Snapshot(context.Background(), base2)
	if err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, got, final)
	if len(files) == 1 {
		for sym, s := range final {
			if got[sym].Seq != s.Seq {
				t.Errorf("%s: seq %d after the replay, %d recorded", sym, got[sym].Seq, s.Seq)
			}
		}
	}
	stopTickerd(t, cmd2, logs2)
	t.Logf("%d updates recorded in %d capture(s), %d symbols", recorded, len(files), len(final))
}

type adminReply struct {
	Replays []struct {
		ID       int      `json:"id"`
		Path     string   `json:"path"`
		Position *string  `json:"position"`
		Speed    string   `json:"speed"`
		Paused   bool     `json:"paused"`
		Progress *float64 `json:"progress"`
		Start    *string  `json:"start"`
		End      *string  `json:"end"`
		Sent     int64    `json:"sent"`
		Left     *float64 `json:"leftSec"`
	} `json:"replays"`
	Error string `json:"error"`
}

// admin calls /v1/admin/replay (GET when body is empty).
func admin(t *testing.T, base, key, body string) (int, adminReply) {
	t.Helper()
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, base+"/v1/admin/replay", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r adminReply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s %s: %d %s", method, body, resp.StatusCode, b)
	}
	return resp.StatusCode, r
}

// Pause, resume, seek and speed of a replay feed through the admin
// endpoint of a real tickerd.
func TestReplayAdmin(t *testing.T) {
	start := time.Date(2026, 11, 23, 14, 30, 0, 0, time.UTC)
	src := genCapture(t, simulator.Config{Symbols: 10, Rate: 50, Seed: 2}, start, time.Minute)
	addr := freeAddr(t)
	base := "http://" + addr
	const key = "k-admin"
	cmd, logs := startLogged(t, "-addr", addr, "-feed", "replay:"+src, "-admin-key", key)
	waitReady(t, base)

	state := func() (int, adminReply) { return admin(t, base, key, "") }
	streamtest.WaitFor(t, 10*time.Second, "the replay under way", func() error {
		if _, r := state(); len(r.Replays) != 1 || r.Replays[0].Sent < 20 || r.Replays[0].Progress == nil {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})
	code, r := state()
	s := r.Replays[0]
	if code != 200 || s.Speed != "1x" || s.Paused || s.Position == nil || s.Path != src || *s.Start != "2026-11-23T14:30:00Z" || *s.End != "2026-11-23T14:31:00Z" || s.Left == nil {
		t.Fatalf("state %d %+v", code, s)
	}

	if code, r := admin(t, base, key, `{"action":"pause"}`); code != 200 || !r.Replays[0].Paused {
		t.Fatalf("pause: %d %+v", code, r)
	}
	_, r = state()
	held := r.Replays[0].Sent
	time.Sleep(300 * time.Millisecond) // nothing may be sent while paused (50 updates/s)
	if _, r = state(); r.Replays[0].Sent > held+1 {
		t.Errorf("%d updates sent while paused", r.Replays[0].Sent-held)
	}

	if code, r := admin(t, base, key, `{"action":"seek","to":"+40s"}`); code != 200 {
		t.Fatalf("seek: %d %+v", code, r)
	}
	if code, r := admin(t, base, key, `{"action":"resume","speed":"10x"}`); code != 200 || r.Replays[0].Paused || r.Replays[0].Speed != "10x" {
		t.Fatalf("resume at 10x: %d %+v", code, r)
	}
	streamtest.WaitFor(t, 10*time.Second, "the position after the seek", func() error {
		_, r := state()
		p := r.Replays[0].Position
		if p == nil {
			return fmt.Errorf("no position")
		}
		if at, err := time.Parse(time.RFC3339Nano, *p); err != nil || at.Before(start.Add(40*time.Second)) {
			return fmt.Errorf("position %s (%v)", *p, err)
		}
		return nil
	})
	_, r = state()
	if *r.Replays[0].Progress < 0.66 {
		t.Errorf("progress %.2f after seeking to 40 s of 60", *r.Replays[0].Progress)
	}
	// 20 s of capture left at 10x: about 2 s.
	streamtest.WaitFor(t, 10*time.Second, "the replay to finish at 10x", func() error {
		if !strings.Contains(logs.String(), "replay finished") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	errs := []struct {
		name, key, body string
		code            int
		want            string
	}{
		{"no key", "", `{"action":"pause"}`, 401, "missing bearer key"},
		{"wrong key", "nope", `{"action":"pause"}`, 401, "bad bearer key"},
		{"not json", key, `pause`, 400, "want JSON"},
		{"unknown field", key, `{"action":"pause","when":"now"}`, 400, "unknown field"},
		{"unknown action", key, `{"action":"rewind"}`, 400, `unknown action "rewind"`},
		{"seek without to", key, `{"action":"seek"}`, 400, `needs "to"`},
		{"to without seek", key, `{"action":"pause","to":"+1m"}`, 400, `"to" goes with`},
		{"nothing", key, `{}`, 400, "nothing to do"},
		{"bad speed", key, `{"speed":"warp"}`, 400, "bad speed"},
		{"bad time", key, `{"action":"seek","to":"noon"}`, 400, "bad replay time"},
		{"outside the window", key, `{"action":"seek","to":"+2m"}`, 400, "outside replay 0's window"},
		{"unknown id", key, `{"action":"pause","id":3}`, 404, "no replay feed 3"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			code, r := admin(t, base, tt.key, tt.body)
			if code != tt.code || !strings.Contains(r.Error, tt.want) {
				t.Errorf("%d %q, want %d and %q", code, r.Error, tt.code, tt.want)
			}
		})
	}
	stopTickerd(t, cmd, logs)

	// Without a replay feed there is nothing to steer.
	addr2 := freeAddr(t)
	cmd2, logs2 := startLogged(t, "-addr", addr2, "-feed", "none")
	waitReady(t, "http://"+addr2)
	if code, r := admin(t, "http://"+addr2, "", ""); code != 200 || r.Replays == nil || len(r.Replays) != 0 {
		t.Errorf("GET without replay feeds: %d %+v, want an empty list", code, r)
	}
	if code, r := admin(t, "http://"+addr2, "", `{"action":"pause"}`); code != 404 || !strings.Contains(r.Error, "-feed replay:PATH") {
		t.Errorf("POST without replay feeds: %d %+v", code, r)
	}
	stopTickerd(t, cmd2, logs2)
}

func TestRecordAndReplayFlags(t *testing.T) {
	capture := genCapture(t, simulator.Config{Symbols: 2, Rate: 10}, time.Unix(1_700_000_000, 0), time.Second)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"record in a missing directory", []string{"-record", "/nonexistent/dir/ticks.zst"}, "directory /nonexistent/dir does not exist"},
		{"record queue 0", []string{"-record-queue", "0"}, "-record-queue must be ≥ 1"},
		{"bad start", []string{"-feed", "replay:" + capture + "?start=noon"}, "bad replay time"},
		{"end before start", []string{"-feed", "replay:" + capture + "?start=+1s&end=+0s"}, "end is before start"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, logs := startLogged(t, tc.args...)
			err := cmd.Wait()
			if err == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(logs.String(), tc.want) {
				t.Fatalf("exit %v, want 2 and %q:\n%s", err, tc.want, logs.String())
			}
		})
	}
}
