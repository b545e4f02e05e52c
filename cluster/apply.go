package cluster

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"tickerd/conflate"
	"tickerd/feed"
)

// symState is the cluster's state of one symbol, as the stream defines it:
// what every node computes from the same messages. The served cache
// follows it, except while a stale overlay is shown.
type symState struct {
	set     feed.FieldSet
	values  [feed.NumFields]feed.Value
	seq     uint64
	ts      int64
	stream  uint64    // last stream sequence folded in (or covered by a snapshot)
	dirty   bool      // changed since the last snapshot write
	overlay bool      // the served cache shows a local stale mark past seq
	bumpAt  time.Time // when the bump that ends the overlay was last published

	// A batch of stream messages is folded into the shadow first and
	// served once per symbol at its end (flush): a node that is behind
	// conflates, as the cache does, instead of notifying its sessions of
	// every update it is late with.
	queued  bool          // in applier.touched
	pending feed.FieldSet // fields changed in this batch
	base    uint64        // seq before the batch's first change
	whole   bool          // serve the whole record (a bump is in the batch)
}

// applier is the Node's one consuming goroutine: only it touches the
// shadow state and applies to the cache, so the cache sees the stream's
// order.
type applier struct {
	n     *Node
	cache *conflate.Cache
	sink  feed.Sink

	state    map[string]*symState
	overlays map[string]*symState
	dirty    []string // symbols whose dirty flag is set
	touched  []string // symbols changed by the current batch (flush)

	created    time.Time // stream creation time: a change means a new stream
	lastSeen   uint64    // highest stream sequence consumed
	catchUpTo  uint64    // stream's last sequence when the consumer started
	catchingUp bool
	needSync   bool
	retryAt    time.Time
	attempts   int
	reconnects uint64
	unsynced   time.Time // when the node stopped being in sync; zero while synced
	staled     bool      // stale overlay applied for the current outage
	want       []string  // Interest symbols whose snapshot is still to load

	gen      uint64
	cons     jetstream.ConsumeContext
	consStop chan struct{}

	snap      snapshotter
	lastPrune time.Time
	lagHigh   int // consecutive seconds of high lag
	lastLag   time.Time

	u, out feed.Update // scratch
}

func newApplier(n *Node) *applier {
	return &applier{
		n: n, cache: n.cfg.Cache, sink: n.cfg.Sink,
		state: make(map[string]*symState), overlays: make(map[string]*symState),
		needSync: true, unsynced: time.Now(),
	}
}

// pullBatch is how many messages the consumer asks for at a time: large
// batches keep a node up with a fast feed without a round trip per few
// hundred messages. It bounds what the library buffers.
const pullBatch = 4096

// maxFold bounds how many stream messages are folded before the changed
// symbols are served: a node that keeps up sees batches of one; one that
// is behind serves each symbol once per batch with its newest values.
const maxFold = 16384

// tick is the applier's housekeeping period.
const tick = 100 * time.Millisecond

func (a *applier) run(ctx context.Context) {
	a.snap.start(ctx, a.n)
	defer a.snap.stop()
	defer a.stopConsumer()
	t := time.NewTicker(tick)
	defer t.Stop()
	lastSnap := time.Now()
	for {
		if a.needSync && a.n.connected.Load() && !time.Now().Before(a.retryAt) {
			if err := a.sync(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				a.attempts++
				a.retryAt = time.Now().Add(backoff(a.attempts))
				a.n.log.Warn("cluster resync failed; retrying", "err", err, "attempt", a.attempts)
			} else {
				a.needSync, a.attempts = false, 0
				a.n.syncs.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case d := <-a.n.msgs:
			a.deliver(d)
			for i := 0; i < maxFold; i++ { // drain what is queued before serving
				select {
				case d = <-a.n.msgs:
					a.deliver(d)
					continue
				default:
				}
				break
			}
			a.flush()
		case err := <-a.snap.done:
			a.snap.writing = false
			if err != nil {
				a.n.log.Warn("snapshot write failed; rewriting every symbol next time", "err", err)
				a.markAllDirty()
			}
		case <-a.n.wake:
			a.events()
		case now := <-t.C:
			a.events()
			a.housekeeping(now)
			if now.Sub(lastSnap) >= a.n.cfg.SnapshotEvery {
				lastSnap = now
				a.leadership(ctx)
				a.watchLag(now)
			}
		}
	}
}

// events reacts to connection changes and new interest.
func (a *applier) events() {
	if rc := a.n.reconnects.Load(); rc != a.reconnects {
		a.reconnects = rc
		a.needSync = true
		a.retryAt = time.Time{}
		a.stopConsumer()
		a.setUnsynced()
	}
	if !a.n.connected.Load() {
		a.setUnsynced()
		if a.n.leader.Load() {
			a.n.leader.Store(false) // the lease will lapse; a connected node takes over
		}
	}
	if w := a.n.takeWanted(); len(w) > 0 {
		a.want = append(a.want, w...)
		a.needSync = true
	}
}

func (a *applier) setUnsynced() {
	a.n.synced.Store(false)
	if a.unsynced.IsZero() {
		a.unsynced = time.Now()
	}
}

func (a *applier) housekeeping(now time.Time) {
	// Stale only when cut off (NATS unreachable, or resyncs failing): a
	// node that is merely catching up still shows the cluster's values,
	// and a mark would cost every node a seq.
	cutOff := !a.n.connected.Load() || (a.needSync && a.attempts > 0)
	if cutOff && !a.unsynced.IsZero() && !a.staled && now.Sub(a.unsynced) >= a.n.cfg.StaleAfter {
		a.markStale()
	}
	if a.n.synced.Load() && len(a.overlays) > 0 && a.n.connected.Load() {
		a.unstale(now)
	}
	if a.n.cfg.Interest && now.Sub(a.lastPrune) >= a.n.cfg.PruneEvery {
		a.lastPrune = now
		a.prune()
	}
}

// prune stops following the symbols no session watches (REST look-ups
// follow a symbol again when they come). Their shadow state goes too: a
// symbol wanted again is reloaded from the snapshot bucket, whose record
// is at least as new as what the cache shows, so seq never steps back.
func (a *applier) prune() {
	var drop []string
	now := time.Now()
	a.n.imu.Lock()
	for sym, since := range a.n.interest {
		if now.Sub(since) < a.n.cfg.PruneEvery {
			continue // just wanted: its watcher may not be registered yet
		}
		if !a.n.watchedLocked(sym) {
			drop = append(drop, sym)
		}
	}
	for _, sym := range drop {
		delete(a.n.interest, sym)
	}
	a.n.imu.Unlock()
	if len(drop) == 0 {
		return
	}
	for _, sym := range drop {
		delete(a.state, sym)
		delete(a.overlays, sym)
	}
	kept := a.dirty[:0]
	for _, sym := range a.dirty {
		if a.state[sym] != nil {
			kept = append(kept, sym)
		}
	}
	a.dirty = kept
	a.n.log.Debug("interest pruned", "symbols", len(drop))
	a.needSync = true // a consumer with the smaller filter
}

// sync (re)starts consumption: after the first connect, a reconnect, a
// gap, or new interest. It loads snapshots where the stream cannot supply
// what is missing, then starts an ordered consumer where they leave off.
func (a *applier) sync(parent context.Context) error {
	ctx, cancel := context.WithTimeout(parent, 10*time.Second)
	defer cancel()
	a.stopConsumer()
	if err := a.n.ensure(ctx); err != nil {
		return err
	}
	s, err := a.n.js.Stream(ctx, StreamName)
	if err != nil {
		return err
	}
	info := s.CachedInfo()
	reset := !a.created.IsZero() && !info.Created.Equal(a.created)
	if reset {
		// Positions in the old stream (and in snapshots written from it)
		// mean nothing in the new one: follow it from its start.
		a.n.log.Warn("cluster stream was recreated (NATS lost its store?): following the new one from its start; symbols keep their seq")
		a.n.m.resyncs.WithLabelValues("stream_reset").Inc()
		a.lastSeen = 0
		for _, st := range a.state {
			st.stream = 0
		}
		a.markAllDirty() // the snapshots are rewritten for the new stream
	}
	first := a.created.IsZero()
	start := a.lastSeen + 1
	gap := !first && !reset && info.State.FirstSeq > start
	full := first || gap
	want := a.want
	if a.n.cfg.Interest && full {
		want = a.allInterest()
	}
	if !reset && (full || len(want) > 0) {
		head, err := a.loadSnapshot(ctx, want, full && !a.n.cfg.Interest)
		if err != nil {
			return err
		}
		if full {
			start = head + 1
		} else {
			start = min(a.lastSeen, head) + 1
		}
		if gap {
			a.n.m.resyncs.WithLabelValues("gap").Inc()
			a.n.log.Info("cluster resync from snapshot", "applied", a.lastSeen, "stream_first", info.State.FirstSeq, "snapshot_head", head)
		}
	}
	if info.State.FirstSeq > start {
		a.n.m.resyncs.WithLabelValues("unrecoverable_gap").Inc()
		a.n.log.Error("cluster stream no longer holds updates this node missed and no snapshot covers them: some symbols may differ until they change",
			"from", start, "stream_first", info.State.FirstSeq)
		start = info.State.FirstSeq
	}
	a.created = info.Created
	a.want = nil
	a.lastSeen = max(a.lastSeen, start-1)
	if !a.n.cfg.Interest {
		a.lastSeen = start - 1 // the consumer delivers every message from start on
	}
	a.n.applied.Store(a.lastSeen)
	a.catchUpTo = info.State.LastSeq
	a.catchingUp = true
	started, err := a.startConsumer(ctx, start)
	if err != nil {
		return err
	}
	if !started || info.State.LastSeq < start {
		a.caughtUp()
	}
	return nil
}

func (a *applier) allInterest() []string {
	a.n.imu.Lock()
	defer a.n.imu.Unlock()
	out := make([]string, 0, len(a.n.interest))
	for sym := range a.n.interest {
		out = append(out, sym)
	}
	return out
}

// startConsumer starts an ordered consumer from stream sequence start; it
// reports false when there is nothing to consume (Interest mode with no
// symbol wanted yet).
func (a *applier) startConsumer(ctx context.Context, start uint64) (bool, error) {
	filters := []string{SubjectPrefix + ">"}
	if a.n.cfg.Interest {
		if filters = a.n.interestSubjects(); len(filters) == 0 {
			return false, nil
		}
	}
	cons, err := a.n.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return false, err
	}
	a.gen++
	gen, stop, msgs := a.gen, make(chan struct{}), a.n.msgs
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- delivery{msg: m, gen: gen}:
		case <-stop:
		}
	}, jetstream.PullMaxMessages(pullBatch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		a.n.log.Debug("cluster consumer", "err", err)
	}))
	if err != nil {
		close(stop)
		return false, err
	}
	a.cons, a.consStop = cc, stop
	return true, nil
}

func (a *applier) stopConsumer() {
	if a.cons == nil {
		return
	}
	close(a.consStop)
	a.cons.Stop()
	a.cons, a.consStop = nil, nil
	a.gen++ // what is still queued belongs to the old consumer
}

// deliver applies one stream message.
func (a *applier) deliver(d delivery) {
	if d.gen != a.gen {
		return
	}
	md, err := d.msg.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	a.n.lag.Store(md.NumPending)
	if !a.n.cfg.Interest && seq > a.lastSeen+1 {
		// The stream lost messages before this node read them (max age,
		// max bytes): take a snapshot again.
		a.n.log.Warn("cluster stream gap", "applied", a.lastSeen, "got", seq)
		a.needSync = true
		a.stopConsumer()
		a.setUnsynced()
		return
	}
	if seq > a.lastSeen {
		a.lastSeen = seq
		a.n.applied.Store(seq)
	}
	a.apply(d.msg, seq)
	if md.NumPending == 0 && a.catchingUp {
		a.caughtUp()
	}
}

func (a *applier) apply(m jetstream.Msg, seq uint64) {
	tok, ok := strings.CutPrefix(m.Subject(), SubjectPrefix)
	if !ok {
		return
	}
	sym := decodeSymbol(tok)
	st := a.state[sym]
	if st != nil && seq <= st.stream {
		a.n.m.skipped.Inc() // already reflected (a snapshot, a restarted consumer)
		return
	}
	if h := m.Headers(); h != nil {
		if b := h.Get(bumpHeader); b != "" {
			to, err := strconv.ParseUint(b, 10, 64)
			if err == nil && st != nil {
				a.bump(sym, st, to, seq)
			}
			return
		}
	}
	if err := feed.ParseLine(m.Data(), &a.u); err != nil || a.u.Symbol != sym {
		a.n.m.rejected.Inc()
		return
	}
	if st == nil {
		st = &symState{}
		a.state[sym] = st
	}
	a.fold(sym, st, &a.u, seq)
}

// fold applies u to the shadow state exactly as conflate.Cache.Apply
// would (a change is a value that differs; it gets the next seq), then to
// the cache.
func (a *applier) fold(sym string, st *symState, u *feed.Update, seq uint64) {
	st.stream = seq
	var changed feed.FieldSet
	for f, rest, ok := u.Set.Next(); ok; f, rest, ok = rest.Next() {
		if !st.set.Has(f) || !st.values[f].Equal(u.Values[f]) {
			changed = changed.With(f)
		}
	}
	if changed == 0 {
		return
	}
	st.seq++
	st.ts = u.TS
	for f, rest, ok := changed.Next(); ok; f, rest, ok = rest.Next() {
		st.values[f] = u.Values[f]
	}
	st.set |= changed
	a.markDirty(sym, st)
	a.n.m.applied.Inc()
	a.touch(sym, st, st.seq-1)
	st.pending |= changed
}

// touch queues sym to be served at the batch's end; prev is its seq
// before this change.
func (a *applier) touch(sym string, st *symState, prev uint64) {
	if !st.queued {
		st.queued, st.base, st.pending, st.whole = true, prev, 0, false
		a.touched = append(a.touched, sym)
	}
}

// flush serves every symbol the batch changed, once, with its newest
// values. One change goes through the sink (so a recorder sees it); a
// symbol changed several times gets the union of its changed fields at
// its newest seq (a gap in seq, as conflation makes anywhere else).
func (a *applier) flush() {
	for _, sym := range a.touched {
		st := a.state[sym]
		if st == nil || !st.queued {
			continue
		}
		changed, whole := st.pending, st.whole
		st.queued, st.pending, st.whole = false, 0, false
		if whole {
			a.serve(sym, st, 0)
			continue
		}
		if st.seq == st.base+1 {
			a.serve(sym, st, changed)
			continue
		}
		var served uint64
		if e := a.cache.Get(sym); e != nil {
			served = e.Seq()
		}
		if st.overlay || served != st.base {
			a.serve(sym, st, 0) // the cache is not where the batch began: the whole record
			continue
		}
		a.out.Reset()
		a.out.Symbol, a.out.TS = sym, st.ts
		for f, rest, ok := changed.Next(); ok; f, rest, ok = rest.Next() {
			a.out.Put(f, st.values[f])
		}
		a.cache.ApplySeq(&a.out, st.seq)
		a.n.m.conflated.Add(float64(st.seq - st.base - 1))
	}
	clear(a.touched)
	a.touched = a.touched[:0]
}

// bump moves sym's seq to at least to and makes sure the record has a
// status (trading when it had none), as one change: how a node that showed
// a local stale mark gets every node past that mark's seq. Every node
// applies it the same way, so seq stays identical.
func (a *applier) bump(sym string, st *symState, to, seq uint64) {
	st.stream = seq
	added := !st.set.Has(feed.Status)
	if added {
		st.values[feed.Status] = feed.StatusValue(feed.StatusTrading)
		st.set = st.set.With(feed.Status)
	}
	prev := st.seq
	switch {
	case to > st.seq:
		st.seq = to
	case added:
		st.seq++
	default:
		return
	}
	a.markDirty(sym, st)
	a.touch(sym, st, prev)
	st.whole = true // a bump is served as the whole record
}

func (a *applier) markDirty(sym string, st *symState) {
	if !st.dirty {
		st.dirty = true
		a.dirty = append(a.dirty, sym)
	}
}

// serve brings the cache's record of sym to st. When the cache is one
// change behind, the change goes through the sink, whose Apply gives it
// the same seq (and taps, recorders see it as usual); otherwise the whole
// record is set at st.seq with ApplySeq, which never steps back.
func (a *applier) serve(sym string, st *symState, changed feed.FieldSet) {
	var served uint64
	if e := a.cache.Get(sym); e != nil {
		served = e.Seq()
	}
	if changed != 0 && !st.overlay && served+1 == st.seq {
		a.out.Reset()
		a.out.Symbol, a.out.TS = sym, st.ts
		for f, rest, ok := changed.Next(); ok; f, rest, ok = rest.Next() {
			a.out.Put(f, st.values[f])
		}
		a.sink.Apply(&a.out)
		return
	}
	if st.seq <= served {
		return // a local stale mark holds this seq: a bump will follow
	}
	a.out = feed.Update{Symbol: sym, TS: st.ts, Set: st.set, Values: st.values}
	a.cache.ApplySeq(&a.out, st.seq)
	// The overlay's status is replaced only by a record with a status;
	// otherwise a bump will add one.
	if st.overlay && st.set.Has(feed.Status) {
		st.overlay = false
		delete(a.overlays, sym)
	}
}

// caughtUp is called once the consumer has delivered everything the
// stream held when it started.
func (a *applier) caughtUp() {
	a.catchingUp = false
	if a.n.cfg.Interest {
		a.lastSeen = max(a.lastSeen, a.catchUpTo)
	}
	a.n.lag.Store(0)
	a.n.synced.Store(true)
	if !a.unsynced.IsZero() && a.staled {
		a.n.log.Info("cluster resynced", "applied", a.lastSeen, "stale_symbols", len(a.overlays))
	}
	a.unsynced, a.staled = time.Time{}, false
	a.unstale(time.Now())
}

// markStale shows every symbol as status stale, with a local seq (the next
// one), while this node is out of sync.
func (a *applier) markStale() {
	a.staled = true
	now := time.Now().UnixMicro()
	marked := 0
	for sym, st := range a.state {
		if st.overlay || (st.set.Has(feed.Status) && st.values[feed.Status].String() == feed.StatusStale) {
			continue
		}
		e := a.cache.Get(sym)
		if e == nil || e.Seq() != st.seq {
			continue
		}
		a.out.Reset()
		a.out.Symbol, a.out.TS = sym, now
		a.out.Put(feed.Status, feed.StatusValue(feed.StatusStale))
		if a.sink.Apply(&a.out) {
			st.overlay, st.bumpAt = true, time.Time{}
			a.overlays[sym] = st
			marked++
		}
	}
	a.n.m.staleMarks.Add(float64(marked))
	a.n.log.Warn("cluster out of sync: serving last values marked stale", "symbols", marked, "for", time.Since(a.unsynced).Round(time.Millisecond))
}

// unstale asks the cluster to move each overlaid symbol past the seq of
// its local stale mark; when the bump comes back through the stream,
// every node jumps to the same seq and this one shows the cluster's record
// again. A lost bump is published again after a while; bumps are
// idempotent.
func (a *applier) unstale(now time.Time) {
	for sym, st := range a.overlays {
		var served uint64
		if e := a.cache.Get(sym); e != nil {
			served = e.Seq()
		}
		if st.seq > served && st.set.Has(feed.Status) {
			a.serve(sym, st, 0)
			continue
		}
		if now.Sub(st.bumpAt) < 2*time.Second {
			continue
		}
		msg := nats.NewMsg(Subject(sym))
		msg.Header.Set(bumpHeader, strconv.FormatUint(served+1, 10))
		if _, err := a.n.js.PublishMsgAsync(msg, jetstream.WithStallWait(50*time.Millisecond)); err != nil {
			return
		}
		st.bumpAt = now
	}
}

// watchLag logs and counts a consumer that stays far behind the stream.
func (a *applier) watchLag(now time.Time) {
	const highLag = 10_000
	if a.n.lag.Load() < highLag {
		a.lagHigh = 0
		return
	}
	a.lagHigh++
	if a.lagHigh >= 3 && now.Sub(a.lastLag) >= 10*time.Second {
		a.lastLag = now
		a.n.m.slowConsumers.Inc()
		a.n.log.Warn("cluster consumer falling behind the stream", "lag", a.n.lag.Load(), "applied", a.lastSeen)
	}
}
