package simulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Summary describes a capture as a whole.
type Summary struct {
	Updates int64 // lines holding an update (blank lines not counted)
	First   int64 // ts of the first line, Unix microseconds
	Last    int64 // ts of the last line
}

// Span returns the recorded time between the first and the last update.
func (s Summary) Span() time.Duration { return time.Duration(s.Last-s.First) * time.Microsecond }

// Window returns the summary of the part of the capture from start to end
// (Unix µs; zero: the capture's own first or last ts), its Updates
// estimated in proportion to the recorded time it spans.
func (s Summary) Window(start, end int64) Summary {
	w := s
	if start > 0 {
		w.First = max(s.First, start)
	}
	if end > 0 {
		w.Last = min(s.Last, end)
	}
	switch {
	case w.Last < w.First:
		w.Updates, w.Last = 0, w.First
	case w != s && s.Last > s.First:
		w.Updates = int64(float64(s.Updates) * float64(w.Last-w.First) / float64(s.Last-s.First))
	}
	return w
}

// Summarize reads a capture through, counting its lines and finding the
// first and last ts without parsing the updates in full (Next still checks
// each line when replayed). It is much faster than reading with Next.
func Summarize(r io.Reader) (Summary, error) { return summarize(context.Background(), r) }

// summarize is Summarize, ending with ctx.Err() when ctx ends first.
func summarize(ctx context.Context, r io.Reader) (Summary, error) {
	cr, err := NewCaptureReader(r)
	if err != nil {
		return Summary{}, err
	}
	defer cr.Close()
	var s Summary
	for cr.sc.Scan() {
		cr.line++
		if cr.line%ctxCheckEvery == 0 && ctx.Err() != nil {
			return s, ctx.Err()
		}
		b := cr.sc.Bytes()
		if isBlank(bytes.TrimSuffix(b, []byte{'\r'})) {
			continue
		}
		ts, ok := findTS(b)
		if !ok {
			return s, &CaptureError{Line: cr.line, Err: errors.New(`no integer "ts"`)}
		}
		if s.Updates == 0 {
			s.First = ts
		}
		s.Last = ts
		s.Updates++
	}
	if err := cr.sc.Err(); err != nil {
		return s, &CaptureError{Line: cr.line + 1, Err: fmt.Errorf("unreadable capture: %w", err)}
	}
	return s, nil
}

// findTS returns the integer after the last "ts": of a line; field values
// are JSON strings, so the key is the only such text outside the symbol
// and values, which never contain a quote.
func findTS(b []byte) (int64, bool) {
	i := bytes.LastIndex(b, []byte(`"ts":`))
	if i < 0 {
		return 0, false
	}
	b = bytes.TrimLeft(b[i+len(`"ts":`):], " \t")
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	ts, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return ts, err == nil
}

// Progress is a replay's state at one moment.
type Progress struct {
	Sent     int64     // updates delivered since Run began, all passes
	Pass     int       // the pass under way, from 1; 0 before Run
	InPass   int64     // updates delivered in this pass
	Position time.Time // recorded ts of the last update delivered; zero before the first
	Rate     float64   // updates per second delivered over about the last second (over the whole run once Done)
	Started  time.Time // when Run began
	Done     bool      // Run has returned
	Paused   bool      // held by Pause
	Speed    Speed     // the speed in force
}

// Remaining estimates the wall time left in this pass, given the capture's
// Summary and the replay speed; ok is false when there is nothing to go on
// yet.
func (p Progress) Remaining(s Summary, speed Speed) (d time.Duration, ok bool) {
	if p.Position.IsZero() {
		return 0, false
	}
	if speed < MaxSpeed {
		left := time.Duration(s.Last-p.Position.UnixMicro()) * time.Microsecond
		return max(time.Duration(float64(left)/float64(speed)), 0), true
	}
	if p.Rate <= 0 {
		return 0, false
	}
	return time.Duration(float64(max(s.Updates-p.InPass, 0)) / p.Rate * float64(time.Second)), true
}

// rateMeter measures a rate over windows of about a second.
type rateMeter struct {
	start time.Time
	count int64
	rate  float64 // of the last full window
}

// add counts one event at now.
func (m *rateMeter) add(now time.Time) {
	m.count++
	if d := now.Sub(m.start); d >= time.Second {
		m.rate = float64(m.count) / d.Seconds()
		m.start, m.count = now, 0
	}
}

// at returns the rate at now: that of the last full window, or lower when
// the current window has run long without events, or that of the current
// window before the first is full.
func (m *rateMeter) at(now time.Time) float64 {
	d := now.Sub(m.start)
	if d >= 2*time.Second || (m.rate == 0 && d >= 100*time.Millisecond) {
		return float64(m.count) / d.Seconds()
	}
	return m.rate
}

// Format renders p as one line for a progress display: updates sent, rate,
// position in the capture and the time left in this pass, e.g.
// "pass 2: 12345 updates sent, 2000/s, at 2024-01-02T15:04:05Z (41%), 1m30s left".
func (p Progress) Format(s Summary, speed Speed) string {
	var b strings.Builder
	if p.Pass > 1 {
		fmt.Fprintf(&b, "pass %d: ", p.Pass)
	}
	fmt.Fprintf(&b, "%d updates sent, %.0f/s", p.Sent, p.Rate)
	if !p.Position.IsZero() {
		fmt.Fprintf(&b, ", at %s", p.Position.UTC().Format(time.RFC3339))
		if span := s.Last - s.First; span > 0 {
			done := float64(p.Position.UnixMicro()-s.First) / float64(span)
			fmt.Fprintf(&b, " (%.0f%%)", 100*min(max(done, 0), 1))
		}
	}
	switch left, ok := p.Remaining(s, speed); {
	case p.Done:
		b.WriteString(", done")
	case p.Paused:
		b.WriteString(", paused")
	case ok:
		fmt.Fprintf(&b, ", %s left", left.Round(time.Second))
	}
	return b.String()
}
