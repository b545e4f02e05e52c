package client

import (
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// Quote is the local record of a symbol: every field received so far,
// merged.
type Quote struct {
	Symbol  string
	Seq     uint64      // of the newest message merged
	TS      time.Time   // server ingest time of the newest update merged
	Delayed bool        // the delayed tier
	Fields  FieldValues // field name → latest value
}

// Change is what one or more messages changed in a local record.
type Change struct {
	Symbol   string
	Seq      uint64      // of the newest message folded in
	TS       time.Time   // server ingest time of that message
	Fields   FieldValues // the fields whose value changed, with their new values
	Removed  []string    // fields the record no longer holds (a narrower snapshot)
	Snapshot bool        // a snapshot message brought (part of) it: subscribe, resync, resume
}

// merge folds a later change for the same symbol into c.
func (c *Change) merge(later *Change) {
	c.Seq, c.TS = later.Seq, later.TS
	c.Snapshot = c.Snapshot || later.Snapshot
	for _, f := range later.Removed {
		delete(c.Fields, f)
		if !slices.Contains(c.Removed, f) {
			c.Removed = append(c.Removed, f)
		}
	}
	for f, v := range later.Fields {
		c.Fields[f] = v
		c.Removed = slices.DeleteFunc(c.Removed, func(r string) bool { return r == f })
	}
}

// latencyWindow is how many recent update latencies Latency summarizes.
const latencyWindow = 1024

// Latency summarizes recent delivery latencies: the time from the
// server's ingest of an update (the message's ts) to its arrival here.
// It assumes the server's and this machine's clocks agree; snapshots and
// delayed messages are not counted.
type Latency struct {
	N    int           // updates measured (at most the last 1024)
	Last time.Duration // of the newest
	P50  time.Duration
	P99  time.Duration
	Max  time.Duration
}

// book is the local records, the changes not yet taken from the Changes
// channel, and the latency window. Its methods are safe for concurrent use.
type book struct {
	mu      sync.Mutex
	quotes  map[string]*Quote
	pending map[string]*Change // conflated, for the Changes channel
	order   []string           // symbols of pending, oldest first
	lat     []time.Duration    // ring
	latN    int                // measurements so far
	wake    chan struct{}      // capacity 1: the pump has something to send
}

func newBook() *book {
	return &book{
		quotes:  make(map[string]*Quote),
		pending: make(map[string]*Change),
		lat:     make([]time.Duration, latencyWindow),
		wake:    make(chan struct{}, 1),
	}
}

// apply merges a snapshot or update message and returns the change it
// made (nil if none). A snapshot replaces the record (only fields whose
// value differs count as changed); an update merges unless it is older
// than what the record holds.
func (b *book) apply(m *Message, now time.Time) *Change {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.quotes[m.Symbol]
	if m.Type == TypeUpdate && !m.Delayed {
		b.lat[b.latN%latencyWindow] = now.Sub(time.UnixMicro(m.TS))
		b.latN++
	}
	ch := &Change{Symbol: m.Symbol, Seq: m.Seq, TS: time.UnixMicro(m.TS), Fields: FieldValues{}, Snapshot: m.Type == TypeSnapshot}
	switch {
	case q == nil:
		q = &Quote{Symbol: m.Symbol, Fields: FieldValues{}}
		b.quotes[m.Symbol] = q
	case m.Type == TypeUpdate && m.Seq != 0 && m.Seq <= q.Seq:
		return nil // older than what we hold: a late duplicate
	case m.Type == TypeSnapshot:
		for f := range q.Fields {
			if _, ok := m.Fields[f]; !ok {
				ch.Removed = append(ch.Removed, f)
				delete(q.Fields, f)
			}
		}
	}
	for f, v := range m.Fields {
		if old, ok := q.Fields[f]; !ok || old != v {
			ch.Fields[f] = v
			q.Fields[f] = v
		}
	}
	q.Seq, q.TS, q.Delayed = m.Seq, ch.TS, m.Delayed
	if len(ch.Fields) == 0 && len(ch.Removed) == 0 {
		return nil
	}
	sort.Strings(ch.Removed)
	b.queueLocked(ch)
	return ch
}

// queueLocked adds a change for the Changes channel, folding it into one
// already pending for its symbol, and wakes the pump.
func (b *book) queueLocked(ch *Change) {
	if p := b.pending[ch.Symbol]; p != nil {
		p.merge(ch)
	} else {
		c := *ch
		c.Fields = maps.Clone(ch.Fields)
		c.Removed = slices.Clone(ch.Removed)
		b.pending[ch.Symbol] = &c
		b.order = append(b.order, ch.Symbol)
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest pending change.
func (b *book) next() (Change, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.order) > 0 {
		sym := b.order[0]
		b.order = b.order[1:]
		if p := b.pending[sym]; p != nil {
			delete(b.pending, sym)
			return *p, true
		}
	}
	b.order = nil // let the backing array go
	return Change{}, false
}

// drop forgets the records of syms and their pending changes.
func (b *book) drop(syms []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range syms {
		delete(b.quotes, s)
		if b.pending[s] != nil {
			delete(b.pending, s)
			b.order = slices.DeleteFunc(b.order, func(o string) bool { return o == s })
		}
	}
}

func (b *book) get(sym string) (Quote, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.quotes[sym]
	if q == nil {
		return Quote{}, false
	}
	c := *q
	c.Fields = maps.Clone(q.Fields)
	return c, true
}

func (b *book) symbols() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.quotes))
}

func (b *book) latency() Latency {
	b.mu.Lock()
	n := min(b.latN, latencyWindow)
	if n == 0 {
		b.mu.Unlock()
		return Latency{}
	}
	last := b.lat[(b.latN-1)%latencyWindow]
	s := slices.Clone(b.lat[:n])
	b.mu.Unlock()
	slices.Sort(s)
	return Latency{N: n, Last: last, P50: s[(n-1)/2], P99: s[(n-1)*99/100], Max: s[n-1]}
}
