// Package conflate owns the snapshot cache: the latest value of every field
// of every symbol, the symbol's sequence number, its ingest time, and for
// each field the seq at which it last changed, so that a reader can ask
// "which fields changed since seq N" without the cache keeping history.
//
// The cache never queues: applying an update overwrites values in place and
// wakes the symbol's watchers with a call that must not block. A watcher
// that falls behind reads the latest state, not a backlog.
//
// Concurrency: symbols are sharded by hash; each shard's map is copied on
// write (new symbols are rare) and read with one atomic load, and each
// Entry has its own locks, so there is no global lock on the hot path. Any number of goroutines may Apply and Read concurrently.
//
// The delayed tier: a DelayLine taps a cache (SetTap) and feeds a second
// cache, the mirror, with each change once its ingest time is the delay
// old, conflated in time buckets; the mirror carries the source's seqs
// (ApplySeq), so a session switching tiers can compare them. The line is
// the one place that holds history, bounded by DelayConfig.MaxBytes, and
// while it taps a cache every change passes through its one mutex.
package conflate
