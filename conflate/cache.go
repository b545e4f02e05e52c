package conflate

import (
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"tickerd/feed"
)

const numShards = 256

// Cache is the conflating snapshot cache. The zero value is not usable;
// call New. All methods are safe for concurrent use.
type Cache struct {
	seed   maphash.Seed
	shards [numShards]shard
	now    func() int64 // ingest clock, Unix microseconds
	tap    atomic.Pointer[Tap]
}

// Tap is told of every change Apply or ApplySeq makes, in seq order per
// symbol, with the
// entry's lock held: it must be quick, must not block and must not call back
// into the cache. values holds the record after the change (only the fields
// in changed changed); the tap must copy what it keeps (the array is reused).
type Tap func(sym string, seq uint64, ts int64, changed feed.FieldSet, values *[feed.NumFields]feed.Value)

// SetTap installs t as the cache's one tap, replacing any other; nil removes
// it. It is safe to call while Apply runs: Applies that started before it
// may still call the old tap. ApplySeq calls it too, with u.Set as the
// fields changed.
func (c *Cache) SetTap(t Tap) {
	if t == nil {
		c.tap.Store(nil)
		return
	}
	c.tap.Store(&t)
}

// shard is one slice of the symbol map. Symbols are created far less often
// than they are looked up, so the map is copied on write and read with a
// single atomic load: Apply takes no shard lock.
type shard struct {
	mu   sync.Mutex // serializes writers of syms
	syms atomic.Pointer[map[string]*Entry]
	_    [40]byte // keep shards on separate cache lines
}

// New returns an empty cache.
func New() *Cache {
	c := &Cache{seed: maphash.MakeSeed(), now: func() int64 { return time.Now().UnixMicro() }}
	for i := range c.shards {
		m := make(map[string]*Entry)
		c.shards[i].syms.Store(&m)
	}
	return c
}

func (c *Cache) shard(sym string) *shard {
	return &c.shards[maphash.String(c.seed, sym)%numShards]
}

// entry returns the entry of sym, creating it if create is set.
func (c *Cache) entry(sym string, create bool) *Entry {
	sh := c.shard(sym)
	e := (*sh.syms.Load())[sym]
	if e != nil || !create {
		return e
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := *sh.syms.Load()
	if e = old[sym]; e == nil {
		e = newEntry(sym)
		m := make(map[string]*Entry, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[sym] = e
		sh.syms.Store(&m)
	}
	return e
}

// Apply folds u into the cache. Fields whose value is unchanged are
// ignored; if any changed, the symbol gets its next seq, its ingest time
// (u.TS, or now when zero) and its watchers are notified. It reports whether
// anything changed. A tap (SetTap) is told of the change before the
// watchers. Apply does not keep u and does not allocate once the symbol
// exists.
func (c *Cache) Apply(u *feed.Update) bool {
	e := c.lockEntry(u.Symbol)
	changed := e.cur.changedBy(u)
	if changed == 0 {
		e.unchanged++
		e.mu.Unlock()
		return false
	}
	v := e.writableLocked()
	v.Seq++
	v.TS = u.TS
	if v.TS == 0 {
		v.TS = c.now()
	}
	for f, rest, ok := changed.Next(); ok; f, rest, ok = rest.Next() {
		v.Values[f] = u.Values[f]
		v.FSeq[f] = v.Seq
	}
	v.Set |= changed
	if t := c.tap.Load(); t != nil {
		(*t)(e.sym, v.Seq, v.TS, changed, &v.Values)
	}
	e.mu.Unlock()
	e.notify()
	return true
}

// ApplySeq folds u into the cache as change number seq of u.Symbol, for a
// cache that mirrors another one: u.Set names the fields that changed in
// the other cache after this symbol's current seq, up to seq, and u.Values
// their values as of seq. It is ignored (returns false) unless seq is
// greater than the symbol's current seq. Then the record's Seq becomes seq
// and its TS u.TS (now when zero), and every field in u.Set takes its value
// and FSeq = seq, even one whose value comes back to the one held: a
// View's ChangedSince(n) then never misses a field, whatever seq n, even
// one this cache skipped. If no value differs (the fields changed and
// changed back), watchers are not notified and ApplySeq returns false;
// otherwise they are notified as with Apply and it returns true.
func (c *Cache) ApplySeq(u *feed.Update, seq uint64) bool {
	e := c.lockEntry(u.Symbol)
	if seq <= e.cur.Seq {
		e.unchanged++
		e.mu.Unlock()
		return false
	}
	changed := e.cur.changedBy(u)
	v := e.writableLocked()
	v.Seq = seq
	v.TS = u.TS
	if v.TS == 0 {
		v.TS = c.now()
	}
	for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
		v.Values[f] = u.Values[f]
		v.FSeq[f] = seq
	}
	v.Set |= u.Set
	if changed == 0 {
		e.unchanged++
		e.mu.Unlock()
		return false
	}
	if t := c.tap.Load(); t != nil {
		(*t)(e.sym, seq, v.TS, u.Set, &v.Values)
	}
	e.mu.Unlock()
	e.notify()
	return true
}

// lockEntry returns the live entry of sym, created if need be, with its
// lock held.
func (c *Cache) lockEntry(sym string) *Entry {
	e := c.entry(sym, true)
	for {
		e.mu.Lock()
		if !e.dead {
			return e
		}
		e.mu.Unlock() // removed while we looked it up: take the live one
		e = c.entry(sym, true)
	}
}

// Get returns the entry of sym, or nil if the cache has never seen it.
// An entry may exist with no data yet (Seq 0) while someone watches it.
func (c *Cache) Get(sym string) *Entry { return c.entry(sym, false) }

// Symbols returns the symbols that hold data, sorted.
func (c *Cache) Symbols() []string {
	var out []string
	for i := range c.shards {
		sh := &c.shards[i]
		for sym, e := range *sh.syms.Load() {
			if e.Seq() > 0 {
				out = append(out, sym)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Stats are running totals of the cache.
type Stats struct {
	Symbols   int64  // symbols holding data
	Applied   uint64 // updates that changed something (the sum of seqs)
	Unchanged uint64 // updates dropped because they changed nothing
}

// Stats adds up the running totals. It visits every entry, so it is for
// metrics scrapes, not hot paths; the counts live in the entries so that
// Apply touches no shared counter.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		sh := &c.shards[i]
		for _, e := range *sh.syms.Load() {
			e.mu.Lock()
			if seq := e.cur.Seq; seq > 0 {
				st.Symbols++
				st.Applied += seq
			}
			st.Unchanged += e.unchanged
			e.mu.Unlock()
		}
	}
	return st
}

// Watch registers w to be notified after every change of sym, creating an
// empty entry if the symbol has no data yet, and fills h, the handle that
// ends the registration (callers embed it to save an allocation; h must not
// be in use). w.Notify is called from the goroutine that applied the
// change, with the entry's watcher lock read-held: it must not block and
// must not call back into the cache.
func (c *Cache) Watch(h *Watch, sym string, w Watcher) {
	for {
		e := c.entry(sym, true)
		e.wmu.Lock()
		if e.dead {
			e.wmu.Unlock()
			continue
		}
		*h = Watch{c: c, e: e, w: w, idx: len(e.watchers)}
		e.watchers = append(e.watchers, h)
		e.nwatch.Store(int32(len(e.watchers)))
		e.wmu.Unlock()
		return
	}
}

// remove drops e from the cache if it still has no data and no watchers.
func (c *Cache) remove(e *Entry) {
	sh := c.shard(e.sym)
	sh.mu.Lock()
	e.mu.Lock()
	e.wmu.Lock()
	if old := *sh.syms.Load(); e.cur.Seq == 0 && len(e.watchers) == 0 && !e.dead && old[e.sym] == e {
		e.dead = true
		m := make(map[string]*Entry, len(old))
		for k, v := range old {
			if k != e.sym {
				m[k] = v
			}
		}
		sh.syms.Store(&m)
	}
	e.wmu.Unlock()
	e.mu.Unlock()
	sh.mu.Unlock()
}

// Watcher is told that an entry changed. See Cache.Watch for the rules.
type Watcher interface {
	Notify()
}

// Watch is one registration of a Watcher on an entry. The zero Watch is
// storage for Cache.Watch to fill.
type Watch struct {
	c   *Cache
	e   *Entry
	w   Watcher
	idx int // position in e.watchers; guarded by e.wmu
}

// Entry returns the watched entry.
func (h *Watch) Entry() *Entry { return h.e }

// Stop ends the registration; after it returns, Notify is not called again.
// Calling Stop twice is safe.
func (h *Watch) Stop() {
	e := h.e
	e.wmu.Lock()
	if h.idx < 0 {
		e.wmu.Unlock()
		return
	}
	last := len(e.watchers) - 1
	moved := e.watchers[last]
	e.watchers[h.idx] = moved
	moved.idx = h.idx
	e.watchers[last] = nil
	e.watchers = e.watchers[:last]
	h.idx = -1
	e.nwatch.Store(int32(last))
	empty := last == 0
	e.wmu.Unlock()
	if empty && e.Seq() == 0 {
		h.c.remove(e)
	}
}
