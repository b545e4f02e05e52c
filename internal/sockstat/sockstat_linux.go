package sockstat

import "golang.org/x/sys/unix"

// Unsent returns the bytes written to the socket that the kernel has not
// sent yet (SIOCOUTQNSD): they wait because the peer's receive window or
// the congestion window is full. Bytes in flight on a long link are not
// counted, so a distant client that keeps up does not look slow.
func (q *Queue) Unsent() (int, error) {
	var n int
	var ierr error
	err := q.rc.Control(func(fd uintptr) {
		n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQNSD)
	})
	if err != nil {
		return 0, err
	}
	return n, ierr
}
