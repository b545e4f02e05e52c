// Package sockstat reads a TCP connection's send queue: how many bytes the
// kernel still holds unsent because the peer has not made room for them.
// A server that checks it after each write learns how fast its client
// drains without waiting for a write to block.
package sockstat

import (
	"errors"
	"net"
	"syscall"
)

// Queue reads one connection's send queue.
type Queue struct{ rc syscall.RawConn }

// ErrUnsupported is returned where the system cannot tell.
var ErrUnsupported = errors.ErrUnsupported

// For returns the queue of c, or nil if c is not a socket (a test pipe, a
// TLS connection wraps one: pass the inner connection).
func For(c net.Conn) *Queue {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &Queue{rc: rc}
}
