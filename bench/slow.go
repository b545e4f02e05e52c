package bench

import (
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"syscall"
	"time"
)

// Slow readers. A slow session reads its socket through a token bucket
// (slowConn) and asks the kernel for a small receive buffer, so that what
// it does not read backs up into the kernel's socket buffers within a few
// KiB and the server, whose writes then block, has to conflate. The
// bucket sits below every transport's own buffering (gorilla's reader, the
// line reader of SSE and NDJSON, a long-poll reply's body), so all four
// transports are slowed alike.

// DefaultSlowBPS is the read rate of a slow session when Config.SlowBPS
// is 0: 10 KiB/s.
const DefaultSlowBPS = 10 << 10

// slowRcvBuf is the SO_RCVBUF a slow session asks for (Linux doubles it
// for its own bookkeeping and does not grow it by autotuning once set).
const slowRcvBuf = 4 << 10

// slowMSS is the TCP maximum segment size a slow session announces: that
// of an Ethernet path.
const slowMSS = 1460

// slowQueue bounds the bytes that can wait for a slow session between the
// server and its reads: mostly the server's socket send buffer, which
// Linux grows to about 175 KiB for a path of this MSS whose receiver reads
// slowly (measured here), plus the client's receive buffer and the
// transports' user-space buffers. The time it takes to drain at the
// session's read rate is what a slow session needs on top of the
// contract's convergence window. A server that bounds its own queue per
// connection (TCP_NOTSENT_LOWAT, SO_SNDBUF) makes the drain shorter.
const slowQueue = 256 << 10

// isSlow reports whether session i reads slowly when a fraction frac of
// the sessions do: every 1/frac-th session of each transport, so that the
// slow ones are spread evenly over the transports (session i uses
// transport i % transports).
func isSlow(i, transports int, frac float64) bool {
	if frac <= 0 {
		return false
	}
	j := float64(i / transports)
	return math.Floor((j+1)*frac) > math.Floor(j*frac)
}

// slowBPS returns the read rate of a slow session, in bytes per second.
func (c *Config) slowBPS() int {
	if c.SlowBPS > 0 {
		return c.SlowBPS
	}
	return DefaultSlowBPS
}

// slowDrain is how long the bytes queued in front of a slow session take
// to drain at its read rate; 0 when no session is slow.
func (c *Config) slowDrain() time.Duration {
	if c.Slow <= 0 {
		return 0
	}
	return time.Duration(float64(slowQueue) / float64(c.slowBPS()) * float64(time.Second))
}

// slowDialer returns a dialer for slow sessions: a small receive buffer,
// and every connection's reads throttled to bps bytes per second.
func slowDialer(timeout time.Duration, bps int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, Control: smallRcvBuf}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newSlowConn(c, bps), nil
	}
}

// smallRcvBuf sets SO_RCVBUF before connect, so that the window the
// client advertises is small from the handshake on, and TCP_MAXSEG, so
// that the server sizes its send buffer for an Internet path: on loopback
// the 64 KiB MSS makes Linux start every send buffer at its maximum (4 MiB
// here), which would let a server queue minutes of data for a slow reader
// where a real link would have made it conflate.
func smallRcvBuf(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = errors.Join(
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowRcvBuf),
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, slowMSS))
	})
	if err != nil {
		return err
	}
	return serr
}

// slowConn is a net.Conn whose reads take at most bps bytes per second
// (a token bucket holding at most burst bytes, refilled continuously; it
// starts full).
// Read must be called from one goroutine at a time, as every reader here
// does; Close may be called from any and wakes a Read waiting for tokens.
// Writes are not throttled.
type slowConn struct {
	net.Conn
	bps    float64
	burst  float64
	tokens float64   // bytes that may be read now; the reader's alone
	last   time.Time // when tokens was last refilled; the reader's alone

	closeOnce sync.Once
	closed    chan struct{}
}

func newSlowConn(c net.Conn, bps int) *slowConn {
	rate := float64(max(bps, 1))
	// A burst of 1/20 s of reading, between 256 B and 4 KiB: a slow
	// session reads in small steps, as a congested link delivers.
	burst := min(max(rate/20, 256), 4096)
	return &slowConn{Conn: c, bps: rate, burst: burst, tokens: burst, last: time.Now(), closed: make(chan struct{})}
}

// Read waits until the bucket holds half a burst (or less if p is
// smaller), then reads at most as many bytes as it holds.
func (c *slowConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	want := min(c.burst/2, float64(len(p)))
	for {
		now := time.Now()
		c.tokens = min(c.burst, c.tokens+now.Sub(c.last).Seconds()*c.bps)
		c.last = now
		if c.tokens >= want {
			break
		}
		wait := time.Duration((want - c.tokens) / c.bps * float64(time.Second))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.closed:
			t.Stop()
			return 0, net.ErrClosed
		}
	}
	n, err := c.Conn.Read(p[:min(len(p), int(c.tokens))])
	c.tokens -= float64(n)
	return n, err
}

// Close closes the connection and wakes a Read waiting for tokens.
func (c *slowConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
