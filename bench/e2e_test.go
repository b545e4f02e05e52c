package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestEndToEnd builds tickerd and tickerbench, starts tickerd on a free
// loopback port with a small simulated feed, and runs tickerbench against
// it: 50 sessions each of WebSocket, SSE and NDJSON (in one process, then
// spread over three worker processes), then three scenarios scaled down.
// It asserts outcomes, never absolute times.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tickerd and tickerbench; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	args := append(append([]string{"build"}, buildFlags...), "-o", dir+string(filepath.Separator), "tickerd/cmd/tickerd", "tickerd/cmd/tickerbench")
	build := exec.CommandContext(ctx, "go", args...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tickerd, tickerbench := filepath.Join(dir, "tickerd"), filepath.Join(dir, "tickerbench")

	srv, err := StartServer(ctx, tickerd, []string{"-sim-symbols", "100", "-sim-rate", "300", "-max-hz", "20"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop tickerd: %v\n%s", err, srv.Log())
		}
	})

	bench := func(t *testing.T, args ...string) *Report {
		t.Helper()
		out := filepath.Join(t.TempDir(), "report.json")
		cmd := exec.CommandContext(ctx, tickerbench, append(args, "-out", out, "-quiet")...)
		text, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tickerbench %q: %v\n%s", args, err, text)
		}
		var rep Report
		data, err := os.ReadFile(out)
		if err == nil {
			err = json.Unmarshal(data, &rep)
		}
		if err != nil {
			t.Fatalf("report: %v\n%s", err, text)
		}
		return &rep
	}
	load := []string{"-url", srv.URL, "-transport", "ws,sse,ndjson", "-conns", "150", "-symbols", "5",
		"-duration", "3s", "-rate", "300", "-check"}
	for _, tt := range []struct {
		name  string
		procs int
	}{
		{"one process", 1},
		{"three workers", 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := bench(t, append(load, "-procs", strconv.Itoa(tt.procs))...)
			if p := rep.Problems(); len(p) > 0 {
				t.Fatalf("problems: %q", p)
			}
			if rep.Connected != 150 || rep.Conns != 150 || rep.Procs != tt.procs {
				t.Errorf("connected %d of %d in %d processes", rep.Connected, rep.Conns, rep.Procs)
			}
			if rep.Messages["update"] == 0 || rep.Messages["snapshot"] == 0 || rep.Messages["session"] != 100 {
				t.Errorf("messages %v (want updates, snapshots, and a session message per SSE and NDJSON session)", rep.Messages)
			}
			if c := rep.Check; c == nil || c.Pairs != 750 || !c.OK() {
				t.Errorf("convergence check %+v", c)
			}
		})
	}

	if err := srv.Stop(); err != nil {
		t.Errorf("stop tickerd: %v\n%s", err, srv.Log())
	}

	t.Run("scenario footprint", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "footprint.json")
		cmd := exec.CommandContext(ctx, tickerbench, "scenario", "footprint", "-tickerd", tickerd,
			"-conns", "200", "-duration", "1s", "-target-kib", "0", "-out", out, "-quiet")
		scenario(t, cmd, out, func(r *ScenarioReport) {
			if r.Server.RSSBaseline <= 0 || r.Server.RSSLoaded <= 0 || r.Client.Connected != 200 {
				t.Errorf("server %+v, %d connected", r.Server, r.Client.Connected)
			}
		})
	})
	t.Run("scenario hold over two processes", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "hold.json")
		cmd := exec.CommandContext(ctx, tickerbench, "scenario", "hold", "-tickerd", tickerd,
			"-conns", "60", "-procs", "2", "-duration", "1s", "-slow", "0.1", "-out", out, "-quiet")
		scenario(t, cmd, out, func(r *ScenarioReport) {
			c := r.Client
			if r.Conns != 60 || c.Procs != 2 || c.Connected != 60 || c.SlowConns != 6 || c.Check == nil || c.Check.Pairs != 1200 {
				t.Errorf("conns %d, procs %d, connected %d, slow %d, check %+v", r.Conns, c.Procs, c.Connected, c.SlowConns, c.Check)
			}
			// The workers' steady windows were aligned with the server's
			// samples: the CPU window is the steady one.
			if r.Server.RSSBaseline <= 0 || r.Server.WindowSeconds < 0.9 || c.Latency.Count() == 0 {
				t.Errorf("server %+v, %d latencies", r.Server, c.Latency.Count())
			}
		})
	})
	t.Run("scenario fanout-wide", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "fanout.json")
		cmd := exec.CommandContext(ctx, tickerbench, "-conns", "100", "-symbols", "10", "-duration", "2s",
			"scenario", "fanout-wide", "-tickerd", tickerd, "-out", out, "-quiet") // flags before and after
		scenario(t, cmd, out, func(r *ScenarioReport) {
			if r.Client.DataPerSec <= 0 || r.Client.Latency.Count() == 0 || r.Server.CPUSeconds <= 0 {
				t.Errorf("delivered %.0f msg/s, %d latencies, server cpu %.2fs",
					r.Client.DataPerSec, r.Client.Latency.Count(), r.Server.CPUSeconds)
			}
		})
	})
}

// scenario runs a scenario command and checks its report.
func scenario(t *testing.T, cmd *exec.Cmd, out string, check func(*ScenarioReport)) {
	t.Helper()
	text, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, text)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r ScenarioReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 || r.Client == nil {
		t.Fatalf("problems %q\n%s", r.Problems, text)
	}
	check(&r)
}
