package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// FilesPerProc is how many sessions one process should hold: a process may
// hold at most 20,000 open files here, and this leaves room for the rest.
const FilesPerProc = 15000

// DefaultProcs returns the number of processes for conns sessions.
func DefaultProcs(conns int) int { return max(1, (conns+FilesPerProc-1)/FilesPerProc) }

// event is one line a worker writes: a progress sample or its final report.
type event struct {
	Progress *Progress `json:"progress,omitempty"`
	Report   *Report   `json:"report,omitempty"`
}

// Worker runs cfg as one worker process of a Spread run and writes its
// events to w as NDJSON: a progress line about once a second, then the
// report. cfg.Progress is replaced.
func Worker(ctx context.Context, cfg Config, w io.Writer) error {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	cfg.Progress = func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(event{Progress: &p}) // the parent reads the report; progress is best effort
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if err := enc.Encode(event{Report: rep}); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	return nil
}

// WriteUniverse writes symbols to a new temporary file, one a line, for
// workers to read with ReadUniverse; the caller removes it.
func WriteUniverse(symbols []string) (string, error) {
	f, err := os.CreateTemp("", "tickerbench-universe-*.txt")
	if err != nil {
		return "", fmt.Errorf("bench: universe file: %w", err)
	}
	_, werr := io.WriteString(f, strings.Join(symbols, "\n")+"\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("bench: universe file: %w", err)
	}
	return f.Name(), nil
}

// ReadUniverse reads a file written by WriteUniverse.
func ReadUniverse(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: universe file: %w", err)
	}
	return strings.Fields(string(data)), nil
}

// Spread runs cfg over n worker processes and merges their reports.
// command(i, universeFile) must return a command that runs Worker with cfg
// for worker i of n, its universe read from universeFile, writing to its
// standard output (which Spread reads). Spread fetches the universe once,
// combines the workers' progress into cfg.Progress, and on ctx's end
// interrupts the workers, which stop early and still report.
func Spread(ctx context.Context, cfg Config, n int, command func(worker int, universeFile string) *exec.Cmd) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	universe, err := cfg.universe(ctx)
	if err != nil {
		return nil, err
	}
	file, err := WriteUniverse(universe)
	if err != nil {
		return nil, err
	}
	defer os.Remove(file)

	var (
		mu      sync.Mutex
		latest  = make([]*Progress, n)
		reports = make([]*Report, n)
		errs    = make([]error, n)
		wg      sync.WaitGroup
	)
	t0 := time.Now()
	cmds := make([]*exec.Cmd, n)
	for i := range n {
		cmd := command(i, file)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("bench: worker %d: %w", i, err)
		}
		if err := cmd.Start(); err != nil {
			for _, c := range cmds[:i] {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			return nil, fmt.Errorf("bench: start worker %d: %w", i, err)
		}
		cmds[i] = cmd
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 64<<20)
			for sc.Scan() {
				var ev event
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					continue // not an event: a stray line
				}
				mu.Lock()
				if ev.Progress != nil {
					latest[i] = ev.Progress
				}
				if ev.Report != nil {
					reports[i] = ev.Report
				}
				mu.Unlock()
			}
			_, _ = io.Copy(io.Discard, out)
			if err := cmd.Wait(); err != nil {
				errs[i] = fmt.Errorf("bench: worker %d: %w", i, err)
			}
		})
	}

	done := make(chan struct{})
	var aux sync.WaitGroup
	aux.Go(func() {
		select {
		case <-ctx.Done():
			for _, c := range cmds {
				_ = c.Process.Signal(os.Interrupt)
			}
		case <-done:
		}
	})
	if cfg.Progress != nil {
		aux.Go(func() {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case now := <-tick.C:
					mu.Lock()
					p := combine(latest)
					mu.Unlock()
					p.Elapsed = now.Sub(t0)
					p.Target = cfg.Conns
					cfg.Progress(p)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	aux.Wait()

	merged := newReport()
	for i, r := range reports {
		if r == nil {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("bench: worker %d wrote no report", i)
			}
			continue
		}
		merged.Merge(r)
	}
	if err := errors.Join(errs...); err != nil {
		return merged, err
	}
	return merged, nil
}

// combine adds up the workers' latest progress.
func combine(ps []*Progress) Progress {
	c := Progress{Latency: newHist(maxLatencyUS)}
	for _, p := range ps {
		if p == nil {
			continue
		}
		c.Open += p.Open
		c.Connected += p.Connected
		c.Failed += p.Failed
		c.Data += p.Data
		c.Rate += p.Rate
		c.Latency.Merge(p.Latency)
	}
	return c
}
