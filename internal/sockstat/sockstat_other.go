//go:build !linux

package sockstat

// Unsent fails with ErrUnsupported: only Linux is measured.
func (q *Queue) Unsent() (int, error) { return 0, ErrUnsupported }

// Unacked fails with ErrUnsupported: only Linux is measured.
func (q *Queue) Unacked() (int, error) { return 0, ErrUnsupported }

// LimitUnsent fails with ErrUnsupported: only Linux is handled.
func (q *Queue) LimitUnsent(n int) error { return ErrUnsupported }
