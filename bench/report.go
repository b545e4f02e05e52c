package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one load run measured. It marshals to JSON and merges with
// the reports of other worker processes of the same run (Merge). Counts are
// totals over the run unless a comment says otherwise; durations are
// seconds; histogram values are microseconds.
type Report struct {
	Transport string   `json:"transport"`       // as asked: "ws", or a comma list spread round-robin
	URLs      []string `json:"urls"`            // tickerd base URLs, spread round-robin
	Conns     int      `json:"conns"`           // sessions asked for
	Symbols   int      `json:"symbols"`         // symbols per session
	MaxHz     int      `json:"maxHz,omitempty"` // asked per session; 0 = server default
	Zipf      float64  `json:"zipf"`            // 0 = uniform
	Seed      uint64   `json:"seed"`
	Procs     int      `json:"procs"`             // processes whose reports are merged here
	SlowConns int      `json:"slowConns"`         // sessions that read slowly (Config.Slow)
	SlowBPS   int      `json:"slowBPS,omitempty"` // bytes/s each slow session reads; 0 when none

	Start         time.Time `json:"start"`
	RampSeconds   float64   `json:"rampSeconds"`   // first connect attempt to the last session settled
	SteadySeconds float64   `json:"steadySeconds"` // measurement window after the ramp

	Connected  int64            `json:"connected"`  // sessions that connected at least once
	Failed     int64            `json:"failed"`     // sessions that failed to connect or ended early
	Reconnects int64            `json:"reconnects"` // reconnections after a max_age close
	Failures   map[string]int64 `json:"failures"`   // failures by kind (connect, status_429, eof, read, closed, ...)

	Messages     map[string]int64 `json:"messages"`     // server messages by type
	ServerErrors map[string]int64 `json:"serverErrors"` // codes of error messages
	CloseCodes   map[string]int64 `json:"closeCodes"`   // codes of close messages
	Protocol     map[string]int64 `json:"protocol"`     // contract violations seen by the client
	Frames       int64            `json:"frames"`       // WebSocket frames, NDJSON lines, SSE events, poll replies
	Bytes        int64            `json:"bytes"`        // payload bytes read (frame payloads, HTTP bodies)
	Skipped      int64            `json:"skipped"`      // seqs skipped between a symbol's updates: news conflated by the server

	SteadyData int64   `json:"steadyData"` // updates and snapshots received in the steady window
	DataPerSec float64 `json:"dataPerSec"` // SteadyData / SteadySeconds, summed over processes

	Latency     *Hist `json:"latency"`     // updates: receive time - ts, sessions that are not slow readers
	LatencySlow *Hist `json:"latencySlow"` // the same for slow-reading sessions
	// LatencySteady is Latency over the steady window alone, without the
	// ramp (within the 250 ms a session may hold its counts); nil in
	// reports written before it existed.
	LatencySteady *Hist `json:"latencySteady,omitempty"`
	SnapshotAge   *Hist `json:"snapshotAge"` // snapshots: receive time - ts
	Connect       *Hist `json:"connect"`     // dial to subscribed stream (upgrade, headers or first poll reply)

	// ByTransport splits the sessions and update latencies by transport
	// when a run mixes transports; nil otherwise.
	ByTransport map[string]*TransportStats `json:"byTransport,omitempty"`

	Check *Check `json:"check,omitempty"` // convergence check; nil when not run
	CPU   CPU    `json:"cpu"`             // this client's own CPU use
	// MaxRSS is the client's peak resident memory in bytes (getrusage),
	// summed over processes.
	MaxRSS int64 `json:"maxRSS"`
}

// TransportStats is the share of one transport in a run that mixes them.
type TransportStats struct {
	Conns       int   `json:"conns"`       // sessions on this transport (slow ones included)
	SlowConns   int   `json:"slowConns"`   // of which slow readers
	Latency     *Hist `json:"latency"`     // as Report.Latency
	LatencySlow *Hist `json:"latencySlow"` // as Report.LatencySlow
}

func newTransportStats() *TransportStats {
	return &TransportStats{Latency: newHist(maxLatencyUS), LatencySlow: newHist(maxLatencyUS)}
}

// latency returns the histogram of fast or slow sessions.
func (t *TransportStats) latency(slow bool) *Hist {
	if slow {
		return t.LatencySlow
	}
	return t.Latency
}

func (t *TransportStats) merge(o *TransportStats) {
	t.Conns += o.Conns
	t.SlowConns += o.SlowConns
	t.Latency = mergeHist(t.Latency, o.Latency)
	t.LatencySlow = mergeHist(t.LatencySlow, o.LatencySlow)
}

// mergeHist merges o into h, allocating h if a report read from older
// JSON lacked it.
func mergeHist(h, o *Hist) *Hist {
	if h == nil {
		h = newHist(maxLatencyUS)
	}
	h.Merge(o)
	return h
}

// CPU is a process's CPU time (getrusage) over a wall-clock window.
type CPU struct {
	UserSeconds   float64 `json:"userSeconds"`
	SystemSeconds float64 `json:"systemSeconds"`
	WallSeconds   float64 `json:"wallSeconds"`
	Cores         float64 `json:"cores"` // (user+system)/wall: 1 = one core busy
}

// Check is the result of the convergence check: for each (session,
// symbol) pair, the session's view is compared with GET /v1/snapshot.
type Check struct {
	Pairs          int64    `json:"pairs"`          // (session, symbol) pairs checked
	Compared       int64    `json:"compared"`       // pairs seen at the snapshot's seq, all fields compared
	CaughtUp       int64    `json:"caughtUp"`       // pairs that reached the snapshot's seq in time (includes Compared)
	Lagging        int64    `json:"lagging"`        // pairs still behind the snapshot's seq after the window
	Diverged       int64    `json:"diverged"`       // pairs at the snapshot's seq with other field values
	SnapshotErrors int64    `json:"snapshotErrors"` // failed GET /v1/snapshot requests
	Examples       []string `json:"examples,omitempty"`
}

// maxExamples bounds Check.Examples.
const maxExamples = 10

// OK reports whether every pair converged.
func (c *Check) OK() bool {
	return c.Lagging == 0 && c.Diverged == 0 && c.SnapshotErrors == 0
}

func (c *Check) merge(o *Check) {
	c.Pairs += o.Pairs
	c.Compared += o.Compared
	c.CaughtUp += o.CaughtUp
	c.Lagging += o.Lagging
	c.Diverged += o.Diverged
	c.SnapshotErrors += o.SnapshotErrors
	for _, e := range o.Examples {
		if len(c.Examples) < maxExamples {
			c.Examples = append(c.Examples, e)
		}
	}
}

func newReport() *Report {
	return &Report{
		Failures:     map[string]int64{},
		Messages:     map[string]int64{},
		ServerErrors: map[string]int64{},
		CloseCodes:   map[string]int64{},
		Protocol:     map[string]int64{},
		Latency:      newHist(maxLatencyUS),
		LatencySlow:  newHist(maxLatencyUS),
		SnapshotAge:  newHist(maxLatencyUS),
		Connect:      newHist(maxConnectUS),
	}
}

// Data returns the updates and snapshots received.
func (r *Report) Data() int64 { return r.Messages["update"] + r.Messages["snapshot"] }

// Problems lists what makes the run a failure: failed sessions, protocol
// violations, server error messages and a failed convergence check. It is
// empty for a clean run.
func (r *Report) Problems() []string {
	var p []string
	if r.Failed > 0 {
		p = append(p, fmt.Sprintf("%d sessions failed (%s)", r.Failed, counts(r.Failures)))
	}
	if n := sum(r.Protocol); n > 0 {
		p = append(p, fmt.Sprintf("%d protocol violations (%s)", n, counts(r.Protocol)))
	}
	if n := sum(r.ServerErrors); n > 0 {
		p = append(p, fmt.Sprintf("%d server errors (%s)", n, counts(r.ServerErrors)))
	}
	if r.Check != nil && !r.Check.OK() {
		p = append(p, fmt.Sprintf("convergence failed: %d lagging, %d diverged, %d snapshot errors",
			r.Check.Lagging, r.Check.Diverged, r.Check.SnapshotErrors))
	}
	return p
}

// Merge adds o, the report of another process of the same run, into r.
// Counts and histograms add up; windows take the longest; CPU cores and
// rates add up, since the processes ran side by side.
func (r *Report) Merge(o *Report) {
	if r.Start.IsZero() || (!o.Start.IsZero() && o.Start.Before(r.Start)) {
		r.Start = o.Start
	}
	if r.Transport == "" {
		r.Transport, r.URLs, r.Symbols, r.MaxHz, r.Zipf, r.Seed = o.Transport, o.URLs, o.Symbols, o.MaxHz, o.Zipf, o.Seed
	}
	r.Conns += o.Conns
	r.Procs += o.Procs
	r.SlowConns += o.SlowConns
	r.SlowBPS = max(r.SlowBPS, o.SlowBPS)
	r.RampSeconds = max(r.RampSeconds, o.RampSeconds)
	r.SteadySeconds = max(r.SteadySeconds, o.SteadySeconds)
	r.Connected += o.Connected
	r.Failed += o.Failed
	r.Reconnects += o.Reconnects
	for _, m := range []struct{ dst, src map[string]int64 }{
		{r.Failures, o.Failures}, {r.Messages, o.Messages}, {r.ServerErrors, o.ServerErrors},
		{r.CloseCodes, o.CloseCodes}, {r.Protocol, o.Protocol},
	} {
		for k, v := range m.src {
			m.dst[k] += v
		}
	}
	r.Frames += o.Frames
	r.Bytes += o.Bytes
	r.Skipped += o.Skipped
	r.SteadyData += o.SteadyData
	r.DataPerSec += o.DataPerSec
	r.Latency.Merge(o.Latency)
	r.LatencySlow = mergeHist(r.LatencySlow, o.LatencySlow)
	if o.LatencySteady != nil {
		r.LatencySteady = mergeHist(r.LatencySteady, o.LatencySteady)
	}
	r.SnapshotAge.Merge(o.SnapshotAge)
	r.Connect.Merge(o.Connect)
	for name, t := range o.ByTransport {
		if r.ByTransport == nil {
			r.ByTransport = map[string]*TransportStats{}
		}
		if r.ByTransport[name] == nil {
			r.ByTransport[name] = newTransportStats()
		}
		r.ByTransport[name].merge(t)
	}
	if o.Check != nil {
		if r.Check == nil {
			r.Check = &Check{}
		}
		r.Check.merge(o.Check)
	}
	r.CPU.UserSeconds += o.CPU.UserSeconds
	r.CPU.SystemSeconds += o.CPU.SystemSeconds
	r.CPU.WallSeconds = max(r.CPU.WallSeconds, o.CPU.WallSeconds)
	r.CPU.Cores += o.CPU.Cores
	r.MaxRSS += o.MaxRSS
}

// WriteText writes the report as a human-readable table.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("target", "%s  transport %s  %d sessions x %d symbols  maxHz %s  zipf %g  seed %d  procs %d",
		strings.Join(r.URLs, ","), r.Transport, r.Conns, r.Symbols, hz(r.MaxHz), r.Zipf, r.Seed, r.Procs)
	row("sessions", "%d connected, %d failed, %d reconnects  ramp %.1fs  steady %.1fs",
		r.Connected, r.Failed, r.Reconnects, r.RampSeconds, r.SteadySeconds)
	if r.SlowConns > 0 {
		row("slow readers", "%d sessions reading %s/s each", r.SlowConns, byteSize(int64(r.SlowBPS)))
	}
	if len(r.Failures) > 0 {
		row("failures", "%s", counts(r.Failures))
	}
	row("delivered", "%.0f msg/s (updates+snapshots, steady window)", r.DataPerSec)
	row("messages", "%s", counts(r.Messages))
	row("frames", "%d  (%.1f messages/frame)  %s read", r.Frames, ratio(sum(r.Messages), r.Frames), byteSize(r.Bytes))
	row("conflation", "%d seqs skipped between updates (%.1f%% of the news was folded into later updates)",
		r.Skipped, 100*ratio(r.Skipped, r.Skipped+r.Messages["update"]))
	if r.SlowConns > 0 {
		row("latency", "%s  (update ts to client, sessions reading at full speed)", histLine(r.Latency))
		row("latency slow", "%s  (slow readers)", histLine(r.LatencySlow))
	} else {
		row("latency", "%s  (update ts to client)", histLine(r.Latency))
	}
	if r.LatencySteady != nil {
		row("  steady", "%s  (the same, steady window only)", histLine(r.LatencySteady))
	}
	for _, name := range slices.Sorted(maps.Keys(r.ByTransport)) {
		t := r.ByTransport[name]
		row("  "+name, "%d sessions: %s", t.Conns-t.SlowConns, histLine(t.Latency))
		if t.SlowConns > 0 {
			row("  "+name+" slow", "%d sessions: %s", t.SlowConns, histLine(t.LatencySlow))
		}
	}
	row("snapshot age", "%s", histLine(r.SnapshotAge))
	row("connect", "%s", histLine(r.Connect))
	if len(r.ServerErrors) > 0 {
		row("server errors", "%s", counts(r.ServerErrors))
	}
	if len(r.CloseCodes) > 0 {
		row("close codes", "%s", counts(r.CloseCodes))
	}
	if len(r.Protocol) > 0 {
		row("protocol", "%s", counts(r.Protocol))
	}
	if c := r.Check; c != nil {
		verdict := "converged"
		switch {
		case !c.OK():
			verdict = "FAILED"
		case c.Pairs == 0:
			verdict = "nothing to check (no open session)"
		}
		row("convergence", "%s: %d pairs, %d caught up (%d compared field by field), %d lagging, %d diverged, %d snapshot errors",
			verdict, c.Pairs, c.CaughtUp, c.Compared, c.Lagging, c.Diverged, c.SnapshotErrors)
		for _, e := range c.Examples {
			row("", "%s", e)
		}
	}
	row("client", "%.2f cores (%.0f%% of one core) over %.1fs, peak RSS %s", r.CPU.Cores, 100*r.CPU.Cores, r.CPU.WallSeconds, byteSize(r.MaxRSS))
	if p := r.Problems(); len(p) > 0 {
		row("result", "FAIL: %s", strings.Join(p, "; "))
	} else {
		row("result", "ok")
	}
	return tw.Flush()
}

func hz(n int) string {
	if n == 0 {
		return "server default"
	}
	return fmt.Sprint(n)
}

func histLine(h *Hist) string {
	if h == nil || h.Count() == 0 {
		return "n=0"
	}
	return fmt.Sprintf("n=%d  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", h.Count(),
		micros(h.Quantile(.5)), micros(h.Quantile(.9)), micros(h.Quantile(.99)), micros(h.Quantile(.999)), micros(h.Max()))
}

// micros formats microseconds with a unit a person reads at a glance.
func micros(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1000000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	}
	return fmt.Sprintf("%.2fs", float64(us)/1e6)
}

func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

func counts(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
