package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"tickerd/feed"
)

// Cluster is a set of tickerd nodes started for a scenario and joined over
// NATS: node 0 runs the embedded NATS server the others join. Stop must be
// called; it is safe to call twice.
type Cluster struct {
	Nodes []*Server
	NATS  string // the embedded NATS server's address, 127.0.0.1:PORT
}

// ClusterArgs returns the flags of node i of a cluster whose embedded NATS
// server listens on natsAddr: node 0 runs it (-nats embedded -nats-listen
// natsAddr) and the feed; the others join it (-nats nats://natsAddr) with
// -feed none, so that all their data comes over NATS.
func ClusterArgs(i int, natsAddr string, feed []string) []string {
	if i == 0 {
		return append([]string{"-nats", "embedded", "-nats-listen", natsAddr}, feed...)
	}
	return []string{"-nats", "nats://" + natsAddr, "-feed", "none"}
}

// StartCluster starts n tickerd nodes of bin on free loopback ports, node
// 0 first, each with args(i, natsAddr) followed by extra, and waits up to
// timeout for each one's /readyz. A NATS port taken between choosing and
// binding is retried with another.
func StartCluster(ctx context.Context, bin string, n int, args func(i int, natsAddr string) []string, extra []string, timeout time.Duration) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: a cluster of %d nodes", errBadSettings, n)
	}
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c := &Cluster{NATS: fmt.Sprintf("127.0.0.1:%d", port)}
		for i := range n {
			srv, err := StartServer(ctx, bin, append(args(i, c.NATS), extra...), timeout)
			if err != nil {
				last = fmt.Errorf("bench: cluster node %d: %w", i+1, err)
				_ = c.Stop()
				c = nil
				break
			}
			c.Nodes = append(c.Nodes, srv)
		}
		if c != nil {
			return c, nil
		}
		if !errors.Is(last, ErrServerExited) {
			return nil, last
		}
	}
	return nil, last
}

// URLs returns the nodes' base URLs, node 0 first.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		urls[i] = s.URL
	}
	return urls
}

// Stop stops the joining nodes, then node 0 with the NATS server, and
// returns their errors (see Server.Stop).
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.Nodes) - 1; i >= 0; i-- {
		if err := c.Nodes[i].Stop(); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", i+1, err))
		}
	}
	return errors.Join(errs...)
}

// ErrNotConverged is returned by WaitConverged.
var ErrNotConverged = errors.New("bench: the cluster's nodes did not converge")

// WaitConverged waits up to limit until every node lists the same symbols
// as node 0, the same number in two polls in a row, and a cross-node check
// of up to sample of them (CrossCheck, 5 s window) passes. It returns the
// symbols.
func (c *Cluster) WaitConverged(ctx context.Context, limit time.Duration, sample int) ([]string, error) {
	deadline := time.Now().Add(limit)
	var why string
	prev := -1
	for {
		syms, w := c.sameSymbols(ctx)
		why = w
		if w == "" && len(syms) == prev {
			chk := CrossCheck(ctx, c.URLs(), spreadSample(syms, sample), 5*time.Second)
			if chk.OK() {
				return syms, nil
			}
			why = "cross-node check: " + chk.summary()
		}
		if w == "" {
			prev = len(syms)
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(250*time.Millisecond)) {
			return nil, fmt.Errorf("%w within %v: %s", ErrNotConverged, limit, why)
		}
	}
}

// sameSymbols returns node 0's symbols when every node lists the same,
// else why not.
func (c *Cluster) sameSymbols(ctx context.Context) ([]string, string) {
	var first []string
	for i, s := range c.Nodes {
		syms, err := FetchSymbols(ctx, s.URL)
		if err != nil {
			return nil, err.Error()
		}
		slices.Sort(syms)
		switch {
		case i == 0 && len(syms) == 0:
			return nil, "node 1 has no symbols yet"
		case i == 0:
			first = syms
		case !slices.Equal(syms, first):
			return nil, fmt.Sprintf("node %d lists %d symbols, node 1 %d", i+1, len(syms), len(first))
		}
	}
	return first, ""
}

// spreadSample returns at most n of syms, evenly spaced.
func spreadSample(syms []string, n int) []string {
	if n <= 0 || len(syms) <= n {
		return syms
	}
	out := make([]string, n)
	for i := range out {
		out[i] = syms[i*len(syms)/n]
	}
	return out
}

// ClusterCheck is the result of CrossCheck: the same symbol's snapshot on
// every node of a cluster.
type ClusterCheck struct {
	Nodes          int      `json:"nodes"`
	Symbols        int64    `json:"symbols"`        // symbols compared
	Agreed         int64    `json:"agreed"`         // seen at one seq on every node, with the same values
	Lagging        int64    `json:"lagging"`        // not seen at one seq on every node within the window
	Diverged       int64    `json:"diverged"`       // one seq with other values on two nodes
	SnapshotErrors int64    `json:"snapshotErrors"` // failed GET /v1/snapshot requests
	Seconds        float64  `json:"seconds"`        // how long the check took
	Examples       []string `json:"examples,omitempty"`
}

// OK reports whether every symbol agreed.
func (c *ClusterCheck) OK() bool {
	return c.Lagging == 0 && c.Diverged == 0 && c.SnapshotErrors == 0 && c.Agreed == c.Symbols
}

func (c *ClusterCheck) summary() string {
	return fmt.Sprintf("%d symbols on %d nodes: %d agreed, %d lagging, %d diverged, %d snapshot errors",
		c.Symbols, c.Nodes, c.Agreed, c.Lagging, c.Diverged, c.SnapshotErrors)
}

func (c *ClusterCheck) example(format string, a ...any) {
	if len(c.Examples) < maxExamples {
		c.Examples = append(c.Examples, fmt.Sprintf(format, a...))
	}
}

// CrossCheck compares the snapshots of syms on every node at urls: a
// symbol agrees once every node has been seen at the same seq with the
// same values (the contract: a symbol's seq is the same on every node).
// Snapshots are fetched from all nodes at once, chunk by chunk, and the
// symbols not yet agreed are fetched again until window has passed, so
// that a feed still running is no obstacle: each node is held to a seq
// another has shown, not to one instant. One seq with other values on two
// nodes is a divergence.
func CrossCheck(ctx context.Context, urls []string, syms []string, window time.Duration) *ClusterCheck {
	c := &ClusterCheck{Nodes: len(urls), Symbols: int64(len(syms))}
	start := time.Now()
	deadline := start.Add(window)
	// seen[sym][node] holds every state a node was seen in.
	seen := make(map[string][]map[int64][feed.NumFields]string, len(syms))
	for _, s := range syms {
		seen[s] = make([]map[int64][feed.NumFields]string, len(urls))
		for i := range urls {
			seen[s][i] = map[int64][feed.NumFields]string{}
		}
	}
	pending := slices.Clone(syms)
	for len(pending) > 0 {
		for chunk := range slices.Chunk(pending, snapChunk) {
			states, err := fetchAll(ctx, urls, chunk)
			if err != nil {
				c.SnapshotErrors++
				c.example("%v", err)
				continue
			}
			for node, m := range states {
				for _, s := range chunk {
					st := m[s]
					if st == nil {
						st = &snapState{} // no data yet: seq 0
					}
					seen[s][node][st.seq] = st.vals
				}
			}
		}
		pending = slices.DeleteFunc(pending, func(s string) bool {
			switch agree(seen[s]) {
			case agreed:
				c.Agreed++
				return true
			case diverged:
				c.Diverged++
				c.example("%s: %s", s, conflict(seen[s]))
				return true
			}
			return false
		})
		// A few symbols left are the busiest: look again soon, so that
		// the nodes are caught between two of their updates.
		pause := 100 * time.Millisecond
		if len(pending) <= snapChunk {
			pause = 10 * time.Millisecond
		}
		if len(pending) == 0 || c.SnapshotErrors > 0 || time.Now().After(deadline) ||
			!sleepUntil(ctx, time.Now().Add(pause)) {
			break
		}
	}
	for _, s := range pending {
		c.Lagging++
		c.example("%s: no common seq: %s", s, describe(seen[s]))
	}
	c.Seconds = time.Since(start).Seconds()
	return c
}

// fetchAll fetches the snapshots of syms from every node at once.
func fetchAll(ctx context.Context, urls []string, syms []string) ([]map[string]*snapState, error) {
	out := make([]map[string]*snapState, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			out[i], errs[i] = fetchSnapshots(ctx, u, syms)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("node %d: %w", i+1, errs[i])
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

type verdict int

const (
	undecided verdict = iota
	agreed
	diverged
)

// agree judges one symbol's states by node: diverged if two nodes showed
// one seq with other values, agreed if every node showed one seq above 0.
func agree(byNode []map[int64][feed.NumFields]string) verdict {
	common := false
	for seq, vals := range byNode[0] {
		all := seq > 0
		for _, m := range byNode[1:] {
			v, ok := m[seq]
			if ok && v != vals {
				return diverged
			}
			all = all && ok
		}
		common = common || all
	}
	for i := 1; i < len(byNode); i++ { // pairs without node 0
		for seq, vals := range byNode[i] {
			for _, m := range byNode[i+1:] {
				if v, ok := m[seq]; ok && v != vals {
					return diverged
				}
			}
		}
	}
	if common {
		return agreed
	}
	return undecided
}

// conflict describes the first seq two nodes showed with other values:
// the fields that differ.
func conflict(byNode []map[int64][feed.NumFields]string) string {
	for i, mi := range byNode {
		for _, seq := range slices.Sorted(maps.Keys(mi)) {
			for j := i + 1; j < len(byNode); j++ {
				vj, ok := byNode[j][seq]
				if !ok || vj == mi[seq] {
					continue
				}
				var diff []string
				for f := range feed.NumFields {
					if mi[seq][f] != vj[f] {
						diff = append(diff, fmt.Sprintf("%s %q vs %q", f, mi[seq][f], vj[f]))
					}
				}
				return fmt.Sprintf("seq %d on node %d vs node %d: %s", seq, i+1, j+1, strings.Join(diff, ", "))
			}
		}
	}
	return describe(byNode)
}

// describe lists the seqs each node was seen at.
func describe(byNode []map[int64][feed.NumFields]string) string {
	parts := make([]string, len(byNode))
	for i, m := range byNode {
		seqs := make([]string, 0, len(m))
		for _, seq := range slices.Sorted(maps.Keys(m)) {
			seqs = append(seqs, fmt.Sprint(seq))
		}
		parts[i] = fmt.Sprintf("node %d seq %s", i+1, strings.Join(seqs, ","))
	}
	return strings.Join(parts, "; ")
}
