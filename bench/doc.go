// Package bench owns the client side of tickerd load tests: sessions over
// WebSocket, SSE, NDJSON streaming and long-poll that subscribe to symbols
// picked uniformly or Zipf-skewed from the server's universe, the
// measurements they take (HDR histograms of ingest-to-client latency,
// snapshot age and connect time; counts of messages, bytes, failures, server
// error and close codes), the per-session view used to check convergence
// against GET /v1/snapshot and seq monotonicity, and the mergeable JSON
// Report, and slow readers that throttle their own reads. It also runs the
// named scenarios (footprint, hold, fanout, fanout-wide, mixed, churn) that
// start a tickerd process on loopback and sample its memory and CPU, and
// plots the latency percentiles of saved reports against connection count
// (a PNG, drawn with gonum.org/v1/plot).
//
// bench never serves market data and imports no server stage (only feed,
// for the field names): it talks to tickerd over the public wire protocol
// alone, so it measures what any client would see. Its decoder reads only
// the few keys a load test needs, never builds a map per message and does
// not allocate for frames without escapes.
package bench
