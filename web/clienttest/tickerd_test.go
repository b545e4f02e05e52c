package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// tickerdBin is the tickerd binary built once for the tests that need a
// real process (killed and restarted, or run with -auth and -feed sim).
var tickerdBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func buildTickerd(t testing.TB) string {
	t.Helper()
	tickerdBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "clienttest-tickerd-")
		if err != nil {
			tickerdBin.err = err
			return
		}
		tickerdBin.dir = dir
		tickerdBin.path = filepath.Join(dir, "tickerd")
		cmd := exec.Command("go", "build", "-o", tickerdBin.path, "tickerd/cmd/tickerd")
		if out, err := cmd.CombinedOutput(); err != nil {
			tickerdBin.err = fmt.Errorf("go build tickerd: %v\n%s", err, out)
		}
	})
	if tickerdBin.err != nil {
		t.Fatal(tickerdBin.err)
	}
	return tickerdBin.path
}

// removeTickerdBin deletes the built binary (TestMain calls it).
func removeTickerdBin() {
	if tickerdBin.dir != "" {
		_ = os.RemoveAll(tickerdBin.dir)
	}
}

// proc is a tickerd process on a loopback port that it keeps across
// restarts.
type proc struct {
	t    testing.TB
	args []string
	addr string
	base string
	hc   *http.Client
	cmd  *exec.Cmd
	done chan struct{}
	logs bytes.Buffer
	mu   sync.Mutex
}

// startTickerd runs tickerd with args on a free loopback port and waits
// until it is ready.
func startTickerd(t testing.TB, args ...string) *proc {
	t.Helper()
	bin := buildTickerd(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := &proc{t: t, args: args, addr: addr, base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
	p.start(bin)
	t.Cleanup(func() {
		p.kill()
		p.hc.CloseIdleConnections()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("tickerd output:\n%s", p.logs.String())
			p.mu.Unlock()
		}
	})
	return p
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.logs.Write(b)
}

func (p *proc) start(bin string) {
	p.t.Helper()
	args := append([]string{"-addr", p.addr}, p.args...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = lockedWriter{p}
	p.cmd.Stderr = lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start tickerd: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	waitFor(p.t, 20*time.Second, "tickerd ready", func() string {
		select {
		case <-p.done:
			return "tickerd exited"
		default:
		}
		resp, err := p.hc.Get(p.base + "/readyz")
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		return ""
	})
}

// kill ends the process at once (SIGKILL: no close message to anyone).
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
	p.hc.CloseIdleConnections()
}

// restart starts the process again on the same port.
func (p *proc) restart() {
	p.t.Helper()
	p.start(buildTickerd(p.t))
}

// post sends an NDJSON body to /v1/ingest (allowed from loopback).
func (p *proc) ingest(lines ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/ingest", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	resp, err := p.hc.Do(req)
	if err != nil {
		p.t.Fatalf("ingest: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("ingest: %s", resp.Status)
	}
}
