//go:build !linux

package netpoll

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
)

// Poller is not available on this system: New always fails.
type Poller struct{}

// Handle is a registered connection; none exist on this system.
type Handle struct{}

// New fails with an error wrapping errors.ErrUnsupported: callers read
// each connection on a goroutine of its own instead.
func New() (*Poller, error) {
	return nil, fmt.Errorf("netpoll: no poller on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// Register fails: see New.
func (p *Poller) Register(conn syscall.Conn, onReadable func()) (*Handle, error) {
	return nil, errors.ErrUnsupported
}

// Close does nothing.
func (p *Poller) Close() error { return nil }

// Arm fails: see New.
func (h *Handle) Arm() error { return errors.ErrUnsupported }

// Remove does nothing.
func (h *Handle) Remove() error { return nil }

// Buffered fails: see New.
func (h *Handle) Buffered() (int, error) { return 0, errors.ErrUnsupported }
