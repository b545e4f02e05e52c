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
	"slices"
	"strings"
	"sync"
	"time"
)

// FilesPerProc is how many sessions one process should hold: a process may
// hold at most 20,000 open files here, and this leaves room for the rest.
const FilesPerProc = 15000

// DefaultProcs returns the number of processes for conns sessions.
func DefaultProcs(conns int) int { return max(1, (conns+FilesPerProc-1)/FilesPerProc) }

// event is one line a worker writes: a progress sample, a barrier it has
// reached, or its final report.
type event struct {
	Progress *Progress `json:"progress,omitempty"`
	Steady   string    `json:"steady,omitempty"` // barrier reached: "start" or "end" of the steady window
	Report   *Report   `json:"report,omitempty"`
}

// The barriers of a Spread run, in order: every worker's steady window
// starts after the parent's Config.SteadyStart returned, and the parent's
// Config.SteadyEnd runs after every worker's window has ended.
var barriers = [...]string{"start", "end"}

// Worker runs cfg as one worker process of a Spread run and writes its
// events to w as NDJSON: a progress line about once a second, a line at
// each barrier, then the report. At a barrier it waits for a line on in
// (the parent's go-ahead; EOF also releases it); a nil in waits for
// nothing. cfg.Progress, cfg.SteadyStart and cfg.SteadyEnd are replaced.
func Worker(ctx context.Context, cfg Config, in io.Reader, w io.Writer) error {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(ev event) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(ev)
	}
	cfg.Progress = func(p Progress) {
		_ = send(event{Progress: &p}) // the parent reads the report; progress is best effort
	}
	goAhead := make(chan struct{})
	if in != nil {
		// This goroutine ends at the EOF of in, which the parent closes
		// after the last barrier; it is not waited for, as a blocked read
		// cannot be interrupted and the process exits after Worker.
		go func() {
			defer close(goAhead)
			sc := bufio.NewScanner(in)
			for sc.Scan() {
				goAhead <- struct{}{}
			}
		}()
	} else {
		close(goAhead)
	}
	barrier := func(name string) {
		if send(event{Steady: name}) != nil {
			return
		}
		select {
		case <-goAhead:
		case <-ctx.Done():
		}
	}
	cfg.SteadyStart = func() { barrier(barriers[0]) }
	cfg.SteadyEnd = func() { barrier(barriers[1]) }
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
// for worker i of n, its universe read from universeFile, reading its
// standard input and writing to its standard output (both of which Spread
// connects). Spread fetches the universe once, combines the workers'
// progress into cfg.Progress, aligns the workers' steady windows (calling
// cfg.SteadyStart once every worker has connected its sessions, and
// cfg.SteadyEnd once every window has ended), and on ctx's end interrupts
// the workers, which stop early and still report.
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
		reached = make([]int, n)         // barriers each worker has reached
		exited  = make([]bool, n)        // its output has ended
		changed = make(chan struct{}, 1) // reached or exited moved
		wg      sync.WaitGroup
	)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	t0 := time.Now()
	cmds := make([]*exec.Cmd, n)
	stdins := make([]io.WriteCloser, n)
	for i := range n {
		cmd := command(i, file)
		out, err := cmd.StdoutPipe()
		var in io.WriteCloser
		if err == nil {
			in, err = cmd.StdinPipe()
		}
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			for _, c := range cmds[:i] {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			return nil, fmt.Errorf("bench: start worker %d: %w", i, err)
		}
		cmds[i], stdins[i] = cmd, in
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
				if ev.Steady != "" {
					reached[i]++
					notify()
				}
				mu.Unlock()
			}
			mu.Lock()
			exited[i] = true
			notify()
			mu.Unlock()
			_, _ = io.Copy(io.Discard, out)
			if err := cmd.Wait(); err != nil {
				errs[i] = fmt.Errorf("bench: worker %d: %w", i, err)
			}
		})
	}

	done := make(chan struct{})
	var aux sync.WaitGroup
	aux.Go(func() {
		// The barriers: release every worker once each has reached the
		// barrier or gone, after the parent's hook.
		defer func() {
			for _, in := range stdins {
				_ = in.Close()
			}
		}()
		hooks := [len(barriers)]func(){cfg.SteadyStart, cfg.SteadyEnd}
		for b, hook := range hooks {
			for {
				mu.Lock()
				all := true
				for i := range n {
					all = all && (reached[i] > b || exited[i])
				}
				mu.Unlock()
				if all {
					break
				}
				select {
				case <-changed:
				case <-ctx.Done():
					return // closing the inputs releases every barrier
				case <-done:
					return
				}
			}
			mu.Lock()
			some := slices.ContainsFunc(reached, func(r int) bool { return r > b })
			mu.Unlock()
			if hook != nil && some && ctx.Err() == nil {
				hook()
			}
			for _, in := range stdins {
				_, _ = io.WriteString(in, "go\n") // a worker that has gone does not need it
			}
		}
	})
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
