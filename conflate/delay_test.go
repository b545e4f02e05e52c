package conflate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"tickerd/feed"
	"tickerd/internal/streamtest"
)

const ms = int64(time.Millisecond / time.Microsecond)

// fakeLine returns a delay line on src whose clock reads *clock (Unix µs).
// Nothing runs it: the test calls applyDue.
func fakeLine(src *Cache, cfg DelayConfig, clock *int64) *DelayLine {
	d := NewDelayLine(src, cfg)
	d.now = func() int64 { return *clock }
	return d
}

// startLine returns a delay line on src with Run running until the test
// ends.
func startLine(t testing.TB, src *Cache, cfg DelayConfig) *DelayLine {
	d := NewDelayLine(src, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		src.SetTap(nil)
	})
	return d
}

// sameCaches reports how mirror differs from src in seq, TS, fields or
// values of any symbol, or nil.
func sameCaches(src, mirror *Cache) error {
	syms, msyms := src.Symbols(), mirror.Symbols()
	if len(syms) != len(msyms) {
		return fmt.Errorf("source has %d symbols, mirror %d", len(syms), len(msyms))
	}
	for _, sym := range syms {
		me := mirror.Get(sym)
		if me == nil {
			return fmt.Errorf("mirror lacks %s", sym)
		}
		if err := sameRecord(src.Get(sym).Read(), me.Read()); err != nil {
			return fmt.Errorf("%s: %w", sym, err)
		}
	}
	return nil
}

// sameRecord reports how the mirror view m differs from the source view v.
func sameRecord(v, m *View) error {
	if m.Seq != v.Seq || m.TS != v.TS || m.Set != v.Set {
		return fmt.Errorf("mirror seq %d ts %d fields %b, source seq %d ts %d fields %b",
			m.Seq, m.TS, m.Set, v.Seq, v.TS, v.Set)
	}
	for f, rest, ok := v.Set.Next(); ok; f, rest, ok = rest.Next() {
		if !m.Values[f].Equal(v.Values[f]) {
			return fmt.Errorf("seq %d %s: mirror %s, source %s", v.Seq, f, m.Values[f], v.Values[f])
		}
	}
	return nil
}

// recCost is the most a record of up to 4 fields is counted for.
func recCost(fields int64) int64 { return recordBytes + 4*slotBytes + fields*valueBytes }

func stamped(ts int64, sym string, kv ...string) *feed.Update {
	u := update(sym, kv...)
	u.TS = ts
	return u
}

// Changes gather per symbol in the bucket of their stamp, or the newest
// bucket if stamped earlier; a bucket applies at its end + delay, not a
// microsecond sooner.
func TestDelayLineBuckets(t *testing.T) {
	src := New()
	t0 := int64(1_000_000_000) * ms // a multiple of the bucket width
	clock := t0
	d := fakeLine(src, DelayConfig{Delay: time.Second, Granularity: 100 * time.Millisecond}, &clock)
	src.Apply(stamped(t0+10*ms, "A", "bid", "1"))
	src.Apply(stamped(t0+20*ms, "A", "bid", "2"))
	src.Apply(stamped(t0+30*ms, "A", "ask", "5"))
	src.Apply(stamped(t0+150*ms, "B", "bid", "1"))
	src.Apply(stamped(t0+50*ms, "A", "bid", "3")) // stamped late: joins the newest bucket
	// C gains a field at a time: its record grows past its first slots.
	for i, f := range []string{"bid", "ask", "bidSize", "askSize", "last", "lastSize", "bid", "volume", "open"} {
		src.Apply(stamped(t0+160*ms+int64(i), "C", f, fmt.Sprint(10+i)))
	}
	if st := d.Stats(); st.Records != 4 || st.Buckets != 2 {
		t.Fatalf("stats %+v, want 4 records in 2 buckets", st)
	}
	m := d.Cache()
	steps := []struct {
		at       int64         // clock
		wait     time.Duration // until the next bucket is due; 0: none buffered
		aSeq     uint64
		aTS      int64
		bid, ask string
		bSeq     uint64
	}{
		{t0 + 1100*ms - 1, time.Microsecond, 0, 0, "", "", 0},
		{t0 + 1100*ms, 100 * time.Millisecond, 3, t0 + 30*ms, "2", "5", 0},
		{t0 + 1200*ms - 1, time.Microsecond, 3, t0 + 30*ms, "2", "5", 0},
		{t0 + 1200*ms, 0, 4, t0 + 50*ms, "3", "5", 1},
	}
	for _, st := range steps {
		clock = st.at
		wait, ok := d.applyDue()
		if ok != (st.wait > 0) || wait != st.wait {
			t.Fatalf("at +%dµs: next due in %v (ok %v), want %v", st.at-t0, wait, ok, st.wait)
		}
		var a View
		if e := m.Get("A"); e != nil {
			a = *e.Read()
		}
		if a.Seq != st.aSeq || a.TS != st.aTS || a.Values[feed.Bid].String() != st.bid || a.Values[feed.Ask].String() != st.ask {
			t.Fatalf("at +%dµs: mirror A seq %d ts %d bid %q ask %q, want seq %d ts %d bid %q ask %q",
				st.at-t0, a.Seq, a.TS, a.Values[feed.Bid], a.Values[feed.Ask], st.aSeq, st.aTS, st.bid, st.ask)
		}
		if e := m.Get("B"); (e == nil && st.bSeq != 0) || (e != nil && e.Seq() != st.bSeq) {
			t.Fatalf("at +%dµs: mirror B, want seq %d", st.at-t0, st.bSeq)
		}
	}
	if st := d.Stats(); st.Records != 0 || st.Bytes != 0 || st.Buckets != 0 || st.Applied != 4 {
		t.Fatalf("stats %+v after everything applied", st)
	}
	if err := sameCaches(src, m); err != nil {
		t.Fatal(err)
	}
}

// A line put on a cache that holds data buffers what it holds, stamped as
// it is: old records show at once, recent ones after the delay, and the
// first change the line hears of a symbol brings its whole record.
func TestDelayLineSeedsHeldSymbols(t *testing.T) {
	src := New()
	t0 := int64(1_000_000_000) * ms
	src.Apply(stamped(t0-time.Hour.Microseconds(), "OLD", "bid", "1", "ask", "2"))
	src.Apply(stamped(t0-10*ms, "NEW", "bid", "3"))
	clock := t0
	d := fakeLine(src, DelayConfig{Delay: time.Second, Granularity: 100 * time.Millisecond}, &clock)
	// As the tap would be called for a symbol that changed between SetTap
	// and the seed: the line has not seen LATE yet.
	var vals [feed.NumFields]feed.Value
	vals[feed.Bid], vals[feed.Ask] = dec("7"), dec("8")
	d.tap("LATE", 5, t0, feed.FieldSet(0).With(feed.Bid), &vals)

	d.applyDue()
	m := d.Cache()
	if m.Get("OLD") == nil || m.Get("NEW") != nil || m.Get("LATE") != nil {
		t.Fatalf("at once: mirror holds %v, want only OLD", m.Symbols())
	}
	if err := sameRecord(src.Get("OLD").Read(), m.Get("OLD").Read()); err != nil {
		t.Fatal(err)
	}
	clock = t0 + 1100*ms
	d.applyDue()
	if err := sameRecord(src.Get("NEW").Read(), m.Get("NEW").Read()); err != nil {
		t.Fatal(err)
	}
	late := m.Get("LATE").Read()
	if late.Seq != 5 || late.Values[feed.Bid].String() != "7" || late.Values[feed.Ask].String() != "8" {
		t.Fatalf("LATE seq %d bid %s ask %s, want the whole record at seq 5", late.Seq, late.Values[feed.Bid], late.Values[feed.Ask])
	}
}

// sim drives a source and its delay line on a fake clock, one millisecond
// at a time, keeping every source version so that the mirror can be
// checked against the source as of any seq.
type sim struct {
	t     testing.TB
	src   *Cache
	d     *DelayLine
	clock int64
	rng   *rand.Rand
	syms  []string
	hist  map[string][]*View // by symbol, every version from seq 1
}

func newSim(t testing.TB, nsym int, cfg DelayConfig) *sim {
	s := &sim{t: t, src: New(), clock: int64(1_000_000_000) * ms, rng: rand.New(rand.NewPCG(1, 2)), hist: make(map[string][]*View)}
	s.d = fakeLine(s.src, cfg, &s.clock)
	for i := range nsym {
		s.syms = append(s.syms, fmt.Sprintf("S%03d", i))
	}
	return s
}

// tick applies n random changes stamped now; values come from a small set,
// so a field often changes and changes back within a bucket.
func (s *sim) tick(n int) {
	for range n {
		sym := s.syms[s.rng.IntN(len(s.syms))]
		u := stamped(s.clock, sym, "bid", fmt.Sprint(s.rng.IntN(3)))
		if s.rng.IntN(3) == 0 {
			u.Put(feed.Ask, dec(fmt.Sprint(s.rng.IntN(3))))
		}
		if s.src.Apply(u) {
			s.hist[sym] = append(s.hist[sym], s.src.Get(sym).Read())
		}
	}
}

// step moves the clock by dt, applies what is due and checks every mirror
// record: never stamped after now - delay, and equal to the source's
// record as of its seq.
func (s *sim) step(dt int64) {
	s.t.Helper()
	s.clock += dt
	s.d.applyDue()
	for _, sym := range s.syms {
		e := s.d.Cache().Get(sym)
		if e == nil {
			continue
		}
		m := e.Read()
		if m.TS > s.clock-s.d.delay {
			s.t.Fatalf("%s: mirror stamped %dµs, after now - delay", sym, m.TS-(s.clock-s.d.delay))
		}
		if err := sameRecord(s.hist[sym][m.Seq-1], m); err != nil {
			s.t.Fatalf("%s: %v", sym, err)
		}
	}
}

// Past MaxBytes the buffer merges buckets into later ones and widens new
// buckets; the mirror stays exact for its seqs and is never early; well
// under budget again, new buckets narrow back.
func TestDelayLineCompaction(t *testing.T) {
	const nsym = 20
	perRec := recCost(2)        // bid and ask at most
	budget := 8 * nsym * perRec // room for 6 per symbol, far less than 300 ms of changes
	s := newSim(t, nsym, DelayConfig{Delay: 300 * time.Millisecond, Granularity: 5 * time.Millisecond, MaxBytes: budget})
	widest := s.d.Stats().Granularity
	for range 600 {
		s.tick(4)
		if st := s.d.Stats(); st.Bytes > budget {
			t.Fatalf("%d bytes buffered, over MaxBytes %d: %+v", st.Bytes, budget, st)
		} else if st.Granularity > widest {
			widest = st.Granularity
		}
		s.step(ms)
	}
	st := s.d.Stats()
	if st.Compactions == 0 || widest <= 5*time.Millisecond {
		t.Fatalf("no compaction: %+v", st)
	}
	for range 700 { // quiet: everything comes due
		s.step(ms)
	}
	if err := sameCaches(s.src, s.d.Cache()); err != nil {
		t.Fatal(err)
	}
	for range 20 { // a tick now and then: new buckets narrow
		s.tick(1)
		s.step(50 * ms)
	}
	if g := s.d.Stats().Granularity; g != 5*time.Millisecond {
		t.Fatalf("granularity %v after the buffer emptied, widest %v; want back to 5ms", g, widest)
	}
}

// With MaxBytes below one record per symbol the line cannot meet it: it
// holds at most 6 records per symbol, and still shows every change at most
// a delay late (merges never push a change past Delay + Delay).
func TestDelayLineOverloadNeverStarves(t *testing.T) {
	const nsym = 50
	const delay = 200 * ms
	s := newSim(t, nsym, DelayConfig{
		Delay:       time.Duration(delay) * time.Microsecond,
		Granularity: 2 * time.Millisecond,
		MaxBytes:    nsym / 2 * recordBytes,
	})
	type change struct {
		seq uint64
		ts  int64
	}
	var changes []map[string]change // per ms, the last change of each symbol
	start := s.clock
	most := 0
	for range 1000 {
		s.tick(10)
		last := make(map[string]change)
		for sym, h := range s.hist {
			if v := h[len(h)-1]; v.TS == s.clock {
				last[sym] = change{v.Seq, v.TS}
			}
		}
		changes = append(changes, last)
		st := s.d.Stats()
		if st.Records > 6*nsym {
			t.Fatalf("%d records buffered for %d symbols: %+v", st.Records, nsym, st)
		}
		most = max(most, st.Records)
		s.step(ms)
		// Every change stamped 2×delay ago shows.
		if k := int((s.clock - start - 2*delay) / ms); k >= 0 {
			for sym, c := range changes[k] {
				if m := s.d.Cache().Get(sym); m == nil || m.Seq() < c.seq {
					t.Fatalf("%s seq %d stamped %dms ago is not in the mirror", sym, c.seq, (s.clock-c.ts)/ms)
				}
			}
		}
	}
	if st := s.d.Stats(); st.Compactions == 0 || most <= nsym/2 {
		t.Fatalf("not overloaded: at most %d records; %+v", most, st)
	}
}

// Apply with a delay line tapping it does not allocate while the changes
// merge into records the line holds.
func TestTappedApplyDoesNotAllocate(t *testing.T) {
	src := New()
	NewDelayLine(src, DelayConfig{Delay: time.Hour, Granularity: time.Hour})
	ups := [2]*feed.Update{update("IBM", "bid", "5", "ask", "6"), update("IBM", "bid", "6")}
	src.Apply(ups[0])
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		i++
		src.Apply(ups[i%2])
	}); n != 0 {
		t.Fatalf("%v allocs per tapped apply", n)
	}
}

type notifyFunc func()

func (f notifyFunc) Notify() { f() }

// Run applies each bucket at its due time, never before: from a timer to
// the oldest bucket, and woken when a change arrives with nothing
// buffered. (The exact wait is pinned by TestDelayLineBuckets; here, on a
// shared machine, a late timer is allowed a scheduling hiccup, not a lost
// wake-up nor polling at the scale of the delay.)
func TestDelayLineAppliesOnTime(t *testing.T) {
	const delay, g = 200 * time.Millisecond, 10 * time.Millisecond
	src := New()
	d := startLine(t, src, DelayConfig{Delay: delay, Granularity: g})
	got := make(chan int64, 8)
	var h Watch
	d.Cache().Watch(&h, "T", notifyFunc(func() { got <- time.Now().UnixMicro() }))
	defer h.Stop()
	var dues []int64
	tick := func(i int) {
		ts := time.Now().UnixMicro()
		src.Apply(stamped(ts, "T", "bid", fmt.Sprint(i)))
		dues = append(dues, ts/g.Microseconds()*g.Microseconds()+g.Microseconds()+delay.Microseconds())
	}
	check := func() {
		t.Helper()
		for _, due := range dues {
			var at int64
			select {
			case at = <-got:
			case <-time.After(delay + time.Second):
				t.Fatalf("not applied %v after due", time.Second)
			}
			t.Logf("applied %dµs after due", at-due)
			if at < due || at-due > 150*ms {
				t.Errorf("applied %dµs after due, want within [0, 150ms]", at-due)
			}
		}
		dues = dues[:0]
	}
	for i := range 3 { // three buckets: the timer goes from one to the next
		tick(i)
		time.Sleep(100 * time.Millisecond) // pacing the feed
	}
	check()
	streamtest.WaitFor(t, time.Second, "mirror caught up", func() error {
		if st := d.Stats(); st.Buckets > 0 {
			return fmt.Errorf("%d buckets buffered", st.Buckets)
		}
		return nil
	})
	tick(3) // into an empty line: Run is woken to set its timer
	check()
}

// A line under a live feed from several goroutines, with Run: every
// mirror notification shows a record stamped at least a delay ago, at a
// seq higher than the last, no higher than the source's, with exactly the
// source's values as of that seq; once the feed stops the mirror becomes
// the source; and the buffer keeps within its bound.
func TestDelayLineLive(t *testing.T) {
	const (
		nsym, writers = 120, 4
		delay         = 300 * time.Millisecond
		g             = 10 * time.Millisecond
		feedFor       = 700 * time.Millisecond
	)
	perRec := recCost(3) // bid, ask, volume at most
	cases := []struct {
		name     string
		maxBytes int64
		widest   time.Duration // widest bucket
		bound    func(DelayStats) error
	}{
		{"roomy", 0, g, func(st DelayStats) error {
			if st.Compactions > 0 {
				return fmt.Errorf("compacted with 256 MiB: %+v", st)
			}
			return nil
		}},
		{"tight", 8 * nsym * perRec, delay, func(st DelayStats) error {
			if st.Bytes > 8*nsym*perRec {
				return fmt.Errorf("over MaxBytes: %+v", st)
			}
			return nil
		}},
		{"overloaded", nsym / 2 * recordBytes, delay, func(st DelayStats) error {
			if st.Records > 6*nsym {
				return fmt.Errorf("over 6 records per symbol: %+v", st)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := New()
			d := startLine(t, src, DelayConfig{Delay: delay, Granularity: g, MaxBytes: tc.maxBytes})
			syms := make([]string, nsym)
			for i := range syms {
				syms[i] = fmt.Sprintf("L%03d", i)
			}
			var mu sync.Mutex
			hist := make(map[string]map[uint64]*View) // every source version
			type version struct {
				sym string
				v   *View
			}
			var seen []version // every mirror version notified
			for _, sym := range syms {
				hist[sym] = make(map[uint64]*View)
				var h Watch
				var last uint64
				d.Cache().Watch(&h, sym, notifyFunc(func() {
					// Runs on Run's goroutine after the mirror entry is
					// unlocked: reading it here is safe.
					now := time.Now().UnixMicro()
					v := h.Entry().Read()
					if v.TS > now-delay.Microseconds() {
						t.Errorf("%s seq %d stamped %dµs ago, under the delay", sym, v.Seq, now-v.TS)
					}
					if v.Seq <= last {
						t.Errorf("%s: seq %d after %d", sym, v.Seq, last)
					}
					last = v.Seq
					if s := src.Get(sym).Seq(); v.Seq > s {
						t.Errorf("%s: mirror at seq %d, source at %d", sym, v.Seq, s)
					}
					mu.Lock()
					seen = append(seen, version{sym, v})
					mu.Unlock()
				}))
				t.Cleanup(h.Stop)
			}

			// The feed runs for feedFor, and on until the mirror has moved
			// (it must, within 2×delay, however overloaded), for at most 5s.
			stop, giveUp := time.Now().Add(feedFor), time.Now().Add(5*time.Second)
			moved := func() bool { return d.Stats().Applied > 0 }
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 7))
					for n := 0; time.Now().Before(stop) || !moved() && time.Now().Before(giveUp); n++ {
						sym := syms[w+writers*rng.IntN(nsym/writers)]
						u := update(sym, "bid", fmt.Sprint(rng.IntN(3)))
						u.TS = 0 // stamped by the cache
						if rng.IntN(4) == 0 {
							u.Put(feed.Ask, dec(fmt.Sprint(rng.IntN(3))))
						}
						if rng.IntN(16) == 0 {
							u.Put(feed.Volume, dec(fmt.Sprint(n)))
						}
						if src.Apply(u) {
							v := src.Get(sym).Read() // this writer alone applies sym
							mu.Lock()
							hist[sym][v.Seq] = v
							mu.Unlock()
						}
						if n%16 == 0 {
							if err := tc.bound(d.Stats()); err != nil {
								t.Error(err)
								return
							}
						}
						if n%4 == 3 {
							time.Sleep(time.Millisecond) // pacing the feed
						}
					}
				}()
			}
			wg.Wait()
			st := d.Stats()
			if st.Applied == 0 {
				t.Errorf("nothing applied while the feed ran: %+v", st)
			}
			if tc.maxBytes > 0 && st.Compactions == 0 {
				t.Errorf("no compaction: %+v", st)
			}
			streamtest.WaitFor(t, delay+tc.widest+2*time.Second, "mirror equals source", func() error { return sameCaches(src, d.Cache()) })

			mu.Lock()
			defer mu.Unlock()
			versions := 0
			for _, h := range hist {
				versions += len(h)
			}
			for _, s := range seen {
				v := hist[s.sym][s.v.Seq]
				if v == nil {
					t.Fatalf("%s: the mirror showed seq %d, which the source never had", s.sym, s.v.Seq)
				}
				if err := sameRecord(v, s.v); err != nil {
					t.Fatalf("%s: %v", s.sym, err)
				}
			}
			t.Logf("%d source versions, %d mirror notifications; feed end %+v", versions, len(seen), st)
		})
	}
}
