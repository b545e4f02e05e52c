package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"tickerd/feed"
)

func TestClusterArgs(t *testing.T) {
	feedArgs := []string{"-sim-symbols", "5000"}
	tests := []struct {
		name string
		i    int
		want []string
	}{
		{"first node runs NATS and the feed", 0, []string{"-nats", "embedded", "-nats-listen", "127.0.0.1:4999", "-sim-symbols", "5000"}},
		{"second node joins", 1, []string{"-nats", "nats://127.0.0.1:4999", "-feed", "none"}},
		{"third node joins", 2, []string{"-nats", "nats://127.0.0.1:4999", "-feed", "none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClusterArgs(tt.i, "127.0.0.1:4999", feedArgs); !slices.Equal(got, tt.want) {
				t.Errorf("ClusterArgs(%d) = %q, want %q", tt.i, got, tt.want)
			}
		})
	}
	if !slices.Equal(feedArgs, []string{"-sim-symbols", "5000"}) {
		t.Errorf("feed args changed: %q", feedArgs)
	}
}

func TestSessionsOn(t *testing.T) {
	for _, conns := range []int{0, 1, 2, 3, 299, 300, 50000} {
		total := 0
		for i := range 3 {
			n := sessionsOn(conns, 3, i)
			want := 0
			for s := range conns {
				if s%3 == i {
					want++
				}
			}
			if n != want {
				t.Errorf("sessionsOn(%d, 3, %d) = %d, want %d", conns, i, n, want)
			}
			total += n
		}
		if total != conns {
			t.Errorf("%d sessions spread as %d", conns, total)
		}
	}
}

func TestSpreadSample(t *testing.T) {
	syms := []string{"A", "B", "C", "D", "E", "F"}
	if got := spreadSample(syms, 0); len(got) != 6 {
		t.Errorf("no limit: %q", got)
	}
	if got := spreadSample(syms, 10); len(got) != 6 {
		t.Errorf("limit above: %q", got)
	}
	if got := spreadSample(syms, 3); !slices.Equal(got, []string{"A", "C", "E"}) {
		t.Errorf("three of six: %q", got)
	}
}

func TestAgree(t *testing.T) {
	type states = map[int64][feed.NumFields]string
	a, b := [feed.NumFields]string{"1"}, [feed.NumFields]string{"2"}
	tests := []struct {
		name   string
		byNode []states
		want   verdict
	}{
		{"same seq and values", []states{{5: a}, {5: a}, {5: a}}, agreed},
		{"met at an earlier seq", []states{{5: a, 6: b}, {4: b, 5: a}, {5: a}}, agreed},
		{"one node behind", []states{{6: b}, {6: b}, {5: a}}, undecided},
		{"no data anywhere", []states{{0: {}}, {0: {}}, {0: {}}}, undecided},
		{"other values at one seq", []states{{5: a}, {5: a}, {5: b}}, diverged},
		{"other values between joiners", []states{{6: a}, {5: a}, {5: b}}, diverged},
		{"single node", []states{{3: a}}, agreed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := agree(tt.byNode); got != tt.want {
				t.Errorf("agree = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCrossCheck(t *testing.T) {
	ctx := context.Background()
	_, same1 := newFake(t, "")
	_, same2 := newFake(t, "")
	ahead, aheadURL := newFake(t, "")
	ahead.n = 8 // before any request
	_, other := newFake(t, "other_values")
	syms := []string{"AAA", "BBB", "CCC"}
	tests := []struct {
		name                      string
		urls                      []string
		agreed, lagging, diverged int64
		snapshotErrors            int64
		ok                        bool
	}{
		{"agree", []string{same1, same2}, 3, 0, 0, 0, true},
		{"one node ahead for good", []string{same1, aheadURL, same2}, 0, 3, 0, 0, false},
		{"other values", []string{same1, other}, 0, 0, 3, 0, false},
		{"node down", []string{same1, "http://127.0.0.1:1"}, 0, 3, 0, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := CrossCheck(ctx, tt.urls, syms, 300*time.Millisecond)
			if c.Agreed != tt.agreed || c.Lagging != tt.lagging || c.Diverged != tt.diverged ||
				c.SnapshotErrors != tt.snapshotErrors || c.OK() != tt.ok || c.Nodes != len(tt.urls) || c.Symbols != 3 {
				t.Errorf("check %+v", c)
			}
			if !tt.ok && len(c.Examples) == 0 {
				t.Error("a failed check without examples")
			}
			if tt.diverged > 0 && !strings.Contains(c.Examples[0], `ask "2" vs "3"`) {
				t.Errorf("divergence example %q does not name the field", c.Examples[0])
			}
		})
	}
}

// TestHold50kOrchestration runs hold-50k scaled down over three real
// tickerd processes that do not cluster: each replays the same capture in
// a loop, so that their symbols' seqs and values agree as a cluster's
// must, while running at their own pace. It checks the orchestration:
// nodes started and stopped, sessions spread, per-node figures, both
// convergence checks.
func TestHold50kOrchestration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tickerd; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	args := append(append([]string{"build"}, buildFlags...), "-o", dir+string(filepath.Separator), "tickerd/cmd/tickerd", "tickerd/cmd/tickersim")
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	capture := filepath.Join(dir, "feed.zst")
	gen := exec.CommandContext(ctx, filepath.Join(dir, "tickersim"), "gen", "-symbols", "60", "-rate", "300",
		"-duration", "20s", "-seed", "1", "-start", "2026-01-02T15:00:00Z", "-o", capture)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("tickersim gen: %v\n%s", err, out)
	}
	var natsAddrs []string
	clusterArgs = func(i int, natsAddr string, _ []string) []string {
		natsAddrs = append(natsAddrs, natsAddr)
		return []string{"-feed", "replay:" + capture + "?speed=1x&loop=1"}
	}
	t.Cleanup(func() { clusterArgs = ClusterArgs })

	var log strings.Builder
	rep, err := Hold50k(ctx, ScenarioConfig{
		Tickerd: filepath.Join(dir, "tickerd"), Conns: 30, Duration: 2 * time.Second, Rate: 100,
		Logf: func(format string, a ...any) { log.WriteString(strings.TrimSpace(format) + "\n") },
	})
	if err != nil {
		t.Fatalf("Hold50k: %v\n%s", err, log.String())
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("problems: %q\n%s", rep.Problems, log.String())
	}
	if len(natsAddrs) != 3 || natsAddrs[0] != natsAddrs[2] || !strings.HasPrefix(natsAddrs[0], "127.0.0.1:") {
		t.Errorf("nodes asked for NATS addresses %q", natsAddrs)
	}
	c := rep.Client
	if rep.Name != "hold-50k" || rep.Conns != 30 || c.Connected != 30 || c.Failed != 0 || len(c.URLs) != 3 {
		t.Errorf("report %s: %d conns, %d connected, %d failed, urls %q", rep.Name, rep.Conns, c.Connected, c.Failed, c.URLs)
	}
	if c.LatencySteady == nil || c.LatencySteady.Count() == 0 || c.LatencySteady.Count() > c.Latency.Count() {
		t.Errorf("steady latency %v of %d updates", c.LatencySteady, c.Latency.Count())
	}
	if c.Check == nil || c.Check.Pairs != 30*20 || !c.Check.OK() {
		t.Errorf("per-node convergence: %+v", c.Check)
	}
	if x := rep.Cluster; x == nil || x.Nodes != 3 || x.Symbols != 60 || !x.OK() {
		t.Errorf("cross-node check: %+v", x)
	}
	if len(rep.Nodes) != 3 {
		t.Fatalf("%d nodes in the report", len(rep.Nodes))
	}
	var base, loaded int64
	urls := map[string]bool{}
	for i, nd := range rep.Nodes {
		if nd.Sessions != 10 || nd.RSSBaseline <= 0 || nd.RSSLoaded <= 0 || nd.WindowSeconds < 1.9 || nd.CPUSeconds <= 0 {
			t.Errorf("node %d: %+v", i+1, nd)
		}
		base, loaded = base+nd.RSSBaseline, loaded+nd.RSSLoaded
		urls[nd.URL] = true
	}
	if len(urls) != 3 || rep.Server.RSSBaseline != base || rep.Server.RSSLoaded != loaded || rep.Server.CPUCores <= 0 {
		t.Errorf("totals %+v over nodes %v", rep.Server, urls)
	}
	t.Run("a node that cannot start", func(t *testing.T) {
		started := 0
		args := func(i int, _ string) []string {
			started++
			if i == 1 {
				return []string{"-no-such-flag"}
			}
			return []string{"-feed", "none"}
		}
		cl, err := StartCluster(ctx, filepath.Join(dir, "tickerd"), 3, args, nil, 20*time.Second)
		if err == nil {
			_ = cl.Stop()
			t.Fatal("a cluster with a bad node started")
		}
		if !errors.Is(err, ErrServerExited) || !strings.Contains(err.Error(), "node 2") || started < 2 {
			t.Errorf("error %v after %d nodes asked for", err, started)
		}
		// The first node of each attempt was stopped: goleak (TestMain)
		// sees no Server goroutine waiting for a process.
	})
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cluster", "node 3", "cross-node", "agreed", "scenario ok"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP tickerd_cluster_lag_messages Stream messages pending.\n"+
			"# TYPE tickerd_cluster_lag_messages gauge\n"+
			"tickerd_cluster_lag_messages 1234\n"+
			"tickerd_cluster_applied_total 5.5e+06\n"+
			"tickerd_cluster_resyncs_total{reason=\"gap\"} 2\n"+
			"tickerd_sessions 7\n")
	}))
	defer srv.Close()
	got := scrapeMetrics(context.Background(), srv.URL, clusterMetrics)
	want := map[string]float64{"tickerd_cluster_lag_messages": 1234, "tickerd_cluster_applied_total": 5.5e6}
	if !maps.Equal(got, want) {
		t.Errorf("scraped %v, want %v", got, want)
	}
	if got := scrapeMetrics(context.Background(), "http://127.0.0.1:1", clusterMetrics); got != nil {
		t.Errorf("no server: %v", got)
	}
}
