package bench

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// pollWait is the wait parameter of each long-poll, in seconds.
const pollWait = 25

// dialPoll runs a long-poll session: GET /v1/poll with the subscription,
// then GET /v1/poll?session=ID&wait=25 in a loop on one keep-alive
// connection (reopened if the server closes it). Each reply is one frame.
func dialPoll(ctx context.Context, s *session) error {
	u, err := streamURL(s.url, "/v1/poll", s.symbols, s.run.cfg.MaxHz)
	if err != nil {
		return &connectError{err: err}
	}
	timeout := s.run.cfg.connectTimeout()
	start := time.Now()
	var p poller
	defer p.close()
	status, err := p.get(ctx, s, u, start.Add(timeout), timeout)
	if err != nil {
		return &connectError{err: err}
	}
	if status != http.StatusOK {
		return &connectError{status: status}
	}
	id, err := s.pollFrame()
	if err != nil {
		return &connectError{err: err}
	}
	s.connectedAfter(time.Since(start))
	defer s.disconnected()
	next := *u
	next.RawQuery = "session=" + url.QueryEscape(id) + "&wait=" + strconv.Itoa(pollWait)
	for {
		if s.closeCode != "" {
			return &closedError{code: s.closeCode}
		}
		status, err := p.get(ctx, s, &next, time.Now().Add((pollWait+15)*time.Second), timeout)
		if err != nil {
			return s.streamEnd(ctx, err)
		}
		if status != http.StatusOK {
			return &readError{kind: "poll_status_" + strconv.Itoa(status), err: &httpStatusError{status: status}}
		}
		if _, err := s.pollFrame(); err != nil {
			s.violation("decode")
		}
	}
}

// poller holds a long-poll session's keep-alive connection.
type poller struct {
	hc     *httpConn
	closer func()
	reuse  bool // the previous response allows another request
}

func (p *poller) close() {
	if p.closer != nil {
		p.closer()
	}
}

// get sends one poll and reads the whole body into s.buf. A request on a
// reused connection that dies before any reply is retried once on a new one.
func (p *poller) get(ctx context.Context, s *session, u *url.URL, deadline time.Time, timeout time.Duration) (int, error) {
	for attempt := 0; ; attempt++ {
		reused := p.hc != nil && p.reuse
		if !reused {
			p.close()
			hc, closer, err := openHTTP(ctx, u, timeout, s.readBPS())
			if err != nil {
				return 0, err
			}
			p.hc, p.closer = hc, closer
		}
		resp, err := p.hc.get(u, "application/json", deadline)
		if err != nil {
			p.reuse = false
			if reused && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return 0, err
		}
		s.buf, err = readAll(s.buf[:0], resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			p.reuse = false
			return 0, err
		}
		s.recvUS = time.Now().UnixMicro()
		p.reuse = !resp.Close
		return resp.StatusCode, nil
	}
}

// pollFrame decodes the poll reply in s.buf and returns its session ID.
func (s *session) pollFrame() (string, error) {
	s.tally.frames++
	s.tally.bytes += int64(len(s.buf))
	id, err := s.dec.Poll(s.buf, s.msgFunc)
	s.maybeFlush()
	return id, err
}
