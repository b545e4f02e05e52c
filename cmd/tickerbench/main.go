// Command tickerbench is tickerd's load generator: it opens many streaming
// sessions against running tickerd servers and reports what they saw, or
// runs a named scenario that starts its own tickerd on loopback. It only
// parses flags and wires package bench.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"tickerd/bench"
	"tickerd/internal/cli"
)

const usageHead = `tickerbench — load generator for tickerd

Usage:
  tickerbench -url URL[,URL] -transport ws|sse|poll|ndjson -conns N -symbols K
              [-max-hz H] -duration D [-out report.json] [flags]
  tickerbench scenario NAME [flags]
  tickerbench plot -o OUT.png REPORT.json...

A load run opens -conns sessions (spread round-robin over the URLs and over a
comma list of transports), each subscribed to -symbols symbols chosen from the
server's GET /v1/symbols (uniformly, or Zipf-skewed with -zipf), connecting
-rate sessions per second. Once all have connected it measures for -duration,
checks convergence against GET /v1/snapshot (-check), and prints a table;
-out writes the JSON report. Progress goes to stderr about once a second. The
exit status is 1 if a session failed, the server sent an error, the protocol
was broken or convergence failed; 2 for bad usage; 130 when interrupted (the
report then covers the run so far).

A scenario starts tickerd itself on a free 127.0.0.1 port (built from the
module in the working directory, or -tickerd PATH; hold-50k starts three),
samples its RSS and CPU from /proc, and stops it at the end. Scenarios:
%s
Scenario defaults can be scaled down with -conns, -symbols, -duration, -rate
and -max-hz (e.g. tickerbench scenario fanout -conns 200 -duration 5s); for
churn -conns is the steady sessions, -rate the churns per second and
-duration the churn's length. -slow and -slow-bps add slow readers (mixed has
10%% by default); -procs sets the client processes of hold and hold-50k
(default: one per %d sessions). A scenario's -server-arg goes to every node
of hold-50k's cluster.

plot draws the latency percentiles of saved -out reports against connection
count as a PNG (see tickerbench plot -h).

Flags:
`

// options are the parsed flags.
type options struct {
	urls, transport, out        string
	conns, symbols, maxHz, proc int
	duration, settle, timeout   time.Duration
	rate, zipf, targetKiB, slow float64
	slowBPS                     int
	seed                        uint64
	check, quiet                bool
	tickerd, cpuProfile         string
	serverArgs                  cli.Repeatable
	worker, universeFile        string // hidden: set by the parent of a worker
	set                         map[string]bool
}

// hidden flags are for worker processes and are left out of -h.
var hidden = map[string]bool{"worker": true, "universe-file": true}

// scenarioOnly and loadOnly flags are refused in the other mode.
var (
	scenarioOnly = []string{"tickerd", "target-kib", "server-arg"}
	loadOnly     = []string{"url", "transport", "zipf", "check", "settle"}
)

func newFlags(stderr io.Writer) (*flag.FlagSet, *options) {
	o := &options{}
	fs := flag.NewFlagSet("tickerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.urls, "url", "", "tickerd base `URL`s, comma-separated (http://127.0.0.1:8080)")
	fs.StringVar(&o.transport, "transport", "ws", "`transport`: ws, sse, poll or ndjson; a comma list spreads sessions round-robin")
	fs.IntVar(&o.conns, "conns", 100, "`sessions` to open")
	fs.IntVar(&o.symbols, "symbols", 10, "`symbols` per session")
	fs.IntVar(&o.maxHz, "max-hz", 0, "maxHz asked per session (0 = the server's -max-hz)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure once every session has connected")
	fs.StringVar(&o.out, "out", "", "write the JSON report to `file`")
	fs.Float64Var(&o.rate, "rate", 500, "`n`ew sessions per second (0 = all at once)")
	fs.Float64Var(&o.zipf, "zipf", 0, "Zipf `exponent` of symbol popularity (0 = uniform)")
	fs.Uint64Var(&o.seed, "seed", 1, "`seed` of the symbol choice")
	fs.Float64Var(&o.slow, "slow", 0, "`fraction` of sessions that read slowly (e.g. 0.1), spread over the transports; their latency is reported apart")
	fs.IntVar(&o.slowBPS, "slow-bps", 0, fmt.Sprintf("`bytes` per second each slow session reads (0 = %d)", bench.DefaultSlowBPS))
	fs.IntVar(&o.proc, "procs", 0, fmt.Sprintf("worker `processes` (0 = one per %d sessions)", bench.FilesPerProc))
	fs.BoolVar(&o.check, "check", false, "check convergence against GET /v1/snapshot at the end (default: on when -conns <= 5000)")
	fs.DurationVar(&o.settle, "settle", 0, "wait before the convergence check (0 = one throttle interval + 1s); stop the feed first for an exact check")
	fs.DurationVar(&o.timeout, "connect-timeout", 10*time.Second, "limit on one connection attempt")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile to `file` (go tool pprof)")
	fs.StringVar(&o.tickerd, "tickerd", "", "scenario: tickerd binary `path` (default: go build ./cmd/tickerd)")
	fs.Var(&o.serverArgs, "server-arg", "scenario: an extra tickerd `flag`, repeatable, after the scenario's own (-server-arg=-pacing-max-gap=250ms)")
	fs.Float64Var(&o.targetKiB, "target-kib", 12, "scenario footprint: fail when server RSS per session is above this (0 = report only)")
	fs.StringVar(&o.worker, "worker", "", "internal: run as worker `I/P`")
	fs.StringVar(&o.universeFile, "universe-file", "", "internal: symbols to pick from, one a line")
	fs.Usage = func() { usage(fs) }
	return fs, o
}

func usage(fs *flag.FlagSet) {
	var sc strings.Builder
	for _, s := range bench.Scenarios {
		fmt.Fprintf(&sc, "  %-12s %s\n", s.Name, s.Doc)
	}
	w := fs.Output()
	fmt.Fprintf(w, usageHead, sc.String(), bench.FilesPerProc)
	fs.VisitAll(func(f *flag.Flag) {
		if hidden[f.Name] {
			return
		}
		name, text := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, text)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "plot" {
		return plotMain(args[1:], stderr)
	}
	fs, o := newFlags(stderr)
	pos, err := cli.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "tickerbench: "+format+"\n", a...) }
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			logf("%v", err)
			return 2
		}
		defer stopProfile()
	}

	switch {
	case len(pos) == 0 && o.worker != "":
		if err := workerMain(ctx, o, stdout, stderr); err != nil {
			logf("worker %s: %v", o.worker, err)
			return 1
		}
		return 0
	case len(pos) == 0:
		if err := o.refuse(scenarioOnly, "only for scenarios"); err != nil {
			logf("%v", err)
			return 2
		}
		return loadMain(ctx, o, args, stdout, logf)
	case pos[0] == "scenario" && len(pos) == 2:
		if err := o.refuse(loadOnly, "not used by scenarios"); err != nil {
			logf("%v", err)
			return 2
		}
		return scenarioMain(ctx, o, pos[1], stdout, logf)
	}
	if pos[0] == "plot" {
		logf("put plot first, before any flag: tickerbench plot -o OUT.png REPORT.json...")
		return 2
	}
	logf("unexpected arguments %q; see tickerbench -h", pos)
	return 2
}

func (o *options) refuse(names []string, why string) error {
	for _, n := range names {
		if o.set[n] {
			return fmt.Errorf("flag -%s is %s", n, why)
		}
	}
	return nil
}

// config builds the load configuration from the flags.
func (o *options) config() (bench.Config, error) {
	cfg := bench.Config{
		Conns:          o.conns,
		Symbols:        o.symbols,
		MaxHz:          o.maxHz,
		Duration:       o.duration,
		Rate:           o.rate,
		Zipf:           o.zipf,
		Seed:           o.seed,
		Slow:           o.slow,
		SlowBPS:        o.slowBPS,
		Check:          o.check,
		Settle:         o.settle,
		ConnectTimeout: o.timeout,
	}
	for u := range strings.SplitSeq(o.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.URLs = append(cfg.URLs, u)
		}
	}
	if len(cfg.URLs) == 0 {
		return cfg, errors.New("-url is required (e.g. -url http://127.0.0.1:8080)")
	}
	for t := range strings.SplitSeq(o.transport, ",") {
		cfg.Transports = append(cfg.Transports, strings.TrimSpace(t))
	}
	if !o.set["check"] {
		cfg.Check = o.conns <= 5000
	}
	return cfg, nil
}

func loadMain(ctx context.Context, o *options, args []string, stdout io.Writer, logf func(string, ...any)) int {
	cfg, err := o.config()
	if err != nil {
		logf("%v", err)
		return 2
	}
	if !o.quiet {
		cfg.Progress = func(p bench.Progress) { logf("%s", p) }
	}
	cfg.Logf = logf
	procs := o.proc
	if procs <= 0 {
		procs = bench.DefaultProcs(cfg.Conns)
	}
	var rep *bench.Report
	if procs == 1 {
		rep, err = bench.Run(ctx, cfg)
	} else {
		rep, err = spread(ctx, cfg, procs, args)
	}
	if rep == nil {
		logf("%v", err)
		return 1
	}
	if !emit(stdout, o.out, rep, logf) {
		return 1
	}
	if err != nil {
		logf("%v", err)
		return 1
	}
	if len(rep.Problems()) > 0 {
		return 1
	}
	return interrupted(ctx, logf)
}

// interrupted returns 130, the status of a run cut short by a signal, or 0.
func interrupted(ctx context.Context, logf func(string, ...any)) int {
	if ctx.Err() != nil {
		logf("interrupted: the report covers the run so far")
		return 130
	}
	return 0
}

// spread re-executes this binary as procs worker processes.
func spread(ctx context.Context, cfg bench.Config, procs int, args []string) (*bench.Report, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	// The workers get the parent's flags minus those the parent handles,
	// with -check resolved.
	fs, _ := newFlags(io.Discard)
	if _, err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	var common []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "procs", "out", "check", "quiet", "worker", "universe-file", "cpuprofile":
			return
		}
		common = append(common, "-"+f.Name+"="+f.Value.String())
	})
	common = append(common, "-check="+strconv.FormatBool(cfg.Check), "-quiet")
	return bench.Spread(ctx, cfg, procs, func(i int, universe string) *exec.Cmd {
		return workerCommand(exe, common, i, procs, universe)
	})
}

// scenarioWorker returns the command of worker i of n for a scenario's
// client configuration: exe, this binary, with cfg as flags.
func scenarioWorker(exe string, cfg bench.Config, i, n int, universe string) *exec.Cmd {
	args := []string{
		"-url", strings.Join(cfg.URLs, ","),
		"-transport", strings.Join(cfg.Transports, ","),
		"-conns", strconv.Itoa(cfg.Conns),
		"-symbols", strconv.Itoa(cfg.Symbols),
		"-max-hz", strconv.Itoa(cfg.MaxHz),
		"-duration", cfg.Duration.String(),
		"-rate", strconv.FormatFloat(cfg.Rate, 'g', -1, 64),
		"-zipf", strconv.FormatFloat(cfg.Zipf, 'g', -1, 64),
		"-seed", strconv.FormatUint(cfg.Seed, 10),
		"-slow", strconv.FormatFloat(cfg.Slow, 'g', -1, 64),
		"-slow-bps", strconv.Itoa(cfg.SlowBPS),
		"-check=" + strconv.FormatBool(cfg.Check),
		"-settle", cfg.Settle.String(),
		"-quiet",
	}
	if cfg.ConnectTimeout > 0 {
		args = append(args, "-connect-timeout", cfg.ConnectTimeout.String())
	}
	return workerCommand(exe, args, i, n, universe)
}

// workerCommand returns the command of worker i of n: exe, this binary,
// with args and the worker's hidden flags.
func workerCommand(exe string, args []string, i, n int, universe string) *exec.Cmd {
	wargs := append(slices.Clone(args), "-worker", fmt.Sprintf("%d/%d", i, n), "-universe-file", universe)
	cmd := exec.Command(exe, wargs...)
	cmd.Stderr = os.Stderr
	// Own process group: ^C reaches the parent, which interrupts the
	// workers so that they report. They die with the parent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func workerMain(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if _, err := fmt.Sscanf(o.worker, "%d/%d", &cfg.Worker, &cfg.Workers); err != nil {
		return fmt.Errorf("bad -worker %q: %w", o.worker, err)
	}
	if o.universeFile != "" {
		if cfg.Universe, err = bench.ReadUniverse(o.universeFile); err != nil {
			return err
		}
	}
	cfg.Logf = func(format string, a ...any) {
		fmt.Fprintf(stderr, "tickerbench worker %s: "+format+"\n", append([]any{o.worker}, a...)...)
	}
	return bench.Worker(ctx, cfg, os.Stdin, stdout)
}

func scenarioMain(ctx context.Context, o *options, name string, stdout io.Writer, logf func(string, ...any)) int {
	sc, err := bench.FindScenario(name)
	if err != nil {
		logf("%v", err)
		return 2
	}
	cfg := bench.ScenarioConfig{
		Tickerd: o.tickerd, Seed: o.seed, TargetKiB: o.targetKiB, Logf: logf,
		Slow: o.slow, SlowBPS: o.slowBPS, Procs: o.proc, ServerArgs: o.serverArgs.Values,
	}
	if exe, err := os.Executable(); err == nil {
		cfg.WorkerCommand = func(c bench.Config, i, n int, universe string) *exec.Cmd {
			return scenarioWorker(exe, c, i, n, universe)
		}
	} else {
		logf("cannot find own binary (%v): every session runs in this process", err)
	}
	if o.set["conns"] {
		cfg.Conns = o.conns
	}
	if o.set["symbols"] {
		cfg.Symbols = o.symbols
	}
	if o.set["duration"] {
		cfg.Duration = o.duration
	}
	if o.set["rate"] {
		cfg.Rate = o.rate
	}
	if o.set["max-hz"] {
		cfg.MaxHz = o.maxHz
	}
	if !o.quiet {
		cfg.Progress = func(p bench.Progress) { logf("%s", p) }
	}
	rep, err := sc.Run(ctx, cfg)
	if rep == nil {
		logf("scenario %s: %v", name, err)
		return 1
	}
	if !emit(stdout, o.out, rep, logf) {
		return 1
	}
	if err != nil {
		logf("scenario %s: %v", name, err)
		return 1
	}
	if len(rep.Problems) > 0 {
		return 1
	}
	return interrupted(ctx, logf)
}

// startCPUProfile profiles this process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// emit prints a report's table and writes its JSON to out when set; it
// reports false if the JSON could not be written.
func emit(stdout io.Writer, out string, rep interface{ WriteText(io.Writer) error }, logf func(string, ...any)) bool {
	if err := rep.WriteText(stdout); err != nil {
		logf("%v", err)
	}
	if out != "" {
		if err := writeJSON(out, rep); err != nil {
			logf("%v", err)
			return false
		}
	}
	return true
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
