package sockstat

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// TestUnsentFollowsThePeer writes to a real loopback connection whose peer
// does not read until the kernel holds bytes in the send queue, then lets
// the peer read everything and expects the queue to empty.
func TestUnsentFollowsThePeer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIOCOUTQ is Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer peer.Close()
	_ = peer.(*net.TCPConn).SetReadBuffer(4096)
	_ = c.(*net.TCPConn).SetWriteBuffer(1 << 20)

	q := For(c)
	if q == nil {
		t.Fatal("For returned nil for a TCP connection")
	}
	if n, err := q.Unsent(); err != nil || n != 0 {
		t.Fatalf("fresh connection: Unsent = %d, %v; want 0, nil", n, err)
	}
	if n, err := q.Unacked(); err != nil || n != 0 {
		t.Fatalf("fresh connection: Unacked = %d, %v; want 0, nil", n, err)
	}
	// Write until the peer's receive buffer is full and bytes stay queued.
	chunk := make([]byte, 64<<10)
	queued := 0
	for i := 0; i < 64 && queued == 0; i++ {
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Write(chunk); err != nil {
			break // the send buffer is full too
		}
		if queued, err = q.Unsent(); err != nil {
			t.Fatal(err)
		}
	}
	if queued == 0 {
		t.Fatal("nothing stayed in the send queue of a peer that does not read")
	}
	if n, err := q.Unacked(); err != nil || n < queued {
		t.Fatalf("Unacked = %d, %v; want at least the %d unsent", n, err, queued)
	}
	// The peer reads everything: the queue empties.
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := peer.Read(buf); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := q.Unsent()
		if err != nil {
			t.Fatal(err)
		}
		u, err := q.Unacked()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 && u == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send queue still holds %d bytes after the peer read", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestForNonSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if q := For(a); q != nil {
		t.Fatal("For(net.Pipe) is not nil")
	}
}
