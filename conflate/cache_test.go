package conflate

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shopspring/decimal"
	"go.uber.org/goleak"

	"tickerd/feed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func dec(s string) feed.Value { return feed.DecimalValue(decimal.RequireFromString(s)) }

func update(sym string, kv ...string) *feed.Update {
	u := &feed.Update{Symbol: sym, TS: 1}
	for i := 0; i < len(kv); i += 2 {
		f, ok := feed.ParseField(kv[i])
		if !ok {
			panic(kv[i])
		}
		u.Put(f, dec(kv[i+1]))
	}
	return u
}

type countWatcher struct{ n atomic.Int64 }

func (w *countWatcher) Notify() { w.n.Add(1) }

func TestApplySeqAndChangedFields(t *testing.T) {
	c := New()
	steps := []struct {
		name    string
		u       *feed.Update
		changed bool
		seq     uint64
		since1  feed.FieldSet // fields changed since seq 1
	}{
		{"first update creates the symbol", update("AAPL", "bid", "1.5", "ask", "1.6"), true, 1, 0},
		{"same values change nothing", update("AAPL", "bid", "1.50", "ask", "1.6"), false, 1, 0},
		{"one changed field", update("AAPL", "bid", "1.51", "ask", "1.6"), true, 2, feed.FieldSet(0).With(feed.Bid)},
		{"a new field", update("AAPL", "volume", "100"), true, 3, feed.FieldSet(0).With(feed.Bid).With(feed.Volume)},
	}
	var v *View
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := c.Apply(st.u); got != st.changed {
				t.Fatalf("Apply changed = %v, want %v", got, st.changed)
			}
			v = c.Get("AAPL").Read()
			if v.Seq != st.seq {
				t.Fatalf("seq = %d, want %d", v.Seq, st.seq)
			}
			if got := v.ChangedSince(1); got != st.since1 {
				t.Fatalf("ChangedSince(1) = %b, want %b", got, st.since1)
			}
		})
	}
	if got := v.Values[feed.Bid].String(); got != "1.51" {
		t.Fatalf("bid = %q", got)
	}
	if s := c.Stats(); s.Symbols != 1 || s.Applied != 3 || s.Unchanged != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestWatchNotifyAndStop(t *testing.T) {
	c := New()
	var a, b countWatcher
	var wa, wb Watch
	c.Watch(&wa, "MSFT", &a)
	c.Watch(&wb, "MSFT", &b)
	if c.Get("MSFT").Seq() != 0 {
		t.Fatal("watching must not invent data")
	}
	if got := c.Symbols(); len(got) != 0 {
		t.Fatalf("a watched symbol without data is listed: %v", got)
	}
	c.Apply(update("MSFT", "bid", "1"))
	c.Apply(update("MSFT", "bid", "1")) // unchanged: no notification
	wa.Stop()
	wa.Stop() // twice is safe
	c.Apply(update("MSFT", "bid", "2"))
	if a.n.Load() != 1 || b.n.Load() != 2 {
		t.Fatalf("notifications a=%d b=%d, want 1 and 2", a.n.Load(), b.n.Load())
	}
	wb.Stop()
	if c.Get("MSFT") == nil {
		t.Fatal("a symbol with data must stay after its last watcher leaves")
	}
}

func TestEmptyEntryRemovedWithLastWatcher(t *testing.T) {
	c := New()
	var w countWatcher
	var h Watch
	c.Watch(&h, "NODATA", &w)
	if c.Get("NODATA") == nil {
		t.Fatal("Watch must create the entry")
	}
	h.Stop()
	if c.Get("NODATA") != nil {
		t.Fatal("an entry with no data and no watchers must be dropped")
	}
}

// Concurrent appliers, watchers that come and go, and readers: no update
// may be lost to an entry being removed, and seq counts every change.
func TestConcurrentApplyWatchRead(t *testing.T) {
	c := New()
	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w countWatcher
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				sym := fmt.Sprintf("S%d", (n+i)%50)
				var h Watch
				c.Watch(&h, sym, &w)
				if v := h.Entry().Read(); v.Seq > 0 && v.Values[feed.Volume].IsZero() {
					panic("a version with a seq has its value")
				}
				h.Stop()
			}
		}()
	}
	var ww sync.WaitGroup
	for i := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for n := range perWriter {
				// Each writer owns its own field value stream on its symbols.
				c.Apply(update(fmt.Sprintf("S%d", n%50), "volume", fmt.Sprint(i*perWriter+n+1)))
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	var total uint64
	for n := range 50 {
		total += c.Get(fmt.Sprintf("S%d", n)).Read().Seq
	}
	if total != writers*perWriter {
		t.Fatalf("sum of seqs = %d, want %d (every apply changes volume)", total, writers*perWriter)
	}
}

func TestMemoSharesEncodings(t *testing.T) {
	c := New()
	c.Apply(update("IBM", "bid", "1"))
	e := c.Get("IBM")
	builds := 0
	build := func() []byte { builds++; return []byte("x") }
	k := MemoKey{Seq: 1, Fields: 1}
	a, b := e.Memo(k, build), e.Memo(k, build)
	if builds != 1 || &a[0] != &b[0] {
		t.Fatalf("same key built %d times", builds)
	}
	e.Memo(MemoKey{Seq: 1, Fields: 2}, build)
	if builds != 2 {
		t.Fatal("different fields must build anew")
	}
}

// A version handed to a reader never changes; the next apply copies it.
func TestReadVersionsAreImmutable(t *testing.T) {
	c := New()
	c.Apply(update("IBM", "bid", "1", "ask", "2"))
	v1 := c.Get("IBM").Read()
	c.Apply(update("IBM", "bid", "1.1"))
	c.Apply(update("IBM", "bid", "1.2"))
	if v1.Seq != 1 || v1.Values[feed.Bid].String() != "1" {
		t.Fatalf("a read version changed: seq %d bid %s", v1.Seq, v1.Values[feed.Bid])
	}
	v3 := c.Get("IBM").Read()
	if v3.Seq != 3 || v3.Values[feed.Bid].String() != "1.2" || v3.Values[feed.Ask].String() != "2" {
		t.Fatalf("current version seq %d bid %s", v3.Seq, v3.Values[feed.Bid])
	}
	// Unread versions change in place: no allocation per update.
	ups := [2]*feed.Update{update("IBM", "bid", "5"), update("IBM", "bid", "6")}
	i := 0
	n := testing.AllocsPerRun(100, func() {
		i++
		if !c.Apply(ups[i%2]) {
			t.Fatal("apply changed nothing")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs per unread apply", n)
	}
}

// ApplySeq takes the seqs it is given: older ones are ignored, a change
// that comes back to the values held moves the seq without waking anyone,
// and ChangedSince answers for any seq, skipped ones included.
func TestApplySeqTakesGivenSeqs(t *testing.T) {
	c := New()
	var w countWatcher
	var h Watch
	c.Watch(&h, "AAPL", &w)
	defer h.Stop()
	bidAsk := feed.FieldSet(0).With(feed.Bid).With(feed.Ask)
	steps := []struct {
		name    string
		u       *feed.Update
		seq     uint64
		applied bool
		wantSeq uint64
		notes   int64                    // notifications so far
		since   map[uint64]feed.FieldSet // ChangedSince(key) after the step
	}{
		{"first change at a seq of its own", update("AAPL", "bid", "1", "ask", "2"), 3, true, 3, 1,
			map[uint64]feed.FieldSet{0: bidAsk, 2: bidAsk, 3: 0}},
		{"same seq is ignored", update("AAPL", "bid", "9"), 3, false, 3, 1, nil},
		{"older seq is ignored", update("AAPL", "bid", "9"), 2, false, 3, 1, nil},
		{"a gap: seq 7", update("AAPL", "bid", "1.1"), 7, true, 7, 2,
			map[uint64]feed.FieldSet{3: feed.FieldSet(0).With(feed.Bid), 5: feed.FieldSet(0).With(feed.Bid), 7: 0}},
		{"changed and back: seq moves, nobody woken", update("AAPL", "bid", "1.1"), 9, false, 9, 2,
			map[uint64]feed.FieldSet{7: feed.FieldSet(0).With(feed.Bid), 8: feed.FieldSet(0).With(feed.Bid), 9: 0}},
		{"a new field", update("AAPL", "volume", "5"), 12, true, 12, 3,
			map[uint64]feed.FieldSet{9: feed.FieldSet(0).With(feed.Volume), 3: feed.FieldSet(0).With(feed.Bid).With(feed.Volume)}},
	}
	var prev uint64
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.u.TS = int64(100 + i)
			if got := c.ApplySeq(st.u, st.seq); got != st.applied {
				t.Fatalf("ApplySeq = %v, want %v", got, st.applied)
			}
			v := c.Get("AAPL").Read()
			if v.Seq != st.wantSeq {
				t.Fatalf("seq %d, want %d", v.Seq, st.wantSeq)
			}
			if moved := st.seq > prev; moved && v.TS != st.u.TS || !moved && v.TS == st.u.TS {
				t.Fatalf("TS %d after ApplySeq with TS %d (seq moved: %v)", v.TS, st.u.TS, moved)
			}
			prev = v.Seq
			if n := w.n.Load(); n != st.notes {
				t.Fatalf("%d notifications, want %d", n, st.notes)
			}
			for since, want := range st.since {
				if got := v.ChangedSince(since); got != want {
					t.Fatalf("ChangedSince(%d) = %b, want %b", since, got, want)
				}
			}
		})
	}
	v := c.Get("AAPL").Read()
	if v.Values[feed.Bid].String() != "1.1" || v.Values[feed.Ask].String() != "2" || v.Values[feed.Volume].String() != "5" {
		t.Fatalf("values %v", v.Values)
	}
}

type tapped struct {
	sym     string
	seq     uint64
	ts      int64
	changed feed.FieldSet
	bid     string
}

// The tap hears every change Apply and ApplySeq make, in order, with the
// record after it; nothing else, and nothing once removed.
func TestTap(t *testing.T) {
	c := New()
	var got []tapped
	c.SetTap(func(sym string, seq uint64, ts int64, changed feed.FieldSet, values *[feed.NumFields]feed.Value) {
		got = append(got, tapped{sym, seq, ts, changed, values[feed.Bid].String()})
	})
	u := func(ts int64, kv ...string) *feed.Update {
		u := update("T", kv...)
		u.TS = ts
		return u
	}
	c.Apply(u(10, "bid", "1", "ask", "2"))
	c.Apply(u(11, "bid", "1", "ask", "2")) // unchanged
	c.Apply(u(12, "bid", "1", "ask", "3"))
	c.ApplySeq(u(13, "bid", "4"), 9)
	c.ApplySeq(u(14, "bid", "7"), 9)  // not past seq 9: ignored
	c.ApplySeq(u(15, "bid", "4"), 10) // changes nothing
	c.SetTap(nil)
	c.Apply(u(14, "bid", "5"))
	bidAsk := feed.FieldSet(0).With(feed.Bid).With(feed.Ask)
	want := []tapped{
		{"T", 1, 10, bidAsk, "1"},
		{"T", 2, 12, feed.FieldSet(0).With(feed.Ask), "1"},
		{"T", 9, 13, feed.FieldSet(0).With(feed.Bid), "4"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tapped %v, want %v", got, want)
	}
}
