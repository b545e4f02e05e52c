package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"tickerd/bench"
	"tickerd/internal/cli"
)

const plotUsage = `Usage: tickerbench plot -o OUT.png REPORT.json...

Draws the update latency percentiles (p50, p90, p99, p99.9, in ms) of the
reports against their connection count and writes a PNG. A report is the JSON
of tickerbench scenario -out or of a load run's -out. Reports of one scenario
(load runs: of one transport) share a panel, one line per percentile, titled
with the server's arguments; each scenario gets its own panel. A report
without latency data is an error and nothing is written. The exit status is
1 if a report cannot be plotted or the PNG not written, 2 for bad usage.

Example: tickerbench plot -o docs/latency.png artifacts/hold-*.json

Flags:
`

// plotMain runs "tickerbench plot"; args follow the word plot.
func plotMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("tickerbench plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the PNG to `file` (must end in .png)")
	fs.Usage = func() {
		fmt.Fprint(stderr, plotUsage)
		fs.PrintDefaults()
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "tickerbench plot: "+format+"\n", a...) }
	reports, err := cli.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	switch {
	case *out == "":
		logf("-o OUT.png is required; see tickerbench plot -h")
		return 2
	case !strings.HasSuffix(strings.ToLower(*out), ".png"):
		logf("-o %s: the output must be a .png file", *out)
		return 2
	case len(reports) == 0:
		logf("no reports given; see tickerbench plot -h")
		return 2
	}
	// Drawn in memory first, so that a bad report leaves no partial file.
	var png bytes.Buffer
	if err := bench.PlotLatency(&png, reports...); err != nil {
		logf("%v", err)
		return 1
	}
	if err := os.WriteFile(*out, png.Bytes(), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	noun := "reports"
	if len(reports) == 1 {
		noun = "report"
	}
	logf("wrote %s from %d %s", *out, len(reports), noun)
	return 0
}
