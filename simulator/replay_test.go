package simulator

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
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
		Open:  func() (*CaptureReader, error) { return NewCaptureReader(bytes.NewReader(data)) },
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
