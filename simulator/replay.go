package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"tickerd/feed"
)

// Speed scales the recorded pace of a capture: 1 replays in real time, 10
// ten times faster. MaxSpeed replays as fast as the receiver takes.
type Speed float64

// MaxSpeed replays without pacing.
const MaxSpeed = Speed(math.MaxFloat64)

// ErrSpeed is wrapped by ParseSpeed's errors.
var ErrSpeed = errors.New("simulator: bad speed")

// ParseSpeed parses "max", or a positive multiple with an optional x:
// "1x", "10x", "0.5x", "2".
func ParseSpeed(s string) (Speed, error) {
	if strings.EqualFold(s, "max") {
		return MaxSpeed, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSuffix(s, "x"), "X"), 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) || v > 1e6 {
		return 0, fmt.Errorf("%w %q: want max or a multiple like 1x, 10x, 0.5x (at most 1000000x)", ErrSpeed, s)
	}
	return Speed(v), nil
}

// String returns "max" or the multiple with an x ("10x").
func (s Speed) String() string {
	if s >= MaxSpeed {
		return "max"
	}
	return strconv.FormatFloat(float64(s), 'g', -1, 64) + "x"
}

// Set parses s, so a *Speed is a flag.Value.
func (s *Speed) Set(v string) error {
	p, err := ParseSpeed(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}

// Replayer delivers the updates of a capture at their recorded pace scaled
// by Speed, once or in a loop. Set its fields before Run; Progress may be
// called from any goroutine at any time.
type Replayer struct {
	// Open opens the capture at its start; Run calls it once per pass and
	// closes what it returns. Required.
	Open func() (*CaptureReader, error)
	// Speed scales the recorded gaps between updates. Zero means 1x.
	Speed Speed
	// Loop replays the capture again and again until ctx is done.
	Loop bool

	mu    sync.Mutex
	p     Progress
	meter rateMeter
}

// ReplayFile returns a Replayer of the capture file at path.
func ReplayFile(path string, speed Speed, loop bool) *Replayer {
	return &Replayer{Open: func() (*CaptureReader, error) { return OpenCapture(path) }, Speed: speed, Loop: loop}
}

// ParseReplaySource returns a Replayer of the capture named by the argument
// of tickerd's "-feed replay:PATH[?speed=10x&loop=1]" (without "replay:").
// speed is as ParseSpeed (default 1x); loop is a boolean (1, true, 0,
// false). The file must exist.
func ParseReplaySource(s string) (*Replayer, error) {
	path, query, _ := strings.Cut(s, "?")
	if path == "" {
		return nil, fmt.Errorf("simulator: replay source %q: no capture path", s)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("simulator: replay source: %w", err)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("simulator: replay source %q: %w", s, err)
	}
	speed, loop := Speed(1), false
	for k, vs := range params {
		v := vs[len(vs)-1]
		switch k {
		case "speed":
			if speed, err = ParseSpeed(v); err != nil {
				return nil, err
			}
		case "loop":
			if loop, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("simulator: replay source: loop=%q: want 1, true, 0 or false", v)
			}
		default:
			return nil, fmt.Errorf("simulator: replay source %q: unknown parameter %q (want speed, loop)", s, k)
		}
	}
	return ReplayFile(path, speed, loop), nil
}

// Feed runs the replay into sink as a live feed: each update goes with TS
// zero, so the sink stamps its own ingest time. It returns as Run does.
func (r *Replayer) Feed(ctx context.Context, sink feed.Sink) error {
	return r.Run(ctx, func(u *feed.Update) error {
		u.TS = 0
		sink.Apply(u)
		return nil
	})
}

// Progress returns the replay's progress so far.
func (r *Replayer) Progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.p
	if !p.Done {
		p.Rate = r.meter.at(time.Now())
	}
	return p
}

// maxLag is how far behind its schedule a replay may fall (a slow receiver)
// before it forgets the lag instead of catching up in a burst.
const maxLag = time.Second

// Run delivers every update of the capture to deliver, in order, waiting
// between two of them their recorded gap divided by Speed (an update whose
// ts is behind an earlier one's goes at once, and the gap after it counts
// from the highest ts so far). deliver is called from Run's goroutine
// only, with the recorded ts in u.TS; it must not keep u; an error from it
// ends Run. Run returns nil after the last update (of the last pass when
// not looping), ctx.Err() when ctx ends first, or the capture's error. A
// looping replay of an empty capture returns at once.
func (r *Replayer) Run(ctx context.Context, deliver func(u *feed.Update) error) error {
	if r.Open == nil {
		return errors.New("simulator: Replayer.Open is nil")
	}
	speed := r.Speed
	if speed == 0 {
		speed = 1
	}
	r.mu.Lock()
	r.p = Progress{Started: time.Now()}
	r.meter = rateMeter{start: r.p.Started}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.p.Done = true
		if d := time.Since(r.p.Started); d > 0 {
			r.p.Rate = float64(r.p.Sent) / d.Seconds()
		}
		r.mu.Unlock()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for pass := 1; ; pass++ {
		n, err := r.pass(ctx, pass, speed, timer, deliver)
		if err != nil || !r.Loop || n == 0 {
			return err
		}
	}
}

// pass replays the capture once and returns how many updates it delivered.
func (r *Replayer) pass(ctx context.Context, pass int, speed Speed, timer *time.Timer,
	deliver func(u *feed.Update) error) (int64, error) {
	cr, err := r.Open()
	if err != nil {
		return 0, err
	}
	defer cr.Close()
	r.mu.Lock()
	r.p.Pass, r.p.InPass = pass, 0
	r.mu.Unlock()
	var u feed.Update
	var n int64
	var base time.Time  // wall time at which the first update was delivered
	var high, pos int64 // highest ts so far; recorded time since the first update, without backward steps
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		switch err := cr.Next(&u); {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return n, err
		}
		if n == 0 {
			base, high = time.Now(), u.TS
		} else if gap := u.TS - high; gap > 0 {
			pos, high = pos+gap, u.TS
		}
		ts := u.TS
		if n > 0 && speed < MaxSpeed {
			due := base.Add(time.Duration(float64(pos) * float64(time.Microsecond) / float64(speed)))
			now := time.Now()
			if lag := now.Sub(due); lag > maxLag {
				base = base.Add(lag) // resume the recorded pace from here, without a burst
			} else if wait := due.Sub(now); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return n, ctx.Err()
				case <-timer.C:
				}
			}
		}
		if err := deliver(&u); err != nil {
			return n, err
		}
		n++
		now := time.Now()
		r.mu.Lock()
		r.meter.add(now)
		r.p.Sent++
		r.p.InPass = n
		r.p.Position = time.UnixMicro(ts)
		r.mu.Unlock()
	}
}
