package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// tally is what a session counts locally between two flushes into its
// shard. It is owned by the session's goroutine.
type tally struct {
	class       int // the session's latency class (stats.class); kept by reset
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
	latency     []*Hist // by latency class; nil until the class records
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
//
// Update latencies are kept by class: a session's class is its transport's
// index in the run's distinct transports, times two, plus one for a slow
// reader. Fast and slow sessions then report apart (Report.Latency and
// Report.LatencySlow), and a run mixing transports reports each one too.
type stats struct {
	classes    int
	shards     []shard
	open       atomic.Int64 // sessions connected now
	connected  atomic.Int64 // sessions that connected at least once
	failed     atomic.Int64
	reconnects atomic.Int64
}

// newStats returns stats for a run over the given number of distinct
// transports.
func newStats(transports int) *stats {
	st := &stats{classes: 2 * max(transports, 1), shards: make([]shard, 4*runtime.GOMAXPROCS(0))}
	for i := range st.shards {
		sh := &st.shards[i]
		sh.latency = make([]*Hist, st.classes)
		sh.snapshotAge = newHist(maxLatencyUS)
		sh.connect = newHist(maxConnectUS)
		for n := range sh.named {
			sh.named[n] = map[string]int64{}
		}
	}
	return st
}

func (st *stats) shard(i int) *shard { return &st.shards[i%len(st.shards)] }

// class returns the latency class of a session on the transport of index
// transport (in the run's distinct transports).
func class(transport int, slow bool) int {
	c := 2 * transport
	if slow {
		c++
	}
	return c
}

// slowClass reports whether class c is that of slow readers.
func slowClass(c int) bool { return c%2 == 1 }

// flush adds t into the shard and resets t.
func (sh *shard) flush(t *tally) {
	sh.mu.Lock()
	for k, n := range t.kinds {
		sh.kinds[k] += n
	}
	sh.frames += t.frames
	sh.bytes += t.bytes
	sh.skipped += t.skipped
	if len(t.latency) > 0 {
		h := sh.latency[t.class]
		if h == nil {
			h = newHist(maxLatencyUS)
			sh.latency[t.class] = h
		}
		for _, v := range t.latency {
			h.Record(v)
		}
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

// latency returns a merged copy of the update latencies of the sessions
// that are not slow readers so far.
func (st *stats) latency() *Hist {
	h := newHist(maxLatencyUS)
	for i := range st.shards {
		sh := &st.shards[i]
		sh.mu.Lock()
		for c, l := range sh.latency {
			if !slowClass(c) {
				h.Merge(l)
			}
		}
		sh.mu.Unlock()
	}
	return h
}

// fill adds every count into r. transports are the run's distinct
// transports; r.ByTransport, if not nil, gets each one's latencies.
func (st *stats) fill(r *Report, transports []string) {
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
		for c, l := range sh.latency {
			if l == nil {
				continue
			}
			slow := slowClass(c)
			if slow {
				r.LatencySlow.Merge(l)
			} else {
				r.Latency.Merge(l)
			}
			if r.ByTransport != nil {
				r.ByTransport[transports[c/2]].latency(slow).Merge(l)
			}
		}
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
