package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Pixels of one panel of PlotLatency's PNG.
const (
	panelW = 768 // 8 in at 96 dpi
	panelH = 480 // 5 in
)

// latencyReport returns a client report of conns sessions whose update
// latencies run from lo to hi µs, with a tail ten times hi.
func latencyReport(conns int, lo, hi int64) *Report {
	r := newReport()
	r.Transport, r.Conns, r.Connected, r.Symbols, r.MaxHz = "ws", conns, int64(conns), 20, 4
	for v := lo; v < hi; v += max((hi-lo)/1000, 1) {
		r.Latency.Record(v)
	}
	r.Latency.RecordN(10*hi, 2)
	return r
}

func holdReport(conns int, lo, hi int64) *ScenarioReport {
	return &ScenarioReport{
		Name:       "hold",
		ServerArgs: []string{"-addr", "127.0.0.1:41234", "-sim-symbols", "5000", "-sim-rate", "10000", "-max-hz", "4"},
		Client:     latencyReport(conns, lo, hi),
	}
}

// writeFile writes v as JSON (or a string as is) into dir and returns the
// path.
func writeFile(t testing.TB, dir, name string, v any) string {
	t.Helper()
	data, ok := v.(string)
	if !ok {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		data = string(b)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// clusterReport is a hold-50k report over three nodes.
func clusterReport(conns int, lo, hi int64) *ScenarioReport {
	r := holdReport(conns, lo, hi)
	r.Name = "hold-50k"
	r.ServerArgs = append(r.ServerArgs, "-nats", "embedded", "-nats-listen", "127.0.0.1:4999")
	r.Nodes = make([]NodeStats, 3)
	return r
}

func TestPlotLatency(t *testing.T) {
	tests := []struct {
		name    string
		reports map[string]any // file name -> report
		panels  int
	}{
		{"scenario at three connection counts", map[string]any{
			"hold-2000.json":  holdReport(2000, 500, 4000),
			"hold-5000.json":  holdReport(5000, 800, 9000),
			"hold-18000.json": holdReport(18000, 2000, 40000),
		}, 1},
		{"one report draws points", map[string]any{"hold-2000.json": holdReport(2000, 500, 4000)}, 1},
		{"narrow spread, linear axis", map[string]any{
			"a.json": holdReport(100, 1000, 1200),
			"b.json": holdReport(200, 1100, 1300),
		}, 1},
		{"load reports", map[string]any{
			"ws-100.json": latencyReport(100, 100, 2000),
			"ws-300.json": latencyReport(300, 200, 3000),
		}, 1},
		{"a panel per scenario", map[string]any{
			"hold-2000.json": holdReport(2000, 500, 4000),
			"hold-5000.json": holdReport(5000, 800, 9000),
			"fanout.json":    &ScenarioReport{Name: "fanout", ServerArgs: []string{"-max-hz", "1000"}, Client: latencyReport(1000, 3000, 70000)},
			"load.json":      latencyReport(50, 100, 200),
		}, 3},
		{"a cluster point in its single-node panel", map[string]any{
			"hold-2000.json":  holdReport(2000, 500, 4000),
			"hold-18000.json": holdReport(18000, 2000, 40000),
			"hold-50k.json":   clusterReport(50000, 3000, 90000),
		}, 1},
		{"cluster points at several sizes", map[string]any{
			"hold-2000.json":      holdReport(2000, 500, 4000),
			"hold-50k-1000.json":  clusterReport(1000, 300, 5000),
			"hold-50k-10000.json": clusterReport(10000, 3000, 90000),
			"hold-50k.json":       clusterReport(50000, 30000, 900000),
		}, 1},
		{"a cluster point alone", map[string]any{"hold-50k.json": clusterReport(300, 100, 900)}, 1},
		{"zero latencies", map[string]any{"zero.json": latencyReport(10, 0, 1)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for name, rep := range tt.reports {
				paths = append(paths, writeFile(t, dir, name, rep))
			}
			var out bytes.Buffer
			if err := PlotLatency(&out, paths...); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&out)
			if err != nil {
				t.Fatalf("not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != panelW || b.Dy() != tt.panels*panelH {
				t.Errorf("image %dx%d, want %dx%d", b.Dx(), b.Dy(), panelW, tt.panels*panelH)
			}
		})
	}
}

func TestPlotLatencyErrors(t *testing.T) {
	noLatency := latencyReport(10, 0, 1)
	noLatency.Latency.Reset()
	tests := []struct {
		name    string
		content any // "" for no file at all
		is      error
		msg     string
	}{
		{"missing file", nil, fs.ErrNotExist, "read report"},
		{"empty file", " \n", ErrNotReport, "empty file"},
		{"not JSON", "p50 3ms\n", ErrNotReport, "invalid character"},
		{"JSON array", "[1, 2]", ErrNotReport, "not a JSON object"},
		{"other JSON object", `{"name": "x"}`, ErrNotReport, `no "client"`},
		{"scenario without client", `{"name": "hold", "client": null}`, ErrNoLatency, "without a client report"},
		{"latency null", `{"conns": 5, "latency": null}`, ErrNoLatency, "no latency histogram"},
		{"no update received", noLatency, ErrNoLatency, "no update was received"},
		{"scenario with no update", &ScenarioReport{Name: "hold", Client: noLatency}, ErrNoLatency, "no update was received"},
		{"corrupt histogram", `{"conns": 5, "latency": {"count": 3, "hdr": "nonsense"}}`, nil, "decode histogram"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			good := writeFile(t, dir, "good.json", holdReport(100, 10, 2000))
			bad := filepath.Join(dir, "bad.json")
			if tt.content != nil {
				writeFile(t, dir, "bad.json", tt.content)
			}
			var out bytes.Buffer
			err := PlotLatency(&out, good, bad)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %q", err, tt.is)
			}
			if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q should name %s and say %q", err, bad, tt.msg)
			}
			if out.Len() > 0 {
				t.Errorf("wrote %d bytes despite the error", out.Len())
			}
		})
	}
	if err := PlotLatency(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no reports") {
		t.Errorf("no paths: error %v", err)
	}
}

func TestPlotGroupTitle(t *testing.T) {
	key, detail := groupOf(holdReport(10, 1, 2))
	if want := "tickerd -sim-symbols 5000 -sim-rate 10000 -max-hz 4"; key != "hold" || detail != want {
		t.Errorf("group %q %q, want hold %q (no -addr)", key, detail, want)
	}
	key, detail = groupOf(clusterReport(10, 1, 2))
	if key != "hold" || !strings.Contains(detail, "-nats embedded") {
		t.Errorf("cluster report grouped as %q %q, want the hold panel", key, detail)
	}
	g := newPlotGroup(key, clusterReport(10, 1, 2), detail)
	g.add(clusterReport(10, 1, 2), detail)
	g.add(holdReport(20, 1, 2), "tickerd -max-hz 4")
	if g.detail != "tickerd -max-hz 4" || g.varies || len(g.conns) != 1 || len(g.clusters) != 1 || g.clusters[0].nodes != 3 {
		t.Errorf("group %+v: the cluster point must stay apart and leave the title to the single-node reports", g)
	}
	key, detail = groupOf(&ScenarioReport{Client: latencyReport(10, 1, 2)})
	if key != "load run (ws)" || !strings.Contains(detail, "-symbols 20 -max-hz 4") {
		t.Errorf("load run grouped as %q %q", key, detail)
	}
}

func TestLogTicks(t *testing.T) {
	var labels []string
	for _, tk := range (logTicks{}).Ticks(0, 2) {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got, want := strings.Join(labels, " "), "1 2 5 10 20 50 100"; got != want {
		t.Errorf("labels %q, want %q", got, want)
	}
	if ticks := (logTicks{}).Ticks(-3, -2); len(ticks) != 10 || ticks[0].Label != "0.001" || ticks[0].Value != -3 {
		t.Errorf("ticks of [0.001, 0.01]: %v", ticks)
	}
}

func TestThousandsAndWrap(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 18000: "18,000", 1234567.5: "1,234,567.5", -2500: "-2,500"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
	if got, want := wrap("tickerd -a 1 -bb 22", 10), "tickerd -a\n1 -bb 22"; got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}
