package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"tickerd/feed"
)

// leaseTTL is how long the snapshot writer's lease outlives its last
// renewal: a dead writer is replaced after about this long.
const leaseTTL = 5 * time.Second

// maxBatch bounds the records one snapshot write carries; the rest stay
// dirty for the next.
const maxBatch = 20_000

// record is one symbol's value in the snapshot bucket.
type record struct {
	Seq    uint64            `json:"seq"`
	Stream uint64            `json:"stream"` // stream sequence of the last update folded in
	TS     int64             `json:"ts"`
	Fields map[string]string `json:"fields"`
}

// snapBatch is one write: records, then the head when every dirty symbol
// is in it (0: leave the head alone).
type snapBatch struct {
	keys []string
	recs [][]byte
	head uint64
}

// snapshotter is the snapshot writing of the elected node: the applier
// captures batches; one goroutine writes them.
type snapshotter struct {
	in      chan snapBatch // capacity 1; only sent to when !writing
	done    chan error     // capacity 1
	writing bool
	wg      chanWait

	kv       jetstream.KeyValue // snapshot bucket
	lease    jetstream.KeyValue
	leaseRev uint64
	minHead  uint64 // write only once caught up to the head found on election
}

type chanWait chan struct{}

func (s *snapshotter) start(ctx context.Context, n *Node) {
	s.in, s.done, s.wg = make(chan snapBatch, 1), make(chan error, 1), make(chanWait)
	go func() {
		defer close(s.wg)
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-s.in:
				err := writeBatch(ctx, n, b)
				if err == nil {
					n.m.snapshotWrites.Inc()
				}
				s.done <- err
			}
		}
	}()
}

// stop waits for the writer goroutine, whose context has ended.
func (s *snapshotter) stop() { <-s.wg }

func writeBatch(parent context.Context, n *Node, b snapBatch) error {
	ctx, cancel := context.WithTimeout(parent, 10*time.Second)
	defer cancel()
	const chunk = 1000
	for i := 0; i < len(b.keys); i += chunk {
		var futs []jetstream.PubAckFuture
		for j := i; j < min(i+chunk, len(b.keys)); j++ {
			f, err := n.js.PublishAsync("$KV."+SnapBucket+"."+b.keys[j], b.recs[j])
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if b.head == 0 {
		return nil
	}
	kv, err := n.js.KeyValue(ctx, SnapBucket)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, headKey, []byte(strconv.FormatUint(b.head, 10)))
	return err
}

// leadership renews or takes the snapshot lease and, as the leader,
// hands changed symbols to the writer. Interest-mode nodes never lead:
// they do not hold every symbol.
func (a *applier) leadership(parent context.Context) {
	n := a.n
	if n.cfg.Interest || !n.connected.Load() || !n.synced.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(parent, 2*time.Second)
	defer cancel()
	s := &a.snap
	if s.lease == nil {
		var err error
		if s.lease, err = n.js.KeyValue(ctx, LeaseBucket); err != nil {
			return
		}
		if s.kv, err = n.js.KeyValue(ctx, SnapBucket); err != nil {
			s.lease = nil
			return
		}
	}
	if n.leader.Load() {
		rev, err := s.lease.Update(ctx, leaseKey, []byte(n.cfg.Name), s.leaseRev)
		if err != nil {
			n.leader.Store(false)
			n.log.Info("snapshot lease lost", "err", err)
			return
		}
		s.leaseRev = rev
	} else {
		rev, err := s.lease.Create(ctx, leaseKey, []byte(n.cfg.Name))
		if err != nil {
			return // someone else writes
		}
		s.leaseRev = rev
		s.minHead = 0
		if e, err := s.kv.Get(ctx, headKey); err == nil {
			s.minHead, _ = strconv.ParseUint(string(e.Value()), 10, 64)
		}
		n.leader.Store(true)
		a.markAllDirty()
		n.log.Info("this node now writes the cluster snapshots", "applied", a.lastSeen, "head", s.minHead)
	}
	if s.writing || a.lastSeen < s.minHead || a.catchingUp {
		return
	}
	a.capture()
}

// capture hands the dirty symbols to the writer, with the head when all
// of them fit: every symbol's record then reflects the stream up to it.
func (a *applier) capture() {
	if len(a.dirty) == 0 {
		return
	}
	b := snapBatch{}
	take := min(len(a.dirty), maxBatch)
	for _, sym := range a.dirty[:take] {
		st := a.state[sym]
		if st == nil {
			continue
		}
		st.dirty = false
		rec := record{Seq: st.seq, Stream: st.stream, TS: st.ts, Fields: make(map[string]string, st.set.Len())}
		for f, rest, ok := st.set.Next(); ok; f, rest, ok = rest.Next() {
			rec.Fields[f.String()] = st.values[f].String()
		}
		data, err := json.Marshal(rec)
		if err != nil {
			continue
		}
		b.keys = append(b.keys, encodeSymbol(sym))
		b.recs = append(b.recs, data)
	}
	a.dirty = append(a.dirty[:0], a.dirty[take:]...)
	if len(a.dirty) == 0 {
		b.head = a.lastSeen
	}
	a.snap.writing = true
	a.snap.in <- b
}

func (a *applier) markAllDirty() {
	for sym, st := range a.state {
		a.markDirty(sym, st)
	}
}

// loadSnapshot reads the snapshot bucket: every symbol when all is set,
// else the symbols in syms, restoring each into the state and the cache.
// It returns the head: the stream sequence every record reflects (0 when
// none was written).
func (a *applier) loadSnapshot(ctx context.Context, syms []string, all bool) (uint64, error) {
	kv, err := a.n.js.KeyValue(ctx, SnapBucket)
	if err != nil {
		return 0, fmt.Errorf("cluster: snapshot bucket: %w", err)
	}
	var head uint64
	switch e, err := kv.Get(ctx, headKey); {
	case err == nil:
		head, _ = strconv.ParseUint(string(e.Value()), 10, 64)
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, fmt.Errorf("cluster: snapshot head: %w", err)
	}
	loaded := 0
	if all {
		w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			return 0, fmt.Errorf("cluster: snapshot: %w", err)
		}
		defer func() { _ = w.Stop() }()
	read:
		for {
			select {
			case e := <-w.Updates():
				if e == nil {
					break read // every current value has been sent
				}
				if e.Key() != headKey && a.restore(decodeSymbol(e.Key()), e.Value()) {
					loaded++
				}
			case <-ctx.Done():
				return 0, fmt.Errorf("cluster: snapshot: %w", ctx.Err())
			}
		}
	} else {
		for _, sym := range syms {
			e, err := kv.Get(ctx, encodeSymbol(sym))
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("cluster: snapshot of %s: %w", sym, err)
			}
			if a.restore(sym, e.Value()) {
				loaded++
			}
		}
	}
	a.n.m.snapshotLoads.Inc()
	a.n.log.Debug("snapshot loaded", "symbols", loaded, "head", head)
	return head, nil
}

// restore takes a snapshot record of sym when it is newer than what the
// node holds; it never steps a seq back.
func (a *applier) restore(sym string, data []byte) bool {
	if !feed.ValidSymbol(sym) {
		return false
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Seq == 0 {
		return false
	}
	st := a.state[sym]
	if st == nil {
		st = &symState{}
		a.state[sym] = st
	}
	if rec.Seq <= st.seq {
		st.stream = max(st.stream, rec.Stream)
		return false
	}
	var set feed.FieldSet
	var values [feed.NumFields]feed.Value
	for name, text := range rec.Fields {
		f, ok := feed.ParseField(name)
		if !ok {
			return false
		}
		v, err := feed.ParseText(f, text)
		if err != nil {
			return false
		}
		values[f] = v
		set = set.With(f)
	}
	st.set, st.values, st.seq, st.ts = set, values, rec.Seq, rec.TS
	st.stream = max(st.stream, rec.Stream)
	a.serve(sym, st, 0)
	return true
}
