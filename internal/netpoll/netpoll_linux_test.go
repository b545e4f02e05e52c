//go:build linux

package netpoll

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is how long a test watches for a callback that must not come.
const quiet = 100 * time.Millisecond

func newPoller(t testing.TB) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

// signal returns a callback that sends on the returned channel.
func signal() (func(), chan struct{}) {
	ch := make(chan struct{}, 16)
	return func() { ch <- struct{}{} }, ch
}

func want(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no callback: %s", what)
	}
}

func wantNone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("unexpected callback: %s", what)
	case <-time.After(quiet):
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func fdOf(t *testing.T, c *net.TCPConn) uintptr {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestOneShotUntilArm(t *testing.T) {
	p := newPoller(t)
	srv, cli := pair(t)
	cb, fired := signal()
	h, err := p.Register(srv, cb)
	if err != nil {
		t.Fatal(err)
	}
	wantNone(t, fired, "idle connection")

	write(t, cli, "abc")
	want(t, fired, "first bytes")
	write(t, cli, "def")
	wantNone(t, fired, "more bytes before Arm")

	if n, err := h.Buffered(); err != nil || n != 6 {
		t.Fatalf("Buffered = %d, %v; want 6", n, err)
	}
	// Level-triggered: arming with bytes waiting reports them at once.
	if err := h.Arm(); err != nil {
		t.Fatal(err)
	}
	want(t, fired, "arm with bytes waiting")

	buf := make([]byte, 16)
	if n, err := srv.Read(buf); err != nil || n != 6 {
		t.Fatalf("read %d, %v", n, err)
	}
	if n, err := h.Buffered(); err != nil || n != 0 {
		t.Fatalf("Buffered after read = %d, %v; want 0", n, err)
	}
	if err := h.Arm(); err != nil {
		t.Fatal(err)
	}
	wantNone(t, fired, "armed, nothing to read")
	write(t, cli, "g")
	want(t, fired, "bytes after re-arm")
}

func TestEndOfStreamIsReadable(t *testing.T) {
	p := newPoller(t)
	srv, cli := pair(t)
	cb, fired := signal()
	if _, err := p.Register(srv, cb); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	want(t, fired, "peer closed")
	if _, err := srv.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after peer close: %v, want EOF", err)
	}
}

func TestRemove(t *testing.T) {
	p := newPoller(t)
	srv, cli := pair(t)
	cb, fired := signal()
	h, err := p.Register(srv, cb)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := h.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	write(t, cli, "x")
	wantNone(t, fired, "removed connection")
	if err := h.Arm(); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Arm after Remove: %v, want ErrRemoved", err)
	}
}

// A closed connection's fd number is soon reused; events are keyed by id,
// so the old handle can neither see nor disturb the new connection.
func TestReusedFdGetsNewID(t *testing.T) {
	p := newPoller(t)
	srv1, cli1 := pair(t)
	old, oldFired := signal()
	h1, err := p.Register(srv1, old)
	if err != nil {
		t.Fatal(err)
	}
	fd := fdOf(t, srv1)
	if err := h1.Remove(); err != nil {
		t.Fatal(err)
	}
	srv1.Close()
	cli1.Close()

	var srv2, cli2 *net.TCPConn
	for range 20 {
		srv2, cli2 = pair(t)
		if fdOf(t, srv2) == fd {
			break
		}
	}
	if fdOf(t, srv2) != fd {
		t.Skipf("fd %d not reused", fd)
	}
	cb, fired := signal()
	h2, err := p.Register(srv2, cb)
	if err != nil {
		t.Fatal(err)
	}
	if h2.id == h1.id {
		t.Fatalf("id %d reused", h2.id)
	}
	if err := h1.Arm(); !errors.Is(err, ErrRemoved) {
		t.Fatalf("old handle Arm: %v, want ErrRemoved", err)
	}
	if err := h1.Remove(); err != nil {
		t.Fatal(err)
	}
	write(t, cli2, "x")
	want(t, fired, "new connection on the reused fd")
	wantNone(t, oldFired, "old handle")
}

func TestManyConnections(t *testing.T) {
	p := newPoller(t)
	const n = 200
	var calls [n]atomic.Int32
	done := make(chan int, n)
	clients := make([]*net.TCPConn, n)
	for i := range n {
		srv, cli := pair(t)
		clients[i] = cli
		if _, err := p.Register(srv, func() { calls[i].Add(1); done <- i }); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range clients {
		write(t, c, "x")
	}
	for range n {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("callbacks missing")
		}
	}
	select {
	case i := <-done:
		t.Fatalf("second callback for connection %d without Arm", i)
	case <-time.After(quiet):
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Errorf("connection %d: %d callbacks", i, c)
		}
	}
}

func TestCloseWaitsForCallbacks(t *testing.T) {
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := pair(t)
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	h, err := p.Register(srv, func() {
		close(started)
		<-release
		finished.Store(true)
	})
	if err != nil {
		t.Fatal(err)
	}
	write(t, cli, "x")
	<-started
	closed := make(chan error)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a callback ran")
	case <-time.After(quiet):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("callback not finished when Close returned")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.Arm(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Arm after Close: %v, want ErrClosed", err)
	}
	if err := h.Remove(); err != nil {
		t.Fatalf("Remove after Close: %v", err)
	}
	if _, err := p.Register(srv, func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Close: %v, want ErrClosed", err)
	}
}

func TestRegisterClosedConn(t *testing.T) {
	p := newPoller(t)
	srv, _ := pair(t)
	srv.Close()
	if _, err := p.Register(srv, func() {}); err == nil {
		t.Fatal("registered a closed connection")
	}
}
