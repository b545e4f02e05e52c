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

// ReplayTime parses a time of a replay window or seek: RFC 3339 ("2026-11-22T04:00:00Z",
// fractional seconds allowed), or "+D", a Go duration after the capture's
// first update ("+10m", "+90s"). first returns that update's ts; it is
// called only for "+D". The result is in Unix microseconds.
func ReplayTime(s string, first func() (int64, error)) (int64, error) {
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%w %q: want +DURATION after the capture's start, like +10m", ErrTime, s)
		}
		ts, err := first()
		if err != nil {
			return 0, err
		}
		return ts + d.Microseconds(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%w %q: want RFC 3339 (2026-11-22T04:00:00Z) or +DURATION after the capture's start (+10m)", ErrTime, s)
	}
	if t.Year() < 1971 || t.Year() > 9999 {
		return 0, fmt.Errorf("%w %q: year out of range", ErrTime, s)
	}
	return t.UnixMicro(), nil
}

// ErrTime is wrapped by ReplayTime's errors.
var ErrTime = errors.New("simulator: bad replay time")

// Replayer delivers the updates of a capture at their recorded pace scaled
// by its speed, once or in a loop, optionally within a window of recorded
// time. Set its fields before Run. While Run runs, Pause, Resume, SeekTo and
// SetSpeed steer it and Progress reports on it; all are safe to call from
// any goroutine at any time.
type Replayer struct {
	// Open opens the capture so that its first update read is the first
	// with ts at or after from (Unix µs; 0: the capture's start), as
	// OpenCaptureAt does; Run calls it once per pass and per seek and
	// closes what it returns. Required.
	Open func(from int64) (*CaptureReader, error)
	// Speed scales the recorded gaps between updates. Zero means 1x.
	// Once Run has begun, change it with SetSpeed.
	Speed Speed
	// Loop replays the window again and again until ctx is done.
	Loop bool
	// Start and End bound the window replayed, in Unix µs: a pass begins
	// at the first update with ts at or after Start and ends before the
	// first with ts after End. Zero means the capture's start, its end.
	Start, End int64

	mu     sync.Mutex
	p      Progress
	meter  rateMeter
	paused bool
	seekTo int64         // a seek not yet carried out (0: none)
	wake   chan struct{} // capacity 1: a control changed
}

// ReplayFile returns a Replayer of the capture file at path.
func ReplayFile(path string, speed Speed, loop bool) *Replayer {
	return &Replayer{Open: func(from int64) (*CaptureReader, error) { return OpenCaptureAt(path, from) }, Speed: speed, Loop: loop}
}

// ParseReplaySource returns a Replayer of the capture named by the argument
// of tickerd's "-feed replay:PATH[?speed=10x&loop=1&start=T&end=T]"
// (without "replay:"). speed is as ParseSpeed (default 1x); loop is a
// boolean (1, true, 0, false); start and end are as ReplayTime (a "+" is
// taken literally, not as a space). The file must exist.
func ParseReplaySource(s string) (*Replayer, error) {
	path, query, _ := strings.Cut(s, "?")
	if path == "" {
		return nil, fmt.Errorf("simulator: replay source %q: no capture path", s)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("simulator: replay source: %w", err)
	}
	params, err := url.ParseQuery(strings.ReplaceAll(query, "+", "%2B"))
	if err != nil {
		return nil, fmt.Errorf("simulator: replay source %q: %w", s, err)
	}
	r := ReplayFile(path, 1, false)
	first := func() (int64, error) { return FirstTS(path) }
	for k, vs := range params {
		v := vs[len(vs)-1]
		switch k {
		case "speed":
			if r.Speed, err = ParseSpeed(v); err != nil {
				return nil, err
			}
		case "loop":
			if r.Loop, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("simulator: replay source: loop=%q: want 1, true, 0 or false", v)
			}
		case "start":
			if r.Start, err = ReplayTime(v, first); err != nil {
				return nil, fmt.Errorf("simulator: replay source: start: %w", err)
			}
		case "end":
			if r.End, err = ReplayTime(v, first); err != nil {
				return nil, fmt.Errorf("simulator: replay source: end: %w", err)
			}
		default:
			return nil, fmt.Errorf("simulator: replay source %q: unknown parameter %q (want speed, loop, start, end)", s, k)
		}
	}
	if r.End > 0 && r.End < r.Start {
		return nil, fmt.Errorf("simulator: replay source %q: end is before start", s)
	}
	return r, nil
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
	p.Paused, p.Speed = r.paused, r.speedLocked()
	if !p.Done {
		p.Rate = r.meter.at(time.Now())
	}
	return p
}

// Pause holds the replay before its next update until Resume.
func (r *Replayer) Pause() { r.control(func() { r.paused = true }) }

// Resume ends a Pause: the recorded pace goes on from where it stopped.
func (r *Replayer) Resume() { r.control(func() { r.paused = false }) }

// SetSpeed changes the pace from now on (zero means 1x).
func (r *Replayer) SetSpeed(s Speed) { r.control(func() { r.Speed = s }) }

// SeekTo moves the replay to the first update with ts at or after ts (Unix
// µs), clamped to the window; the pass goes on from there, and a paused
// replay stays paused.
func (r *Replayer) SeekTo(ts int64) {
	ts = max(ts, r.Start, 1)
	if r.End > 0 {
		ts = min(ts, r.End)
	}
	r.control(func() { r.seekTo = ts })
}

// control changes the controls under the lock and wakes Run.
func (r *Replayer) control(change func()) {
	r.mu.Lock()
	change()
	w := r.wakeLocked()
	r.mu.Unlock()
	select {
	case w <- struct{}{}:
	default:
	}
}

func (r *Replayer) wakeLocked() chan struct{} {
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	return r.wake
}

func (r *Replayer) speedLocked() Speed {
	if r.Speed == 0 {
		return 1
	}
	return r.Speed
}

// maxLag is how far behind its schedule a replay may fall (a slow receiver)
// before it forgets the lag instead of catching up in a burst.
const maxLag = time.Second

// Run delivers every update of the window to deliver, in order, each at
// the wall time its recorded position is due: the position is the highest
// ts so far (an update whose ts is behind an earlier one's goes at once),
// and its due time is computed from where the pace was last set (the
// pass's first update, a resume, a seek, a speed change) plus the recorded
// time since then divided by the speed, so that waits never accumulate
// drift. A receiver that falls more than a second behind is not caught up
// in a burst: the pace resumes from there. deliver is called from Run's
// goroutine only, with the recorded ts in u.TS; it must not keep u; an
// error from it ends Run. Run returns nil after the last update (of the
// last pass when not looping), ctx.Err() when ctx ends first, or the
// capture's error. A looping replay of an empty window returns at once.
func (r *Replayer) Run(ctx context.Context, deliver func(u *feed.Update) error) error {
	if r.Open == nil {
		return errors.New("simulator: Replayer.Open is nil")
	}
	r.mu.Lock()
	r.p = Progress{Started: time.Now()}
	r.meter = rateMeter{start: r.p.Started}
	wake := r.wakeLocked()
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
		p := &replayPass{r: r, timer: timer, wake: wake, deliver: deliver}
		n, err := p.run(ctx, pass)
		if err != nil || !r.Loop || n == 0 {
			return err
		}
	}
}

// replayClock maps recorded time to wall time: the update at recorded position ts
// is due at wall + (ts − pos)/speed.
type replayClock struct {
	wall time.Time
	pos  int64 // recorded position, Unix µs
	set  bool  // false until the first update of a pass or seek
}

func (p replayClock) due(ts int64, speed Speed) time.Time {
	return p.wall.Add(time.Duration(float64(ts-p.pos) * float64(time.Microsecond) / float64(speed)))
}

// at returns the recorded position the pace has reached at wall time now,
// no further than limit.
func (p replayClock) at(now time.Time, speed Speed, limit int64) int64 {
	if speed >= MaxSpeed {
		return limit
	}
	return min(p.pos+int64(float64(now.Sub(p.wall).Microseconds())*float64(speed)), limit)
}

// replayPass is one pass of Run over the window.
type replayPass struct {
	r       *Replayer
	timer   *time.Timer
	wake    chan struct{}
	deliver func(u *feed.Update) error

	cr     *CaptureReader
	u      feed.Update
	have   bool  // u was read and is not delivered yet
	high   int64 // highest ts delivered in this pass (since the last seek)
	n      int64 // updates delivered in this pass
	pace   replayClock
	speed  Speed // in force for pace
	paused bool  // as the controls were at the last look
}

// run replays the window once and returns how many updates it delivered.
func (p *replayPass) run(ctx context.Context, pass int) (int64, error) {
	r := p.r
	r.mu.Lock()
	r.p.Pass, r.p.InPass = pass, 0
	p.speed = r.speedLocked()
	r.mu.Unlock()
	if err := p.open(r.Start); err != nil {
		return 0, err
	}
	defer func() { p.cr.Close() }()
	for {
		if err := ctx.Err(); err != nil {
			return p.n, err
		}
		paused, err := p.steer()
		if err != nil {
			return p.n, err
		}
		if paused {
			select {
			case <-ctx.Done():
				return p.n, ctx.Err()
			case <-p.wake:
			}
			continue
		}
		if !p.have {
			switch err := p.cr.Next(&p.u); {
			case errors.Is(err, io.EOF):
				return p.n, nil
			case err != nil:
				return p.n, err
			}
			if r.End > 0 && p.u.TS > r.End {
				return p.n, nil
			}
			p.have = true
		}
		pos := max(p.high, p.u.TS)
		if !p.pace.set {
			p.pace = replayClock{wall: time.Now(), pos: pos, set: true}
		} else if p.speed < MaxSpeed {
			due := p.pace.due(pos, p.speed)
			now := time.Now()
			if lag := now.Sub(due); lag > maxLag {
				p.pace.wall = p.pace.wall.Add(lag) // go on at the recorded pace from here, without a burst
			} else if wait := due.Sub(now); wait > 0 {
				p.timer.Reset(wait)
				select {
				case <-ctx.Done():
					return p.n, ctx.Err()
				case <-p.wake:
					continue // a control changed: steer, then wait again
				case <-p.timer.C:
				}
			}
		}
		ts := p.u.TS // deliver may change u
		if err := p.deliver(&p.u); err != nil {
			return p.n, err
		}
		p.have, p.high = false, pos
		p.n++
		now := time.Now()
		r.mu.Lock()
		r.meter.add(now)
		r.p.Sent++
		r.p.InPass = p.n
		r.p.Position = time.UnixMicro(ts)
		r.mu.Unlock()
	}
}

// open (re)opens the capture at from.
func (p *replayPass) open(from int64) error {
	if p.cr != nil {
		p.cr.Close()
		p.cr = nil
	}
	cr, err := p.r.Open(from)
	if err != nil {
		return err
	}
	p.cr, p.have, p.high, p.pace = cr, false, 0, replayClock{}
	return nil
}

// steer applies the controls set since the last look: a seek reopens the
// capture, a speed change or a pause moves the pace's origin to where the
// replay has got to, so that the recorded gaps go on from there. It
// reports whether the replay is paused.
func (p *replayPass) steer() (paused bool, err error) {
	r := p.r
	r.mu.Lock()
	seek, speed := r.seekTo, r.speedLocked()
	paused, r.seekTo = r.paused, 0
	r.mu.Unlock()
	if seek != 0 {
		return paused, p.open(seek)
	}
	if p.pace.set {
		now := time.Now()
		limit := p.high
		if p.have {
			limit = max(p.high, p.u.TS)
		}
		switch {
		case paused && !p.paused, !paused && !p.paused && speed != p.speed:
			// Pausing, or a new speed: the pace starts again from the
			// position reached.
			p.pace = replayClock{wall: now, pos: max(p.pace.at(now, p.speed, limit), p.high), set: true}
		case !paused && p.paused:
			p.pace.wall = now // resuming: from the position reached when paused
		}
	}
	p.paused = paused
	p.speed = speed
	return paused, nil
}
