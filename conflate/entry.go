package conflate

import (
	"sync"
	"sync/atomic"

	"tickerd/feed"
)

// Entry is one symbol's record. Its methods are safe for concurrent use.
type Entry struct {
	sym string

	mu        sync.Mutex // guards dead, cur and unchanged; held only briefly
	dead      bool       // removed from the cache (also read under wmu)
	cur       *View      // the current record; see shared
	unchanged uint64     // updates that changed nothing
	// shared is set once cur has been handed to a reader: from then on
	// cur is immutable, and the next change copies it first. Readers set
	// it and Apply reads and clears it, all under mu.
	shared bool

	wmu      sync.RWMutex // guards watchers
	watchers []*Watch
	nwatch   atomic.Int32 // len(watchers), read without wmu by notify

	memoMu sync.Mutex
	memo   [memoSlots]memoSlot
	memoAt uint8 // next slot to evict when none is stale
}

func newEntry(sym string) *Entry { return &Entry{sym: sym, cur: new(View)} }

// Symbol returns the entry's symbol.
func (e *Entry) Symbol() string { return e.sym }

// Seq returns the current sequence number; 0 means no data yet.
func (e *Entry) Seq() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur.Seq
}

// View is one version of a symbol's record. A View returned by Read is
// immutable and may be kept and shared freely: it is how a session
// remembers exactly what it last sent. Versions are copied on write only
// when a reader holds the current one, so a symbol nobody reads changes in
// place and costs no allocation.
type View struct {
	Seq    uint64
	TS     int64 // ingest time of the newest folded update, Unix µs
	Set    feed.FieldSet
	Values [feed.NumFields]feed.Value
	FSeq   [feed.NumFields]uint64 // seq at which each field last changed
}

// Read returns the entry's current version, immutable from now on.
func (e *Entry) Read() *View {
	e.mu.Lock()
	v := e.cur
	e.shared = true
	e.mu.Unlock()
	return v
}

// writableLocked returns the current version for Apply to change in
// place, copying it first if a reader holds it. e.mu must be held.
func (e *Entry) writableLocked() *View {
	if e.shared {
		v := new(View)
		*v = *e.cur
		e.cur = v
		e.shared = false
	}
	return e.cur
}

// changedBy returns the fields of u whose value differs from v's.
func (v *View) changedBy(u *feed.Update) feed.FieldSet {
	var changed feed.FieldSet
	for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
		if !v.Set.Has(f) || !v.Values[f].Equal(u.Values[f]) {
			changed = changed.With(f)
		}
	}
	return changed
}

// Text returns field f's wire text, "" if the record has none.
func (v *View) Text(f feed.Field) string {
	if !v.Set.Has(f) {
		return ""
	}
	return v.Values[f].String()
}

// ChangedSince returns the fields that changed after seq.
func (v *View) ChangedSince(seq uint64) feed.FieldSet {
	var s feed.FieldSet
	for f, rest, ok := v.Set.Next(); ok; f, rest, ok = rest.Next() {
		if v.FSeq[f] > seq {
			s = s.With(f)
		}
	}
	return s
}

func (e *Entry) notify() {
	if e.nwatch.Load() == 0 {
		return
	}
	e.wmu.RLock()
	for _, h := range e.watchers {
		h.w.Notify()
	}
	e.wmu.RUnlock()
}

// Watchers returns the number of registered watchers.
func (e *Entry) Watchers() int {
	e.wmu.RLock()
	defer e.wmu.RUnlock()
	return len(e.watchers)
}

// The memo keeps the last few encodings of this entry so that many readers
// wanting the same message at the same seq share one encoding.
const memoSlots = 4

// MemoKey names one encoding of an entry at one seq. Kind is the caller's
// (for example snapshot or update); Fields the fields it holds.
type MemoKey struct {
	Seq    uint64
	Fields feed.FieldSet
	Kind   uint8
}

type memoSlot struct {
	key MemoKey
	b   []byte
}

// Memo returns the bytes stored under key, calling build to make them if no
// reader asked for key yet. build runs with the memo locked, so each key is
// built once; it must not call back into e. The returned bytes are shared
// and must never be modified. Encodings of older seqs are evicted first.
func (e *Entry) Memo(key MemoKey, build func() []byte) []byte {
	e.memoMu.Lock()
	defer e.memoMu.Unlock()
	victim := -1
	for i := range e.memo {
		s := &e.memo[i]
		if s.b != nil && s.key == key {
			return s.b
		}
		if victim < 0 && (s.b == nil || s.key.Seq < key.Seq) {
			victim = i
		}
	}
	if victim < 0 {
		victim = int(e.memoAt)
		e.memoAt = (e.memoAt + 1) % memoSlots
	}
	b := build()
	e.memo[victim] = memoSlot{key: key, b: b}
	return b
}
