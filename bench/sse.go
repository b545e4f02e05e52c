package bench

import (
	"bytes"
	"context"
	"time"
)

// dialSSE runs a Server-Sent Events session: GET /v1/sse, every event's
// data lines joined and decoded as one frame. Comment lines are the
// server's heartbeats and count as heartbeat messages.
func dialSSE(ctx context.Context, s *session) error {
	resp, closer, err := s.openStream(ctx, "/v1/sse", "text/event-stream")
	if err != nil {
		return err
	}
	defer closer()
	defer s.disconnected()
	lr := newLineReader(resp.Body, 1024)
	data := s.buf[:0]
	hasData := false
	for {
		line, err := lr.next()
		if err != nil {
			s.buf = data
			return s.streamEnd(ctx, err)
		}
		if len(line) == 0 { // end of event
			if hasData {
				s.frame(data, time.Now().UnixMicro())
				data, hasData = data[:0], false
			}
			continue
		}
		if line[0] == ':' {
			s.tally.kinds[KindHeartbeat]++
			s.recvUS = time.Now().UnixMicro()
			s.maybeFlush()
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "event":
			if len(value) > 0 {
				s.violation("sse_named_event")
			}
		}
	}
}
