package bench

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// hold50kNodes is the size of hold-50k's cluster.
const hold50kNodes = 3

// NodeStats is one node of a cluster scenario: its process as /proc saw
// it, and the sessions it was given.
type NodeStats struct {
	URL      string   `json:"url"`
	Args     []string `json:"args"`
	Sessions int      `json:"sessions"` // sessions sent to this node (session i goes to node i mod nodes)
	ServerStats
	// Metrics holds the node's clusterMetrics (GET /metrics) at the end
	// of the steady window; absent ones are left out.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// clusterMetrics are the tickerd metrics a cluster scenario records per
// node: how far its NATS consumer is behind, and what went through it
// (publish errors count the updates dropped when the stream held the
// publisher back for longer than tickerd waits).
var clusterMetrics = []string{
	"tickerd_cluster_lag_messages",
	"tickerd_cluster_published_total",
	"tickerd_cluster_publish_errors_total",
	"tickerd_cluster_applied_total",
	"tickerd_cluster_slow_consumer_total",
	"tickerd_cluster_synced",
}

// clusterArgs returns the flags of node i of a scenario's cluster; tests
// replace it to run the orchestration on nodes that do not cluster.
var clusterArgs = ClusterArgs

// Hold50k is hold over a cluster: three tickerd nodes on embedded NATS
// (node 1 runs the NATS server and the simulator, 10,000 updates/s over
// 5,000 symbols; nodes 2 and 3 join it with -feed none), 50,000 WebSocket
// sessions x 20 symbols at maxHz 4 spread evenly over the three nodes and
// over client processes. Once every node lists the same symbols and a
// sample agrees across nodes, each node's settled RSS is its baseline;
// with every session open, its settled RSS gives the RSS per session. It
// reports latency percentiles, connect errors, RSS and CPU per node and
// in total, checks every session against its own node's /v1/snapshot, and
// at the end that every symbol's seq and values agree across the nodes.
func Hold50k(ctx context.Context, sc ScenarioConfig) (*ScenarioReport, error) {
	// 1,000 connections a second, each allowed 30 s: with the three nodes
	// and the load generator on the same two cores, a WebSocket handshake
	// late in the ramp waits for a CPU far longer than hold's.
	cfg := sc.load(Config{Conns: 50000, Symbols: 20, MaxHz: 4, Duration: 30 * time.Second, Rate: 1000, Check: true,
		ConnectTimeout: 30 * time.Second})
	feed := []string{"-sim-symbols", "5000", "-sim-rate", "10000", "-sim-seed", "1"}
	cl, stop, err := sc.startCluster(ctx, hold50kNodes, feed)
	if err != nil {
		return nil, err
	}
	rep := &ScenarioReport{Name: "hold-50k", ServerArgs: cl.Nodes[0].Args}
	runErr := func() error {
		sc.logf("waiting for the %d nodes to converge", len(cl.Nodes))
		syms, err := cl.WaitConverged(ctx, 90*time.Second, 500)
		if err != nil {
			return err
		}
		sc.logf("%d nodes list the same %d symbols and agree", len(cl.Nodes), len(syms))
		cfg.Universe = syms
		if err := sc.clusterBaseline(ctx, cl, rep); err != nil {
			return err
		}
		if err := sc.measureCluster(ctx, cl, rep, cfg); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		sc.logf("comparing %d symbols across the nodes", len(syms))
		rep.Cluster = CrossCheck(ctx, cl.URLs(), syms, 30*time.Second)
		return nil
	}()
	return rep.finishCluster(cl, stop, runErr)
}

// startCluster builds tickerd if needed and starts a cluster of n nodes,
// node 0 with feed; sc.ServerArgs go to every node. The returned stop
// function removes the build directory too.
func (sc *ScenarioConfig) startCluster(ctx context.Context, n int, feed []string) (*Cluster, func() error, error) {
	bin, cleanup, err := sc.tickerd(ctx)
	if err != nil {
		return nil, nil, err
	}
	args := func(i int, natsAddr string) []string { return clusterArgs(i, natsAddr, feed) }
	cl, err := StartCluster(ctx, bin, n, args, sc.ServerArgs, 30*time.Second)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	for i, s := range cl.Nodes {
		sc.logf("tickerd node %d pid %d at %s: %s", i+1, s.PID(), s.URL, strings.Join(s.Args, " "))
	}
	return cl, func() error {
		err := cl.Stop()
		cleanup()
		return err
	}, nil
}

// clusterBaseline settles every node's RSS before any session (all at
// once) and records it per node and in total.
func (sc *ScenarioConfig) clusterBaseline(ctx context.Context, cl *Cluster, rep *ScenarioReport) error {
	samples, gc, err := settleAll(ctx, cl, 10*time.Second)
	if err != nil {
		return err
	}
	rep.Nodes = make([]NodeStats, len(cl.Nodes))
	rep.Server.ForcedGC = gc
	for i, s := range cl.Nodes {
		rep.Nodes[i] = NodeStats{URL: s.URL, Args: s.Args}
		rep.Nodes[i].RSSBaseline = samples[i].RSS
		rep.Nodes[i].ForcedGC = gc
		rep.Server.RSSBaseline += samples[i].RSS
		sc.logf("node %d baseline RSS %s", i+1, byteSize(samples[i].RSS))
	}
	return nil
}

// settleAll runs settleRSS on every node at once; gc is whether every
// node obliged with a forced GC.
func settleAll(ctx context.Context, cl *Cluster, limit time.Duration) ([]ProcSample, bool, error) {
	samples := make([]ProcSample, len(cl.Nodes))
	gcs := make([]bool, len(cl.Nodes))
	errs := make([]error, len(cl.Nodes))
	var wg sync.WaitGroup
	for i, s := range cl.Nodes {
		wg.Go(func() { samples[i], gcs[i], errs[i] = settleRSS(ctx, s, limit) })
	}
	wg.Wait()
	gc := true
	for i, err := range errs {
		if err != nil {
			return nil, false, fmt.Errorf("bench: node %d: %w", i+1, err)
		}
		gc = gc && gcs[i]
	}
	return samples, gc, nil
}

// measureCluster runs the client of cfg over the cluster's nodes (session
// i on node i mod nodes) and fills rep.Client, rep.Nodes and rep.Server
// (the nodes' totals): each node's RSS settled after a forced GC at the
// steady window's start, and its CPU over the window.
func (sc *ScenarioConfig) measureCluster(ctx context.Context, cl *Cluster, rep *ScenarioReport, cfg Config) error {
	cfg.URLs = cl.URLs()
	rep.Conns = cfg.Conns
	n := len(cl.Nodes)
	var start, end []ProcSample
	var sampleErr error
	cfg.SteadyStart = func() {
		var gc bool
		start, gc, sampleErr = settleAll(ctx, cl, 15*time.Second)
		rep.Server.ForcedGC = rep.Server.ForcedGC && gc
	}
	cfg.SteadyEnd = func() {
		if sampleErr != nil {
			return
		}
		end = make([]ProcSample, n)
		for i, s := range cl.Nodes {
			if end[i], sampleErr = s.Sample(); sampleErr != nil {
				return
			}
		}
		for i, s := range cl.Nodes {
			rep.Nodes[i].Metrics = scrapeMetrics(ctx, s.URL, clusterMetrics)
		}
	}
	if ok, err := sc.runSampled(ctx, cfg, rep, &sampleErr); !ok {
		return err
	}
	if start == nil || end == nil {
		return nil // interrupted before the steady window
	}
	tot := &rep.Server
	tot.RSSLoaded, tot.CPUSeconds, tot.Threads, tot.FDs = 0, 0, 0, 0
	for i := range rep.Nodes {
		nd := &rep.Nodes[i]
		nd.Sessions = sessionsOn(cfg.Conns, n, i)
		nd.fill(start[i], end[i])
		nd.RSSLoaded = start[i].RSS
		nd.ForcedGC = rep.Server.ForcedGC
		if nd.Sessions > 0 {
			nd.RSSPerSessionKiB = float64(nd.RSSLoaded-nd.RSSBaseline) / float64(nd.Sessions) / 1024
		}
		tot.RSSLoaded += nd.RSSLoaded
		tot.CPUSeconds += nd.CPUSeconds
		tot.WindowSeconds = max(tot.WindowSeconds, nd.WindowSeconds)
		tot.Threads += nd.Threads
		tot.FDs += nd.FDs
	}
	if tot.WindowSeconds > 0 {
		tot.CPUCores = tot.CPUSeconds / tot.WindowSeconds
	}
	if rep.Client.Connected > 0 {
		tot.RSSPerSessionKiB = float64(tot.RSSLoaded-tot.RSSBaseline) / float64(rep.Client.Connected) / 1024
	}
	return nil
}

// scrapeMetrics returns the values of the unlabelled metrics names in GET
// base/metrics; nil if it cannot be read.
func scrapeMetrics(ctx context.Context, base string, names []string) map[string]float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for _, name := range names {
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 {
			continue
		}
		m := f.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			out[name] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[name] = m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			out[name] = m.GetUntyped().GetValue()
		}
	}
	return out
}

// sessionsOn returns how many of conns sessions spread round-robin over n
// nodes go to node i.
func sessionsOn(conns, n, i int) int {
	s := conns / n
	if i < conns%n {
		s++
	}
	return s
}

// finishCluster stops the cluster and gathers the problems of the run.
func (r *ScenarioReport) finishCluster(cl *Cluster, stop func() error, runErr error) (*ScenarioReport, error) {
	var exited []string
	for i, s := range cl.Nodes {
		if s.Exited() {
			exited = append(exited, fmt.Sprintf("tickerd node %d exited during the run:\n%s", i+1, s.Log()))
		}
	}
	stopErr := stop()
	switch {
	case len(exited) > 0:
		r.Problems = append(r.Problems, exited...)
	case stopErr != nil:
		r.Problems = append(r.Problems, stopErr.Error())
	}
	if runErr != nil {
		return r, runErr
	}
	if r.Client != nil {
		r.Problems = append(r.Client.Problems(), r.Problems...)
	}
	if c := r.Cluster; c != nil && !c.OK() {
		r.Problems = append(r.Problems, "cross-node check failed: "+c.summary())
	}
	return r, nil
}

// writeNodes adds a cluster's rows to a scenario's table.
func (r *ScenarioReport) writeNodes(tw *tabwriter.Writer) {
	for i, nd := range r.Nodes {
		fmt.Fprintf(tw, "node %d\t%s  %d sessions  rss baseline %s, with sessions %s: %.2f KiB per session  cpu %.2f cores  threads %d  fds %d\n",
			i+1, nd.URL, nd.Sessions, byteSize(nd.RSSBaseline), byteSize(nd.RSSLoaded), nd.RSSPerSessionKiB, nd.CPUCores, nd.Threads, nd.FDs)
		if len(nd.Metrics) > 0 {
			var m []string
			for _, k := range slices.Sorted(maps.Keys(nd.Metrics)) {
				m = append(m, fmt.Sprintf("%s=%g", strings.TrimPrefix(k, "tickerd_cluster_"), nd.Metrics[k]))
			}
			fmt.Fprintf(tw, "\tcluster metrics at the window's end: %s\n", strings.Join(m, " "))
		}
	}
	if c := r.Cluster; c != nil {
		verdict := "agreed"
		if !c.OK() {
			verdict = "FAILED"
		}
		fmt.Fprintf(tw, "cross-node\t%s: %s (%.1fs)\n", verdict, c.summary(), c.Seconds)
		for _, e := range c.Examples {
			fmt.Fprintf(tw, "\t%s\n", e)
		}
	}
}
