package stream

import (
	"testing"
	"time"
)

// SetFrameTimeout shortens the time a begun frame has to arrive, for the
// rest of t (sessions of t must be over when it ends).
func SetFrameTimeout(t testing.TB, d time.Duration) {
	old := frameTimeout
	frameTimeout = d
	t.Cleanup(func() { frameTimeout = old })
}

// DisablePoller makes WebSocket sessions opened during t read on a
// goroutine each, as on systems without a poller.
func DisablePoller(t testing.TB) {
	setPollerOff(true)
	t.Cleanup(func() { setPollerOff(false) })
}

func setPollerOff(off bool) {
	wsPoller.mu.Lock()
	defer wsPoller.mu.Unlock()
	wsPoller.off = off
}
