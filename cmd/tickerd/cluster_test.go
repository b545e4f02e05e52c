package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"tickerd/internal/streamtest"
)

var clusterSymbols = []string{"AAPL", "MSFT", "BRK.A"}

// ingest posts rounds of quotes for clusterSymbols to base's /v1/ingest.
func ingest(t *testing.T, base string, from, rounds int) {
	t.Helper()
	var b strings.Builder
	for r := from; r < from+rounds; r++ {
		for i, s := range clusterSymbols {
			fmt.Fprintf(&b, `{"symbol":%q,"fields":{"bid":"%d.%02d","ask":"%d.%02d"}}`+"\n", s, 100+i, r%100, 101+i, r%100)
		}
	}
	resp, err := http.Post(base+"/v1/ingest", "application/x-ndjson", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct{ Accepted, Rejected int }
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != 200 || rep.Rejected != 0 {
		t.Fatalf("ingest: HTTP %d, %+v, %v", resp.StatusCode, rep, err)
	}
}

// waitWritable ingests a probe symbol through via until every base
// serves its latest value: the cluster stores writes again.
func waitWritable(t *testing.T, via string, bases ...string) {
	t.Helper()
	n := 0
	streamtest.WaitFor(t, 30*time.Second, "the cluster takes writes", func() error {
		n++
		bid := fmt.Sprintf("%d.5", n)
		resp, err := http.Post(via+"/v1/ingest", "application/x-ndjson",
			strings.NewReader(`{"symbol":"PROBE","fields":{"bid":"`+bid+`"}}`+"\n"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		deadline := time.Now().Add(time.Second)
		for _, base := range bases {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				snap, err := streamtest.Snapshot(ctx, base, "PROBE")
				cancel()
				if err == nil && snap["PROBE"].Fields["bid"] == bid {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s does not show probe %s", base, bid)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		return nil
	})
}

// converged waits until every base serves seq for each clusterSymbol, with
// the same record.
func converged(t *testing.T, seq uint64, bases ...string) map[string]streamtest.Symbol {
	t.Helper()
	var first map[string]streamtest.Symbol
	streamtest.WaitFor(t, 15*time.Second, "nodes converge", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for i, base := range bases {
			snap, err := streamtest.Snapshot(ctx, base, clusterSymbols...)
			if err != nil {
				return err
			}
			for _, s := range clusterSymbols {
				if snap[s].Seq != seq {
					return fmt.Errorf("%s: %s seq %d, want %d", base, s, snap[s].Seq, seq)
				}
			}
			if i == 0 {
				first = snap
			} else if err := streamtest.Converged(snap, first, streamtest.All(clusterSymbols...)); err != nil {
				return fmt.Errorf("%s: %w", base, err)
			}
		}
		return nil
	})
	return first
}

func dialSSE(t *testing.T, base string) *streamtest.Conn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := streamtest.Dial(ctx, base, streamtest.SSE, url.Values{"symbols": {strings.Join(clusterSymbols, ",")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func clientAt(t *testing.T, c *streamtest.Conn, want map[string]streamtest.Symbol) {
	t.Helper()
	streamtest.WaitFor(t, 10*time.Second, "client converges", func() error {
		if v := c.Violations(); len(v) > 0 {
			return fmt.Errorf("violations: %v", v)
		}
		view := c.View()
		if err := streamtest.Converged(view, want, streamtest.All(clusterSymbols...)); err != nil {
			return err
		}
		for s, w := range want {
			if view[s].Seq != w.Seq {
				return fmt.Errorf("%s: client seq %d, want %d", s, view[s].Seq, w.Seq)
			}
		}
		return nil
	})
}

// Three tickerd processes, one with the embedded NATS server, the others
// joining it: ingest on any, the same records and seqs on all, clients
// of a killed node converge on another.
func TestClusterOfThreeProcesses(t *testing.T) {
	natsAddr := freeAddr(t)
	a, b, c := freeAddr(t), freeAddr(t), freeAddr(t)
	cmdA, logsA := start(t, nil, "-addr", a, "-feed", "none", "-nats", "embedded", "-nats-listen", natsAddr)
	waitReady(t, "http://"+a)
	natsURL := "nats://" + natsAddr
	start(t, nil, "-addr", b, "-feed", "none", "-nats", natsURL)
	cmdC, _ := start(t, []string{"TICKERD_NATS=" + natsURL}, "-addr", c, "-feed", "none")
	bases := []string{"http://" + a, "http://" + b, "http://" + c}
	for _, base := range bases[1:] {
		waitReady(t, base)
	}
	var conns []*streamtest.Conn
	for _, base := range bases {
		conns = append(conns, dialSSE(t, base))
	}

	ingest(t, bases[1], 0, 20)
	want := converged(t, 20, bases...)
	for _, conn := range conns {
		clientAt(t, conn, want)
	}
	metrics := get(t, bases[2]+"/metrics")
	for _, m := range []string{"tickerd_cluster_connected 1", "tickerd_cluster_synced 1", "tickerd_cluster_lag_messages 0", "tickerd_cluster_applied_total 60"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("C's /metrics lacks %q", m)
		}
	}

	// Kill C: its client moves to B and resumes where it was, seq not
	// going back.
	if err := cmdC.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmdC.Wait()
	<-conns[2].Done()
	before := conns[2].View()
	ingest(t, bases[0], 20, 5) // ingest on A while C is gone
	moved := dialSSE(t, bases[1])
	want = converged(t, 25, bases[:2]...)
	clientAt(t, moved, want)
	for s, v := range moved.View() {
		if v.Seq < before[s].Seq {
			t.Errorf("%s: seq went back from %d to %d after moving", s, before[s].Seq, v.Seq)
		}
	}

	// A late node gets the whole state.
	d := freeAddr(t)
	start(t, nil, "-addr", d, "-feed", "none", "-nats", natsURL)
	waitReady(t, "http://"+d)
	converged(t, 25, bases[0], bases[1], "http://"+d)

	if err := cmdA.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmdA.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, logsA)
	}

	// A held the NATS server: B serves its last values marked stale and
	// refuses ingest with 503 until NATS is back.
	streamtest.WaitFor(t, 15*time.Second, "B marks its symbols stale", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		snap, err := streamtest.Snapshot(ctx, bases[1], clusterSymbols...)
		if err != nil {
			return err
		}
		for _, s := range clusterSymbols {
			if snap[s].Fields["status"] != "stale" || snap[s].Fields["bid"] != want[s].Fields["bid"] {
				return fmt.Errorf("%s: %v", s, snap[s].Fields)
			}
		}
		return nil
	})
	resp, err := http.Post(bases[1]+"/v1/ingest", "application/x-ndjson", strings.NewReader(`{"symbol":"AAPL","fields":{"bid":"1"}}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ingest with NATS gone: HTTP %d, want 503", resp.StatusCode)
	}
}

// Two processes share one address with -reuseport; both serve.
func TestReusePort(t *testing.T) {
	natsAddr := freeAddr(t)
	addr := freeAddr(t)
	start(t, nil, "-addr", addr, "-reuseport", "-feed", "none", "-nats", "embedded", "-nats-listen", natsAddr)
	waitReady(t, "http://"+addr)
	start(t, nil, "-addr", addr, "-reuseport", "-feed", "none", "-nats", "nats://"+natsAddr)
	nodes := map[string]bool{}
	streamtest.WaitFor(t, 20*time.Second, "both processes answer on "+addr, func() error {
		tr := &http.Transport{DisableKeepAlives: true} // a new connection each time
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var rep struct {
			Cluster struct{ Node string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			return err
		}
		nodes[rep.Cluster.Node] = true
		if len(nodes) < 2 {
			return fmt.Errorf("only %v answered", nodes)
		}
		return nil
	})
	ingest(t, "http://"+addr, 0, 3)
	converged(t, 3, "http://"+addr)
}

func TestClusterCommandLine(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad url", []string{"-nats", "http://x"}, 2, "want embedded or nats://"},
		{"interest alone", []string{"-nats-interest"}, 2, "-nats-interest needs -nats"},
		{"bad storage", []string{"-nats", "embedded", "-nats-storage", "tape"}, 2, "-nats-storage"},
		{"unreachable", []string{"-feed", "none", "-nats", "nats://127.0.0.1:1"}, 1, "cannot reach NATS"},
		{"routes without embedded", []string{"-nats", "nats://127.0.0.1:4222", "-nats-routes", "nats://127.0.0.1:6222"}, 2, "go with -nats embedded"},
		{"busy nats listen", []string{"-feed", "none", "-nats", "embedded", "-nats-listen", "BUSY"}, 1, "cannot listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-addr", "127.0.0.1:0"}, tc.args...)
			for i, a := range args {
				if a == "BUSY" {
					busy := freeAddr(t)
					ln, err := net.Listen("tcp", busy)
					if err != nil {
						t.Fatal(err)
					}
					defer ln.Close()
					args[i] = busy
				}
			}
			out, err := exec.Command(binary, args...).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, want %d with %q; output:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

// Three processes, each with its own embedded NATS server, the three
// servers routed into one NATS cluster with the stream replicated three
// times: killing one process leaves the other two current, not stale.
func TestEmbeddedRoutesNoSinglePointOfFailure(t *testing.T) {
	var addrs, natsAddrs, routeAddrs, routeURLs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, freeAddr(t))
		natsAddrs = append(natsAddrs, freeAddr(t))
		routeAddrs = append(routeAddrs, freeAddr(t))
		routeURLs = append(routeURLs, "nats://"+routeAddrs[i])
	}
	var cmds []*exec.Cmd
	for i := range addrs {
		cmd, _ := start(t, nil, "-addr", addrs[i], "-feed", "none", "-nats", "embedded", "-nats-listen", natsAddrs[i],
			"-nats-cluster-listen", routeAddrs[i], "-nats-routes", strings.Join(routeURLs, ","), "-nats-replicas", "3")
		cmds = append(cmds, cmd)
	}
	var bases []string
	for _, a := range addrs {
		bases = append(bases, "http://"+a)
		waitReady(t, "http://"+a)
	}
	ingest(t, bases[1], 0, 10)
	converged(t, 10, bases...)

	if err := cmds[0].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmds[0].Wait()
	// If the lost server led the stream, the other two elect a new leader
	// first; publishes in that window fail (counted, see docs/scaling.md).
	// The cluster must take writes again, without the third node.
	waitWritable(t, bases[2], bases[1:]...)
	ingest(t, bases[2], 10, 5)
	want := converged(t, 15, bases[1:]...)
	for s, v := range want {
		if v.Fields["status"] == "stale" {
			t.Errorf("%s stale after losing one of three nodes", s)
		}
	}
}
