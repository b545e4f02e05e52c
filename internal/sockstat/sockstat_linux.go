package sockstat

import "golang.org/x/sys/unix"

// Unsent returns the bytes written to the socket that the kernel has not
// sent yet (SIOCOUTQNSD): they wait because the peer's receive window or
// the congestion window is full. Bytes in flight on a long link are not
// counted, so a distant client that keeps up does not look slow.
func (q *Queue) Unsent() (int, error) { return q.ioctl(unix.SIOCOUTQNSD) }

// Unacked returns the bytes written to the socket that the peer has not
// acknowledged yet (SIOCOUTQ): those in flight and those not sent. What
// was written before them has reached the peer's kernel.
func (q *Queue) Unacked() (int, error) { return q.ioctl(unix.SIOCOUTQ) }

// ioctl reads one integer about the socket.
func (q *Queue) ioctl(req uint) (int, error) {
	var n int
	var ierr error
	err := q.rc.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), req)
	})
	if err != nil {
		return 0, err
	}
	return n, ierr
}

// LimitUnsent asks the kernel to hold at most about n unsent bytes for the
// socket (TCP_NOTSENT_LOWAT): a write beyond that waits until the peer has
// taken enough. It bounds what a slow client can pile up in the server's
// kernel, whatever the send buffer's size.
func (q *Queue) LimitUnsent(n int) error {
	var serr error
	err := q.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	})
	if err != nil {
		return err
	}
	return serr
}
