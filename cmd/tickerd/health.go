package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tickerd/cluster"
	"tickerd/conflate"
	"tickerd/feed"
)

// feedHealth wires feed.Health to the cache, the metrics and /readyz.
type feedHealth struct {
	h       *feed.Health
	cache   *conflate.Cache
	cluster *cluster.Node // nil without -nats
}

// newHealth watches the feeds that apply through sink (the cache, or the
// recorder in front of it); cache is where statuses are read.
func newHealth(cache *conflate.Cache, sink feed.Sink, staleAfter time.Duration, reg prometheus.Registerer) *feedHealth {
	fh := &feedHealth{h: feed.NewHealth(sink, staleAfter), cache: cache}
	reg.MustRegister(fh.h.Collector())
	return fh
}

func (fh *feedHealth) Sink(name string) feed.Sink { return fh.h.Sink(name) }

func (fh *feedHealth) run(ctx context.Context) { fh.h.Run(ctx, fh.status) }

// status is a symbol's status field in the cache ("" if it has none).
func (fh *feedHealth) status(sym string) string {
	e := fh.cache.Get(sym)
	if e == nil {
		return ""
	}
	return e.Read().Text(feed.Status)
}

// serveReady answers GET /readyz: 200 once serving, whatever the feeds
// (contract), with their health in the body (and the cluster's with
// -nats); ?strict=1 answers 503 while a feed is stale or the node is out of
// sync with its cluster, for load balancers that should route around it.
func (fh *feedHealth) serveReady(w http.ResponseWriter, r *http.Request) {
	rep := fh.h.Report()
	var cs *cluster.Status
	if fh.cluster != nil {
		st := fh.cluster.Status()
		cs = &st
	}
	code := http.StatusOK
	if r.URL.Query().Get("strict") != "" && (!rep.Healthy || (cs != nil && !cs.Synced)) {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		feed.HealthReport
		Cluster *cluster.Status `json:"cluster,omitempty"`
	}{"ready", rep, cs})
}
