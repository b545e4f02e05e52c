package feed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// MaxLine is the longest NDJSON line a streaming adapter accepts.
const MaxLine = 1 << 20

// TCPAdapter accepts feed handlers on a listener; each connection sends
// normalized NDJSON updates, one per line (ingest format). Lines are parsed
// and applied one at a time on the connection's goroutine, so a feed that
// sends faster than the cache applies is slowed by TCP itself: nothing is
// buffered beyond one line. Bad lines are counted and logged (rate-limited),
// never fatal; an overlong line ends that connection.
type TCPAdapter struct {
	Sink    Sink
	Counter Counter
	Log     *slog.Logger
	// Conns, if set, is told of each connection opened (1) and closed (-1).
	Conns func(delta int)
}

// Serve accepts connections on ln until ctx ends, then closes ln and every
// connection and waits for their goroutines.
func (a *TCPAdapter) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := make(map[net.Conn]struct{})
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			return nil
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

func (a *TCPAdapter) serveConn(c net.Conn) {
	if a.Conns != nil {
		a.Conns(1)
		defer a.Conns(-1)
	}
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("adapter", "tcp", "peer", c.RemoteAddr().String())
	log.Info("feed connected")
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	var u Update
	var lastLog time.Time
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := ParseLine(b, &u); err != nil {
			a.Counter.Reject(err)
			if time.Since(lastLog) > time.Second {
				lastLog = time.Now()
				log.Warn("feed line rejected", "line", line, "err", err)
			}
			continue
		}
		u.TS = 0
		a.Sink.Apply(&u)
		a.Counter.Accept(1)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			a.Counter.Reject(&Error{Reason: ReasonJSON, Msg: "line too long"})
		}
		log.Warn("feed disconnected", "line", line, "err", err)
		return
	}
	log.Info("feed disconnected", "lines", line)
}
