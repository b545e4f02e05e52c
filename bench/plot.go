package bench

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Errors of ReadReport and PlotLatency, followed by the file's path and
// what is wrong with it.
var (
	ErrNotReport = errors.New("bench: not a tickerbench report")
	ErrNoLatency = errors.New("bench: no latency data")
)

// Plot geometry: each scenario gets a panel of plotWidth x plotPanelHeight
// at plotDPI, stacked top to bottom in the order the scenarios first appear,
// with its legend in a strip of plotLegendWidth on the right.
const (
	plotWidth       = 8 * vg.Inch
	plotPanelHeight = 5 * vg.Inch
	plotLegendWidth = vg.Inch
	plotDPI         = 96
)

// plotQuantiles are the latency percentiles drawn, one line each.
var plotQuantiles = []struct {
	q     float64
	label string
}{
	{0.50, "p50"}, {0.90, "p90"}, {0.99, "p99"}, {0.999, "p99.9"},
}

// ReadReport reads a JSON report written by tickerbench: a ScenarioReport
// (tickerbench scenario -out), or a load run's Report (tickerbench -out),
// which it returns as the Client of a ScenarioReport with no Name and no
// ServerArgs. Errors name the file.
func ReadReport(path string) (*ScenarioReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: read report: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: %s: empty file", ErrNotReport, path)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, fmt.Errorf("%w: %s: not a JSON object (%v)", ErrNotReport, path, err)
	}
	rep := &ScenarioReport{}
	switch _, isScenario := keys["client"]; {
	case isScenario:
		if err := json.Unmarshal(data, rep); err != nil {
			return nil, fmt.Errorf("bench: read report %s: %w", path, err)
		}
		if rep.Client == nil {
			return nil, fmt.Errorf("%w: %s: scenario report without a client report", ErrNoLatency, path)
		}
	case keys["latency"] != nil || keys["conns"] != nil:
		rep.Client = &Report{}
		if err := json.Unmarshal(data, rep.Client); err != nil {
			return nil, fmt.Errorf("bench: read report %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("%w: %s: no \"client\", \"latency\" or \"conns\" member (want the JSON of tickerbench -out or scenario -out)",
			ErrNotReport, path)
	}
	return rep, nil
}

// PlotLatency reads the reports at paths (see ReadReport) and writes to w
// a PNG of update latency percentiles (p50, p90, p99, p99.9, in
// milliseconds) against connection count (sessions connected, or asked
// for when none is recorded), one line per percentile. Reports are grouped
// by scenario, and load runs by transport; each group gets its own panel,
// titled with the scenario and the server's arguments. The y axis is
// logarithmic when the values span a factor of ten or more. A group with
// a single report is drawn as points. Nothing is written unless every
// report has latency data.
func PlotLatency(w io.Writer, paths ...string) error {
	if len(paths) == 0 {
		return errors.New("bench: plot: no reports")
	}
	var groups []*plotGroup
	for _, path := range paths {
		rep, err := ReadReport(path)
		if err != nil {
			return err
		}
		lat := rep.Client.Latency
		if lat == nil {
			return fmt.Errorf("%w: %s: the report has no latency histogram", ErrNoLatency, path)
		}
		if lat.Count() == 0 {
			return fmt.Errorf("%w: %s: no update was received", ErrNoLatency, path)
		}
		key, detail := groupOf(rep)
		i := slices.IndexFunc(groups, func(g *plotGroup) bool { return g.key == key })
		if i < 0 {
			i = len(groups)
			groups = append(groups, newPlotGroup(key, rep, detail))
		}
		groups[i].add(rep, detail)
	}

	c := vgimg.NewWith(vgimg.UseWH(plotWidth, plotPanelHeight*vg.Length(len(groups))), vgimg.UseDPI(plotDPI))
	plots := make([][]*plot.Plot, len(groups))
	legends := make([]plot.Legend, len(groups))
	for i, g := range groups {
		p, l, err := g.plot()
		if err != nil {
			return err
		}
		plots[i], legends[i] = []*plot.Plot{p}, l
	}
	whole := draw.New(c)
	area := draw.Crop(whole, 0, -plotLegendWidth, 0, 0)
	strip := draw.Crop(whole, whole.Size().X-plotLegendWidth, 0, 0, 0)
	tiles := draw.Tiles{Rows: len(groups), Cols: 1, PadTop: 4, PadBottom: 4, PadLeft: 4, PadRight: 4, PadY: 16}
	for i, row := range plot.Align(plots, tiles, area) {
		p := plots[i][0]
		p.Draw(row[0])
		// The legend starts level with the top of the axes, under the title.
		title := p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
		legends[i].Draw(draw.Crop(tiles.At(strip, 0, i), 8, 0, 0, -title-8))
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(w); err != nil {
		return fmt.Errorf("bench: plot: write png: %w", err)
	}
	return nil
}

// plotGroup is the reports of one panel.
type plotGroup struct {
	key    string // the scenario's name, or "load run (transport)"
	detail string // the server's arguments, or the load run's settings
	varies bool   // detail differs between the reports
	conns  []float64
	ms     [][]float64 // ms[i][j]: plotQuantiles[j] of report i, in milliseconds

	// The reports of cluster scenarios drawn in this panel, apart.
	clusters []clusterPoint
}

// clusterPoint is a cluster scenario's report (ScenarioReport.Nodes),
// drawn in the panel of its single-node counterpart (plotPanelOf) as
// marked points, outside the lines.
type clusterPoint struct {
	name  string // the scenario's
	nodes int
	conns float64
	ms    []float64
}

// plotPanelOf maps a cluster scenario to the panel of the scenario it
// scales out.
var plotPanelOf = map[string]string{"hold-50k": "hold"}

// groupOf returns the panel a report belongs to and the line under its
// title: the server's arguments, without the port it happened to get.
func groupOf(r *ScenarioReport) (key, detail string) {
	if r.Name == "" {
		c := r.Client
		detail = fmt.Sprintf("tickerbench -transport %s -symbols %d -max-hz %d -zipf %g", c.Transport, c.Symbols, c.MaxHz, c.Zipf)
		return "load run (" + c.Transport + ")", detail
	}
	args := slices.Clone(r.ServerArgs)
	if i := slices.Index(args, "-addr"); i >= 0 && i+1 < len(args) {
		args = slices.Delete(args, i, i+2)
	}
	key = r.Name
	if p, ok := plotPanelOf[r.Name]; ok {
		key = p
	}
	return key, strings.TrimSpace("tickerd " + strings.Join(args, " "))
}

// newPlotGroup returns the panel of key; a report of a cluster scenario
// does not set its detail.
func newPlotGroup(key string, r *ScenarioReport, detail string) *plotGroup {
	if len(r.Nodes) > 1 {
		return &plotGroup{key: key}
	}
	return &plotGroup{key: key, detail: detail}
}

func (g *plotGroup) add(r *ScenarioReport, detail string) {
	conns := r.Client.Connected
	if conns <= 0 {
		conns = int64(r.Client.Conns)
	}
	ms := make([]float64, len(plotQuantiles))
	for j, pq := range plotQuantiles {
		ms[j] = float64(r.Client.Latency.Quantile(pq.q)) / 1e3
	}
	if len(r.Nodes) > 1 {
		g.clusters = append(g.clusters, clusterPoint{name: r.Name, nodes: len(r.Nodes), conns: float64(conns), ms: ms})
		return
	}
	if g.detail == "" && len(g.conns) == 0 {
		g.detail = detail
	}
	g.varies = g.varies || detail != g.detail
	g.conns = append(g.conns, float64(conns))
	g.ms = append(g.ms, ms)
}

// plot returns the group's panel and its legend, which is drawn apart so
// that it never hides a point.
func (g *plotGroup) plot() (*plot.Plot, plot.Legend, error) {
	p, legend := plot.New(), plot.NewLegend()
	legend.Top, legend.Left = true, true
	detail := g.detail
	if g.varies {
		detail = "settings differ between the reports; first: " + detail
	}
	p.Title.Text = g.key + ": update latency percentiles by connection count\n" + wrap(detail, 100)
	for i, c := range g.clusters {
		if !slices.ContainsFunc(g.clusters[:i], func(o clusterPoint) bool { return o.name == c.name && o.nodes == c.nodes }) {
			p.Title.Text += fmt.Sprintf("\nfilled dots: %s, the same feed into the first of %d nodes clustered over NATS", c.name, c.nodes)
		}
	}
	p.X.Label.Text = "connections"
	p.Y.Label.Text = "latency (ms, update ts to client)"
	p.X.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		ticks := plot.DefaultTicks{}.Ticks(lo, hi)
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = thousands(ticks[i].Value)
			}
		}
		return ticks
	})
	p.Add(plotter.NewGrid())

	// Points in order of connections, so that the lines run left to right.
	order := make([]int, len(g.conns))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(g.conns[a], g.conns[b]) })
	lo, hi := math.Inf(1), math.Inf(-1)
	all := slices.Clone(g.ms)
	for _, c := range g.clusters {
		all = append(all, c.ms)
	}
	for _, ms := range all {
		for _, v := range ms {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	// A log axis when the values span a factor of ten. It plots log10(ms)
	// on a linear axis labelled in ms: gonum centres the axis label at the
	// data midpoint, which on a plot.LogScale lies near the top and pushes
	// the axes down. A log axis cannot show 0: under a microsecond is one.
	const floor = 1e-3
	logY := hi >= 10*max(lo, floor)
	for j, pq := range plotQuantiles {
		if len(order) == 0 {
			break // only cluster points
		}
		xys := make(plotter.XYs, len(order))
		for k, i := range order {
			xys[k] = plotter.XY{X: g.conns[i], Y: g.ms[i][j]}
			if logY {
				xys[k].Y = math.Log10(max(xys[k].Y, floor))
			}
		}
		pts, err := plotter.NewScatter(xys)
		if err != nil {
			return nil, legend, fmt.Errorf("bench: plot %s %s: %w", g.key, pq.label, err)
		}
		pts.Color, pts.Shape, pts.Radius = plotutil.Color(j), plotutil.Shape(j), vg.Points(3)
		p.Add(pts)
		if len(xys) < 2 {
			legend.Add(pq.label, pts)
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, legend, fmt.Errorf("bench: plot %s %s: %w", g.key, pq.label, err)
		}
		line.Color, line.Width = plotutil.Color(j), vg.Points(1.5)
		p.Add(line)
		legend.Add(pq.label, line, pts)
	}
	if err := g.plotClusters(p, &legend, logY, floor); err != nil {
		return nil, legend, err
	}
	// Connections from zero, so that the slope reads as growth.
	maxConns := 1.0
	for _, c := range g.conns {
		maxConns = max(maxConns, c*1.05)
	}
	for _, c := range g.clusters {
		maxConns = max(maxConns, c.conns*1.1)
	}
	p.X.Min, p.X.Max = 0, maxConns
	if logY {
		p.Y.Tick.Marker = logTicks{}
		// Whole decades at both ends, so that labelled ticks are in view.
		p.Y.Min = math.Floor(math.Log10(max(lo, floor)))
		p.Y.Max = math.Ceil(math.Log10(hi))
	} else {
		p.Y.Min = 0
		p.Y.Max = max(hi*1.1, floor)
	}
	return p, legend, nil
}

// plotClusters draws the group's cluster points: a filled dot in each
// percentile's colour, off the lines, labelled with the node count.
func (g *plotGroup) plotClusters(p *plot.Plot, legend *plot.Legend, logY bool, floor float64) error {
	for i, c := range g.clusters {
		var top plotter.XY
		for j, pq := range plotQuantiles {
			xy := plotter.XY{X: c.conns, Y: c.ms[j]}
			if logY {
				xy.Y = math.Log10(max(xy.Y, floor))
			}
			top.X, top.Y = xy.X, max(top.Y, xy.Y)
			pts, err := plotter.NewScatter(plotter.XYs{xy})
			if err != nil {
				return fmt.Errorf("bench: plot %s %s %s: %w", g.key, c.name, pq.label, err)
			}
			pts.Color, pts.Shape, pts.Radius = plotutil.Color(j), draw.CircleGlyph{}, vg.Points(4.5)
			p.Add(pts)
			if i == 0 && j == 2 {
				legend.Add(fmt.Sprintf("%d nodes", c.nodes), pts)
			}
		}
		// One label per cluster scenario, on its point with the most
		// connections.
		if slices.ContainsFunc(g.clusters, func(o clusterPoint) bool {
			return o.name == c.name && o.nodes == c.nodes && o.conns > c.conns
		}) {
			continue
		}
		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{top},
			Labels: []string{fmt.Sprintf("%d-node cluster", c.nodes)},
		})
		if err != nil {
			return fmt.Errorf("bench: plot %s %s: %w", g.key, c.name, err)
		}
		labels.Offset = vg.Point{X: -vg.Points(30), Y: vg.Points(8)}
		p.Add(labels)
	}
	return nil
}

// logTicks are the ticks of an axis of log10 values, [lo, hi] in
// exponents: it labels 1, 2 and 5 times each power of ten with the value
// itself and marks the other integer multiples, so that an axis of one
// decade still reads.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	const eps = 1e-9
	for e := math.Floor(lo); e <= hi; e++ {
		decade := math.Pow10(int(e))
		for m := 1; m < 10; m++ {
			v := decade * float64(m)
			if l := math.Log10(v); l < lo-eps || l > hi+eps {
				continue
			}
			t := plot.Tick{Value: math.Log10(v)}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', max(0, -int(e)), 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// thousands formats a connection count: 18000 as "18,000".
func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
