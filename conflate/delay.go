package conflate

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	"tickerd/feed"
)

// DelayConfig configures a DelayLine.
type DelayConfig struct {
	// Delay is how long after its ingest time a change shows in the
	// mirror, at least; required, > 0 (rounded up to a microsecond).
	Delay time.Duration
	// MaxBytes bounds the estimated memory of the buffered changes (see
	// recordBytes, slotBytes and valueBytes). Past it the buffer is
	// compacted, which coarsens the delayed view in time but never shows a
	// change early. 0 means 256 MiB.
	MaxBytes int64
	// Granularity is the width of the time buckets changes are gathered
	// in: while the buffer is within MaxBytes, a change shows between
	// Delay and Delay+Granularity after its ingest time. 0 means
	// Delay/1000 clamped to [10ms, 1s].
	Granularity time.Duration
}

const (
	defaultMaxBytes = 256 << 20

	// The estimated memory of the buffer: recordBytes per record, slotBytes
	// per value slot of the records (a record's slots double as it gains
	// fields, from 4), and valueBytes per field value held: a decimal's
	// big.Int of one word and its text, which the record may be the last
	// to hold once the source has moved on.
	recordBytes = int64(unsafe.Sizeof(rec{}))
	slotBytes   = int64(unsafe.Sizeof(feed.Value{}))
	valueBytes  = 64

	// keepBuckets is how many applied buckets are kept for reuse, with
	// their storage, if each holds at most MaxBytes/keepBuckets.
	keepBuckets = 16
)

// DelayLine feeds a mirror cache with the changes of a source cache, each
// applied once its ingest time is Delay old, so that the mirror shows
// every symbol as it was Delay ago, conflated like the source. The mirror
// carries the source's seqs: a mirror record at seq N holds the source's
// values as of seq N for the fields it has.
//
// Changes are buffered in time buckets by ingest time; within a bucket a
// symbol has one record, into which its later changes are merged. A bucket
// is applied once now >= its end + Delay, so the mirror never holds a value
// stamped after now - Delay. When the buffer outgrows MaxBytes, adjacent
// buckets are merged into the later one and new buckets are made twice as
// wide (up to Delay); when it shrinks below a quarter of MaxBytes, new
// buckets narrow again. Two buckets merge only while the merged one spans
// at most Delay, or is due already, so that under any load a change shows
// at most Delay later than its time; the price is that when MaxBytes
// cannot hold a few records per symbol, the buffer holds more than
// MaxBytes: at most 6 records per symbol (see compactLocked).
//
// The line taps its source: every change Apply makes is copied into the
// buffer under one mutex, held for a map lookup and a copy of the changed
// values, so the changes of all symbols pass through it one at a time. Cache, Delay and Stats are safe
// for concurrent use; Run is called by one goroutine.
type DelayLine struct {
	src, mirror *Cache
	delay       int64 // µs
	base, gmax  int64 // narrowest and widest new bucket, µs
	maxBytes    int64
	now         func() int64 // Unix µs
	wake        chan struct{}
	due         []*bucket   // Run's scratch
	u           feed.Update // Run's scratch

	mu          sync.Mutex // guards the fields below; the tap takes it under an entry lock
	g           int64      // width of new buckets, µs
	buckets     []*bucket  // oldest first; each ends before the next starts
	lastID      uint64     // of the newest bucket made
	syms        map[string]*symLine
	records     int
	bytes       int64
	compactions uint64
	applied     uint64
	free        []*bucket
}

// bucket holds the changes stamped in [start, end), one record per symbol,
// and changes stamped earlier that arrived after a newer bucket was made.
// Records and their values live in two slices, reused when the bucket is.
type bucket struct {
	id         uint64 // unique: a reused bucket gets a new one
	start, end int64  // Unix µs
	recs       []rec
	vals       []feed.Value // the records' value slots
	bytes      int64        // estimated memory of recs and vals
}

// rec is one symbol's merged changes within a bucket: set the fields that
// changed, their newest values in the bucket's vals at off+pos[f], ts and
// seq those of the newest change.
type rec struct {
	sl      *symLine
	seq     uint64
	ts      int64
	off     int32 // first slot in vals
	n, room uint8 // slots used and held
	set     feed.FieldSet
	pos     [feed.NumFields]uint8
}

// symLine is the line's state of one symbol.
type symLine struct {
	name  string
	tailB uint64 // bucket holding the symbol's newest record (if still buffered)
	tailI int32  // the record's index there
	markB uint64 // bucket being merged into, if it holds the symbol, ...
	markI int32  // ... at this index
}

// NewDelayLine taps src (replacing any tap it has) and returns a delay line
// feeding a new mirror cache. Symbols src already holds are buffered as
// they are now, stamped with their ingest time. Nothing reaches the mirror
// until Run runs. It panics if cfg.Delay is not positive.
func NewDelayLine(src *Cache, cfg DelayConfig) *DelayLine {
	if cfg.Delay <= 0 {
		panic("conflate: DelayConfig.Delay must be positive")
	}
	delay := max((cfg.Delay + time.Microsecond - 1).Microseconds(), 1)
	base := cfg.Granularity.Microseconds()
	if base <= 0 {
		base = min(max(delay/1000, (10*time.Millisecond).Microseconds()), time.Second.Microseconds())
	}
	d := &DelayLine{
		src:      src,
		mirror:   New(),
		delay:    delay,
		base:     base,
		gmax:     max(delay, base),
		maxBytes: cfg.MaxBytes,
		now:      func() int64 { return time.Now().UnixMicro() },
		wake:     make(chan struct{}, 1),
		g:        base,
		syms:     make(map[string]*symLine),
	}
	if d.maxBytes <= 0 {
		d.maxBytes = defaultMaxBytes
	}
	src.SetTap(d.tap)
	d.seed()
	return d
}

// Cache returns the mirror: the delayed cache.
func (d *DelayLine) Cache() *Cache { return d.mirror }

// Delay returns the configured delay.
func (d *DelayLine) Delay() time.Duration { return time.Duration(d.delay) * time.Microsecond }

// tap is the source's Tap.
func (d *DelayLine) tap(sym string, seq uint64, ts int64, changed feed.FieldSet, values *[feed.NumFields]feed.Value) {
	d.mu.Lock()
	d.addLocked(sym, seq, ts, changed, values)
	d.mu.Unlock()
}

// seed buffers the symbols src held before the tap, oldest first, each as
// one record of all its fields. A symbol the tap has seen already is
// skipped: the first change the line sees of a symbol carries the whole
// record (see addLocked).
func (d *DelayLine) seed() {
	type held struct {
		e  *Entry
		ts int64
	}
	var hs []held
	for i := range d.src.shards {
		for _, e := range *d.src.shards[i].syms.Load() {
			e.mu.Lock()
			if e.cur.Seq > 0 {
				hs = append(hs, held{e, e.cur.TS})
			}
			e.mu.Unlock()
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].ts < hs[j].ts })
	for _, h := range hs {
		e := h.e
		e.mu.Lock() // an entry with data is never removed
		d.mu.Lock()
		if v := e.cur; d.syms[e.sym] == nil {
			d.addLocked(e.sym, v.Seq, v.TS, v.Set, &v.Values)
		}
		d.mu.Unlock()
		e.mu.Unlock()
	}
}

// addLocked buffers a change: into the newest bucket if the change is
// stamped before its end (so a symbol's changes stay in order and none is
// due before its time), else into a new bucket. The first change of a
// symbol the line sees carries every field that has a value, so that the
// mirror gets whole records even of symbols src held before the tap.
func (d *DelayLine) addLocked(sym string, seq uint64, ts int64, changed feed.FieldSet, values *[feed.NumFields]feed.Value) {
	sl := d.syms[sym]
	if sl == nil {
		sl = &symLine{name: sym}
		d.syms[sym] = sl
		for f := range feed.NumFields {
			if !values[f].IsZero() {
				changed = changed.With(f)
			}
		}
	}
	var b *bucket
	if n := len(d.buckets); n > 0 && ts < d.buckets[n-1].end {
		b = d.buckets[n-1]
	} else {
		b = d.newBucketLocked(ts)
	}
	before := b.bytes
	var r *rec
	if sl.tailB == b.id {
		r = &b.recs[sl.tailI]
	} else {
		r = b.add(sl, changed.Len())
		sl.tailB, sl.tailI = b.id, int32(len(b.recs)-1)
		d.records++
	}
	for f, rest, ok := changed.Next(); ok; f, rest, ok = rest.Next() {
		*b.slot(r, f) = values[f]
	}
	r.ts, r.seq = ts, seq
	d.bytes += b.bytes - before
	if d.bytes > d.maxBytes {
		d.compactLocked()
	}
}

// add appends an empty record of sl with room for n values.
func (b *bucket) add(sl *symLine, n int) *rec {
	b.recs = append(b.recs, rec{sl: sl})
	r := &b.recs[len(b.recs)-1]
	b.bytes += recordBytes
	b.grow(r, n)
	return r
}

// slot returns where r's value of f is kept, making room for it if r
// does not hold f yet.
func (b *bucket) slot(r *rec, f feed.Field) *feed.Value {
	if !r.set.Has(f) {
		if r.n == r.room {
			b.grow(r, int(r.n)+1)
		}
		r.pos[f] = r.n
		r.n++
		r.set = r.set.With(f)
		b.bytes += valueBytes
	}
	return &b.vals[int(r.off)+int(r.pos[f])]
}

// grow moves r's values to new slots at the end of vals, at least 4 and
// twice as many as before, and room for n values.
func (b *bucket) grow(r *rec, n int) {
	c := max(4, 2*int(r.room))
	for c < n {
		c *= 2
	}
	off := len(b.vals)
	b.vals = slices.Grow(b.vals, c)[:off+c]
	copy(b.vals[off:], b.vals[r.off:int(r.off)+int(r.n)])
	r.off, r.room = int32(off), uint8(c)
	b.bytes += slotBytes * int64(c)
}

// newBucketLocked appends a bucket holding ts, of the current width,
// narrowing it first if the buffer is well under budget.
func (d *DelayLine) newBucketLocked(ts int64) *bucket {
	if d.g > d.base && d.bytes < d.maxBytes/4 {
		d.g = max(d.g/2, d.base)
	}
	start := ts / d.g * d.g
	if start > ts { // negative ts
		start -= d.g
	}
	n := len(d.buckets)
	if n > 0 {
		start = max(start, d.buckets[n-1].end)
	}
	var b *bucket
	if k := len(d.free); k > 0 {
		b = d.free[k-1]
		d.free = d.free[:k-1]
	} else {
		b = new(bucket)
	}
	d.lastID++
	b.id, b.start, b.end = d.lastID, start, start+d.g
	d.buckets = append(d.buckets, b)
	if n == 0 {
		select { // Run sleeps with no timer while nothing is buffered
		case d.wake <- struct{}{}:
		default:
		}
	}
	return b
}

// compactLocked merges buckets pairwise, each into the later one, until the
// buffer is within budget; every pass that merges doubles the width of new
// buckets, up to gmax. Merging into the later bucket delays changes, never
// advances them, and a symbol in both buckets collapses to one record.
//
// Two buckets merge only if the merged one spans at most gmax (Delay) or
// is due already, so no change waits more than Delay beyond its due time.
// When no two may merge, the buffer is left over budget. It then has at
// most 6 buckets, so at most 6 records per symbol: all but the oldest are
// not due, so they end after now-Delay and each spans at most Delay; new
// buckets start at or before now (ingest stamps from the clock Run uses),
// so buckets 1..n lie within 3×Delay; and every adjacent pair spans more
// than Delay, so at most two disjoint pairs fit. The next change tries
// again: a look at those few buckets.
func (d *DelayLine) compactLocked() {
	now := d.now()
	for d.bytes > d.maxBytes {
		merged := false
		out := d.buckets[:0]
		for i := 0; i < len(d.buckets); i++ {
			a := d.buckets[i]
			if i+1 < len(d.buckets) {
				if b := d.buckets[i+1]; b.end-a.start <= d.gmax || b.end+d.delay <= now {
					d.mergeLocked(a, b)
					a, merged = b, true
					i++
				}
			}
			out = append(out, a)
		}
		clear(d.buckets[len(out):])
		d.buckets = out
		if !merged {
			return
		}
		d.compactions++
		d.g = min(2*d.g, d.gmax)
	}
}

// mergeLocked moves the records of a into b, the next bucket, folding a
// record of a symbol b holds too into b's (whose values are newer), and
// recycles a.
func (d *DelayLine) mergeLocked(a, b *bucket) {
	d.bytes -= a.bytes + b.bytes
	d.records -= len(a.recs)
	for i := range b.recs {
		sl := b.recs[i].sl
		sl.markB, sl.markI = b.id, int32(i)
	}
	for i := range a.recs {
		ra := &a.recs[i]
		sl := ra.sl
		var rb *rec
		if sl.markB == b.id {
			rb = &b.recs[sl.markI]
		} else {
			rb = b.add(sl, int(ra.n))
			rb.seq, rb.ts = ra.seq, ra.ts
			if sl.tailB == a.id {
				sl.tailB, sl.tailI = b.id, int32(len(b.recs)-1)
			}
			d.records++
		}
		for f, rest, ok := (ra.set &^ rb.set).Next(); ok; f, rest, ok = rest.Next() {
			*b.slot(rb, f) = a.vals[int(ra.off)+int(ra.pos[f])]
		}
	}
	b.start = a.start
	d.bytes += b.bytes
	a.reset()
	d.recycleLocked(a)
}

// reset empties b, dropping the references its values hold.
func (b *bucket) reset() {
	clear(b.vals)
	b.vals = b.vals[:0]
	b.recs = b.recs[:0]
	b.bytes = 0
}

// recycleLocked keeps the emptied bucket b for reuse if its storage is not
// too big.
func (d *DelayLine) recycleLocked(b *bucket) {
	held := recordBytes*int64(cap(b.recs)) + slotBytes*int64(cap(b.vals))
	if len(d.free) < keepBuckets && held <= d.maxBytes/keepBuckets {
		d.free = append(d.free, b)
	}
}

// Run applies the buckets that come due to the mirror until ctx is done.
// It sleeps until the oldest bucket is due (newer buckets are due later),
// or, with nothing buffered, until the tap adds a bucket. Call it from one
// goroutine.
func (d *DelayLine) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for ctx.Err() == nil {
		if wait, ok := d.applyDue(); ok {
			t.Reset(wait)
		} else {
			t.Stop()
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-d.wake:
		}
	}
}

// applyDue applies every bucket due now and returns how long until the
// next one is due; ok is false when nothing is buffered.
func (d *DelayLine) applyDue() (wait time.Duration, ok bool) {
	for {
		due, wait, ok := d.takeDue(d.due[:0])
		d.due = due
		if len(due) == 0 {
			return wait, ok
		}
		n := 0
		for _, b := range due {
			for i := range b.recs {
				r := &b.recs[i]
				d.u.Symbol, d.u.TS, d.u.Set = r.sl.name, r.ts, r.set
				for f, rest, ok := r.set.Next(); ok; f, rest, ok = rest.Next() {
					d.u.Values[f] = b.vals[int(r.off)+int(r.pos[f])]
				}
				d.mirror.ApplySeq(&d.u, r.seq)
			}
			n += len(b.recs)
			b.reset()
		}
		d.u = feed.Update{}
		d.mu.Lock()
		d.applied += uint64(n)
		for i, b := range due {
			d.recycleLocked(b)
			due[i] = nil
		}
		d.mu.Unlock()
	}
}

// takeDue removes the buckets due now from the buffer, appending them to
// due, and returns how long until the next is due.
func (d *DelayLine) takeDue(due []*bucket) (_ []*bucket, wait time.Duration, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for len(d.buckets) > 0 && d.buckets[0].end+d.delay <= now {
		b := d.buckets[0]
		d.buckets[0] = nil
		d.buckets = d.buckets[1:]
		d.records -= len(b.recs)
		d.bytes -= b.bytes
		due = append(due, b)
	}
	if len(d.buckets) == 0 {
		return due, 0, false
	}
	return due, time.Duration(d.buckets[0].end+d.delay-now) * time.Microsecond, true
}

// DelayStats describe a delay line's buffer.
type DelayStats struct {
	Records     int           // buffered per-symbol change records
	Bytes       int64         // their estimated memory
	Buckets     int           // buffered buckets
	Granularity time.Duration // width of new buckets
	Compactions uint64        // merge passes made to stay under MaxBytes
	Applied     uint64        // records applied to the mirror
	// Lag is how far behind Delay the mirror is: now - Delay - the start
	// of the oldest buffered bucket (before which the mirror has every
	// change, bar ones that arrived stamped late), or 0 when that is not
	// positive or nothing is buffered. It stays under Granularity while
	// the line keeps up and MaxBytes holds the changes of Delay.
	Lag time.Duration
}

// Stats returns the line's current figures.
func (d *DelayLine) Stats() DelayStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := DelayStats{
		Records:     d.records,
		Bytes:       d.bytes,
		Buckets:     len(d.buckets),
		Granularity: time.Duration(d.g) * time.Microsecond,
		Compactions: d.compactions,
		Applied:     d.applied,
	}
	if len(d.buckets) > 0 {
		if lag := d.now() - d.delay - d.buckets[0].start; lag > 0 {
			st.Lag = time.Duration(lag) * time.Microsecond
		}
	}
	return st
}
