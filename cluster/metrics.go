package cluster

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published      prometheus.Counter
	publishErrors  prometheus.Counter
	applied        prometheus.Counter
	skipped        prometheus.Counter
	conflated      prometheus.Counter
	rejected       prometheus.Counter
	resyncs        *prometheus.CounterVec
	snapshotWrites prometheus.Counter
	snapshotLoads  prometheus.Counter
	slowConsumers  prometheus.Counter
	staleMarks     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, n *Node) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		published:      counter("tickerd_cluster_published_total", "Updates this node published to the cluster."),
		publishErrors:  counter("tickerd_cluster_publish_errors_total", "Updates this node could not publish (NATS unreachable past its reconnect buffer)."),
		applied:        counter("tickerd_cluster_applied_total", "Stream updates that changed a symbol (got a seq)."),
		skipped:        counter("tickerd_cluster_skipped_total", "Stream messages skipped as already reflected by a snapshot."),
		conflated:      counter("tickerd_cluster_conflated_total", "Changes folded into a later one before the cache saw them (a node behind the stream serves each symbol once per batch)."),
		rejected:       counter("tickerd_cluster_rejected_total", "Stream messages that did not parse."),
		resyncs:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tickerd_cluster_resyncs_total", Help: "Resynchronizations from the snapshot bucket, by reason (gap, stream_reset, unrecoverable_gap)."}, []string{"reason"}),
		snapshotWrites: counter("tickerd_cluster_snapshot_writes_total", "Snapshot batches this node wrote as the elected writer."),
		snapshotLoads:  counter("tickerd_cluster_snapshot_loads_total", "Snapshot loads (start, gap, new interest)."),
		slowConsumers:  counter("tickerd_cluster_slow_consumer_total", "Times this node's NATS consumer was found too slow (dropped by the client library, or far behind the stream)."),
		staleMarks:     counter("tickerd_cluster_stale_marks_total", "Symbols marked stale locally because the node was out of sync with the cluster."),
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(m.published, m.publishErrors, m.applied, m.skipped, m.conflated, m.rejected, m.resyncs,
		m.snapshotWrites, m.snapshotLoads, m.slowConsumers, m.staleMarks,
		gauge("tickerd_cluster_connected", "1 while connected to NATS.", func() float64 { return b2f(n.connected.Load()) }),
		gauge("tickerd_cluster_synced", "1 while in sync with the cluster stream.", func() float64 { return b2f(n.synced.Load()) }),
		gauge("tickerd_cluster_leader", "1 while this node writes the cluster snapshots.", func() float64 { return b2f(n.leader.Load()) }),
		gauge("tickerd_cluster_applied_seq", "Last cluster stream sequence this node consumed.", func() float64 { return float64(n.applied.Load()) }),
		gauge("tickerd_cluster_lag_messages", "Stream messages pending for this node's consumer.", func() float64 { return float64(n.lag.Load()) }),
	)
	return m
}
