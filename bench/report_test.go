package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sampleReport returns a report with latencies lo..hi-1 µs and a few counts.
func sampleReport(lo, hi int64, failed int64) *Report {
	r := newReport()
	r.Transport, r.URLs, r.Conns, r.Symbols, r.Procs = "ws", []string{"http://127.0.0.1:1"}, 10, 5, 1
	for v := lo; v < hi; v++ {
		r.Latency.Record(v)
	}
	r.Connect.Record(lo)
	r.Messages["update"] = hi - lo
	r.Messages["snapshot"] = 5
	r.ServerErrors["bad_request"] = 1
	r.Failed = failed
	r.Skipped = 3
	if failed > 0 {
		r.Failures["connect"] = failed
	}
	r.DataPerSec = 100
	r.SteadySeconds = float64(lo%7 + 1)
	r.CPU = CPU{UserSeconds: 1, SystemSeconds: 0.5, WallSeconds: 10, Cores: 0.15}
	r.Check = &Check{Pairs: 50, CaughtUp: 50, Compared: 40}
	return r
}

func roundTrip(t *testing.T, r *Report) *Report {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	out := newReport()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReportMerge(t *testing.T) {
	a, b := sampleReport(1, 1001, 0), sampleReport(1001, 3001, 2)
	whole := sampleReport(1, 3001, 0)

	merged := roundTrip(t, a)
	merged.Merge(roundTrip(t, b))

	if got, want := merged.Latency.Count(), whole.Latency.Count(); got != want {
		t.Fatalf("latency count %d, want %d", got, want)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if got, want := merged.Latency.Quantile(q), whole.Latency.Quantile(q); got != want {
			t.Errorf("p%v = %d, want %d as if recorded in one histogram", q*100, got, want)
		}
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"conns", float64(merged.Conns), 20},
		{"procs", float64(merged.Procs), 2},
		{"failed", float64(merged.Failed), 2},
		{"updates", float64(merged.Messages["update"]), 3000},
		{"skipped", float64(merged.Skipped), 6},
		{"server errors", float64(merged.ServerErrors["bad_request"]), 2},
		{"failures", float64(merged.Failures["connect"]), 2},
		{"rate", merged.DataPerSec, 200},
		{"cores", merged.CPU.Cores, 0.3},
		{"cpu seconds", merged.CPU.UserSeconds, 2},
		{"steady", merged.SteadySeconds, max(a.SteadySeconds, b.SteadySeconds)},
		{"pairs", float64(merged.Check.Pairs), 100},
		{"connect", float64(merged.Connect.Count()), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if p := merged.Problems(); len(p) != 2 {
		t.Errorf("problems %q, want failed sessions and server errors", p)
	}
	var text bytes.Buffer
	if err := merged.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"latency", "p99", "FAIL", "converged"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestHistJSON(t *testing.T) {
	h := newHist(maxLatencyUS)
	h.Record(-5)               // clamped to 0
	h.Record(maxLatencyUS * 2) // clamped to the highest value
	h.Record(1500)
	data, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var summary map[string]any
	if err := json.Unmarshal(data, &summary); err != nil {
		t.Fatal(err)
	}
	if summary["count"] != 3.0 || summary["min"] != 0.0 {
		t.Fatalf("summary %s", data)
	}
	back := newHist(1)
	if err := json.Unmarshal(data, back); err != nil {
		t.Fatal(err)
	}
	if back.Count() != 3 || back.Quantile(0.5) != h.Quantile(0.5) {
		t.Fatalf("round trip: count %d p50 %d", back.Count(), back.Quantile(0.5))
	}
	if err := json.Unmarshal([]byte(`{"hdr":"bm90IGEgaGlzdG9ncmFt"}`), back); err == nil {
		t.Fatal("garbage hdr accepted")
	}
}

// TestReportMergeSlow merges the slow readers' figures and the split by
// transport, and a report without them (older JSON) merges too.
func TestReportMergeSlow(t *testing.T) {
	withSlow := func(lo, hi int64) *Report {
		r := sampleReport(lo, hi, 0)
		r.SlowConns, r.SlowBPS = 2, 10<<10
		r.ByTransport = map[string]*TransportStats{"ws": newTransportStats(), "sse": newTransportStats()}
		r.ByTransport["ws"].Conns, r.ByTransport["ws"].SlowConns = 5, 1
		r.ByTransport["sse"].Conns, r.ByTransport["sse"].SlowConns = 5, 1
		for v := lo; v < hi; v++ {
			r.LatencySlow.Record(1000 * v)
			r.ByTransport["ws"].Latency.Record(v)
			r.ByTransport["sse"].LatencySlow.Record(1000 * v)
		}
		return r
	}
	merged := roundTrip(t, withSlow(1, 101))
	merged.Merge(roundTrip(t, withSlow(101, 301)))
	var old Report // as decoded from a report without latencySlow or byTransport
	if err := json.Unmarshal([]byte(`{"latency":null}`), &old); err != nil {
		t.Fatal(err)
	}
	old.Latency, old.Connect, old.SnapshotAge = newHist(maxLatencyUS), newHist(maxConnectUS), newHist(maxLatencyUS)
	merged.Merge(&old)

	checks := []struct {
		name      string
		got, want int64
	}{
		{"slow conns", int64(merged.SlowConns), 4},
		{"slow bps", int64(merged.SlowBPS), 10 << 10},
		{"slow latencies", merged.LatencySlow.Count(), 300},
		{"slow p50", merged.LatencySlow.Quantile(0.5), withSlow(1, 301).LatencySlow.Quantile(0.5)},
		{"fast latencies", merged.Latency.Count(), 300},
		{"ws conns", int64(merged.ByTransport["ws"].Conns), 10},
		{"ws slow conns", int64(merged.ByTransport["ws"].SlowConns), 2},
		{"ws latencies", merged.ByTransport["ws"].Latency.Count(), 300},
		{"sse slow latencies", merged.ByTransport["sse"].LatencySlow.Count(), 300},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	var text bytes.Buffer
	if err := merged.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"4 sessions reading 10.0 KiB/s", "latency slow", "  sse slow", "  ws "} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}
