package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a tickerd process started on a free loopback port for a
// scenario. Stop must be called; it is safe to call twice.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Args []string

	cmd      *exec.Cmd
	exited   chan struct{}
	log      *tailBuffer
	stopOnce sync.Once
	stopErr  error
}

// Server errors.
var (
	ErrServerExited = errors.New("bench: tickerd exited")
	ErrNotReady     = errors.New("bench: tickerd did not become ready")
)

// BuildTickerd builds ./cmd/tickerd of the module containing the working
// directory into dir and returns the binary's path.
func BuildTickerd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "tickerd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "tickerd/cmd/tickerd")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: build tickerd (run inside the tickerd module, or pass -tickerd PATH): %w\n%s", err, out)
	}
	return bin, nil
}

// StartServer starts bin on a free 127.0.0.1 port with args (plus -addr)
// and waits up to timeout for /readyz. A port taken between choosing and
// binding is retried with another.
func StartServer(ctx context.Context, bin string, args []string, timeout time.Duration) (*Server, error) {
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := startOnce(ctx, bin, args, port, timeout)
		if err == nil {
			return s, nil
		}
		last = err
		if !errors.Is(err, ErrServerExited) {
			return nil, err
		}
	}
	return nil, last
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startOnce(ctx context.Context, bin string, args []string, port int, timeout time.Duration) (*Server, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	full := append([]string{"-addr", addr}, args...)
	cmd := exec.Command(bin, full...)
	log := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so a terminal's ^C reaches only tickerbench,
	// which then stops the server in order; killed with us if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start tickerd: %w", err)
	}
	s := &Server{URL: "http://" + addr, Args: full, cmd: cmd, exited: make(chan struct{}), log: log}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%w: %s\n%s", ErrServerExited, cmd.ProcessState, log.String())
		default:
		}
		resp, err := client.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.Stop()
			return nil, fmt.Errorf("%w within %v\n%s", ErrNotReady, timeout, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID returns the server's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Sample reads the server's RSS and CPU time from /proc.
func (s *Server) Sample() (ProcSample, error) { return SampleProc(s.PID()) }

// Log returns the tail of the server's output.
func (s *Server) Log() string { return s.log.String() }

// Stop sends SIGTERM, waits up to 10 s for the process to exit, then kills
// it. It returns an error if the server had to be killed, had already died
// or exited with a non-zero status.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			s.stopErr = fmt.Errorf("%w early: %s", ErrServerExited, s.cmd.ProcessState)
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			// The contract: SIGTERM ends tickerd with status 0 (a race
			// detector report makes it 66).
			if code := s.cmd.ProcessState.ExitCode(); code != 0 {
				s.stopErr = fmt.Errorf("bench: tickerd exited with status %d after SIGTERM\n%s", code, s.log.String())
			}
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
			s.stopErr = errors.New("bench: tickerd ignored SIGTERM for 10 s and was killed")
		}
	})
	return s.stopErr
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// postIngest sends NDJSON lines to base/v1/ingest.
func postIngest(ctx context.Context, base string, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/ingest", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("bench: ingest: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := apiClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: ingest: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: ingest: HTTP status %d", resp.StatusCode)
	}
	return nil
}
