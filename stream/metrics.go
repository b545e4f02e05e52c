package stream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Transport names, as used in metric labels.
const (
	TransportWS     = "ws"
	TransportSSE    = "sse"
	TransportNDJSON = "ndjson"
	TransportPoll   = "poll"
)

var transports = []string{TransportWS, TransportSSE, TransportNDJSON, TransportPoll}

type transportMetrics struct {
	sessions  prometheus.Gauge
	opened    prometheus.Counter
	messages  prometheus.Counter
	bytes     prometheus.Counter
	latencies prometheus.Observer
}

type metrics struct {
	byTransport   map[string]*transportMetrics
	conflated     prometheus.Counter
	slowConsumers prometheus.Counter
	clientErrs    *prometheus.CounterVec
	writerLag     prometheus.Histogram
	// Auth and entitlements (auth.go).
	authFailures *prometheus.CounterVec // by reason
	reloads      *prometheus.CounterVec // by result
	revocations  *prometheus.CounterVec // by kind: symbol, session
	refused      *prometheus.CounterVec // connections refused, by reason
}

func newMetrics(reg prometheus.Registerer, pace *pacer) *metrics {
	sessions := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tickerd_sessions", Help: "Open streaming sessions, by transport.",
	}, []string{"transport"})
	opened := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_sessions_opened_total", Help: "Streaming sessions opened, by transport.",
	}, []string{"transport"})
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_messages_delivered_total", Help: "Messages written to clients, by transport.",
	}, []string{"transport"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_bytes_delivered_total", Help: "Bytes written to clients (framing included), by transport.",
	}, []string{"transport"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tickerd_delivery_latency_seconds",
		Help:    "Time from ingest of the newest folded update to the write of its message, by transport.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"transport"})
	m := &metrics{
		byTransport: make(map[string]*transportMetrics),
		conflated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tickerd_updates_conflated_total",
			Help: "Symbol updates folded into a later message instead of being sent on their own, summed over sessions.",
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tickerd_slow_consumers_total", Help: "Sessions closed because the client stopped reading.",
		}),
		clientErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tickerd_client_errors_total", Help: "Error messages sent to clients, by code.",
		}, []string{"code"}),
		writerLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tickerd_writer_lag_seconds",
			Help:    "Time a WebSocket session's writer waited for a CPU after being woken; the pacer's input.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
	}
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_auth_failures_total",
		Help: "Requests and sessions refused for their credential, by reason (missing, invalid, expired, timeout).",
	}, []string{"reason"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_auth_reloads_total", Help: "Reloads of the -auth file, by result (ok, error).",
	}, []string{"result"})
	m.revocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_revocations_total",
		Help: "Entitlements withdrawn from open sessions: a symbol, or a whole session (user or key removed).",
	}, []string{"kind"})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tickerd_connections_refused_total",
		Help: "Connections refused before a session began, by reason (user_limit, origin).",
	}, []string{"reason"})
	reg.MustRegister(m.authFailures, m.reloads, m.revocations, m.refused)
	gap := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tickerd_pacing_gap_seconds",
		Help: "Least time between two data writes of a session, widened while writers lag behind (pacing under load).",
	}, func() float64 { return pace.Gap().Seconds() })
	reg.MustRegister(sessions, opened, messages, bytes, latency, m.conflated, m.slowConsumers, m.clientErrs, m.writerLag, gap)
	for _, t := range transports {
		m.byTransport[t] = &transportMetrics{
			sessions:  sessions.WithLabelValues(t),
			opened:    opened.WithLabelValues(t),
			messages:  messages.WithLabelValues(t),
			bytes:     bytes.WithLabelValues(t),
			latencies: latency.WithLabelValues(t),
		}
	}
	return m
}

// delivered accounts one written batch. ts holds each message's ingest
// time (0 for control messages, which have none).
func (tm *transportMetrics) delivered(n, bytes int, ts []int64, at time.Time) {
	tm.messages.Add(float64(n))
	tm.bytes.Add(float64(bytes))
	now := at.UnixMicro()
	for _, t := range ts {
		if t > 0 {
			tm.latencies.Observe(float64(now-t) / 1e6)
		}
	}
}

// clientError counts one error reply by code.
func (m *metrics) clientError(code string) { m.clientErrs.WithLabelValues(code).Inc() }
