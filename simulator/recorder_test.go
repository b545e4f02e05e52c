package simulator

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tickerd/feed"
)

func TestHourPath(t *testing.T) {
	hour := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		base string
		n    int
		want string
	}{
		{"ticks.zst", 0, "ticks-20261122T0400Z.zst"},
		{"/var/rec/ticks.ndjson.zst", 0, "/var/rec/ticks-20261122T0400Z.ndjson.zst"},
		{"ticks", 0, "ticks-20261122T0400Z"},
		{"dir.d/ticks", 2, "dir.d/ticks-20261122T0400Z-2"},
		{".zst", 0, ".zst-20261122T0400Z"},
		{"ticks.zst", 1, "ticks-20261122T0400Z-1.zst"},
	}
	for _, tt := range tests {
		if got := hourPath(tt.base, hour, tt.n); got != tt.want {
			t.Errorf("hourPath(%q, %d) = %q, want %q", tt.base, tt.n, got, tt.want)
		}
	}
}

// logBuffer collects log lines for a test; it may be read while written.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func newRecorder(t testing.TB, cfg RecorderConfig) *Recorder {
	t.Helper()
	r, err := NewRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

// stamped returns the i-th of simulated updates restamped at ts.
func stamped(updates []feed.Update, i int, ts time.Time) *feed.Update {
	u := updates[i%len(updates)]
	u.TS = ts.UnixMicro()
	return &u
}

func TestRecorderRotatesHourly(t *testing.T) {
	dir := t.TempDir()
	updates := simUpdates(t, Config{Symbols: 5}, 100)
	state := []feed.Update{updates[0], updates[1]} // what State reports
	var logs logBuffer
	r := newRecorder(t, RecorderConfig{
		Path: filepath.Join(dir, "ticks.zst"),
		Log:  logs.logger(),
		State: func(emit func(*feed.Update)) {
			for i := range state {
				emit(&state[i])
			}
		},
	})
	var want [3][]feed.Update // per file
	for i := range 90 {
		// 30 updates in each of three hours, the first at 04:59:30.
		ts := time.Date(2026, 11, 22, 4+i/30, 59, 30+i%30, 0, time.UTC)
		if i >= 30 {
			ts = time.Date(2026, 11, 22, 4+i/30, 0, i%30, 0, time.UTC)
		}
		u := stamped(updates, i, ts)
		if !r.Add(u) {
			t.Fatalf("Add %d dropped", i)
		}
		hour := int(ts.Hour()) - 4
		want[hour] = append(want[hour], *u)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != 90 || st.Dropped != 0 || st.Files != 3 {
		t.Errorf("stats %+v, want 90 written in 3 files", st)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	slices.Sort(names)
	wantNames := []string{"ticks-20261122T0400Z.zst", "ticks-20261122T0400Z.zst.idx",
		"ticks-20261122T0500Z.zst", "ticks-20261122T0500Z.zst.idx",
		"ticks-20261122T0600Z.zst", "ticks-20261122T0600Z.zst.idx"}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("files %v, want %v", names, wantNames)
	}
	for k, name := range []string{"ticks-20261122T0400Z.zst", "ticks-20261122T0500Z.zst", "ticks-20261122T0600Z.zst"} {
		path := filepath.Join(dir, name)
		r, err := OpenCapture(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readFrom(t, r)
		if err != nil {
			t.Fatal(err)
		}
		exp := want[k]
		if k > 0 { // later hours open with the state, stamped with their first update's ts
			head := slices.Clone(state)
			for i := range head {
				head[i].TS = exp[0].TS
			}
			exp = append(head, exp...)
		}
		if len(got) != len(exp) {
			t.Fatalf("%s: %d updates, want %d", name, len(got), len(exp))
		}
		for i := range got {
			if !sameUpdate(&got[i], &exp[i]) {
				t.Fatalf("%s: update %d differs", name, i)
			}
		}
		if sum, err := SummarizeFile(path); err != nil || sum.Updates != int64(len(exp)) {
			t.Errorf("%s: summary %+v, %v (from its index)", name, sum, err)
		}
	}
	if !strings.Contains(logs.String(), "ticks-20261122T0600Z.zst") {
		t.Errorf("the captures begun are not logged:\n%s", logs.String())
	}
}

func TestRecorderNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	taken := filepath.Join(dir, "ticks-20261122T0400Z.zst")
	if err := os.WriteFile(taken, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ticks-20261122T0400Z-1.zst.idx"), []byte("keep me too"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRecorder(t, RecorderConfig{Path: filepath.Join(dir, "ticks.zst"), Log: quietLog})
	u := stamped(simUpdates(t, Config{Symbols: 1}, 1), 0, time.Date(2026, 11, 22, 4, 30, 0, 0, time.UTC))
	r.Add(u)
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(taken); string(b) != "keep me" {
		t.Errorf("an existing capture was overwritten: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ticks-20261122T0400Z-1.zst.idx")); string(b) != "keep me too" {
		t.Errorf("an existing index was overwritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "ticks-20261122T0400Z-1.zst")); err == nil {
		t.Error("a capture was left without its index")
	}
	got, err := readFrom(t, mustOpen(t, filepath.Join(dir, "ticks-20261122T0400Z-2.zst")))
	if err != nil || len(got) != 1 || !sameUpdate(&got[0], u) {
		t.Errorf("the -2 capture holds %d updates (%v)", len(got), err)
	}
}

func mustOpen(t testing.TB, path string) *CaptureReader {
	t.Helper()
	r, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A recorder that cannot keep up drops what does not fit its queue, counts
// it and says so in the log; the caller is never held up.
func TestRecorderDropsWhenFull(t *testing.T) {
	dir := t.TempDir()
	entered, release := make(chan struct{}), make(chan struct{})
	var logs logBuffer
	r := newRecorder(t, RecorderConfig{
		Path:  filepath.Join(dir, "ticks.zst"),
		Queue: 8,
		Log:   logs.logger(),
		State: func(func(*feed.Update)) { // a disk that stalls at the second capture
			close(entered)
			<-release
		},
	})
	updates := simUpdates(t, Config{Symbols: 5}, 10)
	h4 := time.Date(2026, 11, 22, 4, 59, 59, 0, time.UTC)
	r.Add(stamped(updates, 0, h4))
	r.Add(stamped(updates, 1, h4.Add(2*time.Second))) // 05:00:01: the second capture
	<-entered
	start := time.Now()
	accepted := 0
	for i := range 100 {
		if r.Add(stamped(updates, i, h4.Add(3*time.Second))) {
			accepted++
		}
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("100 Adds took %v while the recorder was stuck", took)
	}
	if accepted != 8 || r.Stats().Dropped != 92 {
		t.Errorf("accepted %d, dropped %d; want 8 queued and 92 dropped", accepted, r.Stats().Dropped)
	}
	close(release)
	waitFor(t, 5*time.Second, "the drops logged", func() bool { return strings.Contains(logs.String(), "recording dropped updates") })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Written != 10 || st.Dropped != 92 {
		t.Errorf("stats %+v, want 10 written and 92 dropped", st)
	}
	if !strings.Contains(logs.String(), "dropped=92") {
		t.Errorf("log lacks the count:\n%s", logs.String())
	}
	if r.Add(stamped(updates, 0, h4)) || r.Stats().Dropped != 93 {
		t.Error("Add after Close was taken")
	}
}

// Drops and failures are logged at most once per recordLogEvery.
func TestRecorderLogIsRateLimited(t *testing.T) {
	var logs logBuffer
	r := &Recorder{log: logs.logger()}
	now := time.Now()
	r.dropped.Add(5)
	r.logDrops(now)
	r.dropped.Add(5)
	r.logDrops(now.Add(recordLogEvery / 2))
	r.logDrops(now.Add(recordLogEvery - time.Millisecond))
	if n := strings.Count(logs.String(), "recording dropped"); n != 1 {
		t.Fatalf("%d lines within %v, want 1:\n%s", n, recordLogEvery, logs.String())
	}
	r.logDrops(now.Add(recordLogEvery))
	if !strings.Contains(logs.String(), "dropped=5 droppedTotal=10") {
		t.Errorf("the second line does not count the drops since the first:\n%s", logs.String())
	}
	r.logDrops(now.Add(3 * recordLogEvery))
	if n := strings.Count(logs.String(), "recording dropped"); n != 2 {
		t.Errorf("%d lines, want 2: nothing new was dropped", n)
	}
}

// A capture that cannot be created costs the updates meanwhile, counted
// and logged, never the caller.
func TestRecorderFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	r := newRecorder(t, RecorderConfig{Path: filepath.Join(dir, "ticks.zst"), Log: logs.logger()})
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	updates := simUpdates(t, Config{Symbols: 5}, 5)
	for i := range updates {
		r.Add(stamped(updates, i, time.Now()))
	}
	waitFor(t, 5*time.Second, "the failure logged", func() bool { return strings.Contains(logs.String(), "recording failed") })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Dropped != 5 || st.Written != 0 {
		t.Errorf("stats %+v, want 5 dropped", st)
	}
	if _, err := NewRecorder(RecorderConfig{Path: filepath.Join(dir, "x.zst")}); err == nil {
		t.Error("NewRecorder in a missing directory: no error")
	}
}
