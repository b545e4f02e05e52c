package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// tally is what a session counts locally between two flushes into its
// shard. It is owned by the session's goroutine.
type tally struct {
	kinds       [numKinds]int64
	frames      int64
	bytes       int64
	skipped     int64   // seqs skipped between updates (conflation)
	latency     []int64 // update latencies, µs
	snapshotAge []int64 // snapshot ages, µs
}

// flushAt is how many buffered latencies make a session flush.
const flushAt = 64

func (t *tally) reset() {
	t.kinds = [numKinds]int64{}
	t.frames, t.bytes, t.skipped = 0, 0, 0
	t.latency, t.snapshotAge = t.latency[:0], t.snapshotAge[:0]
}

// shard holds the counts of a subset of sessions under one lock, so that
// sessions on different cores rarely contend.
type shard struct {
	mu          sync.Mutex
	kinds       [numKinds]int64
	frames      int64
	bytes       int64
	skipped     int64
	latency     *Hist
	snapshotAge *Hist
	connect     *Hist
	named       [numNamed]map[string]int64
	_           [64]byte // keep shards on separate cache lines
}

// named is one of the counters keyed by a name.
type named int

const (
	failures   named = iota // failed sessions by kind
	serverErrs              // error messages by code
	closeCodes              // close messages by code
	protocol                // contract violations by kind
	numNamed
)

// stats gathers the counts of every session of a run. Its methods are safe
// for concurrent use.
type stats struct {
	shards     []shard
	open       atomic.Int64 // sessions connected now
	connected  atomic.Int64 // sessions that connected at least once
	failed     atomic.Int64
	reconnects atomic.Int64
}

func newStats() *stats {
	st := &stats{shards: make([]shard, 4*runtime.GOMAXPROCS(0))}
	for i := range st.shards {
		sh := &st.shards[i]
		sh.latency = newHist(maxLatencyUS)
		sh.snapshotAge = newHist(maxLatencyUS)
		sh.connect = newHist(maxConnectUS)
		for n := range sh.named {
			sh.named[n] = map[string]int64{}
		}
	}
	return st
}

func (st *stats) shard(i int) *shard { return &st.shards[i%len(st.shards)] }

// flush adds t into the shard and resets t.
func (sh *shard) flush(t *tally) {
	sh.mu.Lock()
	for k, n := range t.kinds {
		sh.kinds[k] += n
	}
	sh.frames += t.frames
	sh.bytes += t.bytes
	sh.skipped += t.skipped
	for _, v := range t.latency {
		sh.latency.Record(v)
	}
	for _, v := range t.snapshotAge {
		sh.snapshotAge.Record(v)
	}
	sh.mu.Unlock()
	t.reset()
}

// count adds one to the named counter n under key.
func (sh *shard) count(n named, key string) {
	sh.mu.Lock()
	sh.named[n][key]++
	sh.mu.Unlock()
}

func (sh *shard) recordConnect(us int64) {
	sh.mu.Lock()
	sh.connect.Record(us)
	sh.mu.Unlock()
}

// data returns the updates and snapshots counted so far.
func (st *stats) data() int64 {
	var n int64
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		n += sh.kinds[KindUpdate] + sh.kinds[KindSnapshot]
		sh.mu.Unlock()
	}
	return n
}

// latency returns a merged copy of the update latencies so far.
func (st *stats) latency() *Hist {
	h := newHist(maxLatencyUS)
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		h.Merge(sh.latency)
		sh.mu.Unlock()
	}
	return h
}

// fill adds every count into r.
func (st *stats) fill(r *Report) {
	r.Connected += st.connected.Load()
	r.Failed += st.failed.Load()
	r.Reconnects += st.reconnects.Load()
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for k, n := range sh.kinds {
			if n > 0 {
				r.Messages[Kind(k).String()] += n
			}
		}
		r.Frames += sh.frames
		r.Bytes += sh.bytes
		r.Skipped += sh.skipped
		r.Latency.Merge(sh.latency)
		r.SnapshotAge.Merge(sh.snapshotAge)
		r.Connect.Merge(sh.connect)
		for n, dst := range [numNamed]map[string]int64{r.Failures, r.ServerErrors, r.CloseCodes, r.Protocol} {
			for k, v := range sh.named[n] {
				dst[k] += v
			}
		}
		sh.mu.Unlock()
	}
}
