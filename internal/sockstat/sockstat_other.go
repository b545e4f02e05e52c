//go:build !linux

package sockstat

// Unsent fails with ErrUnsupported: only Linux is measured.
func (q *Queue) Unsent() (int, error) { return 0, ErrUnsupported }
