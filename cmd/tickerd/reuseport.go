//go:build unix

package main

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen opens the HTTP listener; with reuseport, SO_REUSEPORT is set so
// that several tickerd processes share one address and the kernel spreads
// new connections among them.
func listen(addr string, reuseport bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if reuseport {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(context.Background(), "tcp", addr)
}
