package simulator

import (
	"context"
	"math"
	"time"

	"tickerd/feed"
)

// pace is the interval at which Run emits the ticks that have come due:
// short, so that the feed arrives spread out as a real one does rather than
// in bursts that every subscriber must absorb at once.
const pace = time.Millisecond

// ctxCheckEvery is how many updates Run and Generate emit between two looks
// at their context within one batch.
const ctxCheckEvery = 4096

// Run applies the initial record of every symbol to sink, then applies
// ticks in real time at the rate the Config and its scenario call for
// (Config.Rate updates per second for the steady walk) until ctx is done,
// and returns ctx.Err(). Ticks due are emitted in batches every few
// milliseconds against a running count, so the rate does not drift; after
// a stall of more than a second (a slow sink, a suspended process) the
// backlog is dropped rather than sent as a burst. Run reuses one
// feed.Update for every call of sink.Apply, which must not keep it; it
// allocates nothing per update beyond new decimal values.
func (s *Sim) Run(ctx context.Context, sink feed.Sink) error {
	var u feed.Update
	now := time.Now()
	s.origin = now
	for i := range s.syms {
		if i%ctxCheckEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		s.Initial(i, &u, now)
		sink.Apply(&u)
	}
	t := time.NewTicker(pace)
	defer t.Stop()
	// The backlog kept is one second's worth at the highest rate; sent
	// counts the ticks emitted since the start, dropped backlog included.
	maxBacklog := int64(math.Ceil(s.scn.sched.maxRate()))
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := time.Now()
		due := int64(s.scn.sched.due(now.Sub(s.origin)))
		if due-sent > maxBacklog {
			sent = due - 1 // forget the backlog, keep the pace from here
		}
		for n := int64(0); sent < due; n++ {
			if n%ctxCheckEvery == ctxCheckEvery-1 && ctx.Err() != nil {
				return ctx.Err()
			}
			s.Next(&u, now)
			sink.Apply(&u)
			sent++
		}
	}
}

// Generate writes a capture of d of simulated time to w as fast as it can:
// the initial record of every symbol stamped start, then the ticks of the
// Config and its scenario, each stamped (as ts and as the time field) when
// it is due: the k-th of the steady walk at start + k/Rate. It returns the
// number of updates written; if ctx ends first it returns what it wrote so
// far and ctx.Err(). It does not close w.
func (s *Sim) Generate(ctx context.Context, w *CaptureWriter, start time.Time, d time.Duration) (int64, error) {
	var u feed.Update
	var n int64
	startUS := start.UnixMicro()
	s.origin = start
	for i := range s.syms {
		if i%ctxCheckEvery == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		s.Initial(i, &u, start)
		u.TS = startUS
		if err := w.Write(&u); err != nil {
			return n, err
		}
		n++
	}
	ticks := int64(s.scn.sched.due(d) + 1e-9)
	for k := int64(1); k <= ticks; k++ {
		if k%ctxCheckEvery == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		off := s.scn.sched.at(k)
		s.Next(&u, start.Add(time.Duration(off)*time.Microsecond))
		u.TS = startUS + off
		if err := w.Write(&u); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
