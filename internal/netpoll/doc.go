// Package netpoll tells a server when a connection has bytes to read, so
// that no goroutine has to sit in Read while a connection is idle.
//
// A Poller owns one epoll instance and one goroutine that waits on it. A
// registered connection is armed one-shot: when it becomes readable (data,
// end of stream or an error) the Poller calls its callback once, on a
// goroutine of its own, and reports nothing more until the callback's owner
// calls Arm again. A goroutine therefore exists only while a connection is
// being read.
//
// netpoll never reads, writes or closes a connection: the caller does all
// I/O, and must Remove a connection before closing it. On systems other
// than Linux, New fails with an error wrapping errors.ErrUnsupported and
// callers fall back to a reading goroutine per connection.
package netpoll
