package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// blast serves one TCP connection that writes as fast as the peer takes,
// until the test ends.
func blast(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	return l.Addr().String()
}

// TestSlowConnRate reads from a server that writes as fast as it can, over
// real TCP, and checks that the throttled reader takes no more than its
// rate allows (plus one burst), and not far less.
func TestSlowConnRate(t *testing.T) {
	const bps = 64 << 10
	addr := blast(t)
	c, err := slowDialer(5*time.Second, bps)(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := c.(*slowConn)
	buf := make([]byte, 16<<10)
	start := time.Now()
	var n int64
	for time.Since(start) < 1500*time.Millisecond {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(k)
	}
	elapsed := time.Since(start).Seconds()
	if most := int64(bps*elapsed + sc.burst); n > most {
		t.Errorf("read %d bytes in %.2fs, more than the %d a rate of %d B/s allows", n, elapsed, most, bps)
	}
	// A noisy machine may read less, never much more; half is plenty.
	if least := int64(bps * elapsed / 2); n < least {
		t.Errorf("read %d bytes in %.2fs, less than half of %d B/s", n, elapsed, bps)
	}
}

// TestSlowConnSocket checks that a slow connection asks for a small
// receive buffer, so that the server's writes back up.
func TestSlowConnSocket(t *testing.T) {
	addr := blast(t)
	c, err := slowDialer(5*time.Second, 1024)(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*slowConn).Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	size, err := getsockoptRcvBuf(rc)
	if err != nil {
		t.Fatal(err)
	}
	// Linux doubles the asked size for its bookkeeping.
	if size > 2*slowRcvBuf {
		t.Errorf("SO_RCVBUF %d, want at most %d", size, 2*slowRcvBuf)
	}
}

// TestSlowConnClose checks that Close wakes a Read waiting for tokens.
func TestSlowConnClose(t *testing.T) {
	addr := blast(t)
	c, err := slowDialer(5*time.Second, 1)(context.Background(), "tcp", addr) // one byte a second
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1024)
	if _, err := c.Read(buf); err != nil { // spends the first tokens
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	time.AfterFunc(50*time.Millisecond, func() { c.Close() })
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			t.Errorf("read after close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the waiting Read")
	}
}

func TestIsSlow(t *testing.T) {
	tests := []struct {
		name         string
		conns, tr    int
		frac         float64
		wantSlow     int
		perTransport int // slow sessions each transport gets
	}{
		{"none", 100, 4, 0, 0, 0},
		{"all", 40, 4, 1, 40, 10},
		{"tenth over four transports", 400, 4, 0.1, 40, 10},
		{"tenth of one transport", 1000, 1, 0.1, 100, 100},
		{"half", 10, 2, 0.5, 4, 2}, // 5 per transport: the 2nd and 4th
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			per := make([]int, tt.tr)
			total := 0
			for i := range tt.conns {
				if isSlow(i, tt.tr, tt.frac) {
					per[i%tt.tr]++
					total++
				}
			}
			if total != tt.wantSlow {
				t.Errorf("%d slow sessions, want %d", total, tt.wantSlow)
			}
			for tr, n := range per {
				if n != tt.perTransport {
					t.Errorf("transport %d has %d slow sessions, want %d", tr, n, tt.perTransport)
				}
			}
		})
	}
}

// TestRunSlow runs half of the sessions as slow readers against the fake
// server on every transport: they must still see everything and
// converge, and their latencies are reported apart, per transport too.
func TestRunSlow(t *testing.T) {
	f, url := newFake(t, "")
	cfg := quick(url, Transports...)
	cfg.Conns = 8
	cfg.Slow = 0.5
	cfg.SlowBPS = 4 << 10 // the fake's script is about 2 KiB per session
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Problems(); len(p) > 0 {
		t.Fatalf("problems: %q", p)
	}
	if rep.SlowConns != 4 || rep.SlowBPS != 4<<10 {
		t.Errorf("slow conns %d at %d B/s, want 4 at %d", rep.SlowConns, rep.SlowBPS, 4<<10)
	}
	perSession := int64(cfg.Symbols * (f.n - 1))
	if rep.Latency.Count() != 4*perSession || rep.LatencySlow.Count() != 4*perSession {
		t.Errorf("latencies: %d fast, %d slow, want %d each", rep.Latency.Count(), rep.LatencySlow.Count(), 4*perSession)
	}
	if len(rep.ByTransport) != len(Transports) {
		t.Fatalf("by transport: %v", rep.ByTransport)
	}
	for name, ts := range rep.ByTransport {
		if ts.Conns != 2 || ts.SlowConns != 1 || ts.Latency.Count() != perSession || ts.LatencySlow.Count() != perSession {
			t.Errorf("%s: %d conns (%d slow), %d fast and %d slow latencies", name, ts.Conns, ts.SlowConns,
				ts.Latency.Count(), ts.LatencySlow.Count())
		}
	}
	if c := rep.Check; c == nil || c.Compared != int64(cfg.Conns*cfg.Symbols) {
		t.Errorf("check %+v", c)
	}
}

func TestSlowConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"slow above one": {URLs: []string{"http://x"}, Transports: []string{"ws"}, Conns: 1, Symbols: 1, Slow: 1.5},
		"negative rate":  {URLs: []string{"http://x"}, Transports: []string{"ws"}, Conns: 1, Symbols: 1, Slow: 0.1, SlowBPS: -1},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, errBadSettings) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func getsockoptRcvBuf(rc syscall.RawConn) (int, error) {
	var size int
	var serr error
	err := rc.Control(func(fd uintptr) {
		size, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	return size, errors.Join(err, serr)
}
