package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tickerd/cluster"
	"tickerd/conflate"
	"tickerd/feed"
)

// clusterFlags are the -nats* flags.
type clusterFlags struct {
	url       string        // -nats: URL list, "embedded" or empty
	listen    string        // -nats-listen
	interest  bool          // -nats-interest
	store     string        // -nats-store
	storage   string        // -nats-storage
	maxAge    time.Duration // -nats-max-age
	maxBytes  int64         // -nats-max-bytes
	replicas  int           // -nats-replicas
	staleWait time.Duration // -nats-stale-after
	routeAddr string        // -nats-cluster-listen
	routes    string        // -nats-routes
}

func (f *clusterFlags) validate(check func(ok bool, format string, args ...any)) {
	if f.url != "" && f.url != "embedded" {
		for _, u := range strings.Split(f.url, ",") {
			p, err := url.Parse(strings.TrimSpace(u))
			check(err == nil && (p.Scheme == "nats" || p.Scheme == "tls" || p.Scheme == "ws" || p.Scheme == "wss") && p.Host != "",
				"-nats %q: want embedded or nats://HOST:PORT[,nats://...]", redactURL(u))
		}
	}
	_, _, err := net.SplitHostPort(f.listen)
	check(err == nil, "-nats-listen must be HOST:PORT, got %q", f.listen)
	check(f.storage == "file" || f.storage == "memory", "-nats-storage must be file or memory, got %q", f.storage)
	check(f.maxAge >= time.Minute, "-nats-max-age must be ≥ 1m, got %v", f.maxAge)
	check(f.maxBytes >= 1<<20, "-nats-max-bytes must be ≥ 1048576, got %d", f.maxBytes)
	check(f.replicas >= 1 && f.replicas <= 5, "-nats-replicas must be 1..5, got %d", f.replicas)
	check(f.staleWait >= 100*time.Millisecond, "-nats-stale-after must be ≥ 100ms, got %v", f.staleWait)
	check(f.url != "" || !f.interest, "-nats-interest needs -nats")
	if f.routeAddr != "" || f.routes != "" {
		check(f.url == "embedded", "-nats-cluster-listen and -nats-routes go with -nats embedded")
		_, _, err := net.SplitHostPort(f.routeAddr)
		check(err == nil, "-nats-cluster-listen must be HOST:PORT, got %q", f.routeAddr)
		for _, r := range strings.Split(f.routes, ",") {
			p, err := url.Parse(strings.TrimSpace(r))
			check(err == nil && (p.Scheme == "nats" || p.Scheme == "nats-route") && p.Host != "", "-nats-routes %q: want nats://HOST:PORT[,nats://...]", r)
		}
	}
}

// redactURL hides the user info of a NATS URL.
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		p.User = url.User("redacted")
		return p.String()
	}
	return u
}

// startCluster joins the cluster named by -nats, starting the embedded
// server first for -nats embedded. It returns the sink feeds publish to
// and a stop function to call once the feeds have stopped; without -nats
// it returns sink itself and does nothing.
func startCluster(c *config, cache *conflate.Cache, sink feed.Sink, reg prometheus.Registerer, log *slog.Logger) (*cluster.Node, func(), error) {
	f := &c.cluster
	if f.url == "" {
		return nil, func() {}, nil
	}
	natsURL := f.url
	var emb *cluster.Embedded
	if f.url == "embedded" {
		var err error
		var routes []string
		if f.routes != "" {
			routes = strings.Split(f.routes, ",")
		}
		emb, err = cluster.StartEmbedded(cluster.EmbeddedConfig{
			Listen: f.listen, StoreDir: f.store, ClusterListen: f.routeAddr, Routes: routes,
			Log: log.With("component", "nats-server"),
		})
		if err != nil {
			return nil, nil, err
		}
		natsURL = emb.ClientURL()
		log.Info("embedded NATS server listening; other nodes join with -nats "+natsURL, "addr", emb.Addr())
	}
	node, err := cluster.Start(cluster.Config{
		URL: natsURL, Cache: cache, Sink: sink, Interest: f.interest,
		Memory: f.storage == "memory", MaxAge: f.maxAge, MaxBytes: f.maxBytes, Replicas: f.replicas,
		StaleAfter: f.staleWait, Registerer: reg, Log: log,
		JetStreamWait: jetStreamWait(f),
	})
	if err != nil {
		emb.Shutdown()
		return nil, nil, err
	}
	return node, func() { node.Close(); emb.Shutdown() }, nil
}

// clusterIngest answers POST /v1/ingest with 503 while the node cannot
// reach NATS: the updates could not be published, and a feed handler
// should retry (or send to another node) rather than believe them taken.
func clusterIngest(node *cluster.Node, h http.Handler) http.Handler {
	if node == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !node.Status().Connected {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "cluster unreachable: this node cannot reach NATS; retry, or ingest on another node", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// jetStreamWait is how long a node waits for JetStream at start: a NATS
// cluster of embedded servers needs a quorum of its nodes up first.
func jetStreamWait(f *clusterFlags) time.Duration {
	if f.routeAddr != "" {
		return 2 * time.Minute
	}
	return 10 * time.Second
}

// waitSynced gives a joining node a moment to load the cluster's snapshot
// before it serves, so that its first clients see every symbol.
func waitSynced(node *cluster.Node, limit time.Duration, log *slog.Logger) {
	deadline := time.Now().Add(limit)
	for !node.Status().Synced {
		if time.Now().After(deadline) {
			log.Warn("serving before the cluster snapshot is loaded", "waited", limit)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
