// Command tickersim simulates, records and replays market data for tickerd.
//
//	tickersim gen -symbols N -rate R -duration D -seed S [-scenario NAME] (-o CAPTURE | -to URL)
//	tickersim record -from URL [-symbols A,B] -o CAPTURE [-duration D] [-key K]
//	tickersim replay CAPTURE -to URL [-speed 1x|10x|max] [-loop] [-start T] [-end T] [-key K]
//
// It only parses flags and wires; the work is done by package simulator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"tickerd/internal/cli"
)

const usage = `tickersim simulates, records and replays market data for tickerd.

Usage:
  tickersim gen -symbols N -rate R -duration D -seed S [-scenario NAME] (-o CAPTURE | -to URL)
  tickersim record -from URL [-symbols A,B] -o CAPTURE [-duration D] [-key K]
  tickersim replay CAPTURE -to URL [-speed 1x|10x|max] [-loop] [-start T] [-end T] [-key K]

A capture is zstd-compressed NDJSON, one {"symbol":..,"fields":{..},"ts":..}
per line, in independent zstd frames; CAPTURE.idx beside it indexes them by
time so a replay can start in the middle (without it, a replay reads from
the start). Scenarios: steady, open, flash-crash, halt, gap. Times are RFC
3339 or +DURATION after the capture's start. URLs are a tickerd base URL
(http://127.0.0.1:8080). Flags may come before or after positional
arguments. Run "tickersim COMMAND -h" for a command's flags.
`

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the work failed
	exitUsage = 2 // bad command line
)

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	stderrTTY      bool // stderr is a terminal: progress redraws one line
}

// command is one subcommand: its usage header, and a function that defines
// its flags and returns what runs once they are parsed.
type command struct {
	usage string
	setup func(fs *flag.FlagSet) func(ctx context.Context, e env, args []string) int
}

var commands = map[string]command{
	"gen":    genCommand,
	"record": recordCommand,
	"replay": replayCommand,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// run runs the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tickersim: unknown command %q (want gen, record or replay; see tickersim -h)\n", args[0])
		return exitUsage
	}
	name := args[0]
	fs := flag.NewFlagSet("tickersim "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runCmd := cmd.setup(fs)
	positional, err := cli.Parse(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage:\n  %s\n\nFlags:\n", cmd.usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		return usageError(stderr, name, err)
	}
	e := env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, nil)), stderrTTY: tty}
	return runCmd(ctx, e, positional)
}

// usageError prints a one-line error about the command line of a command
// and returns exitUsage.
func usageError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "tickersim %s: %v (see tickersim %s -h)\n", name, err, name)
	return exitUsage
}
