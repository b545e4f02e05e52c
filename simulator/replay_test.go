package simulator

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tickerd/feed"
)

func TestParseSpeed(t *testing.T) {
	tests := []struct {
		in   string
		want Speed
		ok   bool
	}{
		{"1x", 1, true},
		{"10x", 10, true},
		{"0.5x", 0.5, true},
		{"2", 2, true},
		{"3X", 3, true},
		{"max", MaxSpeed, true},
		{"MAX", MaxSpeed, true},
		{"0x", 0, false},
		{"-1x", 0, false},
		{"x", 0, false},
		{"", 0, false},
		{"fast", 0, false},
		{"NaNx", 0, false},
		{"Infx", 0, false},
		{"2000000x", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpeed(tt.in)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("ParseSpeed(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
			}
			if !tt.ok && !errors.Is(err, ErrSpeed) {
				t.Errorf("error %v does not wrap ErrSpeed", err)
			}
			if tt.ok {
				if back, err := ParseSpeed(got.String()); err != nil || back != got {
					t.Errorf("%v does not round-trip through String: %v %v", got, back, err)
				}
			}
		})
	}
}

// spacedCapture returns a capture of n updates with ts gap apart (the
// fifth going back in time by 10 s), and its updates.
func spacedCapture(t testing.TB, n int, gap time.Duration) ([]byte, []feed.Update) {
	t.Helper()
	updates := simUpdates(t, Config{Symbols: 5}, n)
	start := time.Unix(1_700_000_000, 0).UnixMicro()
	for i := range updates {
		updates[i].TS = start + int64(i)*gap.Microseconds()
	}
	if n > 5 {
		updates[4].TS -= 10_000_000
	}
	return writeCapture(t, updates), updates
}

func replayerOf(data []byte, speed Speed, loop bool) *Replayer {
	return &Replayer{
		Open: func(from int64) (*CaptureReader, error) {
			r, err := NewCaptureReader(bytes.NewReader(data))
			if r != nil {
				r.from = from
			}
			return r, err
		},
		Speed: speed,
		Loop:  loop,
	}
}

func TestReplayPaces(t *testing.T) {
	data, updates := spacedCapture(t, 41, 10*time.Millisecond) // 400 ms recorded
	tests := []struct {
		name     string
		speed    Speed
		min, max time.Duration
	}{
		{"real time", 1, 380 * time.Millisecond, 1500 * time.Millisecond},
		{"default is real time", 0, 380 * time.Millisecond, 1500 * time.Millisecond},
		{"4x", 4, 90 * time.Millisecond, 600 * time.Millisecond},
		{"max", MaxSpeed, 0, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replayerOf(data, tt.speed, false)
			var got []feed.Update
			start := time.Now()
			err := r.Run(context.Background(), func(u *feed.Update) error {
				got = append(got, *u)
				return nil
			})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if took < tt.min || took > tt.max {
				t.Errorf("replay took %v, want %v..%v", took, tt.min, tt.max)
			}
			if len(got) != len(updates) {
				t.Fatalf("delivered %d updates, want %d", len(got), len(updates))
			}
			for i := range got {
				if !sameUpdate(&got[i], &updates[i]) {
					t.Fatalf("update %d differs", i)
				}
			}
			p := r.Progress()
			if !p.Done || p.Sent != int64(len(updates)) || p.Pass != 1 || p.InPass != p.Sent {
				t.Errorf("progress %+v", p)
			}
			if want := time.UnixMicro(updates[len(updates)-1].TS); !p.Position.Equal(want) {
				t.Errorf("position %v, want %v", p.Position, want)
			}
		})
	}
}

func TestReplayLoopsAndReportsProgress(t *testing.T) {
	data, updates := spacedCapture(t, 20, time.Millisecond)
	r := replayerOf(data, 2, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	delivered := 0
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(*feed.Update) error {
			mu.Lock()
			delivered++
			mu.Unlock()
			return nil
		})
	}()
	// Progress is read concurrently with Run (the race detector checks).
	waitFor(t, 10*time.Second, "a third pass", func() bool { return r.Progress().Pass >= 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	p := r.Progress()
	mu.Lock()
	defer mu.Unlock()
	if p.Sent != int64(delivered) || p.Sent < 2*int64(len(updates)) {
		t.Errorf("progress %+v after %d deliveries of a %d-update capture", p, delivered, len(updates))
	}
}

func TestReplayStopsOnDeliverError(t *testing.T) {
	data, _ := spacedCapture(t, 10, 0)
	boom := errors.New("boom")
	n := 0
	err := replayerOf(data, MaxSpeed, true).Run(context.Background(), func(*feed.Update) error {
		if n++; n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Errorf("Run: %v after %d deliveries, want boom after 3", err, n)
	}
}

func TestReplayBadCapture(t *testing.T) {
	data, _ := spacedCapture(t, 50, 0)
	err := replayerOf(data[:len(data)-20], MaxSpeed, false).Run(context.Background(), func(*feed.Update) error { return nil })
	var ce *CaptureError
	if !errors.As(err, &ce) {
		t.Errorf("Run: %v, want a *CaptureError", err)
	}
	empty := replayerOf(writeCapture(t, nil), 1, true)
	if err := empty.Run(context.Background(), func(*feed.Update) error { return nil }); err != nil {
		t.Errorf("looping an empty capture: %v", err)
	}
	if err := (&Replayer{}).Run(context.Background(), nil); err == nil {
		t.Error("Run without Open: no error")
	}
}

func TestProgressRemaining(t *testing.T) {
	sum := Summary{Updates: 1000, First: 0, Last: 100_000_000} // 100 s
	pos := time.UnixMicro(40_000_000)
	tests := []struct {
		name  string
		p     Progress
		speed Speed
		want  time.Duration
		ok    bool
	}{
		{"before start", Progress{}, 1, 0, false},
		{"real time", Progress{Position: pos}, 1, 60 * time.Second, true},
		{"10x", Progress{Position: pos}, 10, 6 * time.Second, true},
		{"max by rate", Progress{Position: pos, InPass: 400, Rate: 100}, MaxSpeed, 6 * time.Second, true},
		{"max without rate", Progress{Position: pos, InPass: 400}, MaxSpeed, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.p.Remaining(sum, tt.speed)
			if ok != tt.ok || math.Abs(float64(got-tt.want)) > float64(time.Millisecond) {
				t.Errorf("Remaining = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestProgressFormat(t *testing.T) {
	sum := Summary{Updates: 1000, First: 1_700_000_000_000_000, Last: 1_700_000_100_000_000}
	at := time.UnixMicro(1_700_000_040_000_000)
	tests := []struct {
		name string
		p    Progress
		want string
	}{
		{"not started", Progress{}, "0 updates sent, 0/s"},
		{"under way", Progress{Sent: 400, InPass: 400, Rate: 10, Position: at, Pass: 1},
			"400 updates sent, 10/s, at 2023-11-14T22:14:00Z (40%), 1m0s left"},
		{"second pass", Progress{Sent: 1400, InPass: 400, Rate: 10, Position: at, Pass: 2},
			"pass 2: 1400 updates sent, 10/s, at 2023-11-14T22:14:00Z (40%), 1m0s left"},
		{"done", Progress{Sent: 1000, Rate: 10, Position: time.UnixMicro(sum.Last), Pass: 1, Done: true},
			"1000 updates sent, 10/s, at 2023-11-14T22:15:00Z (100%), done"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Format(sum, 1); got != tt.want {
				t.Errorf("Format = %q\nwant       %q", got, tt.want)
			}
		})
	}
}

func TestParseReplaySource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.zst")
	data, updates := spacedCapture(t, 10, 0)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in    string
		speed Speed
		loop  bool
		err   string
	}{
		{path, 1, false, ""},
		{path + "?speed=10x", 10, false, ""},
		{path + "?speed=max&loop=1", MaxSpeed, true, ""},
		{path + "?loop=false", 1, false, ""},
		{"", 0, false, "no capture path"},
		{path + ".missing", 0, false, "no such file"},
		{path + "?speed=fast", 0, false, "bad speed"},
		{path + "?loop=maybe", 0, false, "loop="},
		{path + "?pace=2", 0, false, `unknown parameter "pace"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseReplaySource(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Speed != tt.speed || r.Loop != tt.loop {
				t.Errorf("speed %v loop %v, want %v %v", r.Speed, r.Loop, tt.speed, tt.loop)
			}
		})
	}
	r, err := ParseReplaySource(path + "?speed=max")
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordSink{}
	if err := r.Feed(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	if p, want := r.Progress().Position, time.UnixMicro(updates[len(updates)-1].TS); !p.Equal(want) {
		t.Errorf("position after Feed %v, want the recorded %v", p, want)
	}
	got := sink.all()
	if len(got) != len(updates) {
		t.Fatalf("fed %d updates, want %d", len(got), len(updates))
	}
	for i := range got {
		if got[i].TS != 0 {
			t.Fatalf("update %d fed with ts %d, want 0", i, got[i].TS)
		}
		got[i].TS = updates[i].TS
		if !sameUpdate(&got[i], &updates[i]) {
			t.Fatalf("update %d differs", i)
		}
	}
}

// jitteredCapture writes n updates with gaps drawn from [lo, hi) to a
// capture file and returns its path and updates.
func jitteredCapture(t testing.TB, n int, lo, hi time.Duration) (string, []feed.Update) {
	t.Helper()
	updates := simUpdates(t, Config{Symbols: 10}, n)
	rng := rand.New(rand.NewPCG(7, 7))
	ts := time.Unix(1_700_000_000, 0).UnixMicro()
	for i := range updates {
		if i > 0 {
			ts += lo.Microseconds() + rng.Int64N((hi - lo).Microseconds())
		}
		updates[i].TS = ts
	}
	path := filepath.Join(t.TempDir(), "jitter.zst")
	writeCaptureFile(t, path, updates)
	return path, updates
}

// percentile returns the p-th percentile (0..1) of ds, sorting them.
func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(int(p*float64(len(ds))), len(ds)-1)]
}

// At 1x the gaps between deliveries are the recorded gaps: each update is
// due at an absolute time computed from the capture, so waits do not add
// up. The bound is generous for a loaded 2-core CI machine; the figures
// are logged (docs/performance.md has them from a quiet run).
func TestReplayTimingFidelity(t *testing.T) {
	path, updates := jitteredCapture(t, 300, 2*time.Millisecond, 18*time.Millisecond)
	r := ReplayFile(path, 1, false)
	at := make([]time.Time, 0, len(updates))
	if err := r.Run(context.Background(), func(*feed.Update) error {
		at = append(at, time.Now())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(at) != len(updates) {
		t.Fatalf("delivered %d updates, want %d", len(at), len(updates))
	}
	gapErr := make([]time.Duration, 0, len(at))
	driftErr := make([]time.Duration, 0, len(at))
	for i := 1; i < len(at); i++ {
		recorded := time.Duration(updates[i].TS-updates[i-1].TS) * time.Microsecond
		gapErr = append(gapErr, (at[i].Sub(at[i-1]) - recorded).Abs())
		sched := time.Duration(updates[i].TS-updates[0].TS) * time.Microsecond
		driftErr = append(driftErr, (at[i].Sub(at[0]) - sched).Abs())
	}
	p50, p99 := percentile(gapErr, 0.5), percentile(gapErr, 0.99)
	d99, dmax := percentile(driftErr, 0.99), percentile(driftErr, 1)
	t.Logf("gap error over %d gaps: p50 %v, p99 %v; schedule error p99 %v, max %v (span %v)",
		len(gapErr), p50, p99, d99, dmax, time.Duration(updates[len(updates)-1].TS-updates[0].TS)*time.Microsecond)
	if p99 > 20*time.Millisecond {
		t.Errorf("p99 gap error %v, want under 20 ms", p99)
	}
	if d99 > 20*time.Millisecond {
		t.Errorf("p99 schedule error %v, want under 20 ms: waits drift", d99)
	}
}

func TestReplayWindow(t *testing.T) {
	path, updates := indexedCapture(t, 3000, 30*time.Second)
	start, end := updates[0].TS+10_000_000, updates[0].TS+20_000_000
	i := firstAtOrAfter(updates, start)
	j := i
	for j < len(updates) && updates[j].TS <= end {
		j++
	}
	want := updates[i:j]
	tests := []struct {
		name string
		src  string
	}{
		{"RFC 3339", "?speed=max&start=" + time.UnixMicro(start).UTC().Format(time.RFC3339Nano) + "&end=" + time.UnixMicro(end).UTC().Format(time.RFC3339Nano)},
		{"offsets", "?speed=max&start=+10s&end=+20s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseReplaySource(path + tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if r.Start != start || r.End != end {
				t.Fatalf("window %d..%d, want %d..%d", r.Start, r.End, start, end)
			}
			r.Loop = true
			var got []feed.Update
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err = r.Run(ctx, func(u *feed.Update) error {
				got = append(got, *u)
				if len(got) == 2*len(want) {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
			for pass := range 2 {
				for k := range want {
					if !sameUpdate(&got[pass*len(want)+k], &want[k]) {
						t.Fatalf("pass %d: update %d differs from the window's", pass+1, k)
					}
				}
			}
		})
	}
}

func TestReplayTime(t *testing.T) {
	first := func() (int64, error) { return 1_700_000_000_000_000, nil }
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"2023-11-14T22:13:20Z", 1_700_000_000_000_000, ""},
		{"2023-11-14T23:13:20.5+01:00", 1_700_000_000_500_000, ""},
		{"+10m", 1_700_000_600_000_000, ""},
		{"+0s", 1_700_000_000_000_000, ""},
		{"+1h30m", 1_700_005_400_000_000, ""},
		{"+-5m", 0, "bad replay time"},
		{"+soon", 0, "bad replay time"},
		{"10m", 0, "bad replay time"},
		{"2023-11-14", 0, "bad replay time"},
		{"0001-01-01T00:00:00Z", 0, "year out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ReplayTime(tt.in, first)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrTime) {
					t.Fatalf("ReplayTime(%q) = %d, %v; want an ErrTime about %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ReplayTime(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// deliveries records when each update of a replay arrives.
type deliveries struct {
	mu sync.Mutex
	ts []int64
	at []time.Time
}

func (d *deliveries) deliver(u *feed.Update) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ts = append(d.ts, u.TS)
	d.at = append(d.at, time.Now())
	return nil
}

func (d *deliveries) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ts)
}

// since returns the deliveries from the i-th on.
func (d *deliveries) since(i int) ([]int64, []time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ts[i:]), slices.Clone(d.at[i:])
}

func TestReplayControls(t *testing.T) {
	// 400 updates 10 ms apart: 4 s at 1x.
	_, updates := spacedCapture(t, 400, 10*time.Millisecond)
	updates[4].TS += 10_000_000 // spacedCapture moved it back; keep this capture in order
	data := writeCapture(t, updates)
	r := replayerOf(data, 1, false)
	d := &deliveries{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, d.deliver) }()

	waitFor(t, 5*time.Second, "20 updates", func() bool { return d.len() >= 20 })
	r.Pause()
	waitFor(t, time.Second, "the pause to show", func() bool { return r.Progress().Paused })
	held := d.len()
	time.Sleep(300 * time.Millisecond) // nothing may arrive while paused
	if n := d.len(); n > held+1 {      // one may have been on its way
		t.Fatalf("%d updates delivered while paused", n-held)
	}
	held = d.len()
	resumed := time.Now()
	r.Resume()
	waitFor(t, 5*time.Second, "10 updates after resuming", func() bool { return d.len() >= held+10 })
	_, at := d.since(held)
	if took := at[9].Sub(resumed); took < 70*time.Millisecond {
		t.Errorf("10 updates 10 ms apart came %v after resuming: the pause was caught up in a burst", took)
	}

	r.SetSpeed(10)
	mark := d.len() + 1 // one may have been on its way at 1x
	waitFor(t, 5*time.Second, "100 updates at 10x", func() bool { return d.len() >= mark+100 })
	ts, at := d.since(mark)
	recorded := time.Duration(ts[99]-ts[0]) * time.Microsecond
	if took := at[99].Sub(at[0]); float64(recorded)/float64(took) < 3 {
		t.Errorf("%v of capture at 10x took %v", recorded, took)
	}
	if p := r.Progress(); p.Speed != 10 {
		t.Errorf("progress speed %v, want 10x", p.Speed)
	}

	r.SetSpeed(1)
	for _, target := range []int{300, 100} { // forward, then back
		before := d.len()
		r.SeekTo(updates[target].TS)
		waitFor(t, 5*time.Second, "two updates after the seek", func() bool { return d.len() >= before+3 })
		ts, _ := d.since(before)
		// One update may have been on its way when SeekTo was called.
		k := slices.Index(ts[:2], updates[target].TS)
		if k < 0 || ts[k+1] != updates[target+1].TS {
			t.Errorf("after the seek to update %d (ts %d) came ts %v", target, updates[target].TS, ts[:3])
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}
