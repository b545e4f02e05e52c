package netpoll

import "errors"

var (
	// ErrClosed is returned by a Poller, or a Handle of it, after Close.
	ErrClosed = errors.New("netpoll: poller closed")
	// ErrRemoved is returned by Arm after Remove.
	ErrRemoved = errors.New("netpoll: connection removed")
)
