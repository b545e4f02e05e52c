// Package cluster owns scale-out: many tickerd nodes sharing one feed over
// NATS JetStream, all showing the same prices with the same per-symbol seq.
//
// Data path in a cluster: an ingesting node (any feed adapter, POST
// /v1/ingest, replay) does not apply an update to its own cache; its Node,
// used as the feed.Sink, publishes the normalized update on the symbol's
// subject (tickerd.tick.<SYMBOL>) of the JetStream stream TICKERD_TICKS.
// The stream is the one sequencer: every node consumes it in order and
// folds each update into a shadow of the cluster's state, which assigns
// the symbol's next seq exactly as conflate.Cache.Apply would; the change
// is then applied to the node's conflating cache with that seq. Given the
// same stream, every node computes the same seqs.
//
// Late joiners and nodes that lost part of the stream load a snapshot from
// the JetStream key-value bucket tickerd_snap (last record, seq and stream
// position per symbol, written about once a second by one elected node)
// and consume the stream from the snapshot's position; an update already
// reflected is skipped, so seq never steps back.
//
// When NATS is unreachable a node keeps serving its last values, marked
// status stale with a local seq; once back, it asks the whole cluster to
// move those symbols past that seq (a "bump" message in the stream), so seq
// stays identical on every node and never goes backwards.
//
// The package never serves clients, never parses client ops and never
// decides entitlements: it only feeds a conflate.Cache.
package cluster
