package streamtest

import (
	"context"
	"net"
	"syscall"
	"time"
)

// slowRcvBuf is the socket receive buffer of a slow reader: small, so
// that the server's send queue, not the client's kernel, holds the
// backlog.
const slowRcvBuf = 8 << 10

// slowDialer returns a DialContext whose connections read at most bps
// bytes per second.
func slowDialer(bps int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &slowConn{Conn: c, bps: float64(bps), last: time.Now()}, nil
	}
}

// slowConn is a token bucket on the read side of a connection: reads take
// at most what the bucket holds, and wait for it to refill. Its burst is a
// tenth of a second's worth.
type slowConn struct {
	net.Conn
	bps    float64
	tokens float64
	last   time.Time
}

func (c *slowConn) Read(p []byte) (int, error) {
	burst := max(c.bps/10, 512)
	for {
		now := time.Now()
		c.tokens = min(c.tokens+now.Sub(c.last).Seconds()*c.bps, burst)
		c.last = now
		if c.tokens >= 1 {
			break
		}
		time.Sleep(time.Duration((1 - c.tokens) / c.bps * float64(time.Second)))
	}
	if n := int(c.tokens); len(p) > n {
		p = p[:n]
	}
	n, err := c.Conn.Read(p)
	c.tokens -= float64(n)
	return n, err
}
